import Framework

/// This CPU's double-precision peak on one core, measured: independent chains of vector multiply-adds
/// `a_j ← a_j · m + c` on the active kernel's lane width (SIMD8<Double> for MINIDL_AVX512), all in registers,
/// no loads or stores in the loop, at 8, 12 and 16 chains; the peak is the best rate of any of them.
///
/// Why several chain counts: the loop reaches the units' throughput only when there are at least as many chains
/// as the multiply-add latency (4 cycles on current x86 cores) times the multiply-adds issued per cycle (2), so
/// 8 or more; and only when the chains and the two constants fit in the vector registers (16 with AVX2, 32 with
/// AVX-512): 16 chains of SIMD4 on AVX2 spill to the stack and ran at 26 GFLOP/s where 12 ran at 47 on the
/// same core. Spilling or too few chains can only make a count slower, so the best count is the bound.
/// GFLOP/s = 2 × lanes × vector multiply-adds / s, best of the repetitions (the least disturbed by other work),
/// per second of the thread's CPU time (what the fractions of peak use: other processes on a shared machine
/// dilute wall time, not the rate while the thread runs) and per wall second.
/// A fused multiply-add when the kernel fuses, else a multiply and an add (as the portable kernel computes).
struct PeakResult {
    var laneWidth: Int
    var fused: Bool
    /// The chain counts tried, and the one whose rate is the peak.
    var chainCounts: [Int]
    var chains: Int
    /// GFLOP/s of each repetition at `chains`, per wall second and per CPU second.
    var rates: [Double]
    var cpuRates: [Double]
    /// The best GFLOP/s per CPU-second of every count, in `chainCounts` order.
    var bestCPUByCount: [Double]
    /// The chains' final sum (keeps the loop from being optimised away; ≈ chains × lanes).
    var checksum: Double

    var best: Double { rates.max() ?? .nan }
    var bestCPU: Double { cpuRates.max() ?? .nan }

    /// "double-precision peak of one core: 47.1 GFLOP/s per CPU-second (47.0 per wall second); …".
    var line: String {
        "double-precision peak of one core: \(fixed(bestCPU, 1)) GFLOP/s per CPU-second (\(fixed(best, 1)) per wall second); \(method)"
    }

    var method: String {
        let tried = zip(chainCounts, bestCPUByCount).map { "\($0) chains \(fixed($1, 1))" }.joined(separator: ", ")
        return "independent chains of \(fused ? "fused multiply-adds" : "multiplies then adds") on SIMD\(laneWidth)<Double> "
            + "in registers, best of \(tried); GFLOP/s = 2 × \(laneWidth) × vector multiply-adds per CPU-second of the thread, "
            + "best of \(rates.count) repetitions"
    }
}

