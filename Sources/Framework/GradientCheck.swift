import RealModule

// Checking a backward pass against the function it differentiates, two ways, per tensor:
//
// 1. Elements: each element's analytical derivative against a central difference (f(x + h) − f(x − h)) / 2h.
//    It names the element that is wrong, but an error smaller than its tolerance passes.
// 2. The Taylor certificate (pyadjoint's `taylor_test`; Farrell, Ham, Funke & Rognes, "Automated derivation of
//    the adjoint of high-level transient finite element programs", SIAM J. Sci. Comput. 35(4), 2013, §5):
//    along a random direction v, the remainder r(h) = |f(x + h·v) − f(x) − h·⟨∇f, v⟩| falls as h² when ∇f is
//    right and as h when it is wrong, whatever the size of the error, so the order of the remainder over a
//    ladder of halving steps is a certificate no tolerance has to be chosen for.
//
// `GradientChecker` runs both on every tensor a function depends on (a module's input and parameters, a
// loss's predictions, a whole network's) and reports one line per tensor with both results.

// MARK: - The Taylor certificate

/// The ladder of steps of the Taylor certificate and the thresholds its verdict is read with.
///
/// **The remainder.** For one tensor x with analytical gradient g, a direction u is drawn elementwise from
/// U(−1, 1) (seeded), and for the steps h_k = h₀·2⁻ᵏ, k = 0…K, with h₀ = `initialStep`·s (s: the tensor's RMS,
/// or 1 when it is all zeros, so that h·u is 1 % of a typical element at the top of the ladder):
///
///     R(h) = f(x + h·u) − f(x) − h·d,      d = ⟨g, u⟩,  A = Σ |g_i·u_i|
///     r(h) = |R(h) + q·h²|,                 q = ±A/s (the sign of R(h₀))
///
/// The term q·h² is known curvature added to f: r is exactly the remainder of f̃(y) = f(y) + ½·q·‖y − x‖²/‖u‖²
/// along u, a function with f's value and gradient at x. Without it a function that is linear along u (MAE
/// away from its kinks, a Linear layer under Σ y⊙R, a ReLU network under MAE) has R = 0 for a correct
/// gradient, so r would be rounding noise at every step and the test could not tell. Its size A/s is the
/// curvature of a function whose gradient changes by itself over the tensor's own size s; its sign is R(h₀)'s
/// so that f's own curvature adds to it instead of cancelling it. A gradient error e = ⟨g − ∇f, u⟩ ≠ 0
/// still leaves e·h in R, which dominates r below h ≈ |e|/|q| and gives order 1 there.
///
/// **The orders.** Halving k (from h_{k−1} to h_k) has order p_k = log₂(r(h_{k−1}) / r(h_k)). A correct
/// gradient gives r = |C + q|·h² + O(h³), C = ½·uᵀ∇²f·u: p = 2, and within 0.01 of it at h₀ (the h³ term of a
/// function varying on the scale s is about h/s = 1 % of the h² term). A wrong gradient gives
/// r = |e·h + (C + q)·h²|: p → 1 as h falls below |e/(C + q)|, with orders between 1 and 2 (or anything, where
/// the two terms cancel) on the way.
///
/// **The rounding floor.** Each value of f is computed in binary64 (machine epsilon ε = 2⁻⁵² ≈ 2.2·10⁻¹⁶)
/// within κ·ε·S of the exact one, S the size of what f adds up (`magnitude`, at least |f| at both points):
/// a few roundings per operation over a computation a few layers deep, κ = `roundingFactor` = 64 (the tests
/// measure the noise of a Linear layer's exactly quadratic remainder against this floor). The products g_i·u_i
/// in d carry the gradient's own rounding, κ·ε·A. So the computed remainder is within
///
///     floor(h) = κ·ε·(2S + h·A)
///
/// of the exact one. A halving is *clean* when both of its remainders are at least M·floor, M = `cleanMargin`
/// = 20: each is then within 1/M = 5 % of its exact value, and the measured order within
/// log₂((M + 1)/(M − 1)) = log₂(21/19) = 0.144 of the exact order.
///
/// **The thresholds.** A clean order counts as 2 when |p − 2| ≤ `secondOrderTolerance` = 0.2: a correct
/// gradient reads within 0.144 (rounding) + 0.01 (third-order terms) = 0.154 of 2. The sign choice of q keeps
/// |C + q| ≥ |q| = A/s, and a function whose gradient changes by itself over the distance s has a third
/// derivative of about A/s², so its h³ term is about h/s ≤ 1 % of the h² term. An order outside 2 ± 0.2 is
/// not what a smooth function does there: below 1.8 a first-order term is left in the remainder (a wrong
/// gradient, or a kink crossed); above 2.2 the remainder fell faster than h², as it does once the steps stop
/// crossing a kink. The report says "order 1" when the order is within 1 ± 0.2 (`firstOrderRange`: 1 ± 0.144
/// from rounding, the rest for what is left of C·h²), and gives the order otherwise.
///
/// **The verdict** is read from the last two clean halvings (the smallest steps above the floor, where the
/// Taylor expansion is most asymptotic):
/// - both order 2, and every clean halving order 2: `.secondOrder`, "order 2 until the rounding floor at h = …"
///   (pass);
/// - both order 2, some larger step not: `.kinkCrossed`, "a kink is crossed above h = …" (pass, said): the
///   line x + h·u crosses a kink (ReLU or LeakyReLU at 0, MAE at p = t) for the larger steps, where the
///   remainder picks up a term linear in h (order 1 where it dominates, an order above 2 where it vanishes),
///   and no longer below them, where the order-2 halvings certify the gradient. (A function that is not yet
///   quadratic at the top of the ladder, varying on a scale much smaller than s, reads the same.)
/// - either not order 2: `.firstOrder`, "order 1: gradient wrong" (fail);
/// - fewer than two clean halvings: `.inconclusive` (a failure of the check's setup, not a pass): rounding
///   reaches the remainder before the ladder could show an order; or the gradient is zero and f does not
///   change along u at any step is `.flat` instead: a pass, said (no path from the tensor reaches the loss).
///
/// **The ladder.** h₀ = 10⁻²·s is small enough that the expansion is asymptotic (third-order terms ~1 %) and
/// that inputs kept 0.1 clear of a kink (as the tests keep them) are not crossed (|h₀·u| ≤ 0.01·s), and large
/// enough that the remainder starts far above rounding: q·h₀² = 10⁻⁴·A·s against a floor of ~10⁻¹⁴·S.
/// K = 16 halvings reach h = h₀/65536 ≈ 1.5·10⁻⁷·s, past the floor of a correct gradient (q·h² = 20·κ·ε·2S
/// at h ≈ 7.5·10⁻⁷·s when S ≈ A·s: about 14 clean halvings), while a wrong gradient's e·h stays far above it
/// to the end. Cost: K + 2 evaluations of f per tensor.
public struct TaylorLadder: Sendable {
    /// h₀ as a fraction of the tensor's RMS s. Default 10⁻².
    public var initialStep: Double
    /// K, the number of halvings. Default 16.
    public var halvings: Int
    /// κ: the rounding error of one value of f, in units of ε·S. Default 64.
    public var roundingFactor: Double
    /// M: a halving is clean when both remainders are at least M times their floor. Default 20.
    public var cleanMargin: Double
    /// A clean order within this of 2 counts as 2. Default 0.2.
    public var secondOrderTolerance: Double
    /// A clean order in this range is reported as "order 1". Default 0.8…1.2.
    public var firstOrderRange: ClosedRange<Double>

