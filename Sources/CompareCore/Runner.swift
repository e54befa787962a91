import Dispatch
import Foundation
import Framework
import Reference

/// An experiment as a suite plans it: the file's content plus where it is shown and what was published.
public struct PlannedExperiment: Sendable {
    public var experiment: Experiment
    /// The table it belongs to in the text report ("" for a single list).
    public var table: String
    public var published: PublishedFigure?

    public init(_ experiment: Experiment, table: String = "", published: PublishedFigure? = nil) {
        self.experiment = experiment
        self.table = table
        self.published = published
    }
}

/// A slice of a run: the K-th (1-based) of N, taking every N-th (experiment, round) job starting at K − 1.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int
    /// Parses "K/N" with 1 ≤ K ≤ N; nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, k >= 1, k <= n else { return nil }
        index = k
        count = n
    }
    public var description: String { "\(index)/\(count)" }
    func includes(job: Int) -> Bool { job % count == index - 1 }
}

/// What a run produced: the report, and for round 0 of each experiment both engines' outcomes (for plots).
public struct RunResult {
    public var report: Report
    public var firstRounds: [String: (round: MaterializedRound, framework: EngineOutcome, reference: EngineOutcome)]

    public init(report: Report,
                firstRounds: [String: (round: MaterializedRound, framework: EngineOutcome, reference: EngineOutcome)] = [:]) {
        self.report = report
        self.firstRounds = firstRounds
    }
}

/// One line describing an experiment's configuration, hyperparameters included.
public func configurationLine(_ e: Experiment) -> String {
    let widths = [e.model.inputWidth] + e.model.layers.compactMap { layer -> Int? in
        if case let .linear(_, out, _) = layer { return out } else { return nil }
    }
    let activations = e.model.layers.compactMap { layer -> String? in
        switch layer {
        case .linear: return nil
        case .relu: return "ReLU"
        case .tanh: return "Tanh"
        case .sigmoid: return "Sigmoid"
        case let .leakyRelu(slope): return "LeakyReLU(\(slope))"
        }
    }
    let optimizer: String
    switch e.optimizer {
    case let .sgd(s):
        var parts = ["lr \(s.lr)"]
        if s.momentum != 0 { parts.append("momentum \(s.momentum)") }
        if s.dampening != 0 { parts.append("dampening \(s.dampening)") }
        if s.nesterov { parts.append("nesterov") }
        if s.weightDecay != 0 { parts.append("weight decay \(s.weightDecay)") }
        optimizer = "SGD(\(parts.joined(separator: ", ")))"
    case let .adam(a):
        var parts = ["lr \(a.lr)", "β \(a.beta1)/\(a.beta2)", "ε \(a.eps)"]
        if a.weightDecay != 0 { parts.append("weight decay \(a.weightDecay)") }
        optimizer = "Adam(\(parts.joined(separator: ", ")))"
    }
    let data: String
    switch e.data {
    case let .disk(train, test): data = "disk \(train)/\(test)"
    case .xor: data = "xor"
    case let .explicit(train, test): data = "explicit \(train.inputs.count)/\(test.inputs.count)"
    }
    return "\(widths.map(String.init).joined(separator: "-")) \(activations.isEmpty ? "linear" : activations.joined(separator: "/")), "
        + "\(e.loss.rawValue), \(optimizer), batch \(e.training.batchSize), \(e.training.epochs) epochs, "
        + "\(e.training.shuffle ? "shuffled" : "in order"), \(data)"
}

