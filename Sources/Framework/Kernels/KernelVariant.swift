// The SIMD vector and register tile the kernels compute with, as a type: `KernelVariant`.
//
// Three variants live in every build; a define passed with `-Xswiftc -D…` picks the one the Matrix API and
// the modules run (`ActiveKernel`; the Makefile passes the right define with `-target-cpu native` for
// `make run` and `make bench`):
//
//     MINIDL_AVX512   AVX512Kernel    SIMD8<Double>, 8 × 24 tiles, fused multiply-add
//     MINIDL_AVX2     AVX2Kernel      SIMD4<Double>, 4 × 12 tiles, fused multiply-add
//     (none)          PortableKernel  SIMD2<Double>, 4 × 8 tiles, a multiply then an add: baseline x86-64
//
// The variants differ only in shapes and in whether a multiply-add is fused: the same Swift code runs for
// all three, specialised for each. The tests run every variant in one build (KernelTests), so the code that
// `make run` ships is the code the tests exercise, whatever CPU the tests run on. The define does not make the
// compiler emit the instructions: without a matching `-target-cpu`, a fused multiply-add becomes a call to the
// C library's `fma()` and the AVX variants are very slow (but still correct), which is why the portable build
// multiplies and adds separately.

/// A shape of the kernels: the SIMD vector, the register tile of the product's micro-kernel, and whether a
/// multiply-add rounds once (fused) or twice.
protocol KernelVariant {
    /// The vector the kernels compute with.
    associatedtype Lane: LaneVector
    /// Integers of the same width, for bit manipulation (`vectorExp`'s scaling by 2ⁿ).
    associatedtype LaneBits: SIMD where LaneBits.Scalar == Int64
    /// Rows of C per micro-kernel tile (`mr`).
    associatedtype TileRows: StaticCount
    /// Vectors of C per tile row (`nr = TileVectors · Lane.scalarCount`).
    associatedtype TileVectors: StaticCount
    /// Whether `multiplyAdd` is fused (one rounding).
    static var fusedMultiplyAdd: Bool { get }
    /// The define that selects it: "MINIDL_AVX512", "MINIDL_AVX2" or "portable".
    static var name: String { get }
    /// Transposes the `w × w` block in `rows[0..<w]`, w the lane width: row i becomes column i.
    static func transposeSquare(_ rows: inout InlineArray<8, Lane>)
}

enum AVX512Kernel: KernelVariant {
    typealias Lane = SIMD8<Double>
    typealias LaneBits = SIMD8<Int64>
    typealias TileRows = Count8
    typealias TileVectors = Count3
    static var fusedMultiplyAdd: Bool { true }
    static var name: String { "MINIDL_AVX512" }

    /// Three rounds of "unzip": row i of a round takes the even lanes of rows 2i and 2i+1, row 4 + i their odd lanes.
    @inline(__always)
    static func transposeSquare(_ rows: inout InlineArray<8, Lane>) {
        for _ in 0..<3 {
            let r = rows
            for i in 0..<4 {
                rows[i] = Lane(lowHalf: r[2 &* i].evenHalf, highHalf: r[2 &* i &+ 1].evenHalf)
                rows[4 &+ i] = Lane(lowHalf: r[2 &* i].oddHalf, highHalf: r[2 &* i &+ 1].oddHalf)
            }
        }
    }
}

enum AVX2Kernel: KernelVariant {
    typealias Lane = SIMD4<Double>
    typealias LaneBits = SIMD4<Int64>
    typealias TileRows = Count4
    typealias TileVectors = Count3
    static var fusedMultiplyAdd: Bool { true }
    static var name: String { "MINIDL_AVX2" }

    /// Two rounds of "unzip", as `AVX512Kernel.transposeSquare`.
    @inline(__always)
    static func transposeSquare(_ rows: inout InlineArray<8, Lane>) {
        for _ in 0..<2 {
            let r = rows
            for i in 0..<2 {
                rows[i] = Lane(lowHalf: r[2 &* i].evenHalf, highHalf: r[2 &* i &+ 1].evenHalf)
                rows[2 &+ i] = Lane(lowHalf: r[2 &* i].oddHalf, highHalf: r[2 &* i &+ 1].oddHalf)
            }
        }
    }
}

