import ArgumentParser
import CompareCore
import Foundation
import Framework

// `compare`: trains identical networks in Framework, Reference and any outside engine, and judges their parity.
// Exit status: 0 parity holds, 1 parity fails, 2 bad input, usage, an engine that could not run, or an output
// that could not be written, 3 nothing fails but a round is unverified.

/// An error the user caused (a bad file, flag or output path): one line on stderr, exit status 2.
struct UsageFailure: Error, CustomStringConvertible {
    let description: String
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Train identical networks in Framework, Reference and outside engines from shared seeds, and judge their parity.",
        discussion: """
        Every round of every experiment is trained from the same data, initial parameters and batch order in Framework (pure Swift), in Reference (GSL BLAS, the referee) and in every outside engine given with --engine; each engine's per-epoch losses and accuracies are judged against the referee's.

        The verdict rests on replay: the referee recomputes every step and every epoch each engine gives from the engine's own state (Framework: every step; an outside engine: the steps and per-epoch parameters its trace holds), each tensor within a tolerance derived from that one computation, and recomputes every epoch's evaluation from the engine's parameters. Free-running curves are compared too, up to the comparability horizon (where Framework's one-ulp shadow parts from it): every epoch's train and test loss within |a − b| ≤ atol + rtol·max(|a|, |b|), accuracies within --accuracy-tolerance. Past the horizon a round with nothing replayed is unverified. docs/verdict.md has the rule.

        Exit status: 0 when parity holds in every round, 1 when it fails, 2 for bad input or usage, an engine that could not run, or an output that could not be written, 3 when nothing failed but a round is unverified (past its horizon, an engine gave neither steps nor per-epoch parameters to replay).
        """,
        version: BuildInfo.current.description,
        subcommands: [Run.self, Check.self, Locate.self, Gradcheck.self, Export.self, Merge.self, Record.self],
        defaultSubcommand: Run.self)
}

// MARK: - Shared options

struct ExperimentOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Built-in suite: default (the original task's network, 10 rounds) or seeds (every configuration of the original reports).", valueName: "NAME"))
    var suite: String = "default"

    @Option(name: .customLong("experiment"), help: ArgumentHelp("Run this experiment file instead of a suite (repeatable).", valueName: "FILE"))
    var experiments: [String] = []

    @Option(help: ArgumentHelp("Run only the suite's experiments whose name contains this text (repeatable).", valueName: "TEXT"))
    var only: [String] = []

    @Option(parsing: .unconditional, help: "Rounds per experiment, seeds seed + r for r = 0…N−1 (default: 10 for a suite, 1 for files; 1 to 10000).")
    var rounds: Int?

    /// Every round's traces are kept for the report, so the count is bounded.
    static let maxRounds = 10_000

    @Option(parsing: .unconditional, help: "Override the seed of every experiment.") var seed: UInt64?
    @Option(parsing: .unconditional, help: "Override the number of epochs.") var epochs: Int?
    @Option(parsing: .unconditional, help: "Override the batch size.") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Override the learning rate.") var lr: Double?

    func validate() throws {
        if let rounds, !(1...Self.maxRounds).contains(rounds) {
            throw ValidationError("--rounds must be from 1 to \(Self.maxRounds), got \(rounds)")
        }
        if !experiments.isEmpty && !only.isEmpty {
            throw ValidationError("--only selects experiments of a suite; with --experiment, give only the files to run")
        }
        if experiments.isEmpty && Suite(rawValue: suite) == nil {
            throw ValidationError("--suite must be one of \(Suite.allCases.map(\.rawValue).joined(separator: ", ")), got \(suite)")
        }
    }

    var overridden: Bool { seed != nil || epochs != nil || batchSize != nil || lr != nil }

    /// The experiments, with the overrides applied and validated; each with the file or suite it came from.
    func planned() throws -> [(planned: PlannedExperiment, source: String)] {
        var plan: [(PlannedExperiment, String)]
        if experiments.isEmpty {
            let suite = Suite(rawValue: suite)!
            plan = suite.experiments.map { ($0, "suite \(suite.rawValue)") }
            if !only.isEmpty {
                plan = plan.filter { planned in only.contains { planned.0.experiment.name.contains($0) } }
                if plan.isEmpty {
                    throw UsageFailure(description: "--only \(only.joined(separator: ", ")): no experiment of suite \(suite.rawValue) matches; it has "
                                       + suite.experiments.map(\.experiment.name).joined(separator: ", "))
                }
            }
            let resolved = plan.map(\.0).resolvingPyTorch()
            plan = zip(resolved, plan).map { ($0, $1.1) }
        } else {
            plan = try experiments.map { (PlannedExperiment(try Experiment.load(contentsOf: URL(fileURLWithPath: $0))), $0) }
        }
        for index in plan.indices where overridden {
            var e = plan[index].0.experiment
            if let seed { e.seed = seed }
            if let epochs {
                e.training.epochs = epochs
                e.training.orders = nil  // given orders are per epoch; with another count, shuffle from the seed
            }
            if let batchSize { e.training.batchSize = batchSize }
            if let lr { e.optimizer.lr = lr }
            try e.validate(file: plan[index].1 + " (with command-line overrides)")
            plan[index].0.experiment = e
        }
        try OutputPlan.checkNames(plan.map { ($0.0.experiment.name, $0.1) })
        return plan
    }

    var defaultRounds: Int { rounds ?? (experiments.isEmpty ? 10 : 1) }
}

