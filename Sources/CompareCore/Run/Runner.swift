import Dispatch
import Foundation
import Framework

/// An experiment as a suite plans it: the file's content plus where it is shown, what was published, and
/// where it deviates from the report it reproduces.
public struct PlannedExperiment: Sendable {
    public var experiment: Experiment
    /// The table it belongs to in the text report ("" for a single list).
    public var table: String
    public var published: [PublishedFigure]
    /// Deviations from the original report and known reasons, printed under its table.
    public var notes: [String]
    /// Outside engines run for this experiment only, beside `--engine`'s (seeds/004's PyTorch).
    public var engines: [CommandEngine]

    public init(_ experiment: Experiment, table: String = "", published: [PublishedFigure] = [], notes: [String] = [],
                engines: [CommandEngine] = []) {
        self.experiment = experiment
        self.table = table
        self.published = published
        self.notes = notes
        self.engines = engines
    }
}

/// A slice of a run: the K-th (1-based) of N, taking every N-th (experiment, round) job starting at K − 1.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int
    /// Parses "K/N" with 1 ≤ K ≤ N; nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        self.init(index: k, count: n)
    }
    public init?(index: Int, count: Int) {
        guard count >= 1, index >= 1, index <= count else { return nil }
        self.index = index
        self.count = count
    }
    public var description: String { "\(index)/\(count)" }
    func includes(job: Int) -> Bool { job % count == index - 1 }
}

/// What to run: experiments × rounds in every engine, judged with `tolerances`.
public struct RunRequest {
    public var experiments: [PlannedExperiment]
    public var rounds: Int
    public var tolerances: Tolerances
    public var shard: Shard?
    public var parallel: Bool
    /// `--plant-difference`: added to Reference's first weight.
    public var plantedDifference: Double?
    /// Outside engines run for every round (`--engine`).
    public var engines: [TrainingEngine]
    /// Stored traces judged for round 0 of an experiment (`check --trace`, or a `NAME.trace.json` picked up
    /// beside `NAME.experiment.json`), by experiment name.
    public var storedTraces: [String: [TrainingEngine]]
    /// Keep, per experiment, the inputs of the round to plot (the one where the engines differ most).
    public var keepRoundsForPlots: Bool
    /// Write every engine's trace of every round into this folder (`--trace-out`).
    public var traceFolder: URL?
    /// Locate each failing engine's first difference from Reference in the first failing round of each
    /// experiment, and name the convention that explains it (`--locate`, the default; `locate`).
    public var locate: Bool

    public init(experiments: [PlannedExperiment], rounds: Int, tolerances: Tolerances = Tolerances(), shard: Shard? = nil,
                parallel: Bool = true, plantedDifference: Double? = nil, engines: [TrainingEngine] = [],
                storedTraces: [String: [TrainingEngine]] = [:], keepRoundsForPlots: Bool = false, traceFolder: URL? = nil,
                locate: Bool = true) {
        self.experiments = experiments
        self.rounds = rounds
        self.tolerances = tolerances
        self.shard = shard
        self.parallel = parallel
        self.plantedDifference = plantedDifference
        self.engines = engines
        self.storedTraces = storedTraces
        self.keepRoundsForPlots = keepRoundsForPlots
        self.traceFolder = traceFolder
        self.locate = locate
    }

    /// The (experiment, round) jobs of the whole run, before sharding.
    public var jobCount: Int { experiments.count * rounds }

    /// The outside engines' names, in order.
    var outsideEngineNames: [String] {
        var names = engines.map(\.name)
        for planned in experiments { for engine in planned.engines where !names.contains(engine.name) { names.append(engine.name) } }
        for planned in experiments { for engine in storedTraces[planned.experiment.name] ?? [] where !names.contains(engine.name) { names.append(engine.name) } }
        return names
    }
}

/// A round kept for the plots: its data, and each engine's final parameters (when the engine gave them).
public struct PlotRound {
    public var round: MaterializedRound
    public var finalParameters: [String: [(weight: Matrix, bias: Matrix)]]
    /// How far the engines were apart (the largest relative loss difference against the referee), to pick it.
    var distance: Double
}

/// What a run produced: the report, and per experiment the round to plot.
public struct RunResult {
    public var report: Report
    public var plotRounds: [String: PlotRound]