    public init(initialStep: Double = 1e-2, halvings: Int = 16, roundingFactor: Double = 64, cleanMargin: Double = 20,
                secondOrderTolerance: Double = 0.2, firstOrderRange: ClosedRange<Double> = 0.8...1.2) {
        precondition(initialStep > 0 && initialStep.isFinite, "TaylorLadder: initialStep must be positive, got \(initialStep)")
        precondition(halvings >= 2, "TaylorLadder: at least 2 halvings, got \(halvings)")
        precondition(roundingFactor > 0 && cleanMargin > 1, "TaylorLadder: roundingFactor \(roundingFactor) > 0, cleanMargin \(cleanMargin) > 1")
        self.initialStep = initialStep
        self.halvings = halvings
        self.roundingFactor = roundingFactor
        self.cleanMargin = cleanMargin
        self.secondOrderTolerance = secondOrderTolerance
        self.firstOrderRange = firstOrderRange
    }

    /// The certificate of `gradient` (the analytical gradient of `f` at `value`, both `(rows, columns)`), along
    /// a direction drawn from `generator` (`value.rows·value.columns` draws). `f` takes the tensor's value and
    /// returns the function's; `magnitude` is the size of the terms f adds up (nil: |f(value)|).
    public func certificate(value: Matrix, gradient: Matrix, magnitude: Double? = nil, generator: inout Xoshiro256StarStar,
                            _ f: (Matrix) -> Double) -> TaylorCertificate {
        precondition(value.shape == gradient.shape, "TaylorLadder: value \(value.shape), gradient \(gradient.shape)")
        let n = value.elements.count
        var direction = Matrix(rows: value.rows, columns: value.columns)
        for k in 0..<n { direction.elements[k] = generator.uniform(-1, 1) }
        var squares = CompensatedSum()
        for x in value.elements { squares.add(x * x) }
        let rms = n == 0 ? 0 : (squares.value / Double(n)).squareRoot()
        let scale = rms > 0 && rms.isFinite ? rms : 1
        var dot = CompensatedSum(), absolute = CompensatedSum()
        for k in 0..<n {
            dot.add(gradient.elements[k] * direction.elements[k])
            absolute.add(abs(gradient.elements[k] * direction.elements[k]))
        }
        let d = dot.value, a = absolute.value
        let f0 = f(value)
        let s0 = max(magnitude ?? 0, abs(f0))
        let epsilon = Double.ulpOfOne
        let steps = (0...halvings).map { initialStep * scale * Double.pow(2, -$0) }
        var natural: [Double] = [], floors: [Double] = [], values: [Double] = []
        var finite = f0.isFinite && d.isFinite && a.isFinite
        var point = value
        for h in steps {
            for k in 0..<n { point.elements[k] = value.elements[k] + h * direction.elements[k] }
            let fh = f(point)
            finite = finite && fh.isFinite
            values.append(fh)
            natural.append(fh - f0 - h * d)
            floors.append(roundingFactor * epsilon * (2 * max(s0, abs(fh)) + h * a))
        }
        let q = (natural[0] < 0 && abs(natural[0]) > floors[0] ? -1.0 : 1.0) * a / scale
        let remainders = zip(natural, steps).map { abs($0 + q * $1 * $1) }
        var orders: [Double] = [], clean: [Bool] = []
        for k in 1...halvings {
            orders.append(Double.log2(remainders[k - 1] / remainders[k]))
            clean.append(isClean(remainders[k - 1], floors[k - 1]) && isClean(remainders[k], floors[k]))
        }
        var verdict: TaylorVerdict
        if !finite {
            verdict = .inconclusive("f or the gradient is not finite (f(x) = \(f0), ⟨∇f, v⟩ = \(d))")
        } else {
            verdict = self.verdict(steps: steps, remainders: remainders, floors: floors, orders: orders, clean: clean,
                                   flat: a == 0 && zip(natural, floors).allSatisfy { abs($0) <= $1 })
        }
        if case .firstOrder = verdict {
            // Order 1 from a wrong gradient, or from a kink at x itself, where no gradient exists: the symmetric
            // difference D(h) = f(x + h·u) + f(x − h·u) − 2f(x) does not involve g at all. It is C·h² (order 2)
            // where f is smooth at x, and c·|h| (order 1, c the jump of the slope along u) on a kink at x.
            var differences: [Double] = []
            for (h, fh) in zip(steps, values) {
                for k in 0..<n { point.elements[k] = value.elements[k] - h * direction.elements[k] }
                differences.append(abs(fh + f(point) - 2 * f0))
            }
            let cleanOrders = (1...halvings).filter { isClean(differences[$0 - 1], 2 * floors[$0 - 1]) && isClean(differences[$0], 2 * floors[$0]) }
                .map { Double.log2(differences[$0 - 1] / differences[$0]) }
            if cleanOrders.count >= 2, cleanOrders.suffix(2).allSatisfy(firstOrderRange.contains) {
                verdict = .kinkAtPoint(order: cleanOrders.last!)
            }
        }
        return TaylorCertificate(scale: scale, steps: steps, remainders: remainders, naturalRemainders: natural, floors: floors,
                                 orders: orders, clean: clean, curvature: q, verdict: verdict, ladder: self)
    }