struct ToleranceOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Relative tolerance on losses, 0 to 1e-6.") var rtol: Double = Tolerances().rtol
    @Option(parsing: .unconditional, help: "Absolute tolerance on losses, 0 to 1e-6.") var atol: Double = Tolerances().atol
    @Option(parsing: .unconditional, help: "Largest accepted difference of accuracies (fractions), 0 to 0.01.")
    var accuracyTolerance: Double = Tolerances().accuracy
    var tolerances: Tolerances { Tolerances(rtol: rtol, atol: atol, accuracy: accuracyTolerance) }

    func validate() throws {
        if let problem = tolerances.rangeProblem { throw ValidationError(problem) }
    }
}

struct OutputOptions: ParsableArguments {
    @Option(name: .customLong("json"), help: ArgumentHelp("Write the whole report as JSON to this file (its folder is created).", valueName: "OUT"))
    var json: String?

    @Option(name: .customLong("csv"), help: ArgumentHelp("Write per-epoch traces as CSV files, and summary.csv, into this folder.", valueName: "DIR"))
    var csv: String?

    @Option(name: .customLong("plots"), help: ArgumentHelp("Write SVG figures into this folder.", valueName: "DIR"))
    var plots: String?

    @Option(name: .customLong("report"), help: ArgumentHelp("Write one self-contained HTML page, DIR/index.html, with the tables and the figures.", valueName: "DIR"))
    var report: String?

    var request: OutputRequest { OutputRequest(json: json, csv: csv, plots: plots, report: report) }
}

struct PlantOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Self-check: add this to Reference's first weight so that parity must fail (e.g. 1e-6).", valueName: "DELTA"))
    var plantDifference: Double?

    func validate() throws {
        if let plantDifference, !(plantDifference.isFinite && plantDifference != 0) {
            throw ValidationError("--plant-difference must be a finite non-zero number, got \(plantDifference)")
        }
    }
}

struct EngineOptions: ParsableArguments {
    @Option(name: .customLong("engine"), help: ArgumentHelp("An outside engine, run as COMMAND <experiment.json> <trace.json> for every round (repeatable; docs/trace-format.md).", valueName: "NAME=COMMAND"))
    var engines: [String] = []

    @Option(parsing: .unconditional, help: "Seconds an outside engine may take per round before it is killed (default 600).")
    var engineTimeout: Double = CommandEngine.defaultTimeout

    func validate() throws {
        guard engineTimeout.isFinite && engineTimeout > 0 && engineTimeout <= 86_400 else {
            throw ValidationError("--engine-timeout must be more than 0 and at most 86400 seconds, got \(formatNumber(engineTimeout))")
        }
    }

