// Elementwise math on SIMD lanes, and the loops that apply a lane function over a buffer. The activations
// (Activations.swift) write their f and f′ with these; `vectorExp` and `vectorTanh` are the only functions
// that are not a line of arithmetic, and KernelTests bounds both against the C library at every variant.

// MARK: - exp, tanh

/// `eˣ` on every lane, within 1 ulp of the C library's `exp` (KernelTests.testExpWithinOneUlpOfTheCLibrary).
///
/// Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, n = round(x/ln2); eʳ by its Taylor polynomial to r¹³
/// (truncation error < 10⁻¹⁷); the result scaled by 2ⁿ in two factors 2^⌊n/2⌋·2^(n−⌊n/2⌋) so that the
/// subnormal range comes out right. x is first clamped to [−746, 710], beyond which eˣ rounds to 0 or ∞;
/// NaN stays NaN.
@_transparent
func vectorExp<V: KernelVariant>(_: V.Type, _ x: V.Lane) -> V.Lane {
    typealias Lane = V.Lane
    var xc = x.selecting(Lane(repeating: 710), where: x.lanes(greaterThan: Lane(repeating: 710)))
    xc = xc.selecting(Lane(repeating: -746), where: x.lanes(lessThan: Lane(repeating: -746)))
    // n = round(x·log₂e), kept in the low bits of `shifted` (1.5·2⁵² + n) and as a double.
    let shifter = Lane(repeating: 0x1.8p52)
    let shifted = multiplyAdd(V.self, xc, Lane(repeating: 1.4426950408889634), shifter)
    let n = shifted - shifter
    // r = x − n·ln2 with ln2 split in a high part exact in n·ln2High (fdlibm's split) and a low part.
    var r = multiplyAdd(V.self, n, Lane(repeating: -6.93147180369123816490e-01), xc)
    r = multiplyAdd(V.self, n, Lane(repeating: -1.90821492927058770002e-10), r)
    var p = Lane(repeating: 1.0 / 6_227_020_800)                           // 1/13!
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 479_001_600))      // 1/12!
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 39_916_800))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 3_628_800))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 362_880))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 40_320))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 5_040))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 720))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 120))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 24))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 1.0 / 6))
    p = multiplyAdd(V.self, p, r, Lane(repeating: 0.5))
    p = multiplyAdd(V.self, p, r * r, r) + 1                               // 1 + r + r²·(1/2 + r/6 + …)
    let bits = unsafeBitCast(shifted, to: V.LaneBits.self) &- unsafeBitCast(shifter, to: V.LaneBits.self)
    let half = bits &>> 1, rest = bits &- half
    let scale1 = unsafeBitCast((half &+ 1023) &<< 52, to: Lane.self)
    let scale2 = unsafeBitCast((rest &+ 1023) &<< 52, to: Lane.self)
    return (p * scale1 * scale2).selecting(x, where: x.lanes(notEqualTo: x))
}

/// `tanh(x)` on every lane, within 2 ulp of the C library's `tanh` (KernelTests.testTanhWithinTwoUlpOfTheCLibrary).
///
/// As Cephes' `tanh` (Moshier): for |x| < 0.625 the rational approximation `x + x·z·P(z)/Q(z)`, z = x²;
/// otherwise `1 − 2/(e^{2|x|} + 1)` with the sign of x. Both branches share one division. tanh(±0) = ±0,
/// tanh(±∞) = ±1, NaN stays NaN.
@_transparent
func vectorTanh<V: KernelVariant>(_: V.Type, _ x: V.Lane) -> V.Lane {
    typealias Lane = V.Lane
    let negative = x.lanes(lessThan: Lane())
    let magnitude = x.selecting(-x, where: negative)
    let small = magnitude.lanes(lessThan: Lane(repeating: 0.625))
    let e = vectorExp(V.self, magnitude + magnitude)
    let z = x * x
    var pz = multiplyAdd(V.self, Lane(repeating: -9.64399179425052238628e-1), z, Lane(repeating: -9.92877231001918586564e1))
    pz = multiplyAdd(V.self, pz, z, Lane(repeating: -1.61468768441708447952e3))
    var qz = z + Lane(repeating: 1.12811678491632931402e2)
    qz = multiplyAdd(V.self, qz, z, Lane(repeating: 2.23548839060100448583e3))
    qz = multiplyAdd(V.self, qz, z, Lane(repeating: 4.84406305325125486048e3))
    let q = Lane(repeating: 2).selecting(x * z * pz, where: small) / (e + 1).selecting(qz, where: small)
    var large = 1 - q
    large = large.selecting(-large, where: negative)
    let result = large.selecting(x + q, where: small)
    return result.selecting(x, where: x.lanes(equalTo: Lane()))
}

// MARK: - Loops over buffers

/// `y[k] = f(x[k])` for k in 0..<count, a lane at a time; the last partial lane is padded with zeros, so every
/// element goes through the same vector code. `x` and `y` may be the same buffer.
@inline(__always)
func mapLanes<L: SIMD>(_ count: Int, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>,
                       _ f: (L) -> L) where L.Scalar == Double {
    let width = L.scalarCount
    var k = 0
    while k &+ width <= count {
        storeLane(f(loadLane(x + k)), y + k)
        k &+= width
    }
    if k < count { storeLane(f(loadLane(x + k, count: count &- k)), y + k, count: count &- k) }
}

/// A lane function as a type (ReLU, Tanh, Sigmoid conform with their `f`), so that `mapLanes(count, x, y,
/// Tanh.self)` calls `Tanh.f` directly on every lane and the optimiser inlines it. Handed over as a function
/// value (`Tanh.f`) instead, the lane code of those three stayed out of line and was called through a pointer
/// for every lane (their three forwards were even merged into one function that took it); perf put Tanh's and
/// Sigmoid's forward at 26 % of a seeds batch-1000 training run that way and at 21 % inlined. (LeakyReLU's f,
/// two instructions, inlines as a closure.)
protocol LaneFunction {
    static func f(_ x: Lane) -> Lane
}

/// `y[k] = F.f(x[k])` for k in 0..<count, exactly as the `mapLanes` above with `F.f` for `f`.
@inline(__always)
func mapLanes<F: LaneFunction>(_ count: Int, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>,
                               _: F.Type) {
    let width = Lane.scalarCount
    var k = 0
    while k &+ width <= count {
        storeLane(F.f(loadLane(x + k)), y + k)
        k &+= width
    }
    if k < count { storeLane(F.f(loadLane(x + k, count: count &- k)), y + k, count: count &- k) }
}

/// `y[k] = f(a[k], b[k])` for k in 0..<count, as `mapLanes`. `y` may be `a` or `b`.
@inline(__always)
func mapLanes<L: SIMD>(_ count: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                       _ y: UnsafeMutablePointer<Double>, _ f: (L, L) -> L) where L.Scalar == Double {
    let width = L.scalarCount
    var k = 0
    while k &+ width <= count {
        storeLane(f(loadLane(a + k), loadLane(b + k)), y + k)
        k &+= width
    }
    if k < count {
        storeLane(f(loadLane(a + k, count: count &- k), loadLane(b + k, count: count &- k)), y + k, count: count &- k)
    }
}
