import CompareCore
import Foundation
import Framework
import Glibc
import Reference

// MARK: - What the build and the machine are

/// The compiler flags the build used (as far as the program can tell) and the CPU it runs on.
struct BuildInfo {
    /// Framework's product kernel: SIMD width, tile, multiply-add (`KernelConfiguration.description`).
    var kernel: String
    /// Whether the build passed `-target-cpu native` (`make bench` also defines MINIDL_NATIVE_CPU then).
    var nativeCPU: Bool
    var cpuModel: String
    /// Of sse2, avx, avx2, fma, avx512f: those /proc/cpuinfo lists.
    var cpuFlags: [String]
    /// The library that serves `cblas_dgemm` to GSL (Reference's BLAS).
    var gslBLAS: String
    /// OpenBLAS loaded beside it for the product comparison, with its core type, or nil.
    var openBLASCore: String?
    var allocationCounting: Bool

    static func current() -> BuildInfo {
        #if MINIDL_NATIVE_CPU
        let native = true
        #else
        let native = false
        #endif
        let cpu = cpuDescription()
        return BuildInfo(kernel: KernelConfiguration.description, nativeCPU: native, cpuModel: cpu.model,
                         cpuFlags: cpu.flags, gslBLAS: ReferenceEngine.blasLibrary,
                         openBLASCore: OpenBLAS.shared?.coreName, allocationCounting: allocationCounterWorks)
    }

    var summary: String {
        """
        Framework kernel: \(kernel)
        build: \(nativeCPU ? "-target-cpu native (MINIDL_NATIVE_CPU)" : "portable (no -target-cpu)")
        CPU: \(cpuModel); flags: \(cpuFlags.joined(separator: " "))
        GSL's BLAS: \(gslBLAS); OpenBLAS (dlopen): \(openBLASCore.map { "core \($0)" } ?? "not installed")
        allocation counting: \(allocationCounting ? "on" : "off (link with --export-dynamic-symbol=malloc etc., as `make bench` does)")
        one thread, float64; samples/s = samples in a fixed number of optimizer steps / seconds, median of repetitions
        """
    }
}

// MARK: - Results

struct WorkloadResult {
    var workload: Workload
    var framework: Throughput
    var frameworkPeakKiB: Int?
    var reference: Throughput?
    /// PyTorch measured in the same run, repetitions alternating with Framework's; nil with --no-pytorch or
    /// when it is not installed.
    var pytorch: Throughput?
    /// The PyTorch server's peak resident size so far (ru_maxrss: includes torch itself).
    var pytorchPeakKiB: Int?

    /// Framework ÷ PyTorch, samples per wall second and per CPU second.
    var overPyTorch: Double? { pytorch.map { framework.median / $0.median } }
    var overPyTorchCPU: Double? {
        guard let p = pytorch?.cpuMedian, let f = framework.cpuMedian else { return nil }
        return f / p
    }

    /// The progress line printed when the workload's Framework and PyTorch repetitions are done.
    var line: String {
        var parts = ["\(workload.key): Framework \(grouped(framework.median)) samples/s (\(framework.cpuMedian.map(grouped) ?? "–") per CPU-s)"]
        if let pytorch {
            parts.append("PyTorch \(grouped(pytorch.median)) (\(pytorch.cpuMedian.map(grouped) ?? "–") per CPU-s), "
                         + "Framework ÷ PyTorch \(ratio(overPyTorch)) wall, \(ratio(overPyTorchCPU)) CPU")
        }
        if allocationCounterWorks { parts.append("\(fixed(framework.allocationsPerStep, 2)) allocations/step") }
        if let peak = frameworkPeakKiB { parts.append("peak RSS so far \(mebibytes(peak))") }
        return parts.joined(separator: "; ")
    }
}

extension ProductResult {
    static var header: String {
        "product kernel C = A·B, n × n, GFLOP/s (2n³ flops), median of repetitions; GSL and OpenBLAS timed in turn with it"
    }

    var line: String {
        var text = "n = \(n): Framework \(fixed(median(framework), 1)), gsl_blas_dgemm \(fixed(median(gsl), 1))"
        if let openBLAS { text += ", OpenBLAS \(fixed(median(openBLAS), 1)) (Framework ÷ OpenBLAS \(fixed(median(framework) / median(openBLAS), 2)))" }
        return text + "; max relative difference to GSL \(scientific(difference))"
    }
}

