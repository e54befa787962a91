import RealModule

// Elementwise activations: `(batch, width) → (batch, width)`, no parameters. Each class states its f and f′
// in its doc comment and has them as two one-line functions, `f` and `fPrime`, which its forward and backward
// apply to every element (a SIMD lane at a time, Kernels/LaneFunctions.swift). f′ is written in what backward
// reads: the forward's output y (ReLU, Tanh, Sigmoid) or its input x (LeakyReLU, GELU), as PyTorch's backward
// functions do. The derivative at a kink follows PyTorch: relu′(0) = 0.
//
// Each module keeps its output and dInput in buffers of its own (see `Module`), and, when f′ needs x, its own
// copy of x.

/// `relu(x) = max(0, x)`; `f′(x) = 1` where x > 0, else 0 (0 at x = 0, as PyTorch), read from the output:
/// `y > 0` exactly where `x > 0` (PyTorch's `threshold_backward` on the result does the same).
public final class ReLU: Module, LaneFunction {
    /// f(x) = x where x > 0, else 0 (NaN stays NaN).
    @inline(__always) static func f(_ x: Lane) -> Lane { x.selecting(Lane(), where: x.lanes(lessThanOrEqualTo: Lane())) }
    /// dY·f′ with f′ = 1 where y > 0, else 0.
    @inline(__always) static func fPrime(_ dY: Lane, output y: Lane) -> Lane { dY.selecting(Lane(), where: .!y.lanes(greaterThan: Lane())) }

    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "ReLU" }

    /// `y = max(0, x)`.
    public func forward(_ x: Matrix) -> Matrix {
        applyElementwise(x, into: &output, ReLU.self)
        return output
    }

    /// `dX = dY` where y > 0, else 0.
    public func backward(_ dY: Matrix) -> Matrix {
        applyElementwise(dY, output, into: &dInput, ReLU.fPrime)
        return dInput
    }
}

/// `leakyRelu(x) = x if x > 0 else slope·x`; `f′(x) = 1` where x > 0, else `slope` (from the input, as
/// PyTorch's `leaky_relu_backward`; the output would not tell for a negative slope). Default slope 0.01
/// (PyTorch's `negative_slope`).
public final class LeakyReLU: Module {
    public let slope: Double
    /// f(x) = x where x > 0, else slope·x.
    @inline(__always) func f(_ x: Lane) -> Lane { x.selecting(x * slope, where: .!x.lanes(greaterThan: Lane())) }
    /// dY·f′ with f′ = 1 where x > 0, else slope.
    @inline(__always) func fPrime(_ dY: Lane, input x: Lane) -> Lane { dY.selecting(dY * slope, where: .!x.lanes(greaterThan: Lane())) }

    @exclusivity(unchecked) private var input = Matrix.empty
    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    public init(slope: Double = 0.01) { self.slope = slope }
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "LeakyReLU(slope: \(slope))" }

    /// `y = x` where x > 0, else `slope·x`.
    public func forward(_ x: Matrix) -> Matrix {
        input.copy(from: x)
        applyElementwise(x, into: &output) { self.f($0) }
        return output
    }

    /// `dX = dY` where x > 0, else `slope·dY`.
    public func backward(_ dY: Matrix) -> Matrix {
        applyElementwise(dY, input, into: &dInput) { self.fPrime($0, input: $1) }
        return dInput
    }
}

/// `tanh(x)`; `f′(x) = 1 − tanh(x)² = 1 − y²`, from the output (PyTorch's `tanh_backward`).
public final class Tanh: Module, LaneFunction {
    /// f(x) = tanh(x): `vectorTanh`, within 2 ulp of the C library's tanh.
    @inline(__always) static func f(_ x: Lane) -> Lane { vectorTanh(ActiveKernel.self, x) }
    /// dY·f′ with f′ = 1 − y².
    @inline(__always) static func fPrime(_ dY: Lane, output y: Lane) -> Lane { dY * (1 - y * y) }

    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Tanh" }

    /// `y = tanh(x)`.
    public func forward(_ x: Matrix) -> Matrix {
        applyElementwise(x, into: &output, Tanh.self)
        return output
    }

    /// `dX = dY·(1 − y²)`.
    public func backward(_ dY: Matrix) -> Matrix {
        applyElementwise(dY, output, into: &dInput, Tanh.fPrime)
        return dInput
    }
}

/// `σ(x) = 1 / (1 + e^−x)`; `f′(x) = σ(x)·(1 − σ(x)) = y·(1 − y)`, from the output (PyTorch's
/// `sigmoid_backward`).
public final class Sigmoid: Module, LaneFunction {
    /// f(x) = 1 / (1 + e^−x), with `vectorExp` (within 1 ulp of the C library's exp).
    @inline(__always) static func f(_ x: Lane) -> Lane { 1 / (1 + vectorExp(ActiveKernel.self, -x)) }
    /// dY·f′ with f′ = y·(1 − y).
    @inline(__always) static func fPrime(_ dY: Lane, output y: Lane) -> Lane { dY * (y * (1 - y)) }

    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "Sigmoid" }

    /// `y = 1 / (1 + e^−x)`.
    public func forward(_ x: Matrix) -> Matrix {
        applyElementwise(x, into: &output, Sigmoid.self)
        return output
    }

    /// `dX = dY·y·(1 − y)`.
    public func backward(_ dY: Matrix) -> Matrix {
        applyElementwise(dY, output, into: &dInput, Sigmoid.fPrime)
        return dInput
    }
}