func measurePeak(repetitions: Int, seconds: Double) -> PeakResult {
    let width = KernelConfiguration.laneWidth, fused = KernelConfiguration.fusedMultiplyAdd
    let counts = [8, 12, 16]
    func run(_ chains: Int, _ iterations: Int) -> Double {
        switch (width, fused, chains) {
        case (8, true, 8): return fmaChains8x8(iterations)
        case (8, true, 12): return fmaChains8x12(iterations)
        case (8, true, _): return fmaChains8x16(iterations)
        case (4, true, 8): return fmaChains4x8(iterations)
        case (4, true, 12): return fmaChains4x12(iterations)
        case (4, true, _): return fmaChains4x16(iterations)
        case (8, false, 8): return mulAddChains8x8(iterations)
        case (8, false, 12): return mulAddChains8x12(iterations)
        case (8, false, _): return mulAddChains8x16(iterations)
        case (4, false, 8): return mulAddChains4x8(iterations)
        case (4, false, 12): return mulAddChains4x12(iterations)
        case (4, false, _): return mulAddChains4x16(iterations)
        case (_, true, 8): return fmaChains2x8(iterations)
        case (_, true, 12): return fmaChains2x12(iterations)
        case (_, true, _): return fmaChains2x16(iterations)
        case (_, false, 8): return mulAddChains2x8(iterations)
        case (_, false, 12): return mulAddChains2x12(iterations)
        default: return mulAddChains2x16(iterations)
        }
    }
    var best: (chains: Int, rates: [Double], cpuRates: [Double], checksum: Double)? = nil
    var bestByCount: [Double] = []
    for chains in counts {
        // Calibrate: double the iterations until a run takes a tenth of the target, then scale to the target.
        var iterations = 1 << 12, elapsed = 0.0
        while true {
            let start = now()
            _ = run(chains, iterations)
            elapsed = now() - start
            if elapsed > seconds / 10 || iterations > 1 << 34 { break }
            iterations *= 2
        }
        iterations = max(1, Int(Double(iterations) * seconds / max(elapsed, 1e-9)))
        var rates: [Double] = [], cpuRates: [Double] = [], checksum = 0.0
        let flops = 2 * Double(width) * Double(chains) * Double(iterations)
        for _ in 0..<repetitions {
            let start = now(), cpuStart = threadCPUTime()
            checksum = run(chains, iterations)
            let elapsed = now() - start, cpu = threadCPUTime() - cpuStart
            rates.append(flops / elapsed / 1e9)
            cpuRates.append(flops / max(cpu, 1e-9) / 1e9)
        }
        let bestCPU = cpuRates.max() ?? 0
        bestByCount.append(bestCPU)
        if bestCPU > (best?.cpuRates.max() ?? -1) { best = (chains, rates, cpuRates, checksum) }
    }
    return PeakResult(laneWidth: width, fused: fused, chainCounts: counts, chains: best!.chains, rates: best!.rates,
                      cpuRates: best!.cpuRates, bestCPUByCount: bestByCount, checksum: best!.checksum)
}

// The loops: explicit accumulators (so that they stay in registers while they fit), 8, 12 or 16 of them, of
// each vector type. `m` and `c` make every chain converge to c / (1 − m) = 1: no overflow, no subnormals.

@inline(__always)
private func chains8<V: SIMD>(_: V.Type, _ iterations: Int, _ step: (V, V, V) -> V) -> Double where V.Scalar == Double {
    let m = V(repeating: 0.999_999), c = V(repeating: 0.000_001)
    var a0 = V(repeating: 0.50), a1 = V(repeating: 0.51), a2 = V(repeating: 0.52), a3 = V(repeating: 0.53)
    var a4 = V(repeating: 0.54), a5 = V(repeating: 0.55), a6 = V(repeating: 0.56), a7 = V(repeating: 0.57)
    for _ in 0..<iterations {
        a0 = step(a0, m, c); a1 = step(a1, m, c); a2 = step(a2, m, c); a3 = step(a3, m, c)
        a4 = step(a4, m, c); a5 = step(a5, m, c); a6 = step(a6, m, c); a7 = step(a7, m, c)
    }
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))).sum()
}

@inline(__always)
private func chains12<V: SIMD>(_: V.Type, _ iterations: Int, _ step: (V, V, V) -> V) -> Double where V.Scalar == Double {
    let m = V(repeating: 0.999_999), c = V(repeating: 0.000_001)
    var a0 = V(repeating: 0.50), a1 = V(repeating: 0.51), a2 = V(repeating: 0.52), a3 = V(repeating: 0.53)
    var a4 = V(repeating: 0.54), a5 = V(repeating: 0.55), a6 = V(repeating: 0.56), a7 = V(repeating: 0.57)
    var a8 = V(repeating: 0.58), a9 = V(repeating: 0.59), a10 = V(repeating: 0.60), a11 = V(repeating: 0.61)
    for _ in 0..<iterations {
        a0 = step(a0, m, c); a1 = step(a1, m, c); a2 = step(a2, m, c); a3 = step(a3, m, c)
        a4 = step(a4, m, c); a5 = step(a5, m, c); a6 = step(a6, m, c); a7 = step(a7, m, c)
        a8 = step(a8, m, c); a9 = step(a9, m, c); a10 = step(a10, m, c); a11 = step(a11, m, c)
    }
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11))).sum()
}