extension ShapeProductResult {
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// `peak`: GFLOP/s per CPU-second (`PeakResult.bestCPU`).
    func line(peak: Double?) -> String {
        var text = "\(name) (\(formula)): Framework \(fixed(median(framework), 1)) GFLOP/s, \(fixed(median(frameworkCPU), 1)) per CPU-s"
        if let peak { text += " (\(percent(median(frameworkCPU) / peak)) of peak)" }
        if let openBLAS { text += ", OpenBLAS \(fixed(median(openBLAS), 1))" }
        return text + "; max relative difference to GSL \(scientific(difference))"
    }
}

extension EndToEndResult {
    var line: String {
        "\(test.key): Framework \(secondsText(median(framework))), PyTorch \(secondsText(median(pytorch))): "
            + "PyTorch ÷ Framework \(fixed(ratio, ratio < 10 ? 2 : 1))× (goal ≥ \(formatNumber(test.goal))×: "
            + (meetsGoal ? "met" : "missed, \(percent(ratio / test.goal)) of the goal") + ")"
    }
}

// MARK: - Report

struct Report {
    var build: BuildInfo
    /// "PyTorch 2.15.0 …, measured in this run" or why it was not measured.
    var pytorchSummary: String
    var pytorchMeasured: Bool
    var loadBefore: String
    var loadAfter: String
    var workloads: [WorkloadResult]
    var reference: Bool
    var endToEnd: [EndToEndResult]
    /// Why the end-to-end rows are missing, when they are.
    var endToEndNote: String?
    /// The end-to-end cases whose engine failed, "key: error" (bench then exits 2).
    var endToEndFailures: [String] = []
    var peak: PeakResult?
    var shapeProducts: [ShapeProductResult]
    var products: [ProductResult]
    var peakKiB: Int?
    var repetitions: Int
    var scale: Double