    public init(report: Report, plotRounds: [String: PlotRound] = [:]) {
        self.report = report
        self.plotRounds = plotRounds
    }
}

/// Runs every round of every experiment in every engine, in parallel on the available cores, and judges them.
///
/// Each (experiment, round) job is independent and deterministic, so the results are identical to a
/// sequential run (`parallel: false`) whatever the scheduling. Progress (done, elapsed, an estimate of what
/// remains) goes to stderr when it is a terminal and the run takes longer than a second. The first engine
/// error stops the run (`EngineError`).
public func run(_ request: RunRequest) throws -> RunResult {
    precondition(request.rounds >= 1, "run: rounds must be ≥ 1")
    struct Job { let experiment: Int; let round: Int }
    var jobs: [Job] = []
    for e in request.experiments.indices { for r in 0..<request.rounds { jobs.append(Job(experiment: e, round: r)) } }
    if let shard = request.shard { jobs = jobs.enumerated().filter { shard.includes(job: $0.offset) }.map(\.element) }

    let lock = NSLock()
    var records = [RoundRecord?](repeating: nil, count: jobs.count)
    var plotRounds: [String: PlotRound] = [:]
    var firstError: Error?
    var finished = 0
    let progress = Progress(total: jobs.count)

    let work: (Int) -> Void = { index in
        let job = jobs[index]
        let planned = request.experiments[job.experiment]
        lock.lock()
        let stop = firstError != nil
        lock.unlock()
        if stop { return }
        do {
            let round = MaterializedRound(planned.experiment, round: job.round)
            var engines: [TrainingEngine] = [FrameworkEngine(), ReferenceTrainingEngine(plantedDifference: request.plantedDifference),
                                             FrameworkEngine(name: EngineName.shadow, nudged: true)]
            engines += request.engines
            engines += planned.engines
            if job.round == 0 { engines += request.storedTraces[planned.experiment.name] ?? [] }
            var runs: [EngineRun] = []
            var verifications: [String: Verification] = [:]
            var finals: [String: [(weight: Matrix, bias: Matrix)]] = [:]
            for engine in engines {
                let trace: Trace
                do {
                    trace = try engine.train(round)
                } catch let error as EngineError {
                    throw error
                } catch {
                    throw EngineError(engine: engine.name, experiment: planned.experiment.name, round: job.round, message: "\(error)")
                }
                let run = EngineRun(name: engine.name, trace: trace)
                runs.append(run)
                if engine.name != EngineName.reference && engine.name != EngineName.shadow {
                    // The referee replays what the engine gives, from the engine's own state (docs/verdict.md).
                    let input = VerifyInput(round: round, engineRun: run, plantedDifference: request.plantedDifference)
                    do {
                        verifications[engine.name] = engine is FrameworkEngine ? try verifyFramework(input) : try verifyTrace(trace, input)
                    } catch {
                        throw EngineError(engine: engine.name, experiment: planned.experiment.name, round: job.round,
                                          message: "the referee's replay failed: \(error)")
                    }
                }
                if let final = trace.finalParameters { finals[engine.name] = final }
                if let folder = request.traceFolder {
                    let file = folder.appendingPathComponent(OutputName.trace(experiment: planned.experiment.name, round: job.round,
                                                                              engine: engine.name))
                    try writeAtomically(Data(trace.jsonValue.text().utf8), to: file)
                }
            }
            let record = RoundRecord(round: job.round, seed: round.seed, engines: runs, verifications: verifications,
                                     comparisons: judge(runs, verifications: verifications, tolerances: request.tolerances))
            let distance = record.passed ? record.comparisons.map { max($0.maxTestLossDifference, $0.maxTrainLossDifference) }.max() ?? 0
                                         : .infinity
            lock.lock()
            records[index] = record
            if request.keepRoundsForPlots {
                let name = planned.experiment.name
                if plotRounds[name].map({ distance > $0.distance }) ?? true {
                    plotRounds[name] = PlotRound(round: round, finalParameters: finals, distance: distance)
                }
            }
            finished += 1
            progress.update(finished, "\(planned.experiment.name) round \(job.round)")
            lock.unlock()
        } catch {
            lock.lock()
            if firstError == nil { firstError = error }
            lock.unlock()
        }
    }
    if request.parallel {
        DispatchQueue.concurrentPerform(iterations: jobs.count, execute: work)
    } else {
        for index in jobs.indices { work(index) }
    }
    progress.finish()
    if let firstError { throw firstError }
    if request.locate { locateFailures(request, jobs: jobs.map { ($0.experiment, $0.round) }, records: &records) }

    var experimentRecords: [ExperimentRecord] = []
    for (e, planned) in request.experiments.enumerated() {
        let rounds = zip(jobs, records).filter { $0.0.experiment == e }.compactMap { $0.1 }
        if request.shard != nil && rounds.isEmpty { continue }
        experimentRecords.append(ExperimentRecord(name: planned.experiment.name, table: planned.table,
                                                  configuration: configurationLine(planned.experiment), notes: planned.notes,
                                                  experiment: planned.experiment, published: planned.published, rounds: rounds))
    }
    let plan = RunPlan(rounds: request.rounds, experiments: request.experiments.map(\.experiment.name),
                       outsideEngines: request.outsideEngineNames, plantedDifference: request.plantedDifference,
                       shard: request.shard, jobs: request.jobCount)
    return RunResult(report: Report(plan: plan, tolerances: request.tolerances, experiments: experimentRecords),
                     plotRounds: plotRounds)
}