/// Runs every round of every experiment in both engines, in parallel on the available cores.
///
/// Each (experiment, round) job is independent and deterministic, so the results are identical to a
/// sequential run (`parallel: false`) whatever the scheduling. A progress line goes to stderr when it is a
/// terminal and the run takes longer than a second.
public func run(_ experiments: [PlannedExperiment], rounds: Int, tolerances: Tolerances, shard: Shard? = nil,
                parallel: Bool = true, plantedDifference: Double? = nil, keepFirstRounds: Bool = false) throws -> RunResult {
    precondition(rounds >= 1, "run: rounds must be ≥ 1")
    struct Job { let experiment: Int; let round: Int }
    var jobs: [Job] = []
    for e in experiments.indices { for r in 0..<rounds { jobs.append(Job(experiment: e, round: r)) } }
    if let shard { jobs = jobs.enumerated().filter { shard.includes(job: $0.offset) }.map(\.element) }

    let lock = NSLock()
    var records = [RoundRecord?](repeating: nil, count: jobs.count)
    var firstRounds: [String: (round: MaterializedRound, framework: EngineOutcome, reference: EngineOutcome)] = [:]
    var firstError: Error?
    var finished = 0
    let progress = Progress(total: jobs.count)

    let work: (Int) -> Void = { index in
        let job = jobs[index]
        let planned = experiments[job.experiment]
        do {
            let round = MaterializedRound(planned.experiment, round: job.round)
            let framework = try runFramework(round)
            var layers = referenceLayers(planned.experiment.model, parameters: round.initialParameters)
            if let delta = plantedDifference { layers = plantDifference(delta, in: layers) }
            let reference = try runReference(round, layers: layers)
            let shadow = try runFramework(round, nudged: true)
            let parity = compareTraces(framework: (framework.epochs, framework.divergence),
                                       reference: (reference.epochs, reference.divergence),
                                       shadow: (shadow.epochs, shadow.divergence), tolerances: tolerances)
            let record = RoundRecord(round: job.round, seed: round.seed,
                                     engines: [Engine.framework.rawValue: EngineRecord(framework),
                                               Engine.reference.rawValue: EngineRecord(reference)],
                                     parity: parity)
            lock.lock()
            records[index] = record
            if keepFirstRounds && job.round == 0 { firstRounds[planned.experiment.name] = (round, framework, reference) }
            finished += 1
            progress.update(finished, "\(planned.experiment.name) round \(job.round)")
            lock.unlock()
        } catch {
            lock.lock()
            if firstError == nil { firstError = RunError(experiment: planned.experiment.name, round: job.round, underlying: error) }
            lock.unlock()
        }
    }
    if parallel {
        DispatchQueue.concurrentPerform(iterations: jobs.count, execute: work)
    } else {
        for index in jobs.indices { work(index) }
    }
    progress.finish()
    if let firstError { throw firstError }

    var experimentRecords: [ExperimentRecord] = []
    for (e, planned) in experiments.enumerated() {
        let rounds = zip(jobs, records).filter { $0.0.experiment == e }.compactMap { $0.1 }
        if shard != nil && rounds.isEmpty { continue }
        experimentRecords.append(ExperimentRecord(name: planned.experiment.name, table: planned.table,
                                                  configuration: configurationLine(planned.experiment),
                                                  published: planned.published, rounds: rounds))
    }
    let report = Report(experiments: experimentRecords, blas: ReferenceEngine.blasLibrary, tolerances: tolerances,
                        verdict: Report.verdict(of: experimentRecords), shard: shard?.description)
    return RunResult(report: report, firstRounds: firstRounds)
}

/// `layers` with `delta` added to the first weight of the first linear layer: a planted disagreement
/// that the parity check must report.
public func plantDifference(_ delta: Double, in layers: [ReferenceLayer]) -> [ReferenceLayer] {
    var layers = layers
    if let index = layers.firstIndex(where: { if case .linear = $0 { return true } else { return false } }),
       case .linear(var weight, let bias) = layers[index] {
        weight[0][0] += delta
        layers[index] = .linear(weight: weight, bias: bias)
    }
    return layers
}

/// An engine failed (not a parity failure: it could not run), with where.
public struct RunError: Error, CustomStringConvertible {
    public let experiment: String
    public let round: Int
    public let underlying: Error
    public var description: String { "\(experiment), round \(round): \(underlying)" }
}

/// A one-line progress display on stderr, shown only on a terminal and only after the first second.
final class Progress {
    private let total: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private let enabled = isatty(STDERR_FILENO) != 0
    private var shown = false

    init(total: Int) { self.total = total }

    func update(_ done: Int, _ what: String) {
        guard enabled, DispatchTime.now().uptimeNanoseconds - start > 1_000_000_000 else { return }
        shown = true
        FileHandle.standardError.write(Data("\r\u{1B}[K[\(done)/\(total)] \(what)".utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