    /// A remainder is clean when it is at least M times its rounding floor and not zero (a flat f's remainders
    /// are exactly 0 against a floor of 0, which measure nothing).
    func isClean(_ remainder: Double, _ floor: Double) -> Bool { remainder > 0 && remainder >= cleanMargin * floor }

    /// The verdict from the orders (see the type's documentation). `flat`: the gradient is zero and f does not
    /// change along u beyond rounding at any step.
    func verdict(steps: [Double], remainders: [Double], floors: [Double], orders: [Double], clean: [Bool], flat: Bool) -> TaylorVerdict {
        let cleanHalvings = clean.indices.filter { clean[$0] }
        if flat { return .flat }
        guard cleanHalvings.count >= 2, let last = cleanHalvings.last else {
            return .inconclusive("rounding reaches the remainder before two clean halvings: r(h₀ = \(formatShort(steps[0]))) = "
                                 + "\(formatShort(remainders[0])) against \(formatShort(cleanMargin)) × floor = "
                                 + "\(formatShort(cleanMargin * floors[0])); the check cannot tell")
        }
        let isSecond = { (k: Int) in abs(orders[k] - 2) <= self.secondOrderTolerance }
        // The floor: the first step after the last clean halving (whose remainder is below M·floor), if the ladder has it.
        let floorStep = last + 2 < steps.count ? steps[last + 2] : nil
        if cleanHalvings.suffix(2).allSatisfy(isSecond) {
            if let lastBelow = cleanHalvings.last(where: { !isSecond($0) }) {
                return .kinkCrossed(above: steps[lastBelow + 1], floor: floorStep)
            }
            return .secondOrder(floor: floorStep)
        }
        var first = last
        for k in cleanHalvings.reversed().dropFirst() {
            if isSecond(k) { break }
            first = k
        }
        return .firstOrder(order: orders[last], below: steps[first])
    }
}

