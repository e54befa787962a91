/// Modules applied in order: `forward` runs them first to last, `backward` last to first.
///
/// Shapes are checked at construction: each module with a fixed input width must receive exactly the
/// width the modules before it produce. Input `(batch, inputWidth)`, output `(batch, outputWidth)`.
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

    /// Chains `modules`. Throws `ShapeError` if they are empty, the first has no fixed input width, or a
    /// module's input width differs from what the modules before it give.
    public init(_ modules: [Module]) throws {
        guard let first = modules.first, let width = first.inputWidth else {
            throw ShapeError(description: "Sequential: the first module must have a fixed input width (a Linear)")
        }
        var current = width
        for (index, module) in modules.enumerated() {
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

    public func forward(_ input: Matrix) -> Matrix {
        modules.reduce(input) { x, module in module.forward(x) }
    }

    public func backward(_ dOutput: Matrix) -> Matrix {
        modules.reversed().reduce(dOutput) { d, module in module.backward(d) }
    }
}
