// Losses: each value next to its gradient with respect to the predictions. All are means
// (PyTorch `reduction="mean"`), so the gradient is already divided by the count.
import Foundation

/// The loss functions, all with PyTorch's default `reduction="mean"`.
///
/// Predictions `p` and targets `t` are `(batch, width)`; `N = batch·width`.
///
/// | loss           | value                                                              | gradient `∂L/∂p`                          |
/// |----------------|--------------------------------------------------------------------|-------------------------------------------|
/// | `mse`          | `Σ (p − t)² / N`                                                   | `2(p − t) / N`                            |
/// | `mae`          | `Σ |p − t| / N`                                                    | `sign(p − t) / N`, `sign(0) = 0`          |
/// | `bce`          | `Σ −(t·max(log p, −100) + (1 − t)·max(log(1 − p), −100)) / N`      | `(p − t) / max((1 − p)·p, 1e−12) / N`     |
/// | `crossEntropy` | per row, `c = argmax t`: `Σ_rows (logsumexp(p) − p_c) / batch`     | `(softmax(p) − onehot(c)) / batch`        |
///
/// `mse` is `nn.MSELoss`, `mae` is `nn.L1Loss`, `bce` is `nn.BCELoss` on probabilities (log clamped at
/// −100, backward denominator clamped at 1e−12, as in ATen's `binary_cross_entropy(_backward)`), and
/// `crossEntropy` is `nn.CrossEntropyLoss` on logits with class indices taken from one-hot (or score)
/// target rows (first maximum on ties); note its mean is over rows, not elements.
///
/// The terms are summed with Neumaier's compensated summation (`NeumaierSum`), so the value is within a
/// couple of ulp of the exact sum of the computed terms for any number of them and any order: two engines
/// that compute the same terms agree on the loss of a million rows as they do on one.
public enum ReferenceLoss: Equatable, CaseIterable, Sendable {
    case mse, mae, bce, crossEntropy
}

/// The loss value and its gradient with respect to `predictions`; both are `(batch, width)`.
/// Throws `ReferenceError` on empty, ragged or mismatched shapes, and for `bce` on a prediction or target
/// outside [0, 1] (PyTorch raises there too; a NaN prediction is let through so a diverged run reports a
/// NaN loss instead of an error).
public func referenceLoss(_ loss: ReferenceLoss, predictions: [[Double]], targets: [[Double]]) throws
    -> (value: Double, gradient: [[Double]]) {
    let p = try Matrix(predictions, name: "referenceLoss predictions")
    let t = try Matrix(targets, name: "referenceLoss targets")
    let (value, gradient) = try lossAndGradient(loss, predictions: p, targets: t)
    return (value, gradient.array)
}

/// Matrix form of `referenceLoss`: `p`, `t` and the gradient are `(batch, width)`.
func lossAndGradient(_ loss: ReferenceLoss, predictions p: Matrix, targets t: Matrix) throws
    -> (value: Double, gradient: Matrix) {
    var sum = NeumaierSum()
    let (terms, gradient) = try accumulateLoss(loss, predictions: p, targets: t, into: &sum)
    return (sum.value / Double(terms), gradient)
}

