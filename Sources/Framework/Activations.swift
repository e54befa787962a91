// Elementwise activations: `(batch, width) → (batch, width)`, no parameters. Each backward line
// differentiates the forward line beside it; the derivative at a kink follows PyTorch. The loops themselves
// are `ActivationKernel`'s (ElementwiseKernels.swift), shared with `TrainingStep`.

/// `relu(x) = max(0, x)`; derivative 1 where x > 0, else 0 (0 at x = 0, as PyTorch).
public final class ReLU: Module {
    private var lastInput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "ReLU" }

    /// `y = x` where x > 0, else 0.
    public func forward(_ input: Matrix) -> Matrix {
        lastInput = input
        return ActivationKernel.relu.forward(input)
    }

    /// `dX = dY` where x > 0, else 0.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastInput.shape, "ReLU: dOutput \(dOutput.shape), input \(lastInput.shape)")
        return ActivationKernel.relu.backward(dOutput, cached: lastInput)
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

    /// `y = x` where x > 0, else `slope·x`.
    public func forward(_ input: Matrix) -> Matrix {
        lastInput = input
        return ActivationKernel.leakyReLU(slope: slope).forward(input)
    }

    /// `dX = dY` where x > 0, else `slope·dY`.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastInput.shape, "LeakyReLU: dOutput \(dOutput.shape), input \(lastInput.shape)")
        return ActivationKernel.leakyReLU(slope: slope).backward(dOutput, cached: lastInput)
    }
}

/// `tanh(x)`; derivative `1 − tanh(x)²`, computed from the cached output.
public final class Tanh: Module {
    private var lastOutput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Tanh" }

    /// `y = tanh(x)` (`vectorTanh`, within 2 ulp of the C library's).
    public func forward(_ input: Matrix) -> Matrix {
        lastOutput = ActivationKernel.tanh.forward(input)
        return lastOutput
    }

    /// `dX = dY·(1 − y²)`.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastOutput.shape, "Tanh: dOutput \(dOutput.shape), output \(lastOutput.shape)")
        return ActivationKernel.tanh.backward(dOutput, cached: lastOutput)
    }
}

/// `sigmoid(x) = 1 / (1 + e^−x)`; derivative `σ(x)·(1 − σ(x))`, computed from the cached output.
public final class Sigmoid: Module {
    private var lastOutput = Matrix(rows: 0, columns: 0)
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Sigmoid" }

    /// `y = 1 / (1 + e^−x)` (`vectorExp`, within 1 ulp of the C library's `exp`).
    public func forward(_ input: Matrix) -> Matrix {
        lastOutput = ActivationKernel.sigmoid.forward(input)
        return lastOutput
    }

    /// `dX = dY·y·(1 − y)`.
    public func backward(_ dOutput: Matrix) -> Matrix {
        precondition(dOutput.shape == lastOutput.shape, "Sigmoid: dOutput \(dOutput.shape), output \(lastOutput.shape)")
        return ActivationKernel.sigmoid.backward(dOutput, cached: lastOutput)
    }
}

extension ActivationKernel {
    /// `f` applied to every element of `x`.
    func forward(_ x: Matrix) -> Matrix {
        var y = Matrix(rows: x.rows, columns: x.columns)
        y.elements.withUnsafeMutableBufferPointer { yp in
            x.elements.withUnsafeBufferPointer { xp in
                if let xBase = xp.baseAddress, let yBase = yp.baseAddress { forward(xp.count, xBase, yBase) }
            }
        }
        return y
    }

    /// `dY ⊙ f′`, with `cached` the forward's input or output (`backwardUsesInput`).
    func backward(_ dY: Matrix, cached: Matrix) -> Matrix {
        var dX = Matrix(rows: dY.rows, columns: dY.columns)
        dX.elements.withUnsafeMutableBufferPointer { xp in
            dY.elements.withUnsafeBufferPointer { dp in
                cached.elements.withUnsafeBufferPointer { cp in
                    if let d = dp.baseAddress, let c = cp.baseAddress, let x = xp.baseAddress { backward(dp.count, d, c, x) }
                }
            }
        }
        return dX
    }
}