enum PortableKernel: KernelVariant {
    typealias Lane = SIMD2<Double>
    typealias LaneBits = SIMD2<Int64>
    typealias TileRows = Count4
    typealias TileVectors = Count4
    static var fusedMultiplyAdd: Bool { false }
    static var name: String { "portable" }

    @inline(__always)
    static func transposeSquare(_ rows: inout InlineArray<8, Lane>) {
        let r0 = rows[0], r1 = rows[1]
        rows[0] = Lane(r0[0], r1[0])
        rows[1] = Lane(r0[1], r1[1])
    }
}

/// The SIMD vectors of the variants, with the comparisons and the selection the elementwise functions use.
///
/// Each requirement is the concrete type's own operator (one LLVM vector compare or blend). Code written for a
/// generic `SIMD` would call the protocol's generic operators instead, which compare lane by lane with a
/// branch each, and specialisation does not change which overload was chosen; so generic code calls these.
protocol LaneVector: SIMD where Scalar == Double {
    /// Lanes where `self < other`.
    func lanes(lessThan other: Self) -> SIMDMask<MaskStorage>
    /// Lanes where `self ≤ other`.
    func lanes(lessThanOrEqualTo other: Self) -> SIMDMask<MaskStorage>
    /// Lanes where `self > other`.
    func lanes(greaterThan other: Self) -> SIMDMask<MaskStorage>
    /// Lanes where `self == other` (never for NaN).
    func lanes(equalTo other: Self) -> SIMDMask<MaskStorage>
    /// Lanes where `self ≠ other` (always for NaN).
    func lanes(notEqualTo other: Self) -> SIMDMask<MaskStorage>
    /// `self` with the lanes of `mask` taken from `other` (`replacing(with:where:)`).
    func selecting(_ other: Self, where mask: SIMDMask<MaskStorage>) -> Self
}

extension SIMD2: LaneVector where Scalar == Double {
    @_transparent func lanes(lessThan other: Self) -> SIMDMask<MaskStorage> { self .< other }
    @_transparent func lanes(lessThanOrEqualTo other: Self) -> SIMDMask<MaskStorage> { self .<= other }
    @_transparent func lanes(greaterThan other: Self) -> SIMDMask<MaskStorage> { self .> other }
    @_transparent func lanes(equalTo other: Self) -> SIMDMask<MaskStorage> { self .== other }
    @_transparent func lanes(notEqualTo other: Self) -> SIMDMask<MaskStorage> { self .!= other }
    @_transparent func selecting(_ other: Self, where mask: SIMDMask<MaskStorage>) -> Self { replacing(with: other, where: mask) }
}

extension SIMD4: LaneVector where Scalar == Double {
    @_transparent func lanes(lessThan other: Self) -> SIMDMask<MaskStorage> { self .< other }
    @_transparent func lanes(lessThanOrEqualTo other: Self) -> SIMDMask<MaskStorage> { self .<= other }
    @_transparent func lanes(greaterThan other: Self) -> SIMDMask<MaskStorage> { self .> other }
    @_transparent func lanes(equalTo other: Self) -> SIMDMask<MaskStorage> { self .== other }
    @_transparent func lanes(notEqualTo other: Self) -> SIMDMask<MaskStorage> { self .!= other }
    @_transparent func selecting(_ other: Self, where mask: SIMDMask<MaskStorage>) -> Self { replacing(with: other, where: mask) }
}

extension SIMD8: LaneVector where Scalar == Double {
    @_transparent func lanes(lessThan other: Self) -> SIMDMask<MaskStorage> { self .< other }
    @_transparent func lanes(lessThanOrEqualTo other: Self) -> SIMDMask<MaskStorage> { self .<= other }
    @_transparent func lanes(greaterThan other: Self) -> SIMDMask<MaskStorage> { self .> other }
    @_transparent func lanes(equalTo other: Self) -> SIMDMask<MaskStorage> { self .== other }
    @_transparent func lanes(notEqualTo other: Self) -> SIMDMask<MaskStorage> { self .!= other }
    @_transparent func selecting(_ other: Self, where mask: SIMDMask<MaskStorage>) -> Self { replacing(with: other, where: mask) }
}