    func commandEngines() throws -> [CommandEngine] {
        var names = Set<String>()
        return try engines.map { specification in
            let engine: CommandEngine
            do { engine = try CommandEngine(specification: specification, timeout: engineTimeout) } catch let error as EngineSpecificationError {
                throw UsageFailure(description: error.message)
            }
            guard names.insert(engine.name).inserted else { throw UsageFailure(description: "--engine \(engine.name) is given twice") }
            return engine
        }
    }
}

/// The bytes free to an unprivileged user on the file system holding `path` (or its nearest existing parent), or
/// nil when it cannot be told.
func freeBytes(_ path: String) -> Double? {
    var url = URL(fileURLWithPath: path).standardizedFileURL
    while !FileManager.default.fileExists(atPath: url.path) && url.path != "/" { url.deleteLastPathComponent() }
    var status = statvfs()
    guard statvfs(url.path, &status) == 0 else { return nil }
    return Double(status.f_bavail) * Double(status.f_frsize)
}

// MARK: - Running and reporting

/// Runs `request`, writes the outputs, then prints the text report, and returns the exit status; each
/// failure becomes the exit status it means (see the file comment), with the verdict in the message when a
/// run finished but its report could not be delivered.
func runAndReport(_ request: RunRequest, outputs: OutputRequest, traceFolder: String?, inputs: [(String, String)],
                  text: (Report) -> String = textReport) throws -> Int32 {
    var request = request
    let estimate = RunEstimate(request, writesJSON: outputs.json != nil)
    if let problem = estimate.problem { throw UsageFailure(description: "refused before training: \(problem)") }
    var plan = OutputPlan()
    for (path, what) in inputs { plan.addInput(path, what) }
    do {
        try outputs.plan(experiments: request.experiments.map(\.experiment.name), into: &plan)
        if let traceFolder {
            guard !traceFolder.isEmpty else { throw OutputError(path: "", reason: "--trace-out: the path is empty") }
            plan.addFolder(traceFolder, flag: "--trace-out")
            request.traceFolder = URL(fileURLWithPath: traceFolder)
            // Every trace file the run will write, so that one colliding with an input or another output is refused now.
            for planned in request.experiments {
                let names = [EngineName.framework, EngineName.reference, EngineName.shadow] + request.engines.map(\.name) + planned.engines.map(\.name)
                for round in 0..<request.rounds {
                    for engine in names + (round == 0 ? (request.storedTraces[planned.experiment.name] ?? []).map(\.name) : []) {
                        plan.addFile(URL(fileURLWithPath: traceFolder).appendingPathComponent(
                            OutputName.trace(experiment: planned.experiment.name, round: round, engine: engine)).path, flag: "--trace-out")
                    }
                }
            }
        }
        try plan.prepare()
    } catch let error as OutputError {
        throw UsageFailure(description: "\(error)")
    }
    request.keepRoundsForPlots = outputs.plots != nil || outputs.report != nil
    if let note = BuildInfo.current.slowBuildNote, isatty(STDERR_FILENO) != 0 { reportError(note) }
    let result: RunResult
    do {
        result = try CompareCore.run(request)
    } catch let error as EngineError {
        throw UsageFailure(description: "\(error)")
    } catch let error as OutputError {
        throw UsageFailure(description: "\(error)")
    }
    let report = result.report
    let verdict = "the run's verdict was \(report.status.rawValue.uppercased()) (parity in \(report.rounds.filter(\.passed).count) of \(report.rounds.count) rounds)"
    do {
        _ = try writeOutputs(result, outputs)
    } catch let error as OutputError {
        throw OutputFailure(description: "\(error); \(verdict); the text report was not printed")
    }
    do {
        try writeStandardOutput(text(report) + "\n")
    } catch let failure as OutputFailure {
        throw OutputFailure(description: "\(failure.description); \(verdict)")
    }
    return report.status.exitStatus
}

extension VerdictStatus {
    /// 0 pass, 1 fail, 3 unverified (2 is bad input).
    var exitStatus: Int32 { self == .pass ? 0 : self == .fail ? 1 : 3 }
}