/// What the Taylor ladder saw for one tensor: the steps, remainders, floors and orders, and the verdict.
public struct TaylorCertificate: Sendable, CustomStringConvertible {
    /// s: the tensor's RMS (1 when it is all zeros); the steps are in the tensor's units.
    public let scale: Double
    /// h_k = h₀·2⁻ᵏ, k = 0…K.
    public let steps: [Double]
    /// r(h_k) = |R(h_k) + q·h_k²|, the remainder with the added curvature (see `TaylorLadder`).
    public let remainders: [Double]
    /// R(h_k) = f(x + h_k·u) − f(x) − h_k·⟨g, u⟩, signed, without the added curvature.
    public let naturalRemainders: [Double]
    /// The rounding floor of each remainder, κ·ε·(2S + h·A).
    public let floors: [Double]
    /// The K orders log₂(r(h_{k−1}) / r(h_k)), k = 1…K.
    public let orders: [Double]
    /// Whether halving k is clean (both remainders at least M times their floor).
    public let clean: [Bool]
    /// q, the curvature added to f (see `TaylorLadder`).
    public let curvature: Double
    public let verdict: TaylorVerdict
    /// The ladder it was taken with.
    public let ladder: TaylorLadder

    /// True for `.secondOrder` and `.kinkCrossed`.
    public var passed: Bool { verdict.passed }

    /// The clean orders, smallest step last.
    public var cleanOrders: [Double] { orders.indices.filter { clean[$0] }.map { orders[$0] } }

    /// Every halving's order to two decimals, those that are not clean (rounding) in parentheses:
    /// `2.00 2.00 … 2.01 (1.62) (-0.40)`.
    public var ordersDescription: String {
        orders.indices.map { clean[$0] ? formatFixed(orders[$0], 2) : "(\(formatFixed(orders[$0], 2)))" }.joined(separator: " ")
    }

    /// The verdict in words: "order 2 until the rounding floor at h = 3.1e-7".
    public var description: String { verdict.description(lastStep: steps.last ?? 0, ladder: ladder) }
}

