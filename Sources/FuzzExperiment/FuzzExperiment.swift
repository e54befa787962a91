// A libFuzzer target for experiment files: bytes → `Experiment.decode` (parse, typed fields, validation) →
// for a file that decodes, the encode → decode round trip and, when the run is small, one epoch of both
// engines through `CompareCore.run` (shadow, parity) and the text, CSV and SVG reports. Every rejection
// must be a thrown `ExperimentError`; anything else (a trap, another error type, an engine error on a
// validated experiment, a round trip that changes the experiment) stops the fuzzer with the input saved.
//
// Built two ways (docs/hardening.md):
//   make fuzz     `-sanitize=fuzzer,address -DFUZZING`: libFuzzer's main calls LLVMFuzzerTestOneInput.
//   swift build   a plain executable that replays inputs given as files or folders, to reproduce a crash
//                 without libFuzzer: `swift run FuzzExperiment .build-fuzz/crash-…`.
import CompareCore
import Foundation

/// The most work one fuzzed run may do: parameters × (train + test points), for one epoch. Larger
/// experiments are decoded and validated only, so that the fuzzer keeps its pace.
let runBudget = 20_000

/// Set FUZZ_STRICT_PARITY=1 to stop on a parity failure as well (one epoch should always agree).
let strictParity = ProcessInfo.processInfo.environment["FUZZ_STRICT_PARITY"] == "1"

/// How far one input got.
enum Outcome: String, CaseIterable {
    case rejected = "rejected with an ExperimentError"
    case tooLargeToRun = "valid, too large to run"
    case ran = "valid, ran one epoch in both engines"
}

@discardableResult
func fuzzOne(_ data: Data) -> Outcome {
    let experiment: Experiment
    do {
        experiment = try Experiment.decode(data, file: "fuzz.json")
    } catch is ExperimentError {
        return .rejected
    } catch {
        fatalError("decode threw \(type(of: error)), not ExperimentError: \(error)")
    }

    do {
        let again = try Experiment.decode(try experiment.encoded(), file: "fuzz.json")
        guard again == experiment else { fatalError("encode → decode changed the experiment") }
    } catch {
        fatalError("a valid experiment does not survive encode → decode: \(error)")
    }

    var small = experiment
    small.training.epochs = 1
    small.training.orders = small.training.orders.map { Array($0.prefix(1)) }
    small.trace = small.trace.map { TraceRequest(steps: min($0.steps, 3)) }
    let points = small.data.trainCount + small.data.testCount
    let (work, overflow) = small.model.parameterCount.multipliedReportingOverflow(by: points)
    guard !overflow, work <= runBudget else { return .tooLargeToRun }
    do {
        try small.validate(file: "fuzz.json")
    } catch {
        fatalError("one epoch of a valid experiment is invalid: \(error)")
    }
    do {
        let result = try CompareCore.run(RunRequest(experiments: [PlannedExperiment(small)], rounds: 1, parallel: false,
                                                    keepRoundsForPlots: true))
        _ = textReport(result.report)
        _ = result.report.jsonValue.text()
        for record in result.report.experiments {
            _ = csvTraces(record)
            _ = curvesSVG(record)
            _ = differencesSVG(record, tolerances: result.report.tolerances)
        }
        _ = htmlReport(result.report, figures: [:])
        if strictParity && !result.report.passed {
            fatalError("parity fails after one epoch: \(result.report.experiments.first?.rounds.first?.parity.reason ?? "")")
        }
    } catch {
        fatalError("an engine refused a validated experiment: \(error)")
    }
    return .ran
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzOne(bytes.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
}

/// libFuzzer's driver (compiler-rt's FuzzerDriver.cpp): parses the libFuzzer flags and runs `callback`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable target with `--defsym main=<Target>_main` (the entry point it renames so
/// that tests can link the module), which shadows libFuzzer's own `main`; this is that entry point, and it
/// hands over to libFuzzer's driver.
@_cdecl("FuzzExperiment_main")
public func fuzzExperimentMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return withUnsafeMutablePointer(to: &count) { countPointer in
        withUnsafeMutablePointer(to: &arguments) { argumentsPointer in
            runFuzzerDriver(countPointer, argumentsPointer, { bytes, size in fuzzerTestOneInput(bytes, size) })
        }
    }
}
#else
/// Replays each file given, and every file in each folder given, through the fuzz target; with
/// `--print-dictionary`, prints libFuzzer's dictionary of the format's words (derived from the format's one
/// declaration of its kinds and keys: CompareCore's Kinds.swift) instead.
@main
struct Replay {
    static func main() throws {
        if CommandLine.arguments.dropFirst().first == "--print-dictionary" {
            print("# libFuzzer dictionary for experiment files, printed by `FuzzExperiment --print-dictionary`.")
            for token in ["{", "}", "[", "]", ":", ",", "true", "false", "null", "1e999", "-1", "0.5", "1e-308"] { print("\"\(token)\"") }
            for word in experimentFormatWords { print("\"\\\"\(word)\\\"\"") }
            return
        }
        var files: [URL] = []
        for argument in CommandLine.arguments.dropFirst() {
            let url = URL(fileURLWithPath: argument)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
                files += names.map { url.appendingPathComponent($0) }
            } else {
                files.append(url)
            }
        }
        var counts: [Outcome: Int] = [:]
        for file in files {
            counts[fuzzOne(try Data(contentsOf: file)), default: 0] += 1
        }
        let tally = Outcome.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        print("FuzzExperiment: \(files.count) input(s) replayed, no crash: \(tally)")
    }
}
#endif