extension CompareCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a suite or experiment files in every engine and judge their parity (the default subcommand).")

        @OptionGroup var experiment: ExperimentOptions
        @OptionGroup var tolerance: ToleranceOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var engine: EngineOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Run only the K-th of N slices of the (experiment, round) jobs; join the JSON reports with `compare merge`.", valueName: "K/N"))
        var shard: String?

        @Flag(help: "Run rounds one after another instead of in parallel (the results are the same).")
        var sequential = false

        @OptionGroup var plant: PlantOptions

        @Option(name: .customLong("trace-out"), help: ArgumentHelp("Write every engine's trace of every round (docs/trace-format.md) into this folder.", valueName: "DIR"))
        var traceOut: String?

        func validate() throws {
            if let shard, Shard(shard) == nil { throw ValidationError("--shard must be K/N with 1 ≤ K ≤ N, got \(shard)") }
        }

        @Flag(inversion: .prefixedNo, help: "Locate where a failing engine first differs from Reference, and name the convention that explains it.")
        var locate = true

        func run() throws {
            let (request, inputs) = try runRequest(experiment: experiment, tolerance: tolerance, engine: engine, shard: shard.flatMap(Shard.init),
                                                   sequential: sequential, plantDifference: plant.plantDifference, locate: locate)
            throw ExitCode(try runAndReport(request, outputs: output.request, traceFolder: traceOut, inputs: inputs))
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Judge stored traces (any engine's, docs/trace-format.md) against Reference and Framework on their experiments.",
            discussion: "Each trace is judged against the experiment its \"experiment\" field names, round 0 of that file (an exported round), with the same rule and tolerances as `compare run`. Exit status 0 when every trace has parity, 1 when one does not, 2 for a bad file, 3 when nothing differs but part of a run could not be verified.")

        @Option(name: .customLong("experiment"), help: ArgumentHelp("An experiment file, e.g. one written by `compare export` (repeatable).", valueName: "FILE"))
        var experiments: [String] = []

        @Option(name: .customLong("trace"), help: ArgumentHelp("A trace to judge, optionally named: numpy=T.json (repeatable).", valueName: "[NAME=]FILE"))
        var traces: [String] = []

        @OptionGroup var tolerance: ToleranceOptions
        @OptionGroup var output: OutputOptions

        @Flag(inversion: .prefixedNo, help: "Locate where a failing trace first differs from Reference, and name the convention that explains it.")
        var locate = true

        func validate() throws {
            if experiments.isEmpty { throw ValidationError("give the experiment the traces are of with --experiment FILE") }
            if traces.isEmpty { throw ValidationError("give at least one trace to judge with --trace FILE") }
        }

        func run() throws {
            var loaded: [Experiment] = []
            do {
                loaded = try experiments.map { try Experiment.load(contentsOf: URL(fileURLWithPath: $0)) }
                try OutputPlan.checkNames(zip(loaded, experiments).map { ($0.name, $1) })
            } catch { throw UsageFailure(description: "\(error)") }
            var inputs = experiments.map { ($0, "the experiment file \($0)") }
            let stored = try storedTraces(traces, among: loaded, inputs: &inputs)
            let planned = loaded.filter { stored[$0.name] != nil }.map { PlannedExperiment($0) }
            let request = RunRequest(experiments: planned, rounds: 1, tolerances: tolerance.tolerances, storedTraces: stored, locate: locate)
            throw ExitCode(try runAndReport(request, outputs: output.request, traceFolder: nil, inputs: inputs))
        }
    }

    struct Locate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find where each failing engine first differs from Reference (step, tensor, element), whether that operation is at fault, and the convention that explains it.",
            discussion: """
            Takes the inputs of `run` and `check` (a suite or experiment files, --engine, --trace). For the first failing round of each experiment, the referee replays every step of the failing engine from that engine's own state and compares the tensors in computation order (outputs, loss, gradients, optimizer state, parameters), each within a tolerance derived from the computation (a few ulp times the magnitude of what is summed). It reports the first tensor beyond it, recomputes that one operation from the engine's own inputs to tell a local fault from a propagated one, and runs the referee once per well-known convention variant to name the one the engine reproduces. Outside engines are asked for their steps with "trace": {"steps": K}. `run` and `check` do the same for failing rounds (--no-locate to skip).

            Exit status: 0 when every engine agrees with Reference (nothing to locate), 1 when one differs, 2 for bad input or an engine that could not run, 3 when nothing differs but part of a run could not be verified.
            """)

        @OptionGroup var experiment: ExperimentOptions
        @OptionGroup var engine: EngineOptions

        @Option(name: .customLong("trace"), help: ArgumentHelp("A stored trace to locate, optionally named: numpy=T.json (repeatable; its experiment among the --experiment files).", valueName: "[NAME=]FILE"))
        var traces: [String] = []

        @OptionGroup var tolerance: ToleranceOptions
        @OptionGroup var plant: PlantOptions
        @OptionGroup var output: OutputOptions

        @Flag(help: "Run rounds one after another instead of in parallel (the results are the same).")
        var sequential = false

        func run() throws {
            var (request, inputs) = try runRequest(experiment: experiment, tolerance: tolerance, engine: engine, shard: nil,
                                                   sequential: sequential, plantDifference: plant.plantDifference, locate: true)
            if !traces.isEmpty {
                let stored = try storedTraces(traces, among: request.experiments.map(\.experiment), inputs: &inputs)
                for (name, engines) in stored { request.storedTraces[name, default: []] += engines }
            }
            throw ExitCode(try runAndReport(request, outputs: output.request, traceFolder: nil, inputs: inputs, text: locateReport))
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write each round of a suite or of experiment files as a self-contained experiment file: explicit data, initial parameters and batch orders.",
            discussion: "Writes DIR/<name>.round-<r>.experiment.json for every experiment and round. The files need no random generator: give them to your own engine, then judge its traces with `compare check`. `compare --experiment` on an exported file gives bit for bit the traces of that round.")

        @OptionGroup var experiment: ExperimentOptions

        @Option(help: ArgumentHelp("The folder to write the experiment files into (created).", valueName: "DIR"))
        var out: String

        @Option(name: .customLong("trace-out"), help: ArgumentHelp("Also train each round in Framework and Reference and write their traces into this folder.", valueName: "DIR"))
        var traceOut: String?

        func run() throws {
            let planned: [(planned: PlannedExperiment, source: String)]
            do { planned = try experiment.planned() } catch let error as UsageFailure { throw error } catch { throw UsageFailure(description: "\(error)") }
            let rounds = experiment.defaultRounds
            var plan = OutputPlan()
            for (_, source) in planned where !source.hasPrefix("suite ") { plan.addInput(source, "the experiment file \(source)") }
            plan.addFolder(out, flag: "--out")
            if let traceOut { plan.addFolder(traceOut, flag: "--trace-out") }
            for (item, _) in planned {
                for r in 0..<rounds {
                    plan.addFile(URL(fileURLWithPath: out).appendingPathComponent(OutputName.exported(experiment: item.experiment.name, round: r)).path,
                                 flag: "--out")
                    if let traceOut {
                        for engine in [EngineName.framework, EngineName.reference] {
                            plan.addFile(URL(fileURLWithPath: traceOut).appendingPathComponent(
                                OutputName.trace(experiment: item.experiment.name, round: r, engine: engine)).path, flag: "--trace-out")
                        }
                    }
                }
            }
            // Every round of an experiment has the same shape, so round 0's file tells the size of each (within a
            // few digits): refused before anything is written when one would exceed what `compare --experiment`
            // reads, or all of them the free space of --out.
            do { try plan.check() } catch let error as OutputError { throw UsageFailure(description: "\(error)") }
            var firstRounds: [Data] = []
            for (item, source) in planned {
                let data = try MaterializedRound(item.experiment, round: 0).exported.encoded()
                if data.count > Experiment.maxFileBytes {
                    throw UsageFailure(description: "\(source): refused before writing: experiment \(item.experiment.name)'s exported round is "
                                       + "\(data.count) bytes, more than the \(Experiment.maxFileBytes) that compare --experiment reads "
                                       + "(fewer data points, epochs or parameters)")
                }
                firstRounds.append(data)
            }
            let total = firstRounds.reduce(0.0) { $0 + Double($1.count) * Double(rounds) }
            if let free = freeBytes(out), total > free {
                throw UsageFailure(description: "--out \(out): refused before writing: \(counted(rounds, "round")) of "
                                   + "\(counted(planned.count, "experiment")) would take about \(bytes(total)), more than the \(bytes(free)) free there")
            }
            do { try plan.prepare() } catch let error as OutputError { throw UsageFailure(description: "\(error)") }
            var lines: [String] = []
            for (k, (item, source)) in planned.enumerated() {
                for r in 0..<rounds {
                    let round = MaterializedRound(item.experiment, round: r)
                    let file = URL(fileURLWithPath: out).appendingPathComponent(OutputName.exported(experiment: item.experiment.name, round: r))
                    do {
                        let data = r == 0 ? firstRounds[k] : try round.exported.encoded()
                        guard data.count <= Experiment.maxFileBytes else {
                            throw UsageFailure(description: "\(source): experiment \(item.experiment.name)'s round \(r) is \(data.count) bytes, more than "
                                               + "the \(Experiment.maxFileBytes) that compare --experiment reads; rounds 0 to \(r - 1) were written")
                        }
                        try writeAtomically(data, to: file)
                        if let traceOut {
                            for engine in [FrameworkEngine(), ReferenceTrainingEngine()] as [TrainingEngine] {
                                let trace = Data(try engine.train(round).jsonValue.text().utf8)
                                guard trace.count <= Trace.maxFileBytes else {
                                    throw UsageFailure(description: "--trace-out: \(engine.name)'s trace of \(item.experiment.name) round \(r) is "
                                                       + "\(trace.count) bytes, more than the \(Trace.maxFileBytes) that compare check reads; it was not written")
                                }
                                try writeAtomically(trace, to: URL(fileURLWithPath: traceOut).appendingPathComponent(
                                    OutputName.trace(experiment: item.experiment.name, round: r, engine: engine.name)))
                            }
                        }
                    } catch let error as OutputError {
                        throw OutputFailure(description: "\(error)")
                    }
                    lines.append("\(file.path)  (\(item.experiment.name), round \(r), seed \(round.seed))")
                }
            }
            try writeStandardOutput(lines.joined(separator: "\n") + "\n")
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join the JSON reports of the shards of one run (`--shard K/N`), judge every round again, and print the report.",
            discussion: "The reports must be one complete set: every K of the same N exactly once, from the same run (experiments, seeds, overrides, rounds, engines, tolerances) and the same build. Verdicts written in the files are not trusted: each round is judged again from its traces.")

        @Argument(help: ArgumentHelp("JSON reports written by `compare --json`.", valueName: "REPORT"))
        var reports: [String]

        @OptionGroup var output: OutputOptions

        func validate() throws {
            if reports.isEmpty { throw ValidationError("give the shards' reports to merge") }
        }

        func run() throws {
            var loaded: [(file: String, report: Report)] = []
            for path in reports {
                do { loaded.append((path, try Report.load(contentsOf: URL(fileURLWithPath: path)))) } catch {
                    throw UsageFailure(description: "\(error)")
                }
            }
            let merged: Report
            do { merged = try Report.merge(loaded) } catch { throw UsageFailure(description: "\(error)") }
            var plan = OutputPlan()
            for path in reports { plan.addInput(path, "the report \(path)") }
            do {
                try output.request.plan(experiments: merged.experiments.map(\.name), into: &plan)
                try plan.prepare()
            } catch let error as OutputError { throw UsageFailure(description: "\(error)") }
            let verdict = "the merged verdict was \(merged.status.rawValue.uppercased())"
            do { _ = try writeOutputs(RunResult(report: merged), output.request) } catch let error as OutputError {
                throw OutputFailure(description: "\(error); \(verdict)")
            }
            do { try writeStandardOutput(textReport(merged) + "\n") } catch let failure as OutputFailure {
                throw OutputFailure(description: "\(failure.description); \(verdict)")
            }
            throw ExitCode(merged.status.exitStatus)
        }
    }

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
            if fixtures.isEmpty { throw ValidationError("--fixtures: the path is empty") }
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
                try writeStandardOutput(lines.joined(separator: "\n") + "\n")
            } catch let error as OutputError {
                throw UsageFailure(description: "\(error)")
            }
        }
    }
}