/// The verdict of a Taylor certificate (how it is read: `TaylorLadder`).
public enum TaylorVerdict: Sendable, Equatable {
    /// Pass: every clean halving has order 2; `floor` is the first step whose remainder is within M of
    /// rounding (nil: the ladder ended above it).
    case secondOrder(floor: Double?)
    /// Pass, said: order 2 at the smallest steps, but some halving at or above `above` has an order outside
    /// 2 ± 0.2, as when the line crosses a kink for the larger steps.
    case kinkCrossed(above: Double, floor: Double?)
    /// Fail: the last clean halvings have an order outside 2 ± 0.2 (`order`: the last one's), from step
    /// `below` down.
    case firstOrder(order: Double, below: Double)
    /// Pass, said: the gradient is zero and f does not change along v beyond rounding at any step. They agree,
    /// and no order can be measured (no path from this tensor reaches the loss, as when a ReLU is inactive on
    /// the whole batch); a wrong zero gradient would leave f changing, and fail as order 1.
    case flat
    /// Pass, said: the ladder reads order 1, and so does the symmetric difference f(x + h·u) + f(x − h·u) − 2f(x)
    /// (`order`, its last clean order), which does not involve the gradient: x sits on a kink along u (MAE at
    /// p = t, ReLU at exactly 0), where f has no gradient and no gradient can show order 2. The certificate
    /// cannot judge one there; the element check (central differences, which average the two one-sided slopes)
    /// still does.
    case kinkAtPoint(order: Double)
    /// Fail of the setup: fewer than two clean halvings, or a value that is not finite; the reason says which.
    case inconclusive(String)

    public var passed: Bool {
        switch self {
        case .secondOrder, .kinkCrossed, .flat, .kinkAtPoint: return true
        case .firstOrder, .inconclusive: return false
        }
    }

    func description(lastStep: Double, ladder: TaylorLadder) -> String {
        func floorText(_ floor: Double?) -> String {
            floor.map { "until the rounding floor at h = \(formatShort($0))" }
                ?? "down to h = \(formatShort(lastStep)) (the last step; the rounding floor not reached)"
        }
        switch self {
        case let .secondOrder(floor):
            return "order 2 \(floorText(floor))"
        case let .kinkCrossed(above, floor):
            return "a kink is crossed above h = \(formatShort(above)): order 2 below it, \(floorText(floor))"
        case let .firstOrder(order, below):
            if ladder.firstOrderRange.contains(order) {
                return "order 1: gradient wrong (order \(formatFixed(order, 2)) from h = \(formatShort(below)) down)"
            }
            return "order \(formatFixed(order, 2)), not 2, from h = \(formatShort(below)) down: the gradient does not match f"
        case .flat:
            return "flat: the gradient is zero and f does not change along v (they agree; no order to measure: no path from "
                + "this tensor reaches the loss, as when a ReLU is inactive on the whole batch)"
        case let .kinkAtPoint(order):
            return "x is on a kink: f(x + h·v) + f(x − h·v) − 2f(x) falls as h (order \(formatFixed(order, 2))), so f has no "
                + "gradient here and no order can certify one; the elements are checked by central differences"
        case let .inconclusive(reason):
            return "inconclusive: \(reason)"
        }
    }
}

// MARK: - The element check and the report

/// One gradient element where the analytical backward and the central finite difference disagree.
public struct GradientMismatch: Sendable, CustomStringConvertible {
    public var module: String
    public var tensor: String
    public var row: Int
    public var column: Int
    public var analytical: Double
    public var numerical: Double
    public var relativeError: Double

    public init(module: String, tensor: String, row: Int, column: Int, analytical: Double, numerical: Double, relativeError: Double) {
        self.module = module
        self.tensor = tensor
        self.row = row
        self.column = column
        self.analytical = analytical
        self.numerical = numerical
        self.relativeError = relativeError
    }

    /// "Linear(3 → 2) dBias#1[0, 1]: analytical 0.0, numerical 0.41, relative error 1.0".
    public var description: String {
        "\(module) \(tensor)[\(row), \(column)]: analytical \(analytical), numerical \(numerical), relative error \(relativeError)"
    }
}

