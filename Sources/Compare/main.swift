import ArgumentParser
import CompareCore
import Foundation

// `compare`: trains identical networks in Framework and Reference and reports their parity.
// Exit status: 0 parity holds, 1 parity fails (or an engine could not run), 2 bad input or usage.

/// An error the user caused (a bad file, flag or output path): one line on stderr, exit status 2.
struct UsageFailure: Error, CustomStringConvertible {
    let description: String
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Train identical networks in Framework and Reference from shared seeds and report their parity.",
        discussion: """
        Exit status: 0 when parity holds in every round, 1 when it fails, 2 for bad input or usage.
        Parity: every epoch's train and test loss agree within |a − b| ≤ atol + rtol·max(|a|, |b|), and
        accuracies within --accuracy-tolerance. Beyond that, a difference up to --amplification times the
        run's own sensitivity to rounding (Framework against itself from initial parameters nudged by one
        ulp) is accepted as amplified rounding, and reported with the epoch the trajectories separated.
        When both engines diverge (NaN/∞ loss) at the same epoch and batch that is parity too (reported as
        such); one diverging alone is a failure.
        """,
        subcommands: [Run.self, Merge.self, Record.self],
        defaultSubcommand: Run.self)
}

struct OutputOptions: ParsableArguments {
    @Option(name: .customLong("json"), help: ArgumentHelp("Write the whole report as JSON to this file.", valueName: "OUT"))
    var json: String?

    @Option(name: .customLong("csv"), help: ArgumentHelp("Write per-epoch traces as CSV files into this folder.", valueName: "DIR"))
    var csv: String?

    @Option(name: .customLong("plots"), help: ArgumentHelp("Write SVG figures into this folder.", valueName: "DIR"))
    var plots: String?

    /// Checks before any work that every output place can be written, so a long run never ends in a
    /// write error: the JSON file's folder must exist and be writable; CSV and plot folders are created.
    func prepare() throws {
        if let json {
            let folder = URL(fileURLWithPath: json).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
                throw UsageFailure(description: "--json \(json): folder \(folder) does not exist")
            }
            guard isDirectory.boolValue else {
                throw UsageFailure(description: "--json \(json): \(folder) is a file, not a folder")
            }
            if FileManager.default.fileExists(atPath: json, isDirectory: &isDirectory), isDirectory.boolValue {
                throw UsageFailure(description: "--json \(json): is a folder; expected a file name")
            }
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw UsageFailure(description: "--json \(json): folder \(folder) is not writable")
            }
        }
        for (flag, path) in [("--csv", csv), ("--plots", plots)] {
            guard let path else { continue }
            do { try makeDirectory(URL(fileURLWithPath: path)) } catch { throw UsageFailure(description: "\(flag) \(error)") }
            guard FileManager.default.isWritableFile(atPath: path) else {
                throw UsageFailure(description: "\(flag) \(path): folder is not writable")
            }
        }
    }
}

