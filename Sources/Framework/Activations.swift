import RealModule

// Elementwise activations: `(batch, width) → (batch, width)`, no parameters. Each backward line
// differentiates the forward line beside it; the derivative at a kink follows PyTorch.

/// `relu(x) = max(0, x)`; derivative 1 where x > 0, else 0 (0 at x = 0, as PyTorch).
public final class ReLU: Module {
    private var lastInput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "ReLU" }

    public func forward(_ input: Matrix) -> Matrix {
        lastInput = input
        var y = input
        for k in y.elements.indices where y.elements[k] <= 0 { y.elements[k] = 0 }
        return y
    }

    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastInput.shape, "ReLU: dOutput \(dOutput.shape), input \(lastInput.shape)")
        var dX = dOutput
        for k in dX.elements.indices where !(lastInput.elements[k] > 0) { dX.elements[k] = 0 }
        return dX
    }
}

/// `leakyRelu(x) = x if x > 0 else slope·x`; derivative 1 where x > 0, else `slope`. Default slope 0.01
/// (PyTorch's `negative_slope`).
public final class LeakyReLU: Module {
    public let slope: Double
    private var lastInput = Matrix(rows: 0, columns: 0)
    public init(slope: Double = 0.01) { self.slope = slope }
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "LeakyReLU(slope: \(slope))" }

    public func forward(_ input: Matrix) -> Matrix {
        lastInput = input
        var y = input
        for k in y.elements.indices where !(y.elements[k] > 0) { y.elements[k] *= slope }
        return y
    }

    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastInput.shape, "LeakyReLU: dOutput \(dOutput.shape), input \(lastInput.shape)")
        var dX = dOutput
        for k in dX.elements.indices where !(lastInput.elements[k] > 0) { dX.elements[k] *= slope }
        return dX
    }
}

/// `tanh(x)`; derivative `1 − tanh(x)²`, computed from the cached output.
public final class Tanh: Module {
    private var lastOutput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Tanh" }

    public func forward(_ input: Matrix) -> Matrix {
        var y = input
        for k in y.elements.indices { y.elements[k] = Double.tanh(y.elements[k]) }
        lastOutput = y
        return y
    }

    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastOutput.shape, "Tanh: dOutput \(dOutput.shape), output \(lastOutput.shape)")
        var dX = dOutput
        for k in dX.elements.indices {
            let y = lastOutput.elements[k]
            dX.elements[k] *= 1 - y * y
        }
        return dX
    }
}

/// `sigmoid(x) = 1 / (1 + e^−x)`; derivative `σ(x)·(1 − σ(x))`, computed from the cached output.
public final class Sigmoid: Module {
    private var lastOutput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Sigmoid" }

    public func forward(_ input: Matrix) -> Matrix {
        var y = input
        for k in y.elements.indices { y.elements[k] = 1 / (1 + Double.exp(-y.elements[k])) }
        lastOutput = y
        return y
    }

    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastOutput.shape, "Sigmoid: dOutput \(dOutput.shape), output \(lastOutput.shape)")
        var dX = dOutput
        for k in dX.elements.indices {
            let y = lastOutput.elements[k]
            dX.elements[k] *= y * (1 - y)
        }
        return dX
    }
}
