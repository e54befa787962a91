import RealModule

/// A loss: a scalar from predictions and targets, and its gradient with respect to the predictions.
///
/// Shapes: predictions and targets are both `(batch, width)`; the gradient is `(batch, width)`. Every
/// built-in loss is the mean of its terms (PyTorch's `reduction='mean'`): elementwise losses over all
/// `batch·width` elements, cross-entropy over the rows. The terms are added with `CompensatedSum`, so a loss
/// over n terms is within about 2 ulp of the exact sum of the computed terms, however large n and in
/// whatever order the terms come (the parity check relies on this; see CompareCore's Parity.swift).
///
/// A loss of your own needs `value` and `gradient`; `valueAndGradient` (one pass, into a kept buffer: what
/// `Trainer` calls each step) and `accumulate` (a mean over a set taken chunk by chunk) have defaults built
/// on those two.
public protocol Loss: Sendable, CustomStringConvertible {
    /// The loss value.
    func value(predictions: Matrix, targets: Matrix) -> Double
    /// ∂loss/∂predictions, `(batch, width)`.
    func gradient(predictions: Matrix, targets: Matrix) -> Matrix
    /// The loss value, with ∂loss/∂predictions written into `gradient` (resized to `(batch, width)`).
    /// Default: `value`, then `gradient`.
    func valueAndGradient(predictions: Matrix, targets: Matrix, into gradient: inout Matrix) -> Double
    /// Adds this batch's terms to `total`, so that `total.mean` over several chunks of a set is the loss of
    /// the whole set. Default: the chunk's value weighted by its `batch·width` elements.
    func accumulate(predictions: Matrix, targets: Matrix, into total: inout LossTotal)
}

extension Loss {
    public func valueAndGradient(predictions: Matrix, targets: Matrix, into gradient: inout Matrix) -> Double {
        gradient = self.gradient(predictions: predictions, targets: targets)
        return value(predictions: predictions, targets: targets)
    }

    public func accumulate(predictions: Matrix, targets: Matrix, into total: inout LossTotal) {
        let count = predictions.rows * predictions.columns
        total.add(sum: value(predictions: predictions, targets: targets) * Double(count), terms: count)
    }
}

/// A sum of many doubles with Neumaier's compensation ("Rundungsfehleranalyse einiger Verfahren zur Summation
/// endlicher Summen", ZAMM 54, 1974): a second accumulator keeps the low-order bits each addition loses, so
/// the result is within 2 ulp of the exact sum, plus n·ε² of the terms' magnitude, for any order. A sum
/// that reaches ±∞ or NaN stays there.
public struct CompensatedSum: Sendable, Equatable {
    @usableFromInline var sum = 0.0
    @usableFromInline var compensation = 0.0

    public init() {}

    /// Adds `x`.
    @inlinable
    public mutating func add(_ x: Double) {
        let t = sum + x
        if t.isFinite {
            compensation += abs(sum) >= abs(x) ? (sum - t) + x : (x - t) + sum
        }
        sum = t
    }

    /// The compensated sum.
    @inlinable public var value: Double { sum.isFinite ? sum + compensation : sum }
}

/// The terms of a loss over a whole set, added chunk by chunk: their compensated sum and how many there are.
public struct LossTotal: Sendable, Equatable {
    @usableFromInline var sum = CompensatedSum()
    /// How many terms were added.
    public var terms: Int { termCount }
    @usableFromInline var termCount = 0

    public init() {}

    /// Adds `sum`, the total of `terms` terms.
    public mutating func add(sum value: Double, terms added: Int) {
        sum.add(value)
        termCount += added
    }

    /// Adds one term.
    @inlinable
    public mutating func add(_ term: Double) { sum.add(term) }

    /// Counts `count` terms added one by one with `add(_:)`.
    @inlinable
    public mutating func count(_ added: Int) { termCount += added }

    /// The loss: the sum divided by the number of terms (NaN for none).
    public var mean: Double { termCount == 0 ? .nan : sum.value / Double(termCount) }
}