extension CompareCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a suite or experiment files in both engines (the default subcommand).")

        @Option(help: ArgumentHelp("Built-in suite: default (the original task's network, 10 rounds) or seeds (every configuration of the original reports).", valueName: "NAME"))
        var suite: String = "default"

        @Option(name: .customLong("experiment"), help: ArgumentHelp("Run this experiment file instead of a suite (repeatable).", valueName: "FILE"))
        var experiments: [String] = []

        @Option(help: ArgumentHelp("Run only the suite's experiments whose name contains this text (repeatable).", valueName: "TEXT"))
        var only: [String] = []

        @Option(help: "Rounds per experiment, with seeds seed + r (default: 10 for a suite, 1 for files; at most 10000).")
        var rounds: Int?

        /// Every round's traces are kept for the report, so the count is bounded.
        static let maxRounds = 10_000

        @Option(help: "Override the seed of every experiment.") var seed: UInt64?
        @Option(help: "Override the number of epochs.") var epochs: Int?
        @Option(help: "Override the batch size.") var batchSize: Int?
        @Option(help: "Override the learning rate.") var lr: Double?

        @Option(help: "Relative tolerance on losses.") var rtol: Double = Tolerances().rtol
        @Option(help: "Absolute tolerance on losses.") var atol: Double = Tolerances().atol
        @Option(help: "Largest accepted difference of accuracies (fractions).") var accuracyTolerance: Double = Tolerances().accuracy
        @Option(help: "Accept loss differences up to this many times the one-ulp shadow's (0: never).")
        var amplification: Double = Tolerances().amplification

        @Option(help: ArgumentHelp("Run only the K-th of N slices of the (experiment, round) jobs; join the JSON reports with `compare merge`.", valueName: "K/N"))
        var shard: String?

        @Flag(help: "Run rounds one after another instead of in parallel (the results are the same).")
        var sequential = false

        @Option(help: ArgumentHelp("Self-check: add this to Reference's first weight so that parity must fail (e.g. 1e-6).", valueName: "DELTA"))
        var plantDifference: Double?

        @OptionGroup var output: OutputOptions

        func validate() throws {
            if let plantDifference, !(plantDifference.isFinite && plantDifference != 0) {
                throw ValidationError("--plant-difference must be a finite non-zero number, got \(plantDifference)")
            }
            if let rounds, !(1...Self.maxRounds).contains(rounds) {
                throw ValidationError("--rounds must be from 1 to \(Self.maxRounds), got \(rounds)")
            }
            if let shard, Shard(shard) == nil { throw ValidationError("--shard must be K/N with 1 ≤ K ≤ N, got \(shard)") }
            for (name, value) in [("--rtol", rtol), ("--atol", atol), ("--accuracy-tolerance", accuracyTolerance),
                                 ("--amplification", amplification)]
            where !(value >= 0 && value.isFinite) {
                throw ValidationError("\(name) must be a finite number ≥ 0, got \(value)")
            }
            if Suite(rawValue: suite) == nil {
                throw ValidationError("--suite must be one of \(Suite.allCases.map(\.rawValue).joined(separator: ", ")), got \(suite)")
            }
        }

        func planned() throws -> [PlannedExperiment] {
            var plan: [PlannedExperiment]
            if experiments.isEmpty {
                plan = Suite(rawValue: suite)!.experiments
                if !only.isEmpty {
                    plan = plan.filter { planned in only.contains { planned.experiment.name.contains($0) } }
                    if plan.isEmpty {
                        throw UsageFailure(description: "--only \(only.joined(separator: ", ")): no experiment of suite \(suite) matches; it has "
                                           + Suite(rawValue: suite)!.experiments.map(\.experiment.name).joined(separator: ", "))
                    }
                }
            } else {
                plan = try experiments.map { PlannedExperiment(try Experiment.load(contentsOf: URL(fileURLWithPath: $0))) }
            }
            let overridden = seed != nil || epochs != nil || batchSize != nil || lr != nil
            for index in plan.indices where overridden {
                var e = plan[index].experiment
                if let seed { e.seed = seed }
                if let epochs { e.training.epochs = epochs }
                if let batchSize { e.training.batchSize = batchSize }
                if let lr {
                    switch e.optimizer {
                    case var .sgd(s): s.lr = lr; e.optimizer = .sgd(s)
                    case var .adam(a): a.lr = lr; e.optimizer = .adam(a)
                    }
                }
                let file = experiments.isEmpty ? "suite \(suite)" : experiments[index]
                try e.validate(file: file + " (with command-line overrides)")
                plan[index].experiment = e
            }
            return plan
        }

        func run() throws {
            let plan: [PlannedExperiment]
            do { plan = try planned() } catch { throw UsageFailure(description: "\(error)") }
            try output.prepare()
            let tolerances = Tolerances(rtol: rtol, atol: atol, accuracy: accuracyTolerance, amplification: amplification)
            let result: RunResult
            do {
                result = try CompareCore.run(plan, rounds: rounds ?? (experiments.isEmpty ? 10 : 1), tolerances: tolerances,
                                             shard: shard.flatMap(Shard.init), parallel: !sequential, plantedDifference: plantDifference,
                                             keepFirstRounds: output.plots != nil)
            } catch {
                reportError("engine error: \(error)")
                throw ExitCode(1)
            }
            print(textReport(result.report))
            try writeOutputs(result, output)
            if !result.report.passed { throw ExitCode(1) }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join the JSON reports of shards (`--shard K/N`) into one report and print it.")

        @Argument(help: ArgumentHelp("JSON reports written by `compare --json`.", valueName: "REPORT"))
        var reports: [String]

        @OptionGroup var output: OutputOptions

        func validate() throws {
            if reports.isEmpty { throw ValidationError("give at least one report to merge") }
        }

        func run() throws {
            try output.prepare()
            var loaded: [(file: String, report: Report)] = []
            for path in reports {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw UsageFailure(description: "\(path): cannot read the file")
                }
                do {
                    loaded.append((path, try Report.decoder().decode(Report.self, from: data)))
                } catch {
                    throw UsageFailure(description: "\(path): not a compare report: \(describeDecodingError(error))")
                }
            }
            let merged: Report
            do { merged = try Report.merge(loaded) } catch { throw UsageFailure(description: "\(error)") }
            print(textReport(merged))
            try writeOutputs(RunResult(report: merged, firstRounds: [:]), output)
            if !merged.passed { throw ExitCode(1) }
        }
    }
}

extension CompareCommand {
    struct Record: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record regression fixtures from Framework into fixtures/recorded (PyTorch fixtures are never re-recorded).")

