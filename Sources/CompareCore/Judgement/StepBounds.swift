import Foundation
import Framework

// Error bounds for the tensors of one training step: how far a correct float64 engine's value may lie from the
// exact value of the same step, element by element, given the step's exact inputs (the batch, the parameters
// and optimizer state it starts from). `compare locate` allows two correct engines to differ by twice the
// bound, doubled again for the terms the first-order analysis leaves out (`StepBounds.tolerance`).
//
// The analysis is the standard forward one (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
// §3.1 and §4.2): a sum or dot product of n terms, added in any order, with or without fused multiply-adds, is
// within γ_n·Σ|terms| of the exact sum, γ_n = n·u/(1 − n·u), u = 2⁻⁵³; an elementwise operation adds a few
// rounding errors relative to its result (libm's tanh, exp and erf are within a few ulp); and an error e in an
// input moves an output by at most |∂output/∂input|·e (Lipschitz constants, stated per activation in
// Kinds.swift). Each bound is the propagated input error plus the operation's own rounding, computed from the
// referee's values. So a bound is "a few ulp times the magnitude of what is summed", carried through the step:
// for the seeds' network it is 10⁻¹⁶–10⁻¹⁴ relative, while a weight moved by 10⁻⁶ moves every later tensor by
// far more.

/// Per-element error bounds of one step's operations. Every function takes the operation's inputs (values and
/// their own bounds, zero for exact inputs) and returns the bound of its output, shaped like the output.
enum StepBounds {
    /// The unit roundoff of float64, 2⁻⁵³.
    static let u = 0x1p-53

