/// A labelled data set: `inputs` `(count, inputWidth)` and `targets` `(count, targetWidth)`, row n of each
/// belonging to sample n.
public struct Dataset: Equatable, Sendable {
    public var inputs: Matrix
    public var targets: Matrix

    public init(inputs: Matrix, targets: Matrix) {
        precondition(inputs.rows == targets.rows, "Dataset: \(inputs.rows) inputs, \(targets.rows) targets")
        self.inputs = inputs
        self.targets = targets
    }

    /// Number of samples.
    public var count: Int { inputs.rows }

    /// Targets for 0/1 labels: one-hot `(n, 2)` rows `[1 − label, label]` when `width` is 2, a single 0/1
    /// column `(n, 1)` when `width` is 1.
    public static func targets(labels: [Int], width: Int) -> Matrix {
        precondition(width == 1 || width == 2, "targets(labels:width:): width must be 1 or 2, got \(width)")
        var t = Matrix(rows: labels.count, columns: width)
        for (n, label) in labels.enumerated() {
            if width == 1 { t[n, 0] = Double(label) } else { t[n, label] = 1 }
        }
        return t
    }

    /// The original task: `count` points uniform in [0, 1]² (x then y, from `generator`), label 1 inside
    /// the disk centred at (0.5, 0.5) of radius 1/√(2π) (area 1/2), else 0; targets as
    /// `targets(labels:width:)` with `targetWidth` 1 or 2.
    public static func disk(count: Int, targetWidth: Int, generator: inout Xoshiro256StarStar) -> Dataset {
        var inputs = Matrix(rows: count, columns: 2)
        var labels = [Int](repeating: 0, count: count)
        let radiusSquared = 1 / (2 * Double.pi)
        for n in 0..<count {
            let x = generator.uniform(), y = generator.uniform()
            inputs[n, 0] = x
            inputs[n, 1] = y
            let dx = x - 0.5, dy = y - 0.5
            labels[n] = dx * dx + dy * dy < radiusSquared ? 1 : 0
        }
        return Dataset(inputs: inputs, targets: targets(labels: labels, width: targetWidth))
    }

    /// XOR: the four points (0,0), (0,1), (1,0), (1,1) with labels 0, 1, 1, 0; targets as
    /// `targets(labels:width:)`. Not linearly separable: a single linear layer cannot reach accuracy 1.
    public static func xor(targetWidth: Int) -> Dataset {
        Dataset(inputs: Matrix([[0, 0], [0, 1], [1, 0], [1, 1]]),
                targets: targets(labels: [0, 1, 1, 0], width: targetWidth))
    }
}

/// The fraction in [0, 1] of rows classified correctly.
///
/// Two or more columns: `argmax(prediction row) == argmax(target row)` (see `argmax`: the first maximum, a
/// NaN counting as the maximum, as `torch.argmax`). One column: `(prediction ≥ 0.5) == (target ≥ 0.5)`
/// (a NaN prediction is < 0.5). Shapes: both `(batch, width)`.
public func accuracy(predictions: Matrix, targets: Matrix) -> Double {
    Double(correctCount(predictions: predictions, targets: targets)) / Double(predictions.rows)
}

/// How many rows `accuracy` counts as correct.
public func correctCount(predictions: Matrix, targets: Matrix) -> Int {
    precondition(predictions.shape == targets.shape && predictions.rows > 0,
                 "accuracy: predictions \(predictions.shape), targets \(targets.shape)")
    var correct = 0
    let width = predictions.columns
    predictions.elements.withUnsafeBufferPointer { p in
        targets.elements.withUnsafeBufferPointer { t in
            for r in 0..<predictions.rows {
                if width == 1 {
                    if (p[r] >= 0.5) == (t[r] >= 0.5) { correct += 1 }
                } else {
                    let row = rowRange(r, width)
                    if argmax(p[row]) == argmax(t[row]) { correct += 1 }
                }
            }
        }
    }
    return correct
}

@inline(__always) func rowRange(_ r: Int, _ columns: Int) -> Range<Int> { (r * columns)..<((r + 1) * columns) }

/// The offset of the first maximum of `values` (0 for an empty collection), with PyTorch's rule for NaN
/// (`torch.argmax`): a NaN is larger than every number, so the first NaN wins.
public func argmax<C: Collection>(_ values: C) -> Int where C.Element == Double {
    var best = 0, bestValue = -Double.infinity, position = 0
    for v in values {
        if v.isNaN { return position }
        if v > bestValue || position == 0 { best = position; bestValue = v }
        position += 1
    }
    return best
}

extension Dataset {
    /// The per-feature mean and sample standard deviation (n − 1; 0 for a single row) of the inputs, each over
    /// the rows in order with a compensated sum.
    public func inputStatistics() -> (mean: [Double], deviation: [Double]) {
        let n = Double(count), width = inputs.columns
        var mean = [Double](repeating: 0, count: width), deviation = mean
        for c in 0..<width {
            var sum = CompensatedSum()
            for r in 0..<count { sum.add(inputs[r, c]) }
            mean[c] = sum.value / n
            var squares = CompensatedSum()
            for r in 0..<count { squares.add((inputs[r, c] - mean[c]) * (inputs[r, c] - mean[c])) }
            deviation[c] = count > 1 ? (squares.value / (n - 1)).squareRoot() : 0
        }
        return (mean, deviation)
    }

    /// The set with every input feature z-scored, `(x − mean) / deviation` (a zero deviation only centres the
    /// feature); the targets unchanged. Give it the *train* set's `inputStatistics()` for both sets.
    public func standardized(mean: [Double], deviation: [Double]) -> Dataset {
        precondition(mean.count == inputs.columns && deviation.count == inputs.columns,
                     "standardized: \(mean.count) means for \(inputs.columns) features")
        var x = inputs
        for r in 0..<count {
            for c in 0..<inputs.columns {
                x[r, c] = deviation[c] > 0 ? (x[r, c] - mean[c]) / deviation[c] : x[r, c] - mean[c]
            }
        }
        return Dataset(inputs: x, targets: targets)
    }
}