/// The request `run` and `locate` make of their options: the experiments (checked), the plant (checked to change
/// the weight it plants into), the outside engines, and the traces stored beside experiment files
/// (NAME.trace.json, NAME.torch.json: judged with round 0); with the input files `compare` must not overwrite.
func runRequest(experiment: ExperimentOptions, tolerance: ToleranceOptions, engine: EngineOptions, shard: Shard?, sequential: Bool,
                plantDifference: Double?, locate: Bool) throws -> (RunRequest, [(String, String)]) {
    let planned: [(planned: PlannedExperiment, source: String)]
    do { planned = try experiment.planned() } catch let error as UsageFailure { throw error } catch { throw UsageFailure(description: "\(error)") }
    let rounds = experiment.defaultRounds
    let jobs = planned.count * rounds
    if let shard, shard.index > jobs {
        throw UsageFailure(description: "--shard \(shard): this run has only \(jobs) (experiment, round) job\(jobs == 1 ? "" : "s"), so shard \(shard.index) would be empty")
    }
    if let delta = plantDifference {
        for (item, _) in planned {
            for r in 0..<rounds {
                let w = MaterializedRound(item.experiment, round: r).initialParameters[0].weight[0, 0]
                if w + delta == w {
                    throw UsageFailure(description: "--plant-difference \(delta) does not change the weight it plants into (\(w), "
                                       + "\(item.experiment.name) round \(r)): the smallest that does is \(smallestChange(of: w, positive: delta > 0)), "
                                       + "and a self-check needs one well above the tolerances, e.g. 1e-6")
                }
            }
        }
    }
    var stored: [String: [TrainingEngine]] = [:]
    var inputs = planned.filter { !$0.source.hasPrefix("suite ") }.map { ($0.source, "the experiment file \($0.source)") }
    for (item, source) in planned where !source.hasPrefix("suite ") {
        let base = source.hasSuffix(".experiment.json") ? String(source.dropLast(".experiment.json".count))
            : source.hasSuffix(".json") ? String(source.dropLast(".json".count)) : source
        for candidate in [base + ".trace.json", base + ".torch.json"] where FileManager.default.fileExists(atPath: candidate) {
            if experiment.overridden {
                reportError("note: \(candidate) is not judged: the command line overrides the experiment it traces")
                continue
            }
            let trace = try preload(candidate, item.experiment)
            stored[item.experiment.name, default: []].append(trace)
            inputs.append((candidate, "the trace file \(candidate)"))
        }
    }
    let request = RunRequest(experiments: planned.map(\.planned), rounds: rounds, tolerances: tolerance.tolerances, shard: shard,
                             parallel: !sequential, plantedDifference: plantDifference, engines: try engine.commandEngines(),
                             storedTraces: stored, locate: locate)
    return (request, inputs)
}

