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

/// The value of `kernel` on `p` and `t` (shapes checked by the caller).
private func lossValue(_ kernel: LossKernel, _ p: Matrix, _ t: Matrix) -> Double {
    if p.elements.isEmpty { return .nan }  // the mean of nothing
    return p.elements.withUnsafeBufferPointer { pp in
        t.elements.withUnsafeBufferPointer { tp in
            kernel.evaluate(rows: p.rows, columns: p.columns, predictions: pp.baseAddress!, targets: tp.baseAddress!, gradient: nil)
        }
    }
}

/// The gradient of `kernel` on `p` and `t` (shapes checked by the caller).
private func lossGradient(_ kernel: LossKernel, _ p: Matrix, _ t: Matrix) -> Matrix {
    var g = Matrix(rows: p.rows, columns: p.columns)
    if g.elements.isEmpty { return g }
    g.elements.withUnsafeMutableBufferPointer { gp in
        p.elements.withUnsafeBufferPointer { pp in
            t.elements.withUnsafeBufferPointer { tp in
                _ = kernel.evaluate(rows: p.rows, columns: p.columns, predictions: pp.baseAddress!, targets: tp.baseAddress!,
                                    gradient: gp.baseAddress!)
            }
        }
    }
    return g
}

/// Mean squared error, `L = (1/N) Σ (p − t)²` over all N = batch·width elements; `∂L/∂p = 2(p − t)/N`.
public struct MSELoss: Loss {
    public init() {}
    public var description: String { "MSE" }

    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, p, t)
        return lossValue(.mse, p, t)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        return lossGradient(.mse, p, t)
    }
}

/// Mean absolute error (PyTorch's `L1Loss`), `L = (1/N) Σ |p − t|`; `∂L/∂p = sign(p − t)/N`, sign(0) = 0.
public struct MAELoss: Loss {
    public init() {}
    public var description: String { "MAE" }

    public func value(predictions p: Matrix, targets t: Matrix) -> Double {
        checkShapes(self, p, t)
        return lossValue(.mae, p, t)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        return lossGradient(.mae, p, t)
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
        return lossValue(.bce, p, t)
    }

    public func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, p, t)
        return lossGradient(.bce, p, t)
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
        return lossValue(.crossEntropy, z, t)
    }

    public func gradient(predictions z: Matrix, targets t: Matrix) -> Matrix {
        checkShapes(self, z, t)
        return lossGradient(.crossEntropy, z, t)
    }
}

/// The built-in losses on raw buffers, the value and (optionally) the gradient in one pass; the structs above
/// and `TrainingStep` both call this. Formulas as in each struct's doc comment.
enum LossKernel {
    case mse, mae, bce, crossEntropy

    /// The kernel of a built-in loss, or nil for any other `Loss`.
    init?(_ loss: Loss) {
        switch loss {
        case is MSELoss: self = .mse
        case is MAELoss: self = .mae
        case is BCELoss: self = .bce
        case is CrossEntropyLoss: self = .crossEntropy
        default: return nil
        }
    }

    /// The loss of `(rows, columns)` predictions against targets, both contiguous; when `gradient` is given,
    /// also writes ∂L/∂predictions there `(rows, columns)`.
    func evaluate(rows: Int, columns: Int, predictions p: UnsafePointer<Double>, targets t: UnsafePointer<Double>,
                  gradient g: UnsafeMutablePointer<Double>?) -> Double {
        let count = rows * columns
        let n = Double(count)
        switch self {
        case .mse:
            let scale = 2 / n
            var sum = Lane()
            let width = Lane.scalarCount
            var k = 0
            while k < count {
                let lanes = min(width, count - k)
                let d = lanes == width ? loadLane(p + k) - loadLane(t + k)
                                       : loadLane(p + k, count: lanes) - loadLane(t + k, count: lanes)
                sum = multiplyAdd(d, d, sum)
                if let g {
                    if lanes == width { storeLane(scale * d, g + k) } else { storeLane(scale * d, g + k, count: lanes) }
                }
                k += width
            }
            return sum.sum() / n
        case .mae:
            var sum = 0.0
            let scale = 1 / n
            for k in 0..<count {
                let d = p[k] - t[k]
                sum += abs(d)
                if let g { g[k] = d > 0 ? scale : (d < 0 ? -scale : 0) }
            }
            return sum / n
        case .bce:
            var sum = 0.0
            for k in 0..<count {
                let pk = p[k], tk = t[k]
                sum -= tk * max(Double.log(pk), -100) + (1 - tk) * max(Double.log(1 - pk), -100)
                if let g { g[k] = (pk - tk) / max(pk * (1 - pk), 1e-12) / n }
            }
            return sum / n
        case .crossEntropy:
            var sum = 0.0
            let scale = 1 / Double(rows)
            for r in 0..<rows {
                let z = p + r * columns, target = t + r * columns
                var maximum = z[0]
                for k in 1..<columns where z[k] > maximum { maximum = z[k] }
                var total = 0.0
                for k in 0..<columns { total += Double.exp(z[k] - maximum) }
                let c = argmax(UnsafeBufferPointer(start: target, count: columns))
                sum += Double.log(total) + maximum - z[c]
                if let g {
                    let row = g + r * columns
                    for k in 0..<columns {
                        let softmax = Double.exp(z[k] - maximum) / total
                        row[k] = scale * (softmax - (k == c ? 1 : 0))
                    }
                }
            }
            return sum / Double(rows)
        }
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
