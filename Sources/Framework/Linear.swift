/// A fully connected layer, `y = x·Wᵀ + b` (PyTorch's `torch.nn.Linear`).
///
/// Shapes: input `x` `(batch, in)`, `weight` `(out, in)`, `bias` `(1, out)`, output `(batch, out)`.
/// Default initialisation (PyTorch's): weight and bias each `U(−1/√in, 1/√in)`, drawn weight first, row
/// after row, then bias; see `Initializer` for the others.
///
/// Backward of `y = x·Wᵀ + b`:
///
///     dW += dYᵀ·x        (out, in)     differentiates y in W
///     db += Σ_batch dY   (1, out)      differentiates the broadcast + b
///     dX  = dY·W         (batch, in)   differentiates y in x
public final class Linear: Module {
    /// `(out, in)`.
    public let weight: Parameter
    /// `(1, out)`.
    public let bias: Parameter
    /// The last forward's input, `(batch, in)`: a copy, so that the caller may reuse its buffer.
    @exclusivity(unchecked) private var input = Matrix.empty
    /// `(batch, out)`, returned by `forward`.
    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    /// `(batch, in)`, returned by `backward`.
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    /// Packing buffers for the products, kept across calls.
    private let workspace = ProductWorkspace()
    /// `Wᵀ` packed for the kernel, valid while `weight.version == packedVersion`: packed on the second forward
    /// with an unchanged weight (an evaluation in chunks), so that it is packed once per evaluation.
    private let packedWeight = PackedPanels()
    @exclusivity(unchecked) private var packedVersion = -1, lastForwardVersion = -1

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
    public func zeroGradients() {
        weight.zeroGradient()
        bias.zeroGradient()
    }
    public var description: String { "Linear(\(inWidth) → \(outWidth))" }

    /// `y = x·Wᵀ + b`: `(batch, in) → (batch, out)`.
    public func forward(_ x: Matrix) -> Matrix {
        precondition(x.columns == inWidth, "\(self): input is \(x.shape)")
        input.copy(from: x)
        let version = weight.version
        if version == lastForwardVersion && packedVersion != version {
            weight.value.elements.withUnsafeBufferPointer { w in
                packedWeight.pack(ActiveKernel.self, StridedMatrix(base: w.baseAddress!, rowStride: inWidth, columnStride: 1).transposed,
                                  k: inWidth, n: outWidth)
            }
            packedVersion = version
        }
        lastForwardVersion = version
        Matrix.affine(ActiveKernel.self, x, weightTransposed: weight.value, bias: bias.value, into: &output,
                      workspace: workspace, packedWeight: packedVersion == version ? packedWeight : nil)
        return output
    }

    /// `dW += dYᵀ·x`, `db += Σ_batch dY`; returns `dX = dY·W` `(batch, in)`.
    public func backward(_ dY: Matrix) -> Matrix {
        accumulateGradients(dY)
        Matrix.product(ActiveKernel.self, dY, weight.value, into: &dInput, workspace: workspace)
        return dInput
    }

    /// `dW += dYᵀ·x`, `db += Σ_batch dY`, without `dX`.
    public func accumulateGradients(_ dY: Matrix) {
        precondition(dY.rows == input.rows && dY.columns == outWidth,
                     "\(self): dOutput is \(dY.shape) after a forward of \(input.shape)")
        Matrix.accumulateTransposedProduct(ActiveKernel.self, dY, input, into: &weight.gradient, workspace: workspace)
        dY.elements.withUnsafeBufferPointer { dp in
            bias.gradient.elements.withUnsafeMutableBufferPointer { gp in
                if let d = dp.baseAddress { accumulateColumnSums(ActiveKernel.self, rows: dY.rows, columns: outWidth, d, into: gp.baseAddress!) }
            }
        }
    }
}

/// `sums[c] += Σ_r m[r, c]` for the contiguous `(rows, columns)` matrix at `m`: the bias gradient
/// `db += Σ_batch dY`. Each column's sum runs over the rows in order from 0, then is added to `sums[c]`.
/// One pass over the rows per 4 vectors of columns.
func accumulateColumnSums<V: KernelVariant>(_: V.Type, rows: Int, columns: Int, _ m: UnsafePointer<Double>,
                                            into sums: UnsafeMutablePointer<Double>) {
    typealias Lane = V.Lane
    let width = Lane.scalarCount, chunk = 4 * width
    var c = 0
    while c + chunk <= columns {
        var acc = InlineArray<4, Lane>(repeating: Lane())
        for r in 0..<rows {
            let p = m + (r &* columns &+ c)
            for v in 0..<4 { acc[v] += loadLane(p + v &* width) }
        }
        for v in 0..<4 {
            let p = sums + (c &+ v &* width)
            storeLane(loadLane(p, as: Lane.self) + acc[v], p)
        }
        c += chunk
    }
    while c + width <= columns {
        var acc = Lane()
        for r in 0..<rows { acc += loadLane(m + (r &* columns &+ c)) }
        storeLane(loadLane(sums + c, as: Lane.self) + acc, sums + c)
        c += width
    }
    while c < columns {
        var acc = 0.0
        for r in 0..<rows { acc += m[r &* columns &+ c] }
        sums[c] += acc
        c += 1
    }
}
