/// A trainable tensor with its accumulated gradient, both `(rows, columns)` of the same shape.
///
/// Gradients accumulate (`+=`) across backward calls until `zeroGradient()` is called, as in PyTorch.
public final class Parameter {
    /// A short name for reports: `"weight"` or `"bias"`.
    public let name: String
    /// The current value. Every change counts up `version`.
    ///
    /// (`@exclusivity(unchecked)` here, on `version`, and on the stored state the training step touches in the
    /// modules, the optimizers and the product kernel (its buffers, Linear's packed-weight versions): Swift checks
    /// at run time that two accesses to a class's stored property never overlap, which costs about a microsecond
    /// per step of the seeds' network, 15 % at batch 5. These are only accessed one at a time, by straight-line
    /// code.)
    @exclusivity(unchecked) public var value: Matrix {
        didSet { version &+= 1 }
    }
    /// ∂loss/∂value, accumulated since the last `zeroGradient()`.
    @exclusivity(unchecked) public var gradient: Matrix
    /// Counts the changes to `value` (any assignment or in-place update), so that a layer can tell whether
    /// what it derived from the value (Linear's packed weights) is still current, as PyTorch's tensor version
    /// counter does.
    @exclusivity(unchecked) public private(set) var version = 0

    public init(name: String, value: Matrix) {
        self.name = name
        self.value = value
        self.gradient = Matrix(rows: value.rows, columns: value.columns)
    }

    /// Sets the gradient to zero.
    public func zeroGradient() { gradient.zero() }
}

/// A network module: a forward map on a batch, and its backward.
///
/// - `forward(_:)` takes `(batch, inputWidth)` and returns `(batch, outputWidth)`, keeping what `backward`
///   needs (its own copy of the input, or its output).
/// - `backward(_:)` takes ∂loss/∂output `(batch, outputWidth)` of the last forward, returns ∂loss/∂input
///   `(batch, inputWidth)`, and *accumulates* (`+=`) the parameters' gradients.
/// - `parameters` lists the module's parameters in declaration order (weight before bias); recursive for
///   containers. No reflection.
///
/// The built-in modules keep their output and their dInput in buffers of their own, reused from one batch to
/// the next and resized only when the batch size changes (`Matrix.reshape`): the matrix `forward` returns is
/// that buffer, so training allocates nothing per step. Holding on to a returned matrix is safe: the next
/// forward then writes into fresh storage (copy-on-write), and the value you hold does not change.
///
/// A module of your own needs only the five requirements without defaults; `Trainer` runs it exactly as it
/// runs the built-in ones (there is no other path).
public protocol Module: AnyObject, CustomStringConvertible {
    /// The input width this module requires, or `nil` for elementwise modules that accept any width.
    var inputWidth: Int? { get }
    /// The output width for a given input width.
    func outputWidth(forInputWidth width: Int) -> Int
    /// `(batch, in) → (batch, out)`; keeps what `backward` needs.
    func forward(_ input: Matrix) -> Matrix
    /// ∂loss/∂output `(batch, out)` → ∂loss/∂input `(batch, in)`; accumulates parameter gradients.
    func backward(_ dOutput: Matrix) -> Matrix
    /// `backward` without ∂loss/∂input, for the first module of a model, whose input gradient nothing uses:
    /// only the parameter gradients are accumulated. Default: `backward`, result dropped; `Linear` skips
    /// its `dY·W` product.
    func accumulateGradients(_ dOutput: Matrix)
    /// Parameters in declaration order. Default: none.
    var parameters: [Parameter] { get }
    /// Sets every parameter's gradient to zero. Default: `zeroGradient()` on each of `parameters`.
    func zeroGradients()
}

extension Module {
    public var parameters: [Parameter] { [] }

    public func accumulateGradients(_ dOutput: Matrix) { _ = backward(dOutput) }

    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// `forward`, so a module can be called like a function: `model(x)`.
    public func callAsFunction(_ input: Matrix) -> Matrix { forward(input) }
}