// MARK: - Elementwise losses: one term per element, mean over all N = batch·width elements

/// A loss that is the mean of one term per element: `L = (1/N) Σ ℓ(p, t)`, `∂L/∂p = ℓ′(p, t) / N`. The
/// conforming type states ℓ and ℓ′ side by side; value, gradient and the chunked total follow from them.
public protocol ElementwiseLoss: Loss {
    /// The term ℓ(p, t) of one element.
    static func term(_ p: Double, _ t: Double) -> Double
    /// ∂ℓ/∂p of one element (the gradient of the mean is this divided by N).
    static func termDerivative(_ p: Double, _ t: Double) -> Double
}

// Inlinable, so that a call on a concrete loss from another module is specialised (the generic versions
// would call `term` through the protocol for every element).
extension ElementwiseLoss {
    @inlinable
    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        var total = LossTotal()
        accumulate(predictions: p, targets: t, into: &total)
        return total.mean
    }

    @inlinable
    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        var g = Matrix.empty
        _ = valueAndGradient(predictions: p, targets: t, into: &g)
        return g
    }

    @inlinable
    public func valueAndGradient(predictions p: Matrix, targets t: Matrix, into g: inout Matrix) -> Double {
        checkShapes(self, p, t)
        g.reshape(rows: p.rows, columns: p.columns)
        let n = Double(p.elements.count)
        var sum = CompensatedSum()
        g.elements.withUnsafeMutableBufferPointer { gp in
            p.elements.withUnsafeBufferPointer { pp in
                t.elements.withUnsafeBufferPointer { tp in
                    for k in pp.indices {
                        sum.add(Self.term(pp[k], tp[k]))
                        gp[k] = Self.termDerivative(pp[k], tp[k]) / n
                    }
                }
            }
        }
        return sum.value / n
    }

    @inlinable
    public func accumulate(predictions p: Matrix, targets t: Matrix, into total: inout LossTotal) {
        checkShapes(self, p, t)
        p.elements.withUnsafeBufferPointer { pp in
            t.elements.withUnsafeBufferPointer { tp in
                for k in pp.indices { total.add(Self.term(pp[k], tp[k])) }
            }
        }
        total.count(p.elements.count)
    }
}

@usableFromInline @inline(__always)
func checkShapes(_ loss: some Loss, _ p: Matrix, _ t: Matrix) {
    precondition(p.shape == t.shape && p.rows > 0, "\(loss): predictions \(p.shape), targets \(t.shape)")
}

/// Mean squared error (PyTorch's `MSELoss`): `ℓ = (p − t)²`, `ℓ′ = 2(p − t)`; `L = (1/N) Σ (p − t)²`,
/// `∂L/∂p = 2(p − t)/N`.
public struct MSELoss: ElementwiseLoss {
    public init() {}
    public var description: String { "MSE" }
    @inline(__always) public static func term(_ p: Double, _ t: Double) -> Double { (p - t) * (p - t) }
    @inline(__always) public static func termDerivative(_ p: Double, _ t: Double) -> Double { 2 * (p - t) }
}

/// Mean absolute error (PyTorch's `L1Loss`): `ℓ = |p − t|`, `ℓ′ = sign(p − t)` with sign(0) = 0 (NaN stays
/// NaN, as `torch.sign`); `L = (1/N) Σ |p − t|`.
public struct MAELoss: ElementwiseLoss {
    public init() {}
    public var description: String { "MAE" }
    @inline(__always) public static func term(_ p: Double, _ t: Double) -> Double { abs(p - t) }
    @inline(__always) public static func termDerivative(_ p: Double, _ t: Double) -> Double {
        let d = p - t
        return d > 0 ? 1 : (d < 0 ? -1 : d)
    }
}