/// Locates, for each experiment, every engine that fails against Reference in its first failing round (the
/// lowest round number, so the result does not depend on scheduling), in parallel across experiments. An
/// engine that cannot be re-run for its steps is reported in the localisation, not as an error of the run.
func locateFailures(_ request: RunRequest, jobs: [(experiment: Int, round: Int)], records: inout [RoundRecord?]) {
    struct Task { let record: Int; let experiment: Int; let parity: Parity }
    var tasks: [Task] = []
    for e in request.experiments.indices {
        let failing = jobs.indices.filter { jobs[$0].experiment == e && records[$0].map { !$0.passed } == true }
        guard let first = failing.min(by: { jobs[$0].round < jobs[$1].round }), let record = records[first] else { continue }
        for comparison in record.comparisons where !comparison.passed && comparison.referee == EngineName.reference {
            tasks.append(Task(record: first, experiment: e, parity: comparison))
        }
    }
    guard !tasks.isEmpty else { return }
    let lock = NSLock()
    var results = [Localisation?](repeating: nil, count: tasks.count)
    let snapshot = records
    DispatchQueue.concurrentPerform(iterations: tasks.count) { index in
        let task = tasks[index]
        let experiment = request.experiments[task.experiment].experiment
        let record = snapshot[task.record]!
        let name = task.parity.engine
        let engine: TrainingEngine? = name == EngineName.framework ? FrameworkEngine()
            : request.engines.first { $0.name == name } ?? request.experiments[task.experiment].engines.first { $0.name == name }
                ?? request.storedTraces[experiment.name]?.first { $0.name == name }
        let localisation: Localisation
        if let verification = task.parity.verification, verification.failureLocated, let finding = verification.failure {
            // The replay found the first difference itself, step by step: that is where.
            localisation = localised(finding, verification, parity: task.parity, request: request, experiment: experiment, record: record)
        } else if let engine, let run = record.engine(name), let referee = record.reference {
            let input = LocateInput(round: MaterializedRound(experiment, round: record.round), engine: engine, engineRun: run,
                                    refereeRun: referee, parity: task.parity, plantedDifference: request.plantedDifference,
                                    horizon: task.parity.horizon, tolerances: request.tolerances)
            do {
                var found = try locate(input)
                // The walk could not reach what the replay of an epoch found (an outside engine's steps are asked
                // for from the start, within a bound): that epoch-level difference is where.
                if case .notFound = found.finding, let verification = task.parity.verification, let failure = verification.failure {
                    found.notes.append("the walk of the engine's steps did not reach it: \(found.whereText)")
                    found.finding = failure
                }
                localisation = found
            } catch {
                localisation = Localisation(engine: name, referee: EngineName.reference, finding: .notFound("could not locate: \(error)"),
                                            stepsWalked: 0, notes: [], seconds: 0, convention: nil)
            }
        } else {
            localisation = Localisation(engine: name, referee: EngineName.reference, finding: .notFound("could not locate: the engine is not at hand"),
                                        stepsWalked: 0, notes: [], seconds: 0, convention: nil)
        }
        lock.lock()
        results[index] = localisation
        lock.unlock()
    }
    for (task, result) in zip(tasks, results) { if let result { records[task.record]!.localisations.append(result) } }
}