/// Stored traces (`--trace [NAME=]FILE`), each read and checked against the experiment its "experiment" field
/// names among `experiments`, by experiment name; their files are added to `inputs`.
func storedTraces(_ traces: [String], among experiments: [Experiment], inputs: inout [(String, String)]) throws -> [String: [TrainingEngine]] {
    var stored: [String: [TrainingEngine]] = [:]
    var names = Set<String>()
    for argument in traces {
        var name: String? = nil, path = argument
        if let equals = argument.firstIndex(of: "="), !FileManager.default.fileExists(atPath: argument) {
            name = String(argument[..<equals])
            path = String(argument[argument.index(after: equals)...])
        }
        let engineName = name ?? StoredTraceEngine.defaultName(for: path)
        guard OutputName.isSafe(engineName), !EngineName.reserved.contains(engineName) else {
            throw UsageFailure(description: "--trace \(argument): the name \"\(engineName)\" must be 1 to 40 letters, digits, '-' or '_' and not "
                               + "framework, reference or shadow in any case")
        }
        var unique = engineName, k = 2
        while names.contains(unique) { unique = "\(engineName)-\(k)"; k += 1 }
        names.insert(unique)
        let target = try experimentOfTrace(path, among: experiments)
        stored[target.name, default: []].append(try preload(path, target, name: unique))
        inputs.append((path, "the trace file \(path)"))
    }
    return stored
}

