// Elementwise kernels on raw buffers, one SIMD `Lane` at a time (see Kernels.swift for the lane width): the
// activations' forward and backward, and `exp`/`tanh` for whole vectors. The modules in Activations.swift and
// the training step both call these, so both compute the same values.

// MARK: - exp, tanh and sigmoid on a vector

/// `eˣ` on every lane, within 1 ulp of the C library's `exp` (checked in KernelTests).
///
/// Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, n = round(x/ln2); eʳ by its Taylor polynomial to r¹³
/// (truncation error < 10⁻¹⁷); the result scaled by 2ⁿ in two factors 2^⌊n/2⌋·2^(n−⌊n/2⌋) so that the
/// subnormal range comes out right. x is first clamped to [−746, 710], beyond which eˣ rounds to 0 or ∞;
/// NaN stays NaN.
@_transparent
func vectorExp(_ x: Lane) -> Lane {
    var xc = x.replacing(with: 710, where: x .> 710)
    xc.replace(with: -746, where: x .< -746)
    // n = round(x·log₂e), kept in the low bits of `shifted` (1.5·2⁵² + n) and as a double.
    let shifter = Lane(repeating: 0x1.8p52)
    let shifted = multiplyAdd(xc, Lane(repeating: 1.4426950408889634), shifter)
    let n = shifted - shifter
    // r = x − n·ln2 with ln2 split in a high part exact in n·ln2High (fdlibm's split) and a low part.
    var r = multiplyAdd(n, Lane(repeating: -6.93147180369123816490e-01), xc)
    r = multiplyAdd(n, Lane(repeating: -1.90821492927058770002e-10), r)
    var p = Lane(repeating: 1.0 / 6_227_020_800)                   // 1/13!
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 479_001_600))      // 1/12!
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 39_916_800))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 3_628_800))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 362_880))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 40_320))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 5_040))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 720))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 120))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 24))
    p = multiplyAdd(p, r, Lane(repeating: 1.0 / 6))
    p = multiplyAdd(p, r, Lane(repeating: 0.5))
    p = multiplyAdd(p, r * r, r) + 1                               // 1 + r + r²·(1/2 + r/6 + …)
    let bits = unsafeBitCast(shifted, to: LaneBits.self) &- unsafeBitCast(shifter, to: LaneBits.self)
    let half = bits &>> 1, rest = bits &- half
    let scale1 = unsafeBitCast((half &+ 1023) &<< 52, to: Lane.self)
    let scale2 = unsafeBitCast((rest &+ 1023) &<< 52, to: Lane.self)
    return (p * scale1 * scale2).replacing(with: x, where: x .!= x)
}

/// `tanh(x)` on every lane, within 2 ulp of the C library's `tanh` (checked in KernelTests).
///
/// As Cephes' `tanh` (Moshier): for |x| < 0.625 the rational approximation `x + x·z·P(z)/Q(z)`, z = x²;
/// otherwise `1 − 2/(e^{2|x|} + 1)` with the sign of x. Both branches share one division. tanh(±0) = ±0,
/// tanh(±∞) = ±1, NaN stays NaN.
@_transparent
func vectorTanh(_ x: Lane) -> Lane {
    let negative = x .< 0
    let magnitude = x.replacing(with: -x, where: negative)
    let small = magnitude .< 0.625
    let e = vectorExp(magnitude + magnitude)
    let z = x * x
    var pz = multiplyAdd(Lane(repeating: -9.64399179425052238628e-1), z, Lane(repeating: -9.92877231001918586564e1))
    pz = multiplyAdd(pz, z, Lane(repeating: -1.61468768441708447952e3))
    var qz = z + Lane(repeating: 1.12811678491632931402e2)
    qz = multiplyAdd(qz, z, Lane(repeating: 2.23548839060100448583e3))
    qz = multiplyAdd(qz, z, Lane(repeating: 4.84406305325125486048e3))
    let q = Lane(repeating: 2).replacing(with: x * z * pz, where: small) / (e + 1).replacing(with: qz, where: small)
    var large = 1 - q
    large.replace(with: -large, where: negative)
    var result = large.replacing(with: x + q, where: small)
    result.replace(with: x, where: x .== 0)
    return result
}

/// `σ(x) = 1 / (1 + e^−x)` on every lane.
@_transparent
func vectorSigmoid(_ x: Lane) -> Lane {
    1 / (1 + vectorExp(-x))
}

// MARK: - Loops over buffers

/// A function of one lane, applied by `mapLanes`. A type rather than a closure so that the loop is
/// specialised for it and the function inlined (a SIMD8 value passed through a call is split into four
/// 128-bit registers).
protocol LaneFunction {
    func callAsFunction(_ x: Lane) -> Lane
}

/// A function of two lanes, applied by `mapLanes`.
protocol LanePairFunction {
    func callAsFunction(_ a: Lane, _ b: Lane) -> Lane
}