/// The localisation of a difference the verification found step by step, with the convention fingerprint
/// when the difference lies before the horizon (past it, free-running curves are no evidence for a convention).
func localised(_ finding: LocateFinding, _ verification: Verification, parity: Parity, request: RunRequest, experiment: Experiment,
               record: RoundRecord) -> Localisation {
    var result = Localisation(engine: parity.engine, referee: parity.referee, finding: finding, stepsWalked: verification.stepsReplayed,
                              notes: verification.remarks, seconds: verification.seconds, convention: nil)
    let epoch = verification.failureEpoch ?? 0
    if case let .tensor(d) = finding, d.step == 0 {
        result.notes.append("no convention of the catalogue changes the initial parameters, so none was looked for")
    } else if let horizon = parity.horizon, epoch >= horizon {
        result.notes.append("the difference is past the horizon (epoch \(horizon)), where free-running curves cannot tell conventions "
                            + "apart: none was looked for")
    } else if let run = record.engine(parity.engine) {
        let round = MaterializedRound(experiment, round: record.round)
        let epochs = min(experiment.training.epochs, max(epoch, 1) + fingerprintEpochs)
        let trace = Trace(experiment: experiment.name, engine: run.engine, epochs: run.epochs.filter { $0.epoch <= epochs },
                          divergence: run.divergence.flatMap { $0.epoch <= epochs ? $0 : nil })
        result.convention = try? conventionFingerprint(engine: trace, round: round.with(epochs: epochs, traceSteps: nil),
                                                       refereeInitialParameters: plantedParameters(round.initialParameters, request.plantedDifference),
                                                       horizon: parity.horizon, tolerances: request.tolerances)
    }
    return result
}

/// One line describing an experiment's configuration, hyperparameters included:
/// "2-25-25-25-2 ReLU/Tanh/Sigmoid, mse, SGD(lr 0.1), batch 5, 300 epochs, shuffled, disk 1000/1000".
public func configurationLine(_ e: Experiment) -> String {
    let activations = e.model.layers.compactMap { layer -> String? in
        if case let .activation(kind, parameters) = layer { return kind.label(parameters) } else { return nil }
    }
    let data: String
    switch e.data {
    case let .disk(train, test, normalize): data = "disk \(train)/\(test)" + (normalize ? " normalised" : "")
    case .xor: data = "xor"
    case let .explicit(train, test): data = "explicit \(train.inputs.count)/\(test.inputs.count)"
    }
    let order = e.training.orders != nil ? "given orders" : (e.training.shuffle ? "shuffled" : "in order")
    return "\(e.model.widths.map(String.init).joined(separator: "-")) \(activations.isEmpty ? "linear" : activations.joined(separator: "/")), "
        + "\(e.loss.rawValue), \(e.optimizer.label), batch \(e.training.batchSize), \(counted(e.training.epochs, "epoch")), \(order), \(data)"
}

/// A one-line progress display on stderr, shown only on a terminal and only after the first second: jobs done,
/// elapsed time, and an estimate of what remains (from the mean time per job so far).
final class Progress {
    private let total: Int
    private let start = monotonicSeconds()
    private let enabled = isatty(STDERR_FILENO) != 0
    private var shown = false

    init(total: Int) { self.total = total }

    func update(_ done: Int, _ what: String) {
        let elapsed = monotonicSeconds() - start
        guard enabled, elapsed > 1 else { return }
        shown = true
        let remaining = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        writeStandardError("\r\u{1B}[K[\(done)/\(total)] \(Progress.clock(elapsed)) elapsed, about \(Progress.clock(remaining)) left — \(what)")
    }

    func finish() {
        if shown { writeStandardError("\r\u{1B}[K") }
    }

    /// "1:05" or "12 s".
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s < 60 ? "\(s) s" : "\(s / 60):\(String(format: "%02d", s % 60))"
    }
}

/// Writes `text` to stderr with write(2), ignoring failures (an unwritable stderr must not stop a run, nor
/// trap as FileHandle's Objective-C exception would).
public func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
    bytes.removeAll()
}