/// A stored trace, read and checked against `experiment` now, so that a bad trace stops the command before
/// any training.
func preload(_ path: String, _ experiment: Experiment, name: String? = nil) throws -> TrainingEngine {
    let url = URL(fileURLWithPath: path)
    do {
        let trace = try Trace.load(contentsOf: url, experiment: experiment)
        return PreloadedTrace(name: name ?? StoredTraceEngine.defaultName(for: path), trace: trace)
    } catch let error as TraceError {
        throw UsageFailure(description: "\(error)")
    }
}

/// The experiment (among `experiments`) a trace file is of: the one its "experiment" field names.
func experimentOfTrace(_ path: String, among experiments: [Experiment]) throws -> Experiment {
    let data: Data
    do { data = try readFile(URL(fileURLWithPath: path), limit: Trace.maxFileBytes) } catch let error as FileReadError {
        throw UsageFailure(description: "\(path): \(error.message)")
    }
    guard let json = try? JSONValue.parse(data), case .string(let name)? = json["experiment"] else {
        // Let the full reader say what is wrong with it.
        _ = try preload(path, experiments[0])
        throw UsageFailure(description: "\(path): experiment: missing: the experiment's name")
    }
    guard let experiment = experiments.first(where: { $0.name == name }) else {
        throw UsageFailure(description: "\(path): experiment: \"\(name)\", but no --experiment is named that (given: "
                           + experiments.map { "\"\($0.name)\"" }.joined(separator: ", ") + ")")
    }
    return experiment
}

