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
        switch width {
        case 8: return chainLoop(SIMD8<Double>.self, chains: chains, fused: fused, iterations)
        case 4: return chainLoop(SIMD4<Double>.self, chains: chains, fused: fused, iterations)
        default: return chainLoop(SIMD2<Double>.self, chains: chains, fused: fused, iterations)
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

// The loop: `chains` accumulators in an InlineArray, every loop over them of a constant trip count, so that the
// optimiser keeps them in registers while they fit (as the product kernel's tile does). It measures what
// explicitly named accumulators did: 8 chains 48.5, 12 chains 48.2, 16 chains 26.8 GFLOP/s on this AVX2 core. `m` and `c` make every chain converge to c / (1 − m) = 1: no overflow, no
// subnormals.

@inline(__always)
private func chains<let count: Int, V: SIMD>(_: InlineArray<count, V>.Type, _ iterations: Int,
                                             _ step: (V, V, V) -> V) -> Double where V.Scalar == Double {
    let m = V(repeating: 0.999_999), c = V(repeating: 0.000_001)
    var a = InlineArray<count, V> { V(repeating: 0.50 + 0.01 * Double($0)) }
    for _ in 0..<iterations {
        for j in 0..<count { a[j] = step(a[j], m, c) }
    }
    var sum = V()
    for j in 0..<count { sum += a[j] }
    return sum.sum()
}

@inline(__always) private func fused<V: SIMD>(_ a: V, _ m: V, _ c: V) -> V where V.Scalar == Double { c.addingProduct(a, m) }
@inline(__always) private func unfused<V: SIMD>(_ a: V, _ m: V, _ c: V) -> V where V.Scalar == Double { a * m + c }

/// `iterations` rounds of 8, 12 or 16 (any other count: 16) chains of `V`, fused or not.
@inline(never)
private func chainLoop<V: SIMD>(_: V.Type, chains count: Int, fused isFused: Bool, _ iterations: Int) -> Double where V.Scalar == Double {
    switch (count, isFused) {
    case (8, true): return chains(InlineArray<8, V>.self, iterations, fused)
    case (12, true): return chains(InlineArray<12, V>.self, iterations, fused)
    case (_, true): return chains(InlineArray<16, V>.self, iterations, fused)
    case (8, false): return chains(InlineArray<8, V>.self, iterations, unfused)
    case (12, false): return chains(InlineArray<12, V>.self, iterations, unfused)
    default: return chains(InlineArray<16, V>.self, iterations, unfused)
    }
}