/// A tensor a checked function depends on: its value and the analytical gradient of the function in it,
/// `(rows, columns)` both; `module` and `name` are what reports call it ("Linear(3 → 4)", "dWeight#0").
public struct CheckedTensor: Sendable {
    public var module: String
    public var name: String
    public var value: Matrix
    public var gradient: Matrix

    public init(module: String, name: String, value: Matrix, gradient: Matrix) {
        precondition(value.shape == gradient.shape, "CheckedTensor \(module) \(name): value \(value.shape), gradient \(gradient.shape)")
        self.module = module
        self.name = name
        self.value = value
        self.gradient = gradient
    }
}

/// Both checks of one tensor.
public struct TensorGradientCheck: Sendable, CustomStringConvertible {
    public var module: String
    public var tensor: String
    /// The tensor's shape, `(rows, columns)`.
    public var shape: (rows: Int, columns: Int)
    /// Elements checked, rows·columns.
    public var count: Int
    /// The largest relative error of the element check, |a − n| / max(|a|, |n|) (∞ for NaN).
    public var maxRelativeError: Double
    /// The elements beyond the tolerance.
    public var mismatches: [GradientMismatch]
    public var taylor: TaylorCertificate

    public var elementsPassed: Bool { mismatches.isEmpty }
    public var passed: Bool { elementsPassed && taylor.passed }

    /// One line: `OK Linear(3 → 4) dWeight#0: maxrel 1.2e-10 (12 elements); order 2 until the rounding floor at
    /// h = 3.1e-7; orders 2.00 2.00 … (0.31)`.
    public var description: String {
        "\(passed ? "OK" : "FAIL") \(module) \(tensor): maxrel \(formatShort(maxRelativeError)) (\(count) elements"
            + (mismatches.isEmpty ? "" : ", \(mismatches.count) beyond tolerance") + "); \(taylor); orders \(taylor.ordersDescription)"
    }
}

/// What a gradient check saw: both checks for every tensor, in checking order.
public struct GradientReport: Sendable, CustomStringConvertible {
    public var subject: String
    public var tensors: [TensorGradientCheck]

    public init(subject: String, tensors: [TensorGradientCheck] = []) {
        self.subject = subject
        self.tensors = tensors
    }

    /// Every mismatching element, tensor after tensor.
    public var mismatches: [GradientMismatch] { tensors.flatMap(\.mismatches) }
    /// The largest relative error of any element.
    public var maxRelativeError: Double { tensors.map(\.maxRelativeError).max() ?? 0 }
    /// Every tensor passes both checks (and there is at least one).
    public var passed: Bool { !tensors.isEmpty && tensors.allSatisfy(\.passed) }
    /// The check of the tensor named `name`, if any.
    public func tensor(_ name: String) -> TensorGradientCheck? { tensors.first { $0.tensor == name } }
    /// One line per tensor with both results.
    public var description: String { tensors.map(\.description).joined(separator: "\n") }
}

// MARK: - The checker

/// Checks analytical gradients two ways per tensor: every element against a central finite difference, and
/// the Taylor certificate of `taylor` (`TaylorLadder`) along a random direction. Pure Swift, in Double.
///
/// Element check: `numerical = (f(x + h·e_k) − f(x − h·e_k)) / 2h`; an element passes when
/// `|analytical − numerical| ≤ atol + rtol·max(|analytical|, |numerical|)`. Defaults: h = 10⁻⁶, rtol = 10⁻⁶,
/// atol = 10⁻⁹; with h = 10⁻⁶ the difference quotient's own error is about h²·f‴ + ε·|f|/h ≈ 10⁻¹⁰ for these
/// smooth, O(1) functions, so a correct backward passes by four orders of magnitude and a wrong one (a sign,
/// a missing term, a factor) fails by many. An error smaller than rtol passes it; the certificate does not
/// depend on a tolerance and reports such an error as order 1.
///
/// A tensor passes when no element is beyond the tolerance and its certificate passes.
public struct GradientChecker: Sendable {
    /// h of the central difference. Default 10⁻⁶.
    public var step: Double
    /// Default 10⁻⁶.
    public var rtol: Double
    /// Default 10⁻⁹.
    public var atol: Double
    /// The Taylor certificate's ladder and thresholds. Default `TaylorLadder()`.
    public var taylor: TaylorLadder