/// A trace read before the run, returned for round 0.
struct PreloadedTrace: TrainingEngine {
    let name: String
    let trace: Trace
    func train(_ round: MaterializedRound) throws -> Trace { trace }
}

// MARK: - Entry point

/// The subcommand named on the command line, for pointing errors at its help.
func subcommandName() -> String? {
    let names = CompareCommand.configuration.subcommands.map { $0._commandName }
    return CommandLine.arguments.dropFirst().first { names.contains($0) }
}

/// Parses, runs, and maps every failure to its exit status: help 0, parity failure 1, usage, input or output 2.
func main() -> Never {
    ProcessSetup.prepare()
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments == ["--help"] || arguments == ["-h"] || arguments == ["help"] {
        // The root's help, then the default subcommand's options (what `compare` alone runs).
        let text = CompareCommand.helpMessage() + "\n\nOPTIONS OF `compare run` (THE DEFAULT SUBCOMMAND):\n"
            + CompareCommand.helpMessage(for: CompareCommand.Run.self).components(separatedBy: "OPTIONS:").dropFirst().joined(separator: "OPTIONS:")
        do { try writeStandardOutput(text + "\n") } catch { exit(2) }
        exit(0)
    }
    do {
        var command = try CompareCommand.parseAsRoot()
        try command.run()
        exit(0)
    } catch let failure as UsageFailure {
        reportError(failure.description)
        exit(2)
    } catch let failure as OutputFailure {
        reportError(failure.description)
        exit(2)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        let status = CompareCommand.exitCode(for: error)
        if status == .success {
            let text = CompareCommand.fullMessage(for: error)
            do { try writeStandardOutput(text + "\n") } catch { exit(2) }
            exit(0)
        }
        // ArgumentParser's message can run to several lines (usage, suggestions): keep the first.
        let message = CompareCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        reportError("\(message) (see compare \(subcommandName().map { "\($0) " } ?? "")--help)")
        exit(2)
    }
}

main()
