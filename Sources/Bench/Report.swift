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
    var pytorch: Double

    var line: String {
        var parts = ["\(workload.key): Framework \(grouped(framework.median)) samples/s",
                     "×\(fixed(framework.median / pytorch, 1)) PyTorch"]
        if let reference {
            parts.append("Reference \(grouped(reference.median)) (×\(fixed(framework.median / reference.median, 1)))")
        }
        if allocationCounterWorks { parts.append("\(fixed(framework.allocationsPerStep, 2)) allocations/step") }
        if let peak = frameworkPeakKiB { parts.append("peak \(fixed(Double(peak) / 1024, 1)) MiB") }
        return parts.joined(separator: ", ")
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

// MARK: - Report

struct Report {
    var build: BuildInfo
    var pytorchLabel: String
    var loadBefore: String
    var loadAfter: String
    var workloads: [WorkloadResult]
    var products: [ProductResult]
    var peakKiB: Int?
    var repetitions: Int
    var scale: Double

    var table: String {
        var lines: [String] = []
        if !workloads.isEmpty {
            lines.append("| workload | Framework samples/s | Reference samples/s | \(pytorchLabel) | ÷ PyTorch | ÷ Reference | allocations/step | peak RSS |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for row in workloads {
                let reference = row.reference.map { grouped($0.median) } ?? "–"
                let overReference = row.reference.map { "\(fixed(row.framework.median / $0.median, 1))×" } ?? "–"
                let allocations = allocationCounterWorks ? fixed(row.framework.allocationsPerStep, 2) : "n/a"
                let peak = row.frameworkPeakKiB.map { "\(fixed(Double($0) / 1024, 1)) MiB" } ?? "–"
                lines.append("| \(row.workload.title) | \(grouped(row.framework.median)) | \(reference) | \(grouped(row.pytorch)) | "
                             + "\(fixed(row.framework.median / row.pytorch, 1))× | \(overReference) | \(allocations) | \(peak) |")
            }
        }
        if !products.isEmpty {
            if !lines.isEmpty { lines.append("") }
            let openLabel = build.openBLASCore.map { "OpenBLAS (\($0))" } ?? "OpenBLAS"
            lines.append("| n | Framework GFLOP/s | gsl_blas_dgemm GFLOP/s | \(openLabel) GFLOP/s | Framework ÷ OpenBLAS |")
            lines.append("|---:|---:|---:|---:|---:|")
            for p in products {
                let open = p.openBLAS.map { fixed(median($0), 1) } ?? "–"
                let ratio = p.openBLAS.map { fixed(median(p.framework) / median($0), 2) } ?? "–"
                lines.append("| \(p.n) | \(fixed(median(p.framework), 1)) | \(fixed(median(p.gsl), 1)) | \(open) | \(ratio) |")
            }
        }
        lines.append("")
        if !workloads.isEmpty {
            lines.append("peak RSS per workload: the process's peak resident size (VmHWM) after that workload's Framework run; "
                         + "Framework runs every workload, smallest first, before Reference runs any")
        }
        lines.append("peak RSS of the whole run (VmHWM): \(peakKiB.map { "\(fixed(Double($0) / 1024, 1)) MiB" } ?? "unknown"); "
                     + "load average before \(loadBefore), after \(loadAfter)")
        return lines.joined(separator: "\n")
    }

    var json: String {
        let w = JSONWriter()
        w.object {
            w.key("build"); w.object {
                w.field("kernel", build.kernel)
                w.field("nativeCPU", build.nativeCPU)
                w.field("cpu", build.cpuModel)
                w.key("cpuFlags"); w.array(build.cpuFlags.map { JSONWriter.quoted($0) })
                w.field("gslBLAS", build.gslBLAS)
                if let core = build.openBLASCore { w.field("openBLASCore", core) }
                w.field("allocationCounting", build.allocationCounting)
            }
            w.field("pytorchSource", pytorchLabel)
            w.field("repetitions", Double(repetitions))
            w.field("scale", scale)
            w.field("loadAverageBefore", loadBefore)
            w.field("loadAverageAfter", loadAfter)
            w.key("workloads"); w.arrayOfObjects(workloads) { row in
                w.field("key", row.workload.key)
                w.field("title", row.workload.title)
                w.field("batchSize", Double(row.workload.batchSize))
                w.key("framework"); w.object {
                    w.field("samplesPerSecond", row.framework.median)
                    w.key("repetitions"); w.array(row.framework.repetitions.map(JSONWriter.number))
                    if allocationCounterWorks { w.field("allocationsPerStep", row.framework.allocationsPerStep) }
                    if let peak = row.frameworkPeakKiB { w.field("peakKiB", Double(peak)) }
                    w.field("lastLoss", row.framework.lastLoss)
                }
                if let reference = row.reference {
                    w.key("reference"); w.object {
                        w.field("samplesPerSecond", reference.median)
                        w.key("repetitions"); w.array(reference.repetitions.map(JSONWriter.number))
                        w.field("lastLoss", reference.lastLoss)
                    }
                    w.field("frameworkOverReference", row.framework.median / reference.median)
                }
                w.field("pytorch", row.pytorch)
                w.field("frameworkOverPyTorch", row.framework.median / row.pytorch)
            }
            w.key("products"); w.arrayOfObjects(products) { p in
                w.field("n", Double(p.n))
                w.field("frameworkGFLOPS", median(p.framework))
                w.field("gslGFLOPS", median(p.gsl))
                if let open = p.openBLAS {
                    w.field("openBLASGFLOPS", median(open))
                    w.field("frameworkOverOpenBLAS", median(p.framework) / median(open))
                }
                w.field("maxRelativeDifference", p.difference)
                if allocationCounterWorks { w.field("allocationsPerProduct", p.allocationsPerProduct) }
            }
            if let peak = peakKiB { w.field("peakKiB", Double(peak)) }
        }
        return w.text + "\n"
    }
}

// MARK: - PyTorch figures from scripts/bench_torch.py

/// The samples/s per workload key in `scripts/bench_torch.py --json` output, read without a JSON library:
/// each workload object there has `"key": "…"` before `"samples_per_second": …`.
struct PyTorchFigures {
    var version: String
    var samplesPerSecond: [String: Double]

    init?(json: String) {
        func string(after marker: String, in text: Substring) -> (String, Substring)? {
            guard let range = text.range(of: marker) else { return nil }
            let rest = text[range.upperBound...].drop { $0 == " " || $0 == ":" }
            guard rest.first == "\"" else { return nil }
            let body = rest.dropFirst()
            guard let end = body.firstIndex(of: "\"") else { return nil }
            return (String(body[..<end]), body[end...])
        }
        guard let (version, _) = string(after: "\"torch\"", in: json[...]) else { return nil }
        self.version = version
        samplesPerSecond = [:]
        var text = json[...]
        while let (key, rest) = string(after: "\"key\"", in: text) {
            guard let range = rest.range(of: "\"samples_per_second\"") else { return nil }
            let number = rest[range.upperBound...].drop { $0 == " " || $0 == ":" }.prefix { "0123456789.eE+-".contains($0) }
            guard let value = Double(number) else { return nil }
            samplesPerSecond[key] = value
            text = rest[range.upperBound...]
        }
        if samplesPerSecond.isEmpty { return nil }
    }
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

/// A small JSON writer (objects, arrays, strings, numbers, booleans), pretty-printed.
final class JSONWriter {
    private(set) var text = ""
    private var indent = 0
    private var needsComma = false

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16) }
                else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        if x == x.rounded() && abs(x) < 1e15 { return String(Int(x)) }
        return "\(x)"
    }

    private func newline() {
        text += (needsComma ? ",\n" : "\n") + String(repeating: "  ", count: indent)
    }

    func key(_ name: String) {
        newline()
        text += JSONWriter.quoted(name) + ": "
        needsComma = false
    }

    func field(_ name: String, _ value: String) { key(name); text += JSONWriter.quoted(value); needsComma = true }
    func field(_ name: String, _ value: Double) { key(name); text += JSONWriter.number(value); needsComma = true }
    func field(_ name: String, _ value: Bool) { key(name); text += value ? "true" : "false"; needsComma = true }

    func object(_ body: () -> Void) {
        if needsComma { newline() }
        text += "{"
        indent += 1
        needsComma = false
        body()
        indent -= 1
        needsComma = false
        newline()
        text += "}"
        needsComma = true
    }

    func array(_ values: [String]) {
        text += "[" + values.joined(separator: ", ") + "]"
        needsComma = true
    }

    func arrayOfObjects<T>(_ items: [T], _ body: (T) -> Void) {
        text += "["
        indent += 1
        needsComma = false
        for item in items {
            newline()
            text += "{"
            indent += 1
            needsComma = false
            body(item)
            indent -= 1
            needsComma = false
            newline()
            text += "}"
            needsComma = true
        }
        indent -= 1
        needsComma = false
        if !items.isEmpty { newline() }
        text += "]"
        needsComma = true
    }
}