    /// γ_n = n·u/(1 − n·u): the relative error bound of a sum of n terms in any order.
    static func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }

    /// What two correct engines may differ by: each is within `bound` of the exact value, and the factor 2 more
    /// covers the second-order terms and the bound being computed from one engine's values (|Δ| ≤ 4·bound).
    static func tolerance(_ bound: Double) -> Double { 4 * bound }

    static func zeros(like m: Matrix) -> Matrix { Matrix(rows: m.rows, columns: m.columns) }

    // MARK: Forward

    /// y = x·Wᵀ + b, `x (r, in)` with bound `ex`, `W (out, in)` and `b (1, out)` exact:
    /// e_y = Σₖ e_x|W| + γ_{in+1}·(Σₖ (|x| + e_x)|W| + |b|).
    static func linearForward(x: Matrix, ex: Matrix, weight: Matrix, bias: Matrix) -> Matrix {
        let (rows, inWidth, outWidth) = (x.rows, x.columns, weight.rows)
        let g = gamma(inWidth + 1)
        // Factored: e_y[r, j] = Σₖ a[r, k]·|W[j, k]| + γ|b[j]| with a = e_x + γ(|x| + e_x), rows of contiguous dot products.
        var a = [Double](repeating: 0, count: rows * inWidth)
        for i in a.indices { a[i] = ex.elements[i] + g * (abs(x.elements[i]) + ex.elements[i]) }
        let w = weight.elements.map(abs)
        var e = Matrix(rows: rows, columns: outWidth)
        a.withUnsafeBufferPointer { ap in
            w.withUnsafeBufferPointer { wp in
                e.elements.withUnsafeMutableBufferPointer { ep in
                    for r in 0..<rows {
                        for j in 0..<outWidth {
                            var sum = g * abs(bias.elements[j])
                            for k in 0..<inWidth { sum += ap[r * inWidth + k] * wp[j * inWidth + k] }
                            ep[r * outWidth + j] = sum
                        }
                    }
                }
            }
        }
        return e
    }

    /// y = f(x): e_y = L·e_x + ulps·u·(|y| + |x|) (the |x| term covers an absolute error where f is small, e.g.
    /// GELU's 1 + erf near −1; it is zero for the piecewise-linear activations, which round at most once).
    static func activationForward(_ model: ActivationErrorModel, x: Matrix, ex: Matrix, y: Matrix) -> Matrix {
        var e = zeros(like: y)
        for i in e.elements.indices {
            e.elements[i] = model.lipschitz * ex.elements[i] + model.ulps * u * (abs(y.elements[i]) + model.absoluteUlps * abs(x.elements[i]))
        }
        return e
    }

    // MARK: Backward

    /// dx = dy ⊙ f′(x), from the activation's input `x` (bound `ex`), its output `y` and `dy` (bound `edy`).
    /// Smooth f′: e_dx = |f′|·e_dy + |dy|·(L′·e_x + ulps·u·(|f′| + 1)). Piecewise-constant f′ (ReLU, LeakyReLU):
    /// exact where the sign of x is certain (|x| > e_x); where it is not, either side's value may be right, so
    /// e_dx = |dy|·|jump| + max(|sides|)·e_dy.
    static func activationBackward(_ model: ActivationErrorModel, x: Matrix, ex: Matrix, dy: Matrix, edy: Matrix) -> Matrix {
        var e = zeros(like: dy)
        for i in e.elements.indices {
            let xi = x.elements[i], exi = ex.elements[i], d = abs(dy.elements[i]), ed = edy.elements[i]
            let fPrime = abs(model.derivative(xi))
            if let sides = model.kink {
                if exi > 0 && abs(xi) <= exi {
                    e.elements[i] = d * abs(sides.above - sides.below) + max(abs(sides.above), abs(sides.below)) * ed
                } else {
                    e.elements[i] = fPrime * ed + u * fPrime * d
                }
            } else {
                e.elements[i] = fPrime * ed + d * (model.derivativeLipschitz * exi + model.ulps * u * (fPrime + 1))
            }
        }
        return e
    }

    /// dx = dy·W (`dy (r, out)`, `W (out, in)` exact): e_dx = e_dy·|W| + γ_out·|dy|·|W|.
    /// dW = dyᵀ·x: e_dW = e_dyᵀ|x| + |dy|ᵀe_x + e_dyᵀe_x + γ_r·|dy|ᵀ|x|. db = 1ᵀ·dy: e_db = Σ e_dy + γ_r·Σ|dy|.
    static func linearBackward(x: Matrix, ex: Matrix, weight: Matrix, dy: Matrix, edy: Matrix)
        -> (dInput: Matrix, dWeight: Matrix, dBias: Matrix) {
        let (rows, inWidth, outWidth) = (x.rows, x.columns, weight.rows)
        let gOut = gamma(outWidth), gRows = gamma(rows)
        // Factored, with contiguous inner loops: e_dx[r, ·] = Σⱼ (e_dy + γ_out|dy|)[r, j]·|W[j, ·]|;
        // e_dW[j, ·] = Σ_r (e_dy + γ_r|dy|)[r, j]·|x[r, ·]| + (|dy| + e_dy)[r, j]·e_x[r, ·].
        var b = [Double](repeating: 0, count: rows * outWidth), c = b, d = b
        for i in b.indices {
            let g = abs(dy.elements[i]), eg = edy.elements[i]
            b[i] = eg + gOut * g
            c[i] = eg + gRows * g
            d[i] = g + eg
        }
        let w = weight.elements.map(abs), ax = x.elements.map(abs)
        let exactInput = ex.elements.allSatisfy { $0 == 0 }
        var dInput = Matrix(rows: rows, columns: inWidth), dWeight = Matrix(rows: outWidth, columns: inWidth)
        dInput.elements.withUnsafeMutableBufferPointer { dip in
            dWeight.elements.withUnsafeMutableBufferPointer { dwp in
                w.withUnsafeBufferPointer { wp in
                    ax.withUnsafeBufferPointer { xp in
                        ex.elements.withUnsafeBufferPointer { exp in
                            for r in 0..<rows {
                                for j in 0..<outWidth {
                                    let bj = b[r * outWidth + j], cj = c[r * outWidth + j], dj = d[r * outWidth + j]
                                    for k in 0..<inWidth {
                                        dip[r * inWidth + k] += bj * wp[j * inWidth + k]
                                        dwp[j * inWidth + k] += cj * xp[r * inWidth + k]
                                    }
                                    if !exactInput {
                                        for k in 0..<inWidth { dwp[j * inWidth + k] += dj * exp[r * inWidth + k] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dBias = Matrix(rows: 1, columns: outWidth)
        for j in 0..<outWidth {
            var propagated = 0.0, magnitude = 0.0
            for r in 0..<rows {
                propagated += edy.elements[r * outWidth + j]
                magnitude += abs(dy.elements[r * outWidth + j])
            }
            dBias.elements[j] = propagated + gRows * magnitude
        }
        return (dInput, dWeight, dBias)
    }

    // MARK: Losses (p the predictions with bound ep, t the targets; N the number of terms)

    /// MSE, Σ(p − t)²/N and 2(p − t)/N: e_value = [Σ(2|d|e_p + e_p²) + γ_{N+3}Σd²]/N, e_grad = 2e_p/N + 3u|g|.
    static func mse(p: Matrix, ep: Matrix, t: Matrix) -> (value: Double, gradient: Matrix) {
        let n = Double(p.elements.count)
        var propagated = 0.0, magnitude = 0.0
        var e = zeros(like: p)
        for i in p.elements.indices {
            let d = p.elements[i] - t.elements[i], epi = ep.elements[i]
            propagated += 2 * abs(d) * epi + epi * epi
            magnitude += d * d
            e.elements[i] = 2 * epi / n + 3 * u * abs(2 * d / n)
        }
        return ((propagated + gamma(p.elements.count + 3) * magnitude) / n, e)
    }

    /// MAE, Σ|p − t|/N and sign(p − t)/N: e_value = [Σe_p + γ_{N+2}Σ|d|]/N; the gradient is exact where the
    /// sign of d is certain (|d| > e_p), else either sign may be right (2/N).
    static func mae(p: Matrix, ep: Matrix, t: Matrix) -> (value: Double, gradient: Matrix) {
        let n = Double(p.elements.count)
        var propagated = 0.0, magnitude = 0.0
        var e = zeros(like: p)
        for i in p.elements.indices {
            let d = p.elements[i] - t.elements[i], epi = ep.elements[i]
            propagated += epi
            magnitude += abs(d)
            let uncertain = epi > 0 && abs(d) <= epi + u * (abs(p.elements[i]) + abs(t.elements[i]))
            e.elements[i] = uncertain ? 2 / n : u / n
        }
        return ((propagated + gamma(p.elements.count + 2) * magnitude) / n, e)
    }

    /// BCE with logs clamped at −100 and the gradient's denominator at 10⁻¹²: each term moves by
    /// |∂ℓ/∂p|·e_p plus 6 ulp of its two logs, the gradient by |∂g/∂p|·e_p plus 6 ulp. Where p lies within its
    /// bound of 0 or 1 (or of a clamp), an element's bound is its whole magnitude: the function is not
    /// well-conditioned there, and nothing finer can be promised.
    static func bce(p: Matrix, ep: Matrix, t: Matrix) -> (value: Double, gradient: Matrix) {
        let n = Double(p.elements.count)
        var value = 0.0, magnitude = 0.0
        var e = zeros(like: p)
        for i in p.elements.indices {
            let pv = p.elements[i], tv = t.elements[i], epi = ep.elements[i]
            let logP = max(log(pv), -100), logQ = max(log(1 - pv), -100)
            let term = abs(tv * logP) + abs((1 - tv) * logQ)
            let den = max((1 - pv) * pv, 1e-12), g = (pv - tv) / den / n
            magnitude += term
            if epi >= 0.5 * min(pv, 1 - pv) || den == 1e-12 || logP == -100 || logQ == -100 {
                value += term + 100 * epi
                e.elements[i] = abs(g) + 1 / (den * n)
            } else {
                let dTerm = abs(tv / pv) + abs((1 - tv) / (1 - pv))
                value += 2 * dTerm * epi + 6 * u * (term + 1)
                let dGradient = (1 / den + abs(pv - tv) * abs(1 - 2 * pv) / (den * den)) / n
                e.elements[i] = 2 * dGradient * epi + 6 * u * abs(g)
            }
        }
        return ((value + gamma(p.elements.count + 2) * magnitude) / n, e)
    }

    /// Cross-entropy over rows, ℓ_r = logsumexp(z_r) − z_{r,c}: logsumexp moves by at most max_j e_z (it is
    /// 1-Lipschitz in the max norm), so e_ℓ ≤ 2·max e_z + (w + 4)·u·(|logsumexp| + |z_c| + max|z|); the mean
    /// adds γ_rows. The gradient (softmax − onehot)/rows: softmax's Jacobian diag(s) − ssᵀ moves s_j by at most
    /// 2·s_j·max e_z, and rounding adds (w + 6)·u·s_j.
    static func crossEntropy(p z: Matrix, ep ez: Matrix, t: Matrix) -> (value: Double, gradient: Matrix) {
        let (rows, width) = (z.rows, z.columns)
        var value = 0.0, magnitude = 0.0
        var e = zeros(like: z)
        for r in 0..<rows {
            let row = Array(z.elements[(r * width)..<((r + 1) * width)])
            let target = Array(t.elements[(r * width)..<((r + 1) * width)])
            let c = target.indices.max { target[$0] < target[$1] || ($0 > $1 && target[$0] == target[$1]) } ?? 0
            let m = row.max() ?? 0
            let sum = row.reduce(0) { $0 + exp($1 - m) }
            let lse = m + log(sum)
            let maxError = ez.elements[(r * width)..<((r + 1) * width)].max() ?? 0
            value += 2 * maxError + Double(width + 4) * u * (abs(lse) + abs(row[c]) + row.map(abs).max()!)
            magnitude += abs(lse - row[c])
            for j in 0..<width {
                let s = exp(row[j] - lse)
                let g = (s - (j == c ? 1 : 0)) / Double(rows)
                e.elements[r * width + j] = (s * (2 * maxError + Double(width + 6) * u)) / Double(rows) + 2 * u * abs(g)
            }
        }
        return ((value + gamma(rows + 2) * magnitude) / Double(rows), e)
    }
}

// MARK: - Optimizers

/// One parameter's update, as the bounds need it: the values before (exact: the step starts from them), the
/// gradient with its bound, and the referee's results (for magnitudes).
public struct UpdateBoundsInput {
    /// The parameter before the update.
    var parameter: Matrix
    var gradient: Matrix
    var gradientBound: Matrix
    /// The state before the update, by name ("momentum", "m", "v"); absent before the first step.
    var previousState: [String: Matrix]
    /// Steps taken, this one included (Adam's t; 1 on the first step).
    var stepCount: Int
    /// The referee's state and parameter after the update.
    var state: [String: Matrix]
    var updated: Matrix
}

/// The bounds of one update: of each state and of the parameter after it.
public struct UpdateBounds {
    var state: [String: Matrix]
    var parameter: Matrix
}

extension SGDSpec {
    /// g = ∇ + λp: e_g = e_∇ + 2u(|∇| + λ|p|). With momentum, b = g on the first step, else b = μb₀ + (1 − τ)g:
    /// e_b = (1 − τ)e_g + 3u(μ|b₀| + (1 − τ)|g|); the step is b, or g + μb for Nesterov (e = e_g + μe_b +
    /// 3u(|g| + μ|b|)). p′ = p − lr·step: e_p′ = lr·e_step + 2u(|p| + lr|step|).
    public func updateBounds(_ update: UpdateBoundsInput) -> UpdateBounds {
        let u = StepBounds.u
        var momentumBound = StepBounds.zeros(like: update.parameter), parameterBound = momentumBound
        let buffer = update.state["momentum"], previous = update.previousState["momentum"]
        for i in update.parameter.elements.indices {
            let p = update.parameter.elements[i], grad = update.gradient.elements[i]
            let g = grad + weightDecay * p
            var eg = update.gradientBound.elements[i]
            if weightDecay != 0 { eg += 2 * u * (abs(grad) + weightDecay * abs(p)) }
            var step = g, eStep = eg
            if momentum != 0 {
                let b = buffer?.elements[i] ?? g
                let eb = update.stepCount <= 1 || previous == nil ? eg
                    : (1 - dampening) * eg + 3 * u * (momentum * abs(previous!.elements[i]) + (1 - dampening) * abs(g))
                momentumBound.elements[i] = eb
                if nesterov {
                    step = g + momentum * b
                    eStep = eg + momentum * eb + 3 * u * (abs(g) + momentum * abs(b))
                } else {
                    (step, eStep) = (b, eb)
                }
            }
            parameterBound.elements[i] = lr * eStep + 2 * u * (abs(p) + lr * abs(step))
        }
        return UpdateBounds(state: momentum != 0 ? ["momentum": momentumBound] : [:], parameter: parameterBound)
    }
}

extension AdamSpec {
    /// g = ∇ + λp as for SGD. m = β1·m₀ + (1 − β1)g: e_m = (1 − β1)e_g + 4u(|m₀| + |g|) (covers PyTorch's lerp);
    /// v = β2·v₀ + (1 − β2)g²: e_v = (1 − β2)(2|g|e_g + e_g²) + 4u(β2·v₀ + (1 − β2)g²). The bias corrections
    /// c = 1 − βᵗ are relatively within (t + 2)u·βᵗ/c + 2u whether βᵗ comes from pow or from t products. With
    /// m̂ = m/c1, v̂ = v/c2, D = √v̂ + ε: e_√v̂ = min(√e_v̂, e_v̂/(2√v̂)), e_D = e_√v̂ + u·D, and q = m̂/D moves by
    /// e_m̂/D_low + |m̂|·e_D/(D·D_low) + 2u|q|, D_low = max(D − e_D, ε); p′ = p − lr·q: e_p′ = lr·e_q +
    /// 2u(|p| + lr|q|). Where v̂ is so small that e_D ≥ D the bound is large, as it must be: ε alone then
    /// limits the step.
    public func updateBounds(_ update: UpdateBoundsInput) -> UpdateBounds {
        let u = StepBounds.u
        let t = Double(update.stepCount)
        func correctionError(_ beta: Double) -> (value: Double, relative: Double) {
            let power = pow(beta, t), c = 1 - power
            return (c, (t + 2) * u * power / c + 2 * u)
        }
        let (c1, r1) = correctionError(beta1), (c2, r2) = correctionError(beta2)
        var mBound = StepBounds.zeros(like: update.parameter), vBound = mBound, parameterBound = mBound
        for i in update.parameter.elements.indices {
            let p = update.parameter.elements[i], grad = update.gradient.elements[i]
            let g = grad + weightDecay * p
            var eg = update.gradientBound.elements[i]
            if weightDecay != 0 { eg += 2 * u * (abs(grad) + weightDecay * abs(p)) }
            let m0 = update.previousState["m"]?.elements[i] ?? 0, v0 = update.previousState["v"]?.elements[i] ?? 0
            let m = update.state["m"]?.elements[i] ?? (beta1 * m0 + (1 - beta1) * g)
            let v = update.state["v"]?.elements[i] ?? (beta2 * v0 + (1 - beta2) * g * g)
            let em = (1 - beta1) * eg + 4 * u * (abs(m0) + abs(g))
            let ev = (1 - beta2) * (2 * abs(g) * eg + eg * eg) + 4 * u * (beta2 * v0 + (1 - beta2) * g * g)
            mBound.elements[i] = em
            vBound.elements[i] = ev
            let mHat = m / c1, emHat = em / c1 + abs(mHat) * (r1 + u)
            let vHat = v / c2, evHat = ev / c2 + vHat * (r2 + u)
            let root = vHat.squareRoot()
            let eRoot = (root > 0 ? min(evHat.squareRoot(), evHat / (2 * root)) : evHat.squareRoot()) + u * root
            let d = root + eps, ed = eRoot + u * d
            let dLow = max(d - ed, eps)
            let q = mHat / d
            let eq = emHat / dLow + abs(mHat) * ed / (d * dLow) + 2 * u * abs(q)
            parameterBound.elements[i] = lr * eq + 2 * u * (abs(p) + lr * abs(q))
        }
        return UpdateBounds(state: ["m": mBound, "v": vBound], parameter: parameterBound)
    }
}

/// How rounding and input errors move an activation (`StepBounds`), declared with the activation's kind
/// (Kinds.swift).
public struct ActivationErrorModel: Sendable {
    /// f′(x).
    let derivative: @Sendable (Double) -> Double
    /// |f(a) − f(b)| ≤ lipschitz·|a − b|.
    let lipschitz: Double
    /// |f′(a) − f′(b)| ≤ derivativeLipschitz·|a − b| for a smooth f (in x; a backward written in y = f(x), as
    /// Tanh's 1 − y², is covered by the same constant, stated per kind).
    let derivativeLipschitz: Double
    /// For a piecewise-linear f: f′ below and above its kink at 0 (ReLU 0 and 1); nil for a smooth f.
    let kink: (below: Double, above: Double)?
    /// Rounding of one evaluation of f or f′, in ulps of the result.
    let ulps: Double
    /// Ulps of |x| added as an absolute error (GELU's 1 + erf(x/√2) cancels for large negative x).
    let absoluteUlps: Double

    /// A smooth activation with derivative `derivative`.
    static func smooth(lipschitz: Double, derivativeLipschitz: Double, ulps: Double, absoluteUlps: Double = 0,
                       derivative: @escaping @Sendable (Double) -> Double) -> ActivationErrorModel {
        ActivationErrorModel(derivative: derivative, lipschitz: lipschitz, derivativeLipschitz: derivativeLipschitz, kink: nil,
                             ulps: ulps, absoluteUlps: absoluteUlps)
    }

    /// A piecewise-linear activation with slopes `below` (x ≤ 0) and `above` (x > 0) (one rounding, of slope·x).
    static func piecewiseLinear(below: Double, above: Double) -> ActivationErrorModel {
        ActivationErrorModel(derivative: { $0 > 0 ? above : below }, lipschitz: max(abs(below), abs(above)), derivativeLipschitz: 0,
                             kink: (below, above), ulps: 1, absoluteUlps: 0)
    }
}