    public init(step: Double = 1e-6, rtol: Double = 1e-6, atol: Double = 1e-9, taylor: TaylorLadder = TaylorLadder()) {
        self.step = step
        self.rtol = rtol
        self.atol = atol
        self.taylor = taylor
    }

    /// Checks `module`'s input gradient `dInput` and every parameter's gradient (`dWeight#0`, `dBias#1`, …, by
    /// position in `parameters`) at `input` `(batch, in)`, for the scalar `f = Σ forward(input) ⊙ R` with a
    /// fixed random `R` `(batch, out)` drawn from `generator` (uniform in [−1, 1)), whose gradient with respect
    /// to the output is `R` itself. Then one direction per tensor, in the same order, from `generator`. The
    /// parameters hold their values again when it returns.
    public func check(_ module: Module, input: Matrix, generator: inout Xoshiro256StarStar) -> GradientReport {
        let output = module.forward(input)
        var weights = Matrix(rows: output.rows, columns: output.columns)
        for k in weights.elements.indices { weights.elements[k] = generator.uniform(-1, 1) }
        let parameters = module.parameters
        let saved = parameters.map(\.value)
        defer { for (p, value) in zip(parameters, saved) { p.value = value } }
        /// f and the size of its terms, Σ |y ⊙ R|.
        func evaluate(_ values: [Matrix]) -> (value: Double, magnitude: Double) {
            for (p, value) in zip(parameters, values.dropFirst()) { p.value = value }
            let y = module.forward(values[0])
            var sum = CompensatedSum(), size = CompensatedSum()
            for k in y.elements.indices {
                sum.add(y.elements[k] * weights.elements[k])
                size.add(abs(y.elements[k] * weights.elements[k]))
            }
            return (sum.value, size.value)
        }
        module.zeroGradients()
        _ = module.forward(input)
        var dInput = Matrix.empty
        dInput.copy(from: module.backward(weights))
        var tensors = [CheckedTensor(module: module.description, name: "dInput", value: input, gradient: dInput)]
        for (index, parameter) in parameters.enumerated() {
            let name = "d\(parameter.name.prefix(1).uppercased())\(parameter.name.dropFirst())#\(index)"
            tensors.append(CheckedTensor(module: module.description, name: name, value: parameter.value, gradient: parameter.gradient))
        }
        let magnitude = evaluate(tensors.map(\.value)).magnitude
        return check(module.description, tensors, magnitude: magnitude, generator: &generator) { evaluate($0).value }
    }

    /// Checks `loss.gradient` in the predictions `(batch, width)` against `loss.value` (tensor `dPredictions`),
    /// with the certificate's direction from `generator`.
    public func check(_ loss: Loss, predictions: Matrix, targets: Matrix, generator: inout Xoshiro256StarStar) -> GradientReport {
        let tensor = CheckedTensor(module: loss.description, name: "dPredictions", value: predictions,
                                   gradient: loss.gradient(predictions: predictions, targets: targets))
        return check(loss.description, [tensor], generator: &generator) { loss.value(predictions: $0[0], targets: targets) }
    }

    /// Checks a whole training step's gradients: `f = loss(model(input), targets)`, in the input
    /// `(batch, in)` (`dInput`) and every parameter of `model`, named as by `check(_:input:generator:)`. The
    /// parameters hold their values again when it returns.
    public func check(_ model: Module, loss: Loss, input: Matrix, targets: Matrix, generator: inout Xoshiro256StarStar) -> GradientReport {
        let parameters = model.parameters
        let saved = parameters.map(\.value)
        defer { for (p, value) in zip(parameters, saved) { p.value = value } }
        func f(_ values: [Matrix]) -> Double {
            for (p, value) in zip(parameters, values.dropFirst()) { p.value = value }
            return loss.value(predictions: model.forward(values[0]), targets: targets)
        }
        model.zeroGradients()
        let output = model.forward(input)
        var dInput = Matrix.empty
        dInput.copy(from: model.backward(loss.gradient(predictions: output, targets: targets)))
        let subject = "\(model) with \(loss)"
        var tensors = [CheckedTensor(module: model.description, name: "dInput", value: input, gradient: dInput)]
        for (index, parameter) in parameters.enumerated() {
            let name = "d\(parameter.name.prefix(1).uppercased())\(parameter.name.dropFirst())#\(index)"
            tensors.append(CheckedTensor(module: model.description, name: name, value: parameter.value, gradient: parameter.gradient))
        }
        return check(subject, tensors, generator: &generator, f)
    }

