/// A fully connected layer, `y = x·Wᵀ + b` (PyTorch's `torch.nn.Linear`).
///
/// Shapes: input `x` `(batch, in)`, `weight` `(out, in)`, `bias` `(1, out)`, output `(batch, out)`.
/// Default initialisation (PyTorch's): weight and bias each `U(−1/√in, 1/√in)`, drawn weight first, row
/// after row, then bias; see `Initializer` for the others.
public final class Linear: Module {
    /// `(out, in)`.
    public let weight: Parameter
    /// `(1, out)`.
    public let bias: Parameter
    private var lastInput = Matrix(rows: 0, columns: 0)
    /// Packing buffers for the products, kept across calls.
    private let workspace = ProductWorkspace()

    /// A layer from `in` inputs to `out` outputs, initialised by `initializer` from `generator`.
    public init(_ inWidth: Int, _ outWidth: Int, initializer: Initializer = .default,
                generator: inout Xoshiro256StarStar) {
        precondition(inWidth > 0 && outWidth > 0, "Linear(\(inWidth) → \(outWidth)): widths must be positive")
        let (w, b) = initializer.values(inWidth: inWidth, outWidth: outWidth, generator: &generator)
        weight = Parameter(name: "weight", value: w)
        bias = Parameter(name: "bias", value: b)
    }

    /// A layer with explicit values: `weight` `(out, in)` and `bias` `(1, out)`.
    public init(weight: Matrix, bias: Matrix) {
        precondition(weight.rows > 0 && weight.columns > 0, "Linear: empty weight \(weight.shape)")
        precondition(bias.rows == 1 && bias.columns == weight.rows,
                     "Linear: bias \(bias.shape) does not match weight \(weight.shape)")
        self.weight = Parameter(name: "weight", value: weight)
        self.bias = Parameter(name: "bias", value: bias)
    }

    public var inWidth: Int { weight.value.columns }
    public var outWidth: Int { weight.value.rows }
    public var inputWidth: Int? { inWidth }
    public func outputWidth(forInputWidth width: Int) -> Int { outWidth }
    public var parameters: [Parameter] { [weight, bias] }
    public var description: String { "Linear(\(inWidth) → \(outWidth))" }

    /// `y = x·Wᵀ + b`: `(batch, in) → (batch, out)`.
    public func forward(_ input: Matrix) -> Matrix {
        precondition(input.columns == inWidth, "\(self): input is \(input.shape)")
        lastInput = input
        var y = Matrix(rows: input.rows, columns: outWidth)
        Matrix.affine(input, weightTransposed: weight.value, bias: bias.value, into: &y, workspace: workspace)
        return y
    }

    /// From `y = x·Wᵀ + b`: `dW += dYᵀ·x`, `db += Σ_batch dY`, returns `dX = dY·W` `(batch, in)`.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.rows == lastInput.rows && dOutput.columns == outWidth,
                     "\(self): dOutput is \(dOutput.shape) after a forward of \(lastInput.shape)")
        Matrix.accumulateTransposedProduct(dOutput, lastInput, into: &weight.gradient, workspace: workspace)
        dOutput.elements.withUnsafeBufferPointer { dp in
            bias.gradient.elements.withUnsafeMutableBufferPointer { gp in
                accumulateColumnSums(rows: dOutput.rows, columns: outWidth, dp.baseAddress!, rowStride: outWidth,
                                     into: gp.baseAddress!)
            }
        }
        var dX = Matrix(rows: dOutput.rows, columns: inWidth)
        Matrix.product(dOutput, weight.value, into: &dX, workspace: workspace)
        return dX
    }
}

/// `sums[c] += Σ_r m[r, c]` for `(rows, columns)` at `m` with rows `rowStride` apart: the bias gradient
/// `db += Σ_batch dY` (with `accumulate` false, `sums[c] = Σ_r m[r, c]`). Each column's sum runs over the rows
/// in order from 0, then is added to `sums[c]`. One pass over the rows per 4 vectors of columns.
func accumulateColumnSums(rows: Int, columns: Int, _ m: UnsafePointer<Double>, rowStride: Int,
                          into sums: UnsafeMutablePointer<Double>, accumulate: Bool = true) {
    let width = Lane.scalarCount, chunk = 4 * width
    var c = 0
    while c + chunk <= columns {
        var acc = InlineArray<4, Lane>(repeating: Lane())
        for r in 0..<rows {
            let p = m + (r &* rowStride &+ c)
            for v in 0..<4 { acc[v] += loadLane(p + v &* width) }
        }
        for v in 0..<4 {
            let p = sums + (c &+ v &* width)
            storeLane(accumulate ? loadLane(p) + acc[v] : acc[v], p)
        }
        c += chunk
    }
    while c + width <= columns {
        var acc = Lane()
        for r in 0..<rows { acc += loadLane(m + (r &* rowStride &+ c)) }
        storeLane(accumulate ? loadLane(sums + c) + acc : acc, sums + c)
        c += width
    }
    while c < columns {
        var acc = 0.0
        for r in 0..<rows { acc += m[r &* rowStride &+ c] }
        sums[c] = accumulate ? sums[c] + acc : acc
        c += 1
    }
}
