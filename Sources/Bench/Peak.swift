import Framework

/// This CPU's double-precision peak on one core, measured: 16 independent chains of vector multiply-adds
/// `a_j ← a_j · m + c` on the active kernel's lane width (SIMD8<Double> for MINIDL_AVX512), all in registers,
/// no loads or stores in the loop. 16 chains cover the multiply-add latency (4 cycles on current x86 cores)
/// times the multiply-adds issued per cycle (1 or 2), so the loop runs at the units' throughput; GFLOP/s =
/// 2 × lanes × vector multiply-adds / s, best of the repetitions (the least disturbed by other work), per
/// second of the thread's CPU time (what the fractions of peak use: other processes on a shared machine dilute
/// wall time, not the rate while the thread runs) and per wall second.
/// A fused multiply-add when the kernel fuses, else a multiply and an add (as the portable kernel computes).
struct PeakResult {
    var laneWidth: Int
    var fused: Bool
    var chains: Int
    /// GFLOP/s of each repetition, per wall second and per CPU second.
    var rates: [Double]
    var cpuRates: [Double]
    /// The chains' final sum (keeps the loop from being optimised away; ≈ chains × lanes).
    var checksum: Double

    var best: Double { rates.max() ?? .nan }
    var bestCPU: Double { cpuRates.max() ?? .nan }

    /// "double-precision peak of one core: 57.2 GFLOP/s per CPU-second (57.0 per wall second; …)".
    var line: String {
        "double-precision peak of one core: \(fixed(bestCPU, 1)) GFLOP/s per CPU-second (\(fixed(best, 1)) per wall second); \(method)"
    }

    var method: String {
        "\(chains) independent chains of \(fused ? "fused multiply-adds" : "multiplies then adds") on SIMD\(laneWidth)<Double> "
            + "in registers; GFLOP/s = 2 × \(laneWidth) × vector multiply-adds per CPU-second of the thread, best of \(rates.count) repetitions"
    }
}

func measurePeak(repetitions: Int, seconds: Double) -> PeakResult {
    let width = KernelConfiguration.laneWidth, fused = KernelConfiguration.fusedMultiplyAdd
    let chains = 16
    func run(_ iterations: Int) -> Double {
        switch (width, fused) {
        case (8, true): return fmaChains8(iterations)
        case (4, true): return fmaChains4(iterations)
        case (8, false): return mulAddChains8(iterations)
        case (4, false): return mulAddChains4(iterations)
        case (_, true): return fmaChains2(iterations)
        default: return mulAddChains2(iterations)
        }
    }
    // Calibrate: double the iterations until a run takes a tenth of the target, then scale to the target.
    var iterations = 1 << 12, elapsed = 0.0
    while true {
        let start = now()
        _ = run(iterations)
        elapsed = now() - start
        if elapsed > seconds / 10 || iterations > 1 << 34 { break }
        iterations *= 2
    }
    iterations = max(1, Int(Double(iterations) * seconds / max(elapsed, 1e-9)))
    var rates: [Double] = [], cpuRates: [Double] = [], checksum = 0.0
    let flops = 2 * Double(width) * Double(chains) * Double(iterations)
    for _ in 0..<repetitions {
        let start = now(), cpuStart = threadCPUTime()
        checksum = run(iterations)
        let elapsed = now() - start, cpu = threadCPUTime() - cpuStart
        rates.append(flops / elapsed / 1e9)
        cpuRates.append(flops / max(cpu, 1e-9) / 1e9)
    }
    return PeakResult(laneWidth: width, fused: fused, chains: chains, rates: rates, cpuRates: cpuRates, checksum: checksum)
}

// The loops, one per vector type, each sixteen explicit accumulators (so they stay in registers). `m` and `c`
// make every chain converge to c / (1 − m) = 1: no overflow, no subnormals.

@inline(__always)
private func chains<V: SIMD>(_: V.Type, _ iterations: Int, _ step: (V, V, V) -> V) -> Double where V.Scalar == Double {
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

@inline(never) func fmaChains8(_ n: Int) -> Double { chains(SIMD8<Double>.self, n) { a, m, c in c.addingProduct(a, m) } }
@inline(never) func fmaChains4(_ n: Int) -> Double { chains(SIMD4<Double>.self, n) { a, m, c in c.addingProduct(a, m) } }
@inline(never) func fmaChains2(_ n: Int) -> Double { chains(SIMD2<Double>.self, n) { a, m, c in c.addingProduct(a, m) } }
@inline(never) func mulAddChains8(_ n: Int) -> Double { chains(SIMD8<Double>.self, n) { a, m, c in a * m + c } }
@inline(never) func mulAddChains4(_ n: Int) -> Double { chains(SIMD4<Double>.self, n) { a, m, c in a * m + c } }
@inline(never) func mulAddChains2(_ n: Int) -> Double { chains(SIMD2<Double>.self, n) { a, m, c in a * m + c } }