@inline(__always)
private func chains16<V: SIMD>(_: V.Type, _ iterations: Int, _ step: (V, V, V) -> V) -> Double where V.Scalar == Double {
    let m = V(repeating: 0.999_999), c = V(repeating: 0.000_001)
    var a0 = V(repeating: 0.50), a1 = V(repeating: 0.51), a2 = V(repeating: 0.52), a3 = V(repeating: 0.53)
    var a4 = V(repeating: 0.54), a5 = V(repeating: 0.55), a6 = V(repeating: 0.56), a7 = V(repeating: 0.57)
    var a8 = V(repeating: 0.58), a9 = V(repeating: 0.59), a10 = V(repeating: 0.60), a11 = V(repeating: 0.61)
    var a12 = V(repeating: 0.62), a13 = V(repeating: 0.63), a14 = V(repeating: 0.64), a15 = V(repeating: 0.65)
    for _ in 0..<iterations {
        a0 = step(a0, m, c); a1 = step(a1, m, c); a2 = step(a2, m, c); a3 = step(a3, m, c)
        a4 = step(a4, m, c); a5 = step(a5, m, c); a6 = step(a6, m, c); a7 = step(a7, m, c)
        a8 = step(a8, m, c); a9 = step(a9, m, c); a10 = step(a10, m, c); a11 = step(a11, m, c)
        a12 = step(a12, m, c); a13 = step(a13, m, c); a14 = step(a14, m, c); a15 = step(a15, m, c)
    }
    let sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15))
    return sum.sum()
}

@inline(__always) private func fused<V: SIMD>(_ a: V, _ m: V, _ c: V) -> V where V.Scalar == Double { c.addingProduct(a, m) }
@inline(__always) private func unfused<V: SIMD>(_ a: V, _ m: V, _ c: V) -> V where V.Scalar == Double { a * m + c }

@inline(never) func fmaChains8x8(_ n: Int) -> Double { chains8(SIMD8<Double>.self, n, fused) }
@inline(never) func fmaChains8x12(_ n: Int) -> Double { chains12(SIMD8<Double>.self, n, fused) }
@inline(never) func fmaChains8x16(_ n: Int) -> Double { chains16(SIMD8<Double>.self, n, fused) }
@inline(never) func fmaChains4x8(_ n: Int) -> Double { chains8(SIMD4<Double>.self, n, fused) }
@inline(never) func fmaChains4x12(_ n: Int) -> Double { chains12(SIMD4<Double>.self, n, fused) }
@inline(never) func fmaChains4x16(_ n: Int) -> Double { chains16(SIMD4<Double>.self, n, fused) }
@inline(never) func fmaChains2x8(_ n: Int) -> Double { chains8(SIMD2<Double>.self, n, fused) }
@inline(never) func fmaChains2x12(_ n: Int) -> Double { chains12(SIMD2<Double>.self, n, fused) }
@inline(never) func fmaChains2x16(_ n: Int) -> Double { chains16(SIMD2<Double>.self, n, fused) }
@inline(never) func mulAddChains8x8(_ n: Int) -> Double { chains8(SIMD8<Double>.self, n, unfused) }
@inline(never) func mulAddChains8x12(_ n: Int) -> Double { chains12(SIMD8<Double>.self, n, unfused) }
@inline(never) func mulAddChains8x16(_ n: Int) -> Double { chains16(SIMD8<Double>.self, n, unfused) }
@inline(never) func mulAddChains4x8(_ n: Int) -> Double { chains8(SIMD4<Double>.self, n, unfused) }
@inline(never) func mulAddChains4x12(_ n: Int) -> Double { chains12(SIMD4<Double>.self, n, unfused) }
@inline(never) func mulAddChains4x16(_ n: Int) -> Double { chains16(SIMD4<Double>.self, n, unfused) }
@inline(never) func mulAddChains2x8(_ n: Int) -> Double { chains8(SIMD2<Double>.self, n, unfused) }
@inline(never) func mulAddChains2x12(_ n: Int) -> Double { chains12(SIMD2<Double>.self, n, unfused) }
@inline(never) func mulAddChains2x16(_ n: Int) -> Double { chains16(SIMD2<Double>.self, n, unfused) }