        @Option(help: ArgumentHelp("missing: only cases without a file; failed: cases that no longer match; all: every case.", valueName: "MODE"))
        var mode: String = RecordMode.missing.rawValue

        @Option(help: ArgumentHelp("The folder of recorded fixtures.", valueName: "DIR"))
        var fixtures: String = "fixtures/recorded"

        @Option(name: .customLong("case"), help: ArgumentHelp("Record only this case (repeatable).", valueName: "NAME"))
        var cases: [String] = []

        func validate() throws {
            if RecordMode(rawValue: mode) == nil {
                throw ValidationError("--mode must be one of \(RecordMode.allCases.map(\.rawValue).joined(separator: ", ")), got \(mode)")
            }
            let known = Set(fixtureCases.map(\.name))
            for name in cases where !known.contains(name) {
                throw ValidationError("--case \(name): no such fixture case; known: \(known.sorted().joined(separator: ", "))")
            }
        }

        func run() throws {
            let command = "swift run compare record --mode \(mode)" + cases.map { " --case \($0)" }.joined()
            do {
                let lines = try recordFixtures(mode: RecordMode(rawValue: mode)!, directory: URL(fileURLWithPath: fixtures),
                                               command: command, only: cases.isEmpty ? nil : Set(cases))
                lines.forEach { print($0) }
            } catch let error as OutputError {
                throw UsageFailure(description: "\(error)")
            }
        }
    }
}

/// A decoding error in one line with its coding path.
func describeDecodingError(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ keys: [CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text
    }
    func path(_ context: DecodingError.Context) -> String { path(context.codingPath) }
    switch error {
    case let .keyNotFound(key, context): return "\(path(context.codingPath + [key])): missing"
    case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
        let location = path(context)
        return location.isEmpty ? context.debugDescription : "\(location): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

/// Writes the JSON report, CSV traces and plots that were asked for, each file atomically.
func writeOutputs(_ result: RunResult, _ output: OutputOptions) throws {
    do {
        if let json = output.json {
            try writeAtomically(to: URL(fileURLWithPath: json)) { try Report.encoder().encode(result.report) }
        }
        if let csv = output.csv {
            for experiment in result.report.experiments {
                try writeAtomically(Data(csvTraces(experiment).utf8),
                                    to: URL(fileURLWithPath: csv).appendingPathComponent("\(experiment.name).csv"))
            }
        }
        if let plots = output.plots {
            let folder = URL(fileURLWithPath: plots)
            for experiment in result.report.experiments {
                try writeAtomically(Data(curvesSVG(experiment).utf8), to: folder.appendingPathComponent("\(experiment.name)-curves.svg"))
                guard let first = result.firstRounds[experiment.name], first.round.test.inputs.columns == 2 else { continue }
                let isDisk: Bool
                if case .disk = first.round.experiment.data { isDisk = true } else { isDisk = false }
                let test = first.round.test
                try writeAtomically(Data(predictionsSVG(name: experiment.name, test: test,
                                                        framework: try first.framework.predict(test.inputs),
                                                        reference: try first.reference.predict(test.inputs), disk: isDisk).utf8),
                                    to: folder.appendingPathComponent("\(experiment.name)-predictions.svg"))
                let grid = gridInputs(resolution: 200)
                let difference = decisionDifferenceSVG(name: experiment.name, resolution: 200,
                                                       framework: try first.framework.predict(grid),
                                                       reference: try first.reference.predict(grid), disk: isDisk)
                try writeAtomically(Data(difference.svg.utf8), to: folder.appendingPathComponent("\(experiment.name)-decision-difference.svg"))
            }
        }
    } catch let error as OutputError {
        throw UsageFailure(description: "\(error)")
    }
}

/// `text` on one line: line breaks and other control characters (which a file name, a JSON key or a type
/// name can hold) are written as escapes, so every error is exactly one line on stderr.
func oneLine(_ text: String) -> String {
    var result = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}":
            result += "\\u{\(String(scalar.value, radix: 16))}"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result
}

/// Writes `compare: <message>` as one line on stderr.
func reportError(_ message: String) {
    FileHandle.standardError.write(Data("compare: \(oneLine(message))\n".utf8))
}

/// Parses, runs, and maps every failure to its exit status: help 0, parity failure 1, usage or input 2.
func main() -> Never {
    do {
        var command = try CompareCommand.parseAsRoot()
        try command.run()
        exit(0)
    } catch let failure as UsageFailure {
        reportError(failure.description)
        exit(2)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        let status = CompareCommand.exitCode(for: error)
        if status == .success {
            CompareCommand.exit(withError: error)  // --help, --version: prints and exits 0
        }
        // ArgumentParser's message can run to several lines (usage, suggestions): keep the first.
        let message = CompareCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        reportError("\(message) (see compare --help)")
        exit(2)
    }
}

main()