    var table: String {
        var lines: [String] = []
        if !workloads.isEmpty {
            var header = ["training step", "Framework samples/s", "Framework samples/CPU-s"]
            if reference { header += ["Reference samples/s"] }
            if pytorchMeasured { header += ["PyTorch samples/s", "PyTorch samples/CPU-s", "÷ PyTorch (wall)", "÷ PyTorch (CPU)"] }
            if reference { header += ["÷ Reference"] }
            header += ["allocations/step", "peak RSS"]
            if pytorchMeasured { header += ["PyTorch peak RSS"] }
            var rows: [[String]] = []
            for row in workloads {
                var cells = [row.workload.title, grouped(row.framework.median), row.framework.cpuMedian.map(grouped) ?? "–"]
                if reference { cells.append(row.reference.map { grouped($0.median) } ?? "–") }
                if pytorchMeasured {
                    cells += [row.pytorch.map { grouped($0.median) } ?? "–", row.pytorch?.cpuMedian.map(grouped) ?? "–",
                              ratio(row.overPyTorch), ratio(row.overPyTorchCPU)]
                }
                if reference { cells.append(ratio(row.reference.map { row.framework.median / $0.median })) }
                cells.append(allocationCounterWorks ? fixed(row.framework.allocationsPerStep, 2) : "n/a")
                cells.append(row.frameworkPeakKiB.map(mebibytes) ?? "–")
                if pytorchMeasured { cells.append(row.pytorchPeakKiB.map(mebibytes) ?? "–") }
                rows.append(cells)
            }
            lines += markdownTable(header, leftColumns: 1, rows)
        }
        if !endToEnd.isEmpty {
            if !lines.isEmpty { lines.append("") }
            let rows = endToEnd.map { r in
                [r.test.title, secondsText(median(r.framework)), secondsText(median(r.pytorch)), "\(fixed(r.ratio, r.ratio < 10 ? 2 : 1))×",
                 "≥ \(formatNumber(r.test.goal))×", r.meetsGoal ? "yes" : "no: \(percent(r.ratio / r.test.goal)) of the goal",
                 "\(significant(r.frameworkTestLoss)) / \(significant(r.pytorchTestLoss))"]
            }
            lines += markdownTable(["end to end (training + per-epoch evaluation)", "Framework s", "PyTorch s", "PyTorch ÷ Framework",
                                    "goal", "met", "last test loss Framework / PyTorch"], leftColumns: 1, rows)
        } else if let endToEndNote {
            if !lines.isEmpty { lines.append("") }
            lines.append("end to end: \(endToEndNote)")
        }
        for failure in endToEndFailures { lines.append("end to end \(failure): failed, no row") }
        if let peak {
            if !lines.isEmpty { lines.append("") }
            lines.append(peak.line)
            // The peak is a measured bound; a product measured above it means the bound is wrong here, and says so.
            let fastest = (shapeProducts.flatMap { [median($0.frameworkCPU)] + ($0.openBLASCPU.map { [median($0)] } ?? []) }
                           + products.map { median($0.frameworkCPU) }).max() ?? 0
            if fastest > peak.bestCPU {
                lines.append("warning: a product ran at \(fixed(fastest, 1)) GFLOP/s per CPU-second, above this measured peak: "
                             + "the peak loop does not bound this machine, and the fractions of peak below are not meaningful")
            }
        }
        // Fractions of peak: per CPU-second of the thread, product and peak alike.
        let peakRate = peak?.bestCPU
        let openLabel = build.openBLASCore.map { "OpenBLAS (\($0))" } ?? "OpenBLAS"
        if !shapeProducts.isEmpty {
            if !lines.isEmpty { lines.append("") }
            let rows = shapeProducts.map { p -> [String] in
                let f = median(p.framework), fc = median(p.frameworkCPU), o = p.openBLAS.map(median), oc = p.openBLASCPU.map(median)
                return ["\(p.name): \(p.formula)", fixed(f, 1), fixed(fc, 1), peakRate.map { percent(fc / $0) } ?? "–",
                        o.map { fixed($0, 1) } ?? "–", oc.flatMap { o in peakRate.map { percent(o / $0) } } ?? "–",
                        o.map { fixed(f / $0, 2) } ?? "–", scientific(p.difference),
                        allocationCounterWorks ? fixed(p.allocationsPerProduct, 2) : "n/a"]
            }
            lines += markdownTable(["product (1024 network, batch 128)", "Framework GFLOP/s", "per CPU-s", "of peak", "\(openLabel) GFLOP/s",
                                    "of peak", "Framework ÷ OpenBLAS", "max rel. difference to GSL", "allocations/product"], leftColumns: 1, rows)
        }
        if !products.isEmpty {
            if !lines.isEmpty { lines.append("") }
            let rows = products.map { p -> [String] in
                let f = median(p.framework), fc = median(p.frameworkCPU)
                return ["\(p.n)", fixed(f, 1), fixed(fc, 1), peakRate.map { percent(fc / $0) } ?? "–", fixed(median(p.gsl), 1),
                        p.openBLAS.map { fixed(median($0), 1) } ?? "–", p.openBLAS.map { fixed(f / median($0), 2) } ?? "–"]
            }
            lines += markdownTable(["n", "Framework GFLOP/s", "per CPU-s", "of peak", "gsl_blas_dgemm GFLOP/s", "\(openLabel) GFLOP/s",
                                    "Framework ÷ OpenBLAS"], leftColumns: 0, rows)
        }
        lines.append("")
        if !workloads.isEmpty {
            lines.append("training step: samples in a fixed number of optimizer steps ÷ seconds, median of \(repetitions) repetitions; "
                         + "CPU-s: the thread's CPU time (Framework), the process's (PyTorch, time.process_time)"
                         + (pytorchMeasured ? "; Framework's and PyTorch's repetitions alternate" : ""))
            lines.append("peak RSS: the process's peak resident size (VmHWM) after that workload's Framework runs; "
                         + "Framework runs every workload, smallest first, before Reference runs any"
                         + (pytorchMeasured ? "; PyTorch peak RSS: its server process's ru_maxrss so far (torch included)" : ""))
        }
        if !endToEnd.isEmpty {
            lines.append("end to end: trace seconds of FrameworkEngine and of examples/engines/torch_engine.py (CommandEngine), "
                         + "as `compare` times them, same experiment and round 0, alternating, median of \(repetitions) repetitions; "
                         + "last test loss: of each engine's last run, which agree to the digits shown unless the training amplifies "
                         + "their different rounding, as the seeds network's 300 epochs at batch 5 can; `make run ARGS=\"--engine "
                         + "torch='python3 examples/engines/torch_engine.py'\"` tells amplified rounding (\"pass, amplified\") from a "
                         + "real difference")
        }
        lines.append("PyTorch: \(pytorchSummary)")
        lines.append("peak RSS of the whole run (VmHWM): \(peakKiB.map(mebibytes) ?? "unknown"); "
                     + "load average before \(loadBefore), after \(loadAfter)")
        return lines.joined(separator: "\n")
    }

