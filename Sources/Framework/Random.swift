import RealModule

/// The project's one random generator: xoshiro256** 1.0 (Blackman & Vigna, 2018), seeded through
/// SplitMix64, so the same seed gives the same numbers on every machine and every Swift version.
///
/// It is passed `inout` wherever randomness is needed; there is no global random state. Independent
/// streams for one experiment seed (data, initialisation, shuffling) come from `init(seed:stream:)`.
///
/// Draws:
/// - `next()`: 64 uniform bits.
/// - `uniform()`: a Double in [0, 1) with 53 random bits, `Double(next() >> 11) · 2⁻⁵³`.
/// - `uniform(_ a, _ b)`: `a + (b − a) · uniform()`, in [a, b).
/// - `normal(mean:standardDeviation:)`: Box–Muller on two `uniform()` draws (the first mapped to (0, 1]).
/// - `index(below:)`: an integer in [0, n) without modulo bias (Lemire's multiply-and-reject).
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// Seeds the four state words with four successive SplitMix64 outputs of `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// Stream `stream` of `seed`: seeded with `seed ^ (stream · 0xD1B54A32D192ED03)`, so streams 0, 1, 2, …
    /// of one seed do not overlap in practice. Stream 0 is `init(seed:)`.
    public init(seed: UInt64, stream: UInt64) {
        self.init(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform Double in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform Double in [a, b).
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }

    /// A normal draw by Box–Muller: `mean + σ·√(−2 ln u₁)·cos(2π u₂)`, u₁ in (0, 1].
    public mutating func normal(mean: Double = 0, standardDeviation: Double = 1) -> Double {
        let u1 = 1 - uniform()
        let u2 = uniform()
        return mean + standardDeviation * (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// An integer uniform in [0, n), n > 0 (Lemire 2019, unbiased).
    public mutating func index(below n: Int) -> Int {
        precondition(n > 0, "index(below:): n must be positive, got \(n)")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// A Fisher–Yates permutation of 0..<count (from the last position down, swapping with `index(below: i + 1)`).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        var i = count - 1
        while i > 0 {
            order.swapAt(i, index(below: i + 1))
            i -= 1
        }
        return order
    }
}
