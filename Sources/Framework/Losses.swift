import RealModule

/// A loss: a scalar from predictions and targets, and its gradient with respect to the predictions.
///
/// Shapes: predictions and targets are both `(batch, width)`; the gradient is `(batch, width)`.
/// Every loss reduces by the mean (PyTorch's `reduction='mean'`).
public protocol Loss: Sendable, CustomStringConvertible {
    /// The loss value.
    func value(predictions: Matrix, targets: Matrix) -> Double
    /// ∂loss/∂predictions, `(batch, width)`.
    func gradient(predictions: Matrix, targets: Matrix) -> Matrix
}

@inline(__always)
private func checkShapes(_ loss: some Loss, _ p: Matrix, _ t: Matrix) {
    precondition(p.shape == t.shape && p.rows > 0, "\(loss): predictions \(p.shape), targets \(t.shape)")
}

/// Mean squared error, `L = (1/N) Σ (p − t)²` over all N = batch·width elements; `∂L/∂p = 2(p − t)/N`.
public struct MSELoss: Loss {
    public init() {}
    public var description: String { "MSE" }

    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, p, t)
        var sum = 0.0
        for k in p.elements.indices { let d = p.elements[k] - t.elements[k]; sum += d * d }
        return sum / Double(p.elements.count)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        let scale = 2 / Double(p.elements.count)
        var g = p
        for k in g.elements.indices { g.elements[k] = scale * (p.elements[k] - t.elements[k]) }
        return g
    }
}

/// Mean absolute error (PyTorch's `L1Loss`), `L = (1/N) Σ |p − t|`; `∂L/∂p = sign(p − t)/N`, sign(0) = 0.
public struct MAELoss: Loss {
    public init() {}
    public var description: String { "MAE" }

    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, p, t)
        var sum = 0.0
        for k in p.elements.indices { sum += abs(p.elements[k] - t.elements[k]) }
        return sum / Double(p.elements.count)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        let scale = 1 / Double(p.elements.count)
        var g = p
        for k in g.elements.indices {
            let d = p.elements[k] - t.elements[k]
            g.elements[k] = d > 0 ? scale : (d < 0 ? -scale : 0)
        }
        return g
    }
}

/// Binary cross-entropy on probabilities p in [0, 1] (PyTorch's `BCELoss`):
/// `L = −(1/N) Σ [t·max(ln p, −100) + (1 − t)·max(ln(1 − p), −100)]`, logs clamped at −100 as PyTorch does;
/// `∂L/∂p = (p − t) / max(p(1 − p), 10⁻¹²) / N` (PyTorch's backward, with its ε = 10⁻¹²).
public struct BCELoss: Loss {
    public init() {}
    public var description: String { "BCE" }

    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, p, t)
        var sum = 0.0
        for k in p.elements.indices {
            let pk = p.elements[k], tk = t.elements[k]
            sum -= tk * max(Double.log(pk), -100) + (1 - tk) * max(Double.log(1 - pk), -100)
        }
        return sum / Double(p.elements.count)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        let n = Double(p.elements.count)
        var g = p
        for k in g.elements.indices {
            let pk = p.elements[k], tk = t.elements[k]
            g.elements[k] = (pk - tk) / max(pk * (1 - pk), 1e-12) / n
        }
        return g
    }
}

/// Cross-entropy on logits (PyTorch's `CrossEntropyLoss` with class indices): per row, the class is
/// `c = argmax(target row)` (first maximum), `ℓ = logsumexp(z) − z_c`, computed with the row maximum
/// subtracted; `L` is the mean of ℓ over the *rows* (batch). `∂L/∂z = (softmax(z) − onehot(c)) / batch`.
/// Needs at least two columns.
public struct CrossEntropyLoss: Loss {
    public init() {}
    public var description: String { "CrossEntropy" }

    public func value(predictions z: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, z, t)
        var sum = 0.0
        for r in 0..<z.rows {
            let row = rowRange(r, z.columns)
            let maximum = z.elements[row].max()!
            var total = 0.0
            for k in row { total += Double.exp(z.elements[k] - maximum) }
            let c = argmax(t.elements[row])
            sum += Double.log(total) + maximum - z.elements[row.lowerBound + c]
        }
        return sum / Double(z.rows)
    }

    public func gradient(predictions z: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, z, t)
        var g = z
        let scale = 1 / Double(z.rows)
        for r in 0..<z.rows {
            let row = rowRange(r, z.columns)
            let maximum = z.elements[row].max()!
            var total = 0.0
            for k in row { total += Double.exp(z.elements[k] - maximum) }
            let c = argmax(t.elements[row])
            for k in row {
                let softmax = Double.exp(z.elements[k] - maximum) / total
                g.elements[k] = scale * (softmax - (k - row.lowerBound == c ? 1 : 0))
            }
        }
        return g
    }
}

@inline(__always) func rowRange(_ r: Int, _ columns: Int) -> Range<Int> { (r * columns)..<((r + 1) * columns) }

/// The position of the first maximum of `values` (0 for an empty collection). NaN never wins.
func argmax<C: Collection>(_ values: C) -> Int where C.Element == Double {
    var best = 0, bestValue = -Double.infinity, position = 0
    for v in values {
        if v > bestValue { best = position; bestValue = v }
        position += 1
    }
    return best
}