    /// Checks any function of several tensors: `f` takes every tensor's value (in the order of `tensors`) and
    /// returns the function's; each tensor's `gradient` is checked element by element, then with a Taylor
    /// certificate along a direction drawn from `generator` (tensor after tensor). `magnitude` is the size of
    /// the terms f adds up, for the rounding floor (nil: |f|, right for a loss, a mean of non-negative terms).
    public func check(_ subject: String, _ tensors: [CheckedTensor], magnitude: Double? = nil,
                      generator: inout Xoshiro256StarStar, _ f: ([Matrix]) -> Double) -> GradientReport {
        var values = tensors.map(\.value)
        var report = GradientReport(subject: subject)
        for (index, tensor) in tensors.enumerated() {
            var mismatches: [GradientMismatch] = []
            var worst = 0.0
            let columns = max(tensor.value.columns, 1)
            for k in tensor.value.elements.indices {
                let saved = values[index].elements[k]
                values[index].elements[k] = saved + step
                let up = f(values)
                values[index].elements[k] = saved - step
                let down = f(values)
                values[index].elements[k] = saved
                let numerical = (up - down) / (2 * step)
                let a = tensor.gradient.elements[k]
                let scale = max(abs(a), abs(numerical))
                let relative = scale == 0 ? 0 : abs(a - numerical) / scale
                worst = max(worst, relative.isNaN ? .infinity : relative)
                if !(abs(a - numerical) <= atol + rtol * scale) {
                    mismatches.append(GradientMismatch(module: tensor.module, tensor: tensor.name, row: k / columns, column: k % columns,
                                                       analytical: a, numerical: numerical, relativeError: relative.isNaN ? .infinity : relative))
                }
            }
            let certificate = taylor.certificate(value: tensor.value, gradient: tensor.gradient, magnitude: magnitude,
                                                 generator: &generator) { x in
                values[index] = x
                defer { values[index] = tensor.value }
                return f(values)
            }
            report.tensors.append(TensorGradientCheck(module: tensor.module, tensor: tensor.name, shape: tensor.value.shape,
                                                      count: tensor.value.elements.count,
                                                      maxRelativeError: worst, mismatches: mismatches, taylor: certificate))
        }
        return report
    }
}

// MARK: - Numbers in reports (Framework has no Foundation, so no String(format:))

/// `x` with `digits` decimals: formatFixed(1.996, 2) = "2.00", formatFixed(-0.4, 2) = "-0.40"; "nan", "inf".
public func formatFixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    let factor = Double.pow(10, digits)
    let scaled = (abs(x) * factor).rounded()
    guard scaled < 1e15 else { return "\(x)" }
    let whole = Int(scaled) / Int(factor), fraction = Int(scaled) % Int(factor)
    let sign = x < 0 && scaled > 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let fractionText = String(fraction)
    return sign + String(whole) + "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
}

/// Two significant digits: 3.1e-7, 0.012, 1.5, 2.4e+3 (as C's "%.2g"), "0", "nan", "inf".
func formatShort(_ x: Double) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    guard x != 0 else { return "0" }
    var exponent = Int(Double.log10(abs(x)).rounded(.down))
    var mantissa = (abs(x) / Double.pow(10, exponent) * 10).rounded() / 10
    if mantissa >= 10 { mantissa /= 10; exponent += 1 }
    let sign = x < 0 ? "-" : ""
    if exponent >= -3 && exponent < 3 {
        let decimals = max(0, 1 - exponent)
        return sign + formatFixed(mantissa * Double.pow(10, exponent), decimals)
    }
    return sign + formatFixed(mantissa, 1) + "e" + (exponent < 0 ? "-" : "+") + String(abs(exponent))
}
