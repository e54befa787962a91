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
        return Matrix.affine(input, weightTransposed: weight.value, bias: bias.value)
    }

    /// From `y = x·Wᵀ + b`: `dW += dYᵀ·x`, `db += Σ_batch dY`, returns `dX = dY·W` `(batch, in)`.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.rows == lastInput.rows && dOutput.columns == outWidth,
                     "\(self): dOutput is \(dOutput.shape) after a forward of \(lastInput.shape)")
        Matrix.accumulateTransposedProduct(dOutput, lastInput, into: &weight.gradient)
        for o in 0..<outWidth {
            var sum = 0.0
            for n in 0..<dOutput.rows { sum += dOutput[n, o] }
            bias.gradient.elements[o] += sum
        }
        return Matrix.product(dOutput, weight.value)
    }
}