    var json: JSONValue {
        func throughput(_ t: Throughput) -> JSONValue {
            jsonObject {
                $0["samplesPerSecond"] = .number(t.median)
                $0["repetitions"] = .numbers(t.repetitions)
                if let cpu = t.cpuMedian {
                    $0["samplesPerCPUSecond"] = .number(cpu)
                    $0["cpuRepetitions"] = .numbers(t.cpuRepetitions)
                }
                $0["lastLoss"] = .number(t.lastLoss)
            }
        }
        let peakRate = peak?.bestCPU
        return jsonObject { root in
            root["build"] = jsonObject {
                $0["kernel"] = .string(build.kernel)
                $0["nativeCPU"] = .bool(build.nativeCPU)
                $0["cpu"] = .string(build.cpuModel)
                $0["cpuFlags"] = .array(build.cpuFlags.map { .string($0) })
                $0["gslBLAS"] = .string(build.gslBLAS)
                if let core = build.openBLASCore { $0["openBLASCore"] = .string(core) }
                $0["allocationCounting"] = .bool(build.allocationCounting)
            }
            root["pytorch"] = jsonObject {
                $0["measured"] = .bool(pytorchMeasured)
                $0["summary"] = .string(pytorchSummary)
            }
            root["repetitions"] = .integer(repetitions)
            root["scale"] = .number(scale)
            root["loadAverageBefore"] = .string(loadBefore)
            root["loadAverageAfter"] = .string(loadAfter)
            root["workloads"] = .array(workloads.map { row in
                jsonObject {
                    $0["key"] = .string(row.workload.key)
                    $0["title"] = .string(row.workload.title)
                    $0["batchSize"] = .integer(row.workload.batchSize)
                    var framework = throughput(row.framework)
                    if case .object(var members) = framework {
                        if allocationCounterWorks { members.append(("allocationsPerStep", .number(row.framework.allocationsPerStep))) }
                        if let peak = row.frameworkPeakKiB { members.append(("peakKiB", .integer(peak))) }
                        framework = .object(members)
                    }
                    $0["framework"] = framework
                    if let reference = row.reference {
                        $0["reference"] = throughput(reference)
                        $0["frameworkOverReference"] = .number(row.framework.median / reference.median)
                    }
                    if let pytorch = row.pytorch {
                        var value = throughput(pytorch)
                        if case .object(var members) = value, let peak = row.pytorchPeakKiB {
                            members.append(("peakKiB", .integer(peak)))
                            value = .object(members)
                        }
                        $0["pytorch"] = value
                        $0["frameworkOverPyTorch"] = row.overPyTorch.map { .number($0) }
                        $0["frameworkOverPyTorchCPU"] = row.overPyTorchCPU.map { .number($0) }
                    }
                }
            })
            root["endToEnd"] = .array(endToEnd.map { r in
                jsonObject {
                    $0["key"] = .string(r.test.key)
                    $0["title"] = .string(r.test.title)
                    $0["epochs"] = .integer(r.test.experiment.training.epochs)
                    $0["batchSize"] = .integer(r.test.experiment.training.batchSize)
                    $0["frameworkSeconds"] = .number(median(r.framework))
                    $0["frameworkRepetitions"] = .numbers(r.framework)
                    $0["pytorchSeconds"] = .number(median(r.pytorch))
                    $0["pytorchRepetitions"] = .numbers(r.pytorch)
                    $0["pytorchOverFramework"] = .number(r.ratio)
                    $0["goal"] = .number(r.test.goal)
                    $0["meetsGoal"] = .bool(r.meetsGoal)
                    $0["frameworkLastTestLoss"] = .number(r.frameworkTestLoss)
                    $0["pytorchLastTestLoss"] = .number(r.pytorchTestLoss)
                    $0["pytorchEngine"] = .string(r.pytorchEngine)
                }
            })
            if let endToEndNote { root["endToEndNote"] = .string(endToEndNote) }
            if !endToEndFailures.isEmpty { root["endToEndFailures"] = .array(endToEndFailures.map { .string($0) }) }
            if let peak {
                root["peak"] = jsonObject {
                    $0["gflopsPerCPUSecond"] = .number(peak.bestCPU)
                    $0["gflops"] = .number(peak.best)
                    $0["cpuRepetitions"] = .numbers(peak.cpuRates)
                    $0["repetitions"] = .numbers(peak.rates)
                    $0["laneWidth"] = .integer(peak.laneWidth)
                    $0["fusedMultiplyAdd"] = .bool(peak.fused)
                    $0["chains"] = .integer(peak.chains)
                    $0["chainCounts"] = .numbers(peak.chainCounts.map(Double.init))
                    $0["gflopsPerCPUSecondByChainCount"] = .numbers(peak.bestCPUByCount)
                    $0["method"] = .string(peak.method)
                }
            }
            root["trainingShapeProducts"] = .array(shapeProducts.map { p in
                jsonObject {
                    $0["name"] = .string(p.name)
                    $0["formula"] = .string(p.formula)
                    $0["m"] = .integer(p.m)
                    $0["n"] = .integer(p.n)
                    $0["k"] = .integer(p.k)
                    $0["frameworkGFLOPS"] = .number(median(p.framework))
                    $0["frameworkRepetitions"] = .numbers(p.framework)
                    $0["frameworkGFLOPSPerCPUSecond"] = .number(median(p.frameworkCPU))
                    if let peakRate { $0["frameworkFractionOfPeak"] = .number(median(p.frameworkCPU) / peakRate) }
                    if let open = p.openBLAS, let openCPU = p.openBLASCPU {
                        $0["openBLASGFLOPS"] = .number(median(open))
                        $0["openBLASGFLOPSPerCPUSecond"] = .number(median(openCPU))
                        if let peakRate { $0["openBLASFractionOfPeak"] = .number(median(openCPU) / peakRate) }
                    }
                    $0["maxRelativeDifferenceToGSL"] = .number(p.difference)
                    if allocationCounterWorks { $0["allocationsPerProduct"] = .number(p.allocationsPerProduct) }
                }
            })
            root["products"] = .array(products.map { p in
                jsonObject {
                    $0["n"] = .integer(p.n)
                    $0["frameworkGFLOPS"] = .number(median(p.framework))
                    $0["frameworkGFLOPSPerCPUSecond"] = .number(median(p.frameworkCPU))
                    if let peakRate { $0["frameworkFractionOfPeak"] = .number(median(p.frameworkCPU) / peakRate) }
                    $0["gslGFLOPS"] = .number(median(p.gsl))
                    if let open = p.openBLAS {
                        $0["openBLASGFLOPS"] = .number(median(open))
                        $0["frameworkOverOpenBLAS"] = .number(median(p.framework) / median(open))
                    }
                    $0["maxRelativeDifference"] = .number(p.difference)
                    if allocationCounterWorks { $0["allocationsPerProduct"] = .number(p.allocationsPerProduct) }
                }
            })
            if let peak = peakKiB { root["peakKiB"] = .integer(peak) }
        }
    }
}

