// The layer kinds: what a user writes (`ReferenceLayer`) and the modules that run it, each with its
// forward and backward next to each other. Shapes: activations are `(batch, features)`.
import CGSL
import Foundation

/// One layer of a reference network, with its parameter values for `.linear`.
///
/// | layer                 | forward `y = f(x)`                 | backward `dx` from `dy`                    |
/// |-----------------------|------------------------------------|--------------------------------------------|
/// | `linear(weight:bias:)`| `y = x·Wᵀ + b`                     | `dx = dy·W`, `dW += dyᵀ·x`, `db += 1ᵀ·dy`  |
/// | `relu`                | `y = x > 0 ? x : 0`                | `dx = x > 0 ? dy : 0` (0 at x = 0)         |
/// | `tanh`                | `y = tanh(x)`                      | `dx = dy·(1 − y·y)`                        |
/// | `sigmoid`             | `y = 1 / (1 + e^−x)`               | `dx = dy·(1 − y)·y`                        |
/// | `leakyRelu(slope:)`   | `y = x > 0 ? x : slope·x`          | `dx = x > 0 ? dy : slope·dy`               |
/// | `gelu`                | `y = x·Φ(x) = x·½·(1 + erf(x/√2))` | `dx = dy·(Φ(x) + x·φ(x))`                  |
///
/// `weight` is `(out, in)` as rows (PyTorch's `nn.Linear.weight`), `bias` has `out` values; a linear
/// layer maps `(batch, in) → (batch, out)`. PyTorch's `nn.LeakyReLU` default slope is 0.01; here the
/// slope is always given explicitly. `gelu` is PyTorch's exact `nn.GELU()` (`approximate='none'`), Φ the
/// standard normal distribution function and φ its density.
public enum ReferenceLayer: Equatable, Sendable {
    case linear(weight: [[Double]], bias: [Double])
    case relu
    case tanh
    case sigmoid
    case leakyRelu(slope: Double)
    case gelu
}

extension ReferenceLayer: CustomStringConvertible {
    /// E.g. `Linear(2 → 25)`, `ReLU`, `LeakyReLU(slope: 0.01)`.
    public var description: String {
        switch self {
        case let .linear(weight, bias): return "Linear(\(weight.first?.count ?? 0) → \(bias.count))"
        case .relu: return "ReLU"
        case .tanh: return "Tanh"
        case .sigmoid: return "Sigmoid"
        case let .leakyRelu(slope): return "LeakyReLU(slope: \(slope))"
        case .gelu: return "GELU"
        }
    }
}

/// A runnable layer: `forward` caches what `backward` needs; `backward` returns `dInput` and
/// accumulates (`+=`) parameter gradients.
protocol Module: AnyObject {
    /// `(batch, in) → (batch, out)`.
    func forward(_ input: Matrix) throws -> Matrix
    /// `dOutput (batch, out) → dInput (batch, in)`; uses the cache of the last `forward`.
    func backward(_ dOutput: Matrix) throws -> Matrix
    /// The layer with its current parameter values.
    var layer: ReferenceLayer { get }
}

// MARK: - Linear

/// `y = x·Wᵀ + b` (PyTorch `nn.Linear`): `x (batch, in)`, `W (out, in)`, `b (1, out)`, `y (batch, out)`.
final class Linear: Module {
    let weight: Matrix   // (out, in)
    let bias: Matrix     // (1, out)
    let dWeight: Matrix  // (out, in), accumulated by backward, zeroed by zeroGradients
    let dBias: Matrix    // (1, out), accumulated by backward, zeroed by zeroGradients
    private var input: Matrix?  // (batch, in), cached by forward for dW

    var inFeatures: Int { weight.columns }
    var outFeatures: Int { weight.rows }
    var name: String { "Linear(\(inFeatures) → \(outFeatures))" }

    /// `weight` is `(out, in)` as rows; `bias` has `out` values (checked by `ReferenceNetwork`).
    init(weight: [[Double]], bias: [Double], _ location: String) throws {
        self.weight = try Matrix(weight, name: "\(location).weight")
        self.bias = try Matrix([bias], name: "\(location).bias")
        dWeight = try Matrix(rows: self.weight.rows, columns: self.weight.columns, "\(location).dWeight")
        dBias = try Matrix(rows: 1, columns: self.bias.columns, "\(location).dBias")
    }

    var layer: ReferenceLayer { .linear(weight: weight.array, bias: bias.array[0]) }

    // forward:  y = b (broadcast over rows), then y = 1·x·Wᵀ + 1·y        (one dgemm, NoTrans × Trans)
    func forward(_ x: Matrix) throws -> Matrix {
        let y = try Matrix(rows: x.rows, columns: outFeatures, "\(name).forward")
        for r in 0..<y.rows { (y.data + r * y.columns).update(from: bias.data, count: y.columns) }
        try BLAS.gemm(x, transposeA: false, weight, transposeB: true, alpha: 1, beta: 1, into: y,
                      "\(name).forward: y = x·Wᵀ + b")
        input = x
        return y
    }