/// Binary cross-entropy on probabilities p in [0, 1] (PyTorch's `BCELoss`):
/// `ℓ = −[t·max(ln p, −100) + (1 − t)·max(ln(1 − p), −100)]`, logs clamped at −100 as PyTorch does (so p = 0
/// or 1 gives a finite 100, not ∞); `ℓ′ = (p − t) / max(p(1 − p), 10⁻¹²)` (PyTorch's backward, with its
/// ε = 10⁻¹²).
public struct BCELoss: ElementwiseLoss {
    public init() {}
    public var description: String { "BCE" }
    @inline(__always) public static func term(_ p: Double, _ t: Double) -> Double {
        -(t * max(Double.log(p), -100) + (1 - t) * max(Double.log(1 - p), -100))
    }
    @inline(__always) public static func termDerivative(_ p: Double, _ t: Double) -> Double {
        (p - t) / max(p * (1 - p), 1e-12)
    }
}

// MARK: - Cross-entropy: one term per row, mean over the rows

/// Cross-entropy on logits (PyTorch's `CrossEntropyLoss` with class indices): per row, the class is
/// `c = argmax(target row)` (first maximum), `ℓ = logsumexp(z) − z_c`, computed with the row maximum
/// subtracted; `L` is the mean of ℓ over the *rows* (batch). `∂L/∂z = (softmax(z) − onehot(c)) / batch`.
/// Needs at least two columns.
public struct CrossEntropyLoss: Loss {
    public init() {}
    public var description: String { "CrossEntropy" }

    public func value(predictions z: Matrix, targets t: Matrix) -> Double {
        var total = LossTotal()
        accumulate(predictions: z, targets: t, into: &total)
        return total.mean
    }

    public func gradient(predictions z: Matrix, targets t: Matrix) -> Matrix {
        var g = Matrix.empty
        _ = valueAndGradient(predictions: z, targets: t, into: &g)
        return g
    }

    public func valueAndGradient(predictions z: Matrix, targets t: Matrix, into g: inout Matrix) -> Double {
        checkShapes(self, z, t)
        g.reshape(rows: z.rows, columns: z.columns)
        var total = LossTotal()
        let scale = 1 / Double(z.rows)
        g.elements.withUnsafeMutableBufferPointer { gp in
            Self.forEachRow(z, t) { r, row, c, maximum, sumOfExponentials in
                total.add(Double.log(sumOfExponentials) + maximum - row[c])          // ℓ = logsumexp(z) − z_c
                for k in row.indices {                                               // (softmax − onehot)/batch
                    let softmax = Double.exp(row[k] - maximum) / sumOfExponentials
                    gp[r * z.columns + k] = scale * (softmax - (k == c ? 1 : 0))
                }
            }
        }
        total.count(z.rows)
        return total.mean
    }

    public func accumulate(predictions z: Matrix, targets t: Matrix, into total: inout LossTotal) {
        checkShapes(self, z, t)
        Self.forEachRow(z, t) { _, row, c, maximum, sumOfExponentials in
            total.add(Double.log(sumOfExponentials) + maximum - row[c])
        }
        total.count(z.rows)
    }

    /// For each row r: the logits, the target class c (first argmax of the target row), the row maximum m and
    /// `Σ_k e^(z_k − m)`.
    private static func forEachRow(_ z: Matrix, _ t: Matrix,
                                   _ body: (Int, UnsafeBufferPointer<Double>, Int, Double, Double) -> Void) {
        let columns = z.columns
        z.elements.withUnsafeBufferPointer { zp in
            t.elements.withUnsafeBufferPointer { tp in
                for r in 0..<z.rows {
                    let row = UnsafeBufferPointer(rebasing: zp[(r * columns)..<((r + 1) * columns)])
                    let c = argmax(tp[(r * columns)..<((r + 1) * columns)])
                    var maximum = row[0]
                    for k in 1..<columns where row[k] > maximum || row[k].isNaN { maximum = row[k] }
                    var sumOfExponentials = 0.0
                    for k in 0..<columns { sumOfExponentials += Double.exp(row[k] - maximum) }
                    body(r, row, c, maximum, sumOfExponentials)
                }
            }
        }
    }
}
