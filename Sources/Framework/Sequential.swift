/// Modules applied in order: `forward` runs them first to last, `backward` last to first.
///
/// Shapes are checked at construction: each module with a fixed input width must receive exactly the
/// width the modules before it produce. Input `(batch, inputWidth)`, output `(batch, outputWidth)`. Each
/// module's output buffer is the next one's input, and each dInput buffer the previous one's dOutput: nothing
/// is copied between them.
public final class Sequential: Module {
    /// The modules, first to last.
    public let modules: [Module]
    /// The width of the first module's input.
    public let inWidth: Int
    /// The width of the last module's output.
    public let outWidth: Int

    /// Thrown when the modules' shapes do not chain.
    public struct ShapeError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Chains `modules`. Throws `ShapeError` if they are empty, the first has no fixed input width, a module's
    /// input width differs from what the modules before it give, or one module object appears twice (a module
    /// keeps its last input for backward, so a second use would overwrite what the first one's backward needs).
    public init(_ modules: [Module]) throws {
        guard let first = modules.first, let width = first.inputWidth else {
            throw ShapeError(description: "Sequential: the first module must have a fixed input width (a Linear)")
        }
        var current = width
        var seen: [ObjectIdentifier: Int] = [:]
        for (index, module) in modules.enumerated() {
            if let earlier = seen.updateValue(index, forKey: ObjectIdentifier(module)) {
                throw ShapeError(description: "Sequential: module \(index) (\(module)) is the same object as module \(earlier); "
                                 + "a module keeps its input for backward, so use a new one")
            }
            if let expected = module.inputWidth, expected != current {
                throw ShapeError(description:
                    "Sequential: module \(index) (\(module)) takes \(expected) inputs, but the previous module gives \(current)")
            }
            current = module.outputWidth(forInputWidth: current)
        }
        self.modules = modules
        self.inWidth = width
        self.outWidth = current
    }

    public var inputWidth: Int? { inWidth }
    public func outputWidth(forInputWidth width: Int) -> Int { outWidth }
    public var parameters: [Parameter] { modules.flatMap { $0.parameters } }
    public var description: String {
        "Sequential(" + modules.map { $0.description }.joined(separator: ", ") + ")"
    }

    /// `(batch, in) → (batch, out)` through every module, first to last.
    public func forward(_ input: Matrix) -> Matrix {
        var x = input
        for module in modules { x = module.forward(x) }
        return x
    }

    /// `dOutput → dInput` through every module, last to first; accumulates every parameter gradient.
    public func backward(_ dOutput: Matrix) -> Matrix {
        var d = dOutput
        for module in modules.reversed() { d = module.backward(d) }
        return d
    }

    /// As `backward`, but the first module only accumulates its gradients: nothing needs the model's dInput.
    public func accumulateGradients(_ dOutput: Matrix) {
        var d = dOutput
        for module in modules.dropFirst().reversed() { d = module.backward(d) }
        modules[0].accumulateGradients(d)
    }

    public func zeroGradients() {
        for module in modules { module.zeroGradients() }
    }
}