/// GELU, exact (PyTorch's `nn.GELU()`, `approximate='none'`): `f(x) = x·Φ(x)`, Φ the standard normal
/// distribution function, `Φ(x) = ½·(1 + erf(x/√2))`; `f′(x) = Φ(x) + x·φ(x)`, `φ(x) = e^{−x²/2}/√(2π)`,
/// from the input. Computed an element at a time with the C library's `erf` and `exp` (through RealModule),
/// in PyTorch's order of operations (`x·½·(1 + erf(x·√½))`; backward `dY·(cdf + x·pdf)`).
public final class GELU: Module {
    /// √½ (C's `M_SQRT1_2`) and 1/√(2π) written as PyTorch builds it, `M_2_SQRTPI·M_SQRT1_2·½`.
    static let sqrtHalf = 0.70710678118654752440, inverseSqrtTwoPi = 1.12837916709551257390 * 0.70710678118654752440 * 0.5
    /// f(x) = x·½·(1 + erf(x·√½)).
    @inline(__always) static func f(_ x: Double) -> Double { x * 0.5 * (1 + Double.erf(x * sqrtHalf)) }
    /// dY·f′ with f′ = Φ(x) + x·φ(x): `cdf = ½·(1 + erf(x·√½))`, `pdf = e^{−x²/2}/√(2π)`.
    @inline(__always) static func fPrime(_ dY: Double, input x: Double) -> Double {
        let cdf = 0.5 * (1 + Double.erf(x * sqrtHalf))
        let pdf = inverseSqrtTwoPi * Double.exp(x * x * -0.5)
        return dY * (cdf + x * pdf)
    }

    @exclusivity(unchecked) private var input = Matrix.empty
    @exclusivity(unchecked) public private(set) var output = Matrix.empty
    @exclusivity(unchecked) public private(set) var dInput = Matrix.empty
    public init() {}
    public var inputWidth: Int? { nil }
    public func outputWidth(forInputWidth width: Int) -> Int { width }
    public var description: String { "GELU" }

    /// `y = x·Φ(x)`.
    public func forward(_ x: Matrix) -> Matrix {
        input.copy(from: x)
        output.reshape(rows: x.rows, columns: x.columns)
        output.elements.withUnsafeMutableBufferPointer { y in
            for k in y.indices { y[k] = GELU.f(x.elements[k]) }
        }
        return output
    }

    /// `dX = dY·(Φ(x) + x·φ(x))`.
    public func backward(_ dY: Matrix) -> Matrix {
        precondition(dY.shape == input.shape, "GELU: dOutput \(dY.shape), input \(input.shape)")
        dInput.reshape(rows: dY.rows, columns: dY.columns)
        dInput.elements.withUnsafeMutableBufferPointer { dX in
            for k in dX.indices { dX[k] = GELU.fPrime(dY.elements[k], input: input.elements[k]) }
        }
        return dInput
    }
}

// MARK: - Applying a lane function to a matrix

/// `y = F.f(x)` elementwise into `y`, resized to x's shape (ReLU, Tanh, Sigmoid; see `LaneFunction`).
@inline(__always)
func applyElementwise<F: LaneFunction>(_ x: Matrix, into y: inout Matrix, _ function: F.Type) {
    y.reshape(rows: x.rows, columns: x.columns)
    y.elements.withUnsafeMutableBufferPointer { yp in
        x.elements.withUnsafeBufferPointer { xp in
            if let from = xp.baseAddress, let to = yp.baseAddress { mapLanes(xp.count, from, to, function) }
        }
    }
}

/// `y = f(x)` elementwise into `y`, resized to x's shape.
@inline(__always)
func applyElementwise(_ x: Matrix, into y: inout Matrix, _ f: (Lane) -> Lane) {
    y.reshape(rows: x.rows, columns: x.columns)
    y.elements.withUnsafeMutableBufferPointer { yp in
        x.elements.withUnsafeBufferPointer { xp in
            if let from = xp.baseAddress, let to = yp.baseAddress { mapLanes(xp.count, from, to, f) }
        }
    }
}

/// `z = f(a, b)` elementwise into `z`, resized to a's shape; `b` (the cached input or output) must have it too.
@inline(__always)
func applyElementwise(_ a: Matrix, _ b: Matrix, into z: inout Matrix, _ f: (Lane, Lane) -> Lane) {
    precondition(a.shape == b.shape, "backward: dOutput is \(a.shape) after a forward of \(b.shape)")
    z.reshape(rows: a.rows, columns: a.columns)
    z.elements.withUnsafeMutableBufferPointer { zp in
        a.elements.withUnsafeBufferPointer { ap in
            b.elements.withUnsafeBufferPointer { bp in
                if let x = ap.baseAddress, let c = bp.baseAddress, let to = zp.baseAddress { mapLanes(ap.count, x, c, to, f) }
            }
        }
    }
}