/// Adds the loss's terms for `p` and `t` to `sum` and returns how many there are (elements, or rows for
/// cross-entropy) with the gradient of this batch's mean: an evaluation in chunks adds every chunk's terms to
/// one sum, which gives the same value as one pass over the whole set.
func accumulateLoss(_ loss: ReferenceLoss, predictions p: Matrix, targets t: Matrix, into sum: inout NeumaierSum) throws
    -> (terms: Int, gradient: Matrix) {
    func location() -> String { "\(loss) loss" }  // built only when an error is thrown
    guard p.rows == t.rows, p.columns == t.columns else {
        throw ReferenceError("predictions are \(p.shape) but targets are \(t.shape); expected the same shape",
                             at: location())
    }
    let gradient = try Matrix(rows: p.rows, columns: p.columns, location())
    let (ps, ts, gs, n) = (p.data, t.data, gradient.data, p.count)
    let count = Double(n)
    switch loss {
    case .mse:
        for i in 0..<n {
            let diff = ps[i] - ts[i]
            sum += diff * diff               // value:    (p − t)²
            gs[i] = diff * (2 / count)       // gradient: 2(p − t)/N
        }
        return (n, gradient)

    case .mae:
        for i in 0..<n {
            let diff = ps[i] - ts[i]
            sum += abs(diff)                 // value:    |p − t|
            gs[i] = sign(diff) / count       // gradient: sign(p − t)/N, sign(0) = 0
        }
        return (n, gradient)

    case .bce:
        for i in 0..<n {
            let (pi, ti) = (ps[i], ts[i])
            if !(pi >= 0 && pi <= 1) && !pi.isNaN {
                throw ReferenceError("prediction [\(i / p.columns)][\(i % p.columns)] = \(pi) is outside [0, 1]; "
                                     + "bce expects probabilities (e.g. after a sigmoid)", at: location())
            }
            guard ti >= 0 && ti <= 1 else {
                throw ReferenceError("target [\(i / p.columns)][\(i % p.columns)] = \(ti) is outside [0, 1]",
                                     at: location())
            }
            // value: −(t·max(log p, −100) + (1 − t)·max(log(1 − p), −100)), written as ATen does:
            //        (t − 1)·max(log1p(−p), −100) − t·max(log p, −100)
            sum += (ti - 1) * clampedLog(log1p(-pi)) - ti * clampedLog(log(pi))
            // gradient: (p − t) / max((1 − p)·p, 1e−12) / N
            gs[i] = (pi - ti) / Swift.max((1 - pi) * pi, 1e-12) / count
        }
        return (n, gradient)

    case .crossEntropy:
        let (rows, width) = (p.rows, p.columns)
        let batch = Double(rows)
        for r in 0..<rows {
            let z = ps + r * width
            let c = argmax(ts + r * width, width)
            // log_softmax with max subtraction: ls_j = (z_j − m) − log Σ_k e^(z_k − m)
            var m = z[0]
            for j in 1..<max(width, 1) where z[j] > m || z[j].isNaN { m = z[j] }
            var expSum = 0.0
            for j in 0..<width { expSum += exp(z[j] - m) }
            let logSumExp = log(expSum)
            // value: −ls_c = logsumexp(z) − z_c, averaged over rows
            sum += logSumExp - (z[c] - m)
            // gradient (log_softmax backward of nll's −1/batch at c): softmax_j/batch − [j = c]/batch
            let g = gs + r * width
            for j in 0..<width {
                let softmax = exp((z[j] - m) - logSumExp)
                g[j] = j == c ? -1 / batch + softmax / batch : softmax / batch
            }
        }
        return (rows, gradient)
    }
}

/// Neumaier's compensated sum (Neumaier 1974, the Kahan–Babuška refinement): `c` collects what each addition
/// rounds away, so `value` is within 2 ulp of the exact sum plus n·ε² of the terms' magnitude. A sum that
/// becomes ±∞ or NaN keeps that value.
public struct NeumaierSum {
    private var s = 0.0, c = 0.0

    public init() {}

    public static func += (sum: inout NeumaierSum, x: Double) {
        let t = sum.s + x
        if t.isFinite { sum.c += Swift.abs(sum.s) >= Swift.abs(x) ? (sum.s - t) + x : (x - t) + sum.s }
        sum.s = t
    }

    public var value: Double { s.isFinite ? s + c : s }
}

/// `max(x, −100)`, keeping NaN (like `std::max(x, −100)` with `x` first).
@inline(__always) private func clampedLog(_ x: Double) -> Double { x < -100 ? -100 : x }

/// −1, 0 or +1 (NaN stays NaN), as `torch.sign`.
@inline(__always) private func sign(_ x: Double) -> Double { x > 0 ? 1 : (x < 0 ? -1 : x) }

/// The index of the largest of `count` values, the first one on ties; a NaN counts as largest
/// (as `torch.argmax`).
func argmax(_ values: UnsafePointer<Double>, _ count: Int) -> Int {
    var best = 0
    for j in 1..<max(count, 1) where !values[best].isNaN && (values[j] > values[best] || values[j].isNaN) {
        best = j
    }
    return best
}
