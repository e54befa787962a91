/// A trainable tensor with its accumulated gradient, both `(rows, columns)` of the same shape.
///
/// Gradients accumulate (`+=`) across backward calls until `zeroGradient()` is called, as in PyTorch.
public final class Parameter {
    /// A short name for reports: `"weight"` or `"bias"`.
    public let name: String
    /// The current value.
    public var value: Matrix
    /// ∂loss/∂value, accumulated since the last `zeroGradient()`.
    public var gradient: Matrix

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
///   needs (the input or the output of the last forward).
/// - `backward(_:)` takes ∂loss/∂output `(batch, outputWidth)` of the last forward, returns ∂loss/∂input
///   `(batch, inputWidth)`, and *accumulates* the parameters' gradients.
/// - `parameters` lists the module's parameters in declaration order (weight before bias); recursive for
///   containers. No reflection.
public protocol Module: AnyObject, CustomStringConvertible {
    /// The input width this module requires, or `nil` for elementwise modules that accept any width.
    var inputWidth: Int? { get }
    /// The output width for a given input width.
    func outputWidth(forInputWidth width: Int) -> Int
    /// `(batch, in) → (batch, out)`; caches what `backward` needs.
    func forward(_ input: Matrix) -> Matrix
    /// ∂loss/∂output `(batch, out)` → ∂loss/∂input `(batch, in)`; accumulates parameter gradients.
    func backward(_ dOutput: Matrix) -> Matrix
    /// Parameters in declaration order.
    var parameters: [Parameter] { get }
}

extension Module {
    public var parameters: [Parameter] { [] }

    /// Zeroes every parameter's gradient.
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// `forward`, so a module can be called like a function: `model(x)`.
    public func callAsFunction(_ input: Matrix) -> Matrix { forward(input) }
}