/// Every variant, for tests that run each one.
let allKernelVariants: [any KernelVariant.Type] = [PortableKernel.self, AVX2Kernel.self, AVX512Kernel.self]

#if MINIDL_AVX512
/// The variant this build's Matrix API and modules run (chosen by the define, see the file comment).
typealias ActiveKernel = AVX512Kernel
#elseif MINIDL_AVX2
typealias ActiveKernel = AVX2Kernel
#else
typealias ActiveKernel = PortableKernel
#endif

/// The vector of the active variant.
typealias Lane = ActiveKernel.Lane

/// What the kernels were compiled for, for reports: SIMD width, tile shape and multiply-add.
public enum KernelConfiguration {
    /// Doubles per SIMD vector.
    public static var laneWidth: Int { ActiveKernel.Lane.scalarCount }
    /// Rows of C per micro-kernel tile (`mr`).
    public static var tileRows: Int { ActiveKernel.TileRows.value }
    /// Columns of C per micro-kernel tile (`nr`).
    public static var tileColumns: Int { ActiveKernel.TileVectors.value * ActiveKernel.Lane.scalarCount }
    /// Whether multiply-adds are fused (one rounding) or a multiply then an add.
    public static var fusedMultiplyAdd: Bool { ActiveKernel.fusedMultiplyAdd }
    /// The define the module was compiled with: `"MINIDL_AVX512"`, `"MINIDL_AVX2"` or `"portable"`.
    public static var variant: String { ActiveKernel.name }
    /// One line: `"MINIDL_AVX512: SIMD8<Double>, 8×24 tiles, fused multiply-add"`.
    public static var description: String {
        "\(variant): SIMD\(laneWidth)<Double>, \(tileRows)×\(tileColumns) tiles, "
            + (fusedMultiplyAdd ? "fused multiply-add" : "separate multiply and add")
    }
}

/// `c + a·b`, fused (one rounding) when the variant says so, else a multiply and an add.
@_transparent
func multiplyAdd<V: KernelVariant>(_: V.Type, _ a: V.Lane, _ b: V.Lane, _ c: V.Lane) -> V.Lane {
    V.fusedMultiplyAdd ? c.addingProduct(a, b) : a * b + c
}

// MARK: - Compile-time counts

/// A compile-time count, so that the micro-kernel's loops over rows and vectors unroll completely and its
/// accumulators live in registers.
protocol StaticCount { static var value: Int { get } }
enum Count1: StaticCount { static var value: Int { 1 } }
enum Count2: StaticCount { static var value: Int { 2 } }
enum Count3: StaticCount { static var value: Int { 3 } }
enum Count4: StaticCount { static var value: Int { 4 } }
enum Count5: StaticCount { static var value: Int { 5 } }
enum Count6: StaticCount { static var value: Int { 6 } }
enum Count7: StaticCount { static var value: Int { 7 } }
enum Count8: StaticCount { static var value: Int { 8 } }

// MARK: - Loads and stores

@_transparent
func loadLane<L: SIMD>(_ p: UnsafePointer<Double>, as _: L.Type = L.self) -> L where L.Scalar == Double {
    UnsafeRawPointer(p).loadUnaligned(as: L.self)
}

@_transparent
func storeLane<L: SIMD>(_ v: L, _ p: UnsafeMutablePointer<Double>) where L.Scalar == Double {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: L.self)
}

/// The first `count` (≤ lane width) elements at `p`, zeros after.
@inline(__always)
func loadLane<L: SIMD>(_ p: UnsafePointer<Double>, count: Int, as _: L.Type = L.self) -> L where L.Scalar == Double {
    var v = L()
    for i in 0..<count { v[i] = p[i] }
    return v
}

/// Stores the first `count` (≤ lane width) lanes of `v` at `p`.
@inline(__always)
func storeLane<L: SIMD>(_ v: L, _ p: UnsafeMutablePointer<Double>, count: Int) where L.Scalar == Double {
    for i in 0..<count { p[i] = v[i] }
}