/// `y[k] = f(x[k])` for k in 0..<count, a lane at a time; the last partial lane is padded with zeros, so every
/// element goes through the same vector code. `x` and `y` may be the same buffer.
@inline(__always)
func mapLanes<F: LaneFunction>(_ count: Int, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ f: F) {
    let width = Lane.scalarCount
    var k = 0
    while k &+ width <= count {
        storeLane(f(loadLane(x + k)), y + k)
        k &+= width
    }
    if k < count { storeLane(f(loadLane(x + k, count: count &- k)), y + k, count: count &- k) }
}

/// `y[k] = f(a[k], b[k])` for k in 0..<count, as `mapLanes`. `y` may be `a` or `b`.
@inline(__always)
func mapLanes<F: LanePairFunction>(_ count: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                                   _ y: UnsafeMutablePointer<Double>, _ f: F) {
    let width = Lane.scalarCount
    var k = 0
    while k &+ width <= count {
        storeLane(f(loadLane(a + k), loadLane(b + k)), y + k)
        k &+= width
    }
    if k < count {
        storeLane(f(loadLane(a + k, count: count &- k), loadLane(b + k, count: count &- k)), y + k, count: count &- k)
    }
}

// MARK: - Activations, forward and backward
//
// Forward: `(input) → output`. Backward: `(dOutput, cached) → dInput`, `cached` being the forward input
// (ReLU, LeakyReLU) or output (Tanh, Sigmoid). The derivative at a kink follows PyTorch: relu′(0) = 0.

/// relu(x) = x where x > 0, else 0 (NaN stays NaN).
struct ReLUForward: LaneFunction {
    @inline(__always) func callAsFunction(_ x: Lane) -> Lane { x.replacing(with: 0, where: x .<= 0) }
}

/// dX = dY where x > 0, else 0.
struct ReLUBackward: LanePairFunction {
    @inline(__always) func callAsFunction(_ d: Lane, _ x: Lane) -> Lane { d.replacing(with: 0, where: .!(x .> 0)) }
}

/// leakyRelu(x) = x where x > 0, else slope·x.
struct LeakyReLUForward: LaneFunction {
    let slope: Double
    @inline(__always) func callAsFunction(_ x: Lane) -> Lane { x.replacing(with: x * slope, where: .!(x .> 0)) }
}

/// dX = dY where x > 0, else slope·dY.
struct LeakyReLUBackward: LanePairFunction {
    let slope: Double
    @inline(__always) func callAsFunction(_ d: Lane, _ x: Lane) -> Lane { d.replacing(with: d * slope, where: .!(x .> 0)) }
}

/// tanh(x).
struct TanhForward: LaneFunction {
    @inline(__always) func callAsFunction(_ x: Lane) -> Lane { vectorTanh(x) }
}

/// dX = dY·(1 − y²), y = tanh(x).
struct TanhBackward: LanePairFunction {
    @inline(__always) func callAsFunction(_ d: Lane, _ y: Lane) -> Lane { d * (1 - y * y) }
}

/// σ(x) = 1 / (1 + e^−x).
struct SigmoidForward: LaneFunction {
    @inline(__always) func callAsFunction(_ x: Lane) -> Lane { vectorSigmoid(x) }
}

/// dX = dY·y·(1 − y), y = σ(x).
struct SigmoidBackward: LanePairFunction {
    @inline(__always) func callAsFunction(_ d: Lane, _ y: Lane) -> Lane { d * (y * (1 - y)) }
}

enum ActivationKernel {
    case relu
    case leakyReLU(slope: Double)
    case tanh
    case sigmoid

    /// Whether `backward` reads the forward's input (else its output).
    var backwardUsesInput: Bool {
        switch self {
        case .relu, .leakyReLU: return true
        case .tanh, .sigmoid: return false
        }
    }

    /// `y = f(x)` on `count` elements.
    func forward(_ count: Int, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) {
        switch self {
        case .relu: mapLanes(count, x, y, ReLUForward())
        case let .leakyReLU(slope): mapLanes(count, x, y, LeakyReLUForward(slope: slope))
        case .tanh: mapLanes(count, x, y, TanhForward())
        case .sigmoid: mapLanes(count, x, y, SigmoidForward())
        }
    }

    /// `dX = dY ⊙ f′` on `count` elements; `cached` is the input or output as `backwardUsesInput` says.
    func backward(_ count: Int, _ dY: UnsafePointer<Double>, _ cached: UnsafePointer<Double>,
                  _ dX: UnsafeMutablePointer<Double>) {
        switch self {
        case .relu: mapLanes(count, dY, cached, dX, ReLUBackward())
        case let .leakyReLU(slope): mapLanes(count, dY, cached, dX, LeakyReLUBackward(slope: slope))
        case .tanh: mapLanes(count, dY, cached, dX, TanhBackward())
        case .sigmoid: mapLanes(count, dY, cached, dX, SigmoidBackward())
        }
    }
}