    // backward: dW += dyᵀ·x   (Trans × NoTrans, beta 1)     differentiates y = x·Wᵀ in W
    //           db += 1ᵀ·dy   (ones (1, batch) × dy, beta 1)  differentiates the broadcast + b
    //           dx  = dy·W    (NoTrans × NoTrans, beta 0)     differentiates y = x·Wᵀ in x
    func backward(_ dy: Matrix) throws -> Matrix {
        guard let x = input else { throw ReferenceError("backward called before forward", at: "\(name).backward") }
        try BLAS.gemm(dy, transposeA: true, x, transposeB: false, alpha: 1, beta: 1, into: dWeight,
                      "\(name).backward: dW += dyᵀ·x")
        let ones = try Matrix(rows: 1, columns: dy.rows, "\(name).backward: ones")
        for i in 0..<ones.count { ones.data[i] = 1 }
        try BLAS.gemm(ones, transposeA: false, dy, transposeB: false, alpha: 1, beta: 1, into: dBias,
                      "\(name).backward: db += 1ᵀ·dy")
        let dx = try Matrix(rows: dy.rows, columns: inFeatures, "\(name).backward")
        try BLAS.gemm(dy, transposeA: false, weight, transposeB: false, alpha: 1, beta: 0, into: dx,
                      "\(name).backward: dx = dy·W")
        return dx
    }

    /// `dW = 0`, `db = 0` (gradients accumulate until zeroed, as in PyTorch before `zero_grad()`).
    func zeroGradients() {
        gsl_matrix_set_zero(dWeight.gsl)
        gsl_matrix_set_zero(dBias.gsl)
    }
}

// MARK: - Activations

/// An elementwise activation, `(batch, n) → (batch, n)`: any `ReferenceLayer` but `.linear`. The cache is the
/// input `x` for ReLU, LeakyReLU and GELU (their gradient depends on `x`) and the output `y` for Tanh and
/// Sigmoid (their gradient is written in `y`, as PyTorch's `tanh_backward` / `sigmoid_backward` do).
final class Activation: Module {
    let layer: ReferenceLayer
    private var cache: Matrix?

    init(_ layer: ReferenceLayer) {
        precondition(layer.isActivation, "Activation: \(layer) is not an activation")
        self.layer = layer
    }

    func forward(_ x: Matrix) throws -> Matrix {
        let y = try Matrix(rows: x.rows, columns: x.columns, "\(layer).forward")
        let (xs, ys, n) = (x.data, y.data, x.count)
        switch layer {
        case .relu:                   // y = x > 0 ? x : 0  (NaN stays NaN, as torch.relu)
            for i in 0..<n { ys[i] = xs[i] <= 0 ? 0 : xs[i] }
            cache = x
        case .tanh:                   // y = tanh(x)
            for i in 0..<n { ys[i] = Foundation.tanh(xs[i]) }
            cache = y
        case .sigmoid:                // y = 1 / (1 + e^−x)
            for i in 0..<n { ys[i] = 1 / (1 + exp(-xs[i])) }
            cache = y
        case let .leakyRelu(slope):   // y = x > 0 ? x : slope·x
            for i in 0..<n { ys[i] = xs[i] > 0 ? xs[i] : xs[i] * slope }
            cache = x
        case .gelu:                   // y = x·½·(1 + erf(x·√½)), ATen's GeluKernel (exact)
            for i in 0..<n { ys[i] = xs[i] * 0.5 * (1 + erf(xs[i] * sqrtHalf)) }
            cache = x
        case .linear:
            preconditionFailure("Activation: linear")
        }
        return y
    }

    func backward(_ dy: Matrix) throws -> Matrix {
        guard let saved = cache else { throw ReferenceError("backward called before forward", at: "\(layer).backward") }
        guard dy.rows == saved.rows, dy.columns == saved.columns else {
            throw ReferenceError("dOutput is \(dy.shape) but the last forward produced \(saved.shape)",
                                 at: "\(layer).backward")
        }
        let dx = try Matrix(rows: dy.rows, columns: dy.columns, "\(layer).backward")
        let (c, g, d, n) = (saved.data, dy.data, dx.data, dy.count)
        switch layer {
        case .relu:                   // dx = x > 0 ? dy : 0          (d/dx of x > 0 ? x : 0; 0 at x = 0)
            for i in 0..<n { d[i] = c[i] > 0 ? g[i] : 0 }
        case .tanh:                   // dx = dy·(1 − y·y)            (c holds y = tanh x)
            for i in 0..<n { d[i] = g[i] * (1 - c[i] * c[i]) }
        case .sigmoid:                // dx = dy·(1 − y)·y            (c holds y = σ(x))
            for i in 0..<n { d[i] = g[i] * (1 - c[i]) * c[i] }
        case let .leakyRelu(slope):   // dx = x > 0 ? dy : slope·dy   (c holds x)
            for i in 0..<n { d[i] = c[i] > 0 ? g[i] : g[i] * slope }
        case .gelu:                   // dx = dy·(Φ(x) + x·φ(x)), Φ(x) = ½(1 + erf(x/√2)), φ(x) = e^(−x²/2)/√(2π)
            let inverseSqrtTwoPi = M_2_SQRTPI * sqrtHalf * 0.5
            for i in 0..<n {
                let cdf = 0.5 * (1 + erf(c[i] * sqrtHalf))
                let pdf = inverseSqrtTwoPi * exp(c[i] * c[i] * -0.5)
                d[i] = g[i] * (cdf + c[i] * pdf)
            }
        case .linear:
            preconditionFailure("Activation: linear")
        }
        return dx
    }
}

/// √½, C's `M_SQRT1_2` (ATen's `kAlpha` in its GELU kernels).
private let sqrtHalf = 0.70710678118654752440

extension ReferenceLayer {
    /// Whether this is an elementwise activation (everything but `.linear`).
    var isActivation: Bool {
        if case .linear = self { return false }
        return true
    }
}