/// A Markdown table; the first `leftColumns` columns left-aligned, the others right-aligned.
func markdownTable(_ header: [String], leftColumns: Int, _ rows: [[String]]) -> [String] {
    var lines = ["| " + header.joined(separator: " | ") + " |"]
    lines.append("|" + header.indices.map { $0 < leftColumns ? "---|" : "---:|" }.joined())
    for row in rows { lines.append("| " + row.joined(separator: " | ") + " |") }
    return lines
}

// MARK: - Formatting

/// `1234567.8` → `"1,234,568"`.
func grouped(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    let digits = String(Int(x.rounded()).magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (x < -0.5 ? "-" : "") + out
}

/// `x` with `places` decimals.
func fixed(_ x: Double, _ places: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = Int((abs(x) * scale).rounded())
    let whole = scaled / Int(scale), fraction = scaled % Int(scale)
    var text = "\(x < 0 && scaled != 0 ? "-" : "")\(whole)"
    if places > 0 {
        let f = String(fraction)
        text += "." + String(repeating: "0", count: places - f.count) + f
    }
    return text
}

/// `x` as `1.2e-15`.
func scientific(_ x: Double) -> String {
    guard x.isFinite, x != 0 else { return "\(x)" }
    var exponent = 0, m = abs(x)
    while m >= 10 { m /= 10; exponent += 1 }
    while m < 1 { m *= 10; exponent -= 1 }
    return "\(x < 0 ? "-" : "")\(fixed(m, 1))e\(exponent)"
}

/// "1.23×" (two decimals below 10, one above), or "–".
func ratio(_ x: Double?) -> String {
    guard let x else { return "–" }
    return "\(fixed(x, x < 10 ? 2 : 1))×"
}

/// `0.734` → `"73.4 %"`.
func percent(_ x: Double) -> String { "\(fixed(100 * x, 1)) %" }

/// KiB as `"12.3 MiB"`.
func mebibytes(_ kib: Int) -> String { "\(fixed(Double(kib) / 1024, 1)) MiB" }

/// Seconds with three significant figures or so: `"0.0123 s"`, `"1.23 s"`, `"123.4 s"`.
func secondsText(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    if x >= 100 { return "\(fixed(x, 1)) s" }
    if x >= 1 { return "\(fixed(x, 2)) s" }
    if x >= 0.01 { return "\(fixed(x, 3)) s" }
    return "\(fixed(x, 5)) s"
}

/// `x` with 5 significant digits: `"0.066123"`.
func significant(_ x: Double) -> String { x.isFinite ? String(format: "%.5g", x) : "\(x)" }
