// bench: how fast Framework trains, beside Reference (GSL BLAS) and PyTorch, and how fast its product kernel
// runs beside GSL's and OpenBLAS's dgemm. One thread, float64. `make bench` builds it for the host CPU.
//
//   bench [--json FILE] [--repetitions N] [--scale X] [--only KEYS] [--no-reference] [--no-gemm]
//         [--pytorch FILE]
//
//   --json FILE       also write the results as JSON (atomically: a temporary file, then renamed)
//   --repetitions N   timed repetitions per measurement, reporting the median (default 3, at least 1)
//   --scale X         fraction of the default steps per repetition (default 1; 0.1 for a quick look)
//   --only KEYS       comma-separated workload keys (seeds-b1, seeds-b5, seeds-b100, seeds-b1000,
//                     tanh256-b128, tanh1024-b128); "none" for none
//   --no-reference    skip Reference (its large networks take minutes on GSL's CBLAS)
//   --no-gemm         skip the product-kernel comparison
//   --pytorch FILE    PyTorch figures measured by `scripts/bench_torch.py --json FILE`, used instead of the
//                     issue's figures in the PyTorch column
import Foundation
import Framework
import Reference

struct Options {
    var json: String? = nil
    var repetitions = 3
    var scale = 1.0
    var only: [String]? = nil
    var reference = true
    var gemm = true
    var pytorch: String? = nil

    init(_ arguments: [String]) throws {
        var rest = arguments.dropFirst()
        func value(_ flag: String) throws -> String {
            guard let v = rest.popFirst() else { throw UsageError(description: "\(flag) needs a value") }
            return v
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--json": json = try value(flag)
            case "--repetitions":
                let text = try value(flag)
                guard let n = Int(text), n >= 1 else { throw UsageError(description: "--repetitions \(text): expected an integer ≥ 1") }
                repetitions = n
            case "--scale":
                let text = try value(flag)
                guard let x = Double(text), x > 0, x.isFinite else { throw UsageError(description: "--scale \(text): expected a number > 0") }
                scale = x
            case "--only": only = try value(flag).split(separator: ",").map(String.init)
            case "--no-reference": reference = false
            case "--no-gemm": gemm = false
            case "--pytorch": pytorch = try value(flag)
            case "--help", "-h":
                print("usage: bench [--json FILE] [--repetitions N] [--scale X] [--only KEYS] [--no-reference] [--no-gemm] [--pytorch FILE]")
                exit(0)
            default: throw UsageError(description: "unknown option \(flag)")
            }
        }
        if let only {
            let known = Set(Workload.all.map(\.key)).union(["none"])
            for key in only where !known.contains(key) {
                throw UsageError(description: "--only: unknown workload \(key); expected some of \(Workload.all.map(\.key).joined(separator: ", "))")
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
}

// MARK: - Run

let options: Options
do {
    options = try Options(CommandLine.arguments)
} catch {
    fputs("bench: \(error)\n", stderr)
    exit(2)
}

var pytorchFigures: [String: Double] = [:]
var pytorchLabel = "PyTorch 2.15 (issue figures)"
if let path = options.pytorch {
    guard let text = readTextFile(path), let parsed = PyTorchFigures(json: text) else {
        fputs("bench: cannot read PyTorch figures from \(path) (expected scripts/bench_torch.py --json output)\n", stderr)
        exit(2)
    }
    pytorchFigures = parsed.samplesPerSecond
    pytorchLabel = "PyTorch \(parsed.version) (measured)"
}

let build = BuildInfo.current()
let loadBefore = loadAverage()
print(build.summary)
print("load average before: \(loadBefore)")
print()

let data = Workload.data()
let workloads = Workload.all.filter { options.only?.contains($0.key) ?? true }
// Framework first, every workload in order of size, so that the peak resident size read after each one
// (VmHWM: the process's peak so far) is that workload's; then Reference, whose GSL matrices are larger.
var frameworkResults: [(Throughput, Int?)] = []
for workload in workloads {
    let framework = frameworkThroughput(workload, data: data, repetitions: options.repetitions, scale: options.scale)
    let peak = statusKilobytes("VmHWM")
    frameworkResults.append((framework, peak))
    print("\(workload.key): Framework \(grouped(framework.median)) samples/s, "
          + (allocationCounterWorks ? "\(fixed(framework.allocationsPerStep, 2)) allocations/step, " : "")
          + "peak RSS so far \(peak.map { "\(fixed(Double($0) / 1024, 1)) MiB" } ?? "unknown")")
}
var rows: [WorkloadResult] = []
for (workload, (framework, peak)) in zip(workloads, frameworkResults) {
    var reference: Throughput? = nil
    if options.reference {
        do {
            reference = try referenceThroughput(workload, data: data, repetitions: options.repetitions, scale: options.scale)
        } catch {
            fputs("bench: Reference failed on \(workload.key): \(error)\n", stderr)
        }
    }
    let row = WorkloadResult(workload: workload, framework: framework, frameworkPeakKiB: peak, reference: reference,
                             pytorch: pytorchFigures[workload.key] ?? workload.pytorchIssueFigure)
    rows.append(row)
    if reference != nil { print(row.line) }
}

var products: [ProductResult] = []
if options.gemm {
    print()
    print(ProductResult.header)
    for n in [64, 256, 1024] {
        let result = productThroughput(n: n, repetitions: max(options.repetitions, 5), seconds: 0.2 * options.scale)
        products.append(result)
        print(result.line)
    }
}

let report = Report(build: build, pytorchLabel: pytorchLabel, loadBefore: loadBefore, loadAfter: loadAverage(),
                    workloads: rows, products: products, peakKiB: statusKilobytes("VmHWM"),
                    repetitions: options.repetitions, scale: options.scale)
print()
print(report.table)
if let path = options.json {
    if let error = writeTextAtomically(report.json, to: path) {
        fputs("bench: \(error)\n", stderr)
        exit(1)
    }
    print("wrote \(path)")
}

