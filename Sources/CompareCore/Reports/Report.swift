import Foundation
import Framework

// The report of a run: what was asked (the plan), what each engine did in each round, and the judgement,
// with where it came from (provenance). Written as JSON (`--json`), read back by `compare merge`, and the
// source of the text report, the CSV files, the plots and the HTML page.

/// A figure an original report published, to set beside ours.
public struct PublishedFigure: Equatable, Sendable {
    /// "seeds/002".
    public var report: String
    /// "table II".
    public var table: String
    /// "trainAccuracy", "testAccuracy", ….
    public var metric: String
    /// The published mean and standard deviation (nil for a figure without numbers).
    public var mean: Double?
    public var sd: Double?
    /// "fraction" for accuracies.
    public var unit: String
    /// How many rounds the figure is over, when the report says.
    public var rounds: Int?
    /// The figure exactly as printed.
    public var text: String
    /// Why our figure is expected to differ from this one, when that is known (shown with a "differs" verdict).
    public var knownDifference: String?

    public init(report: String, table: String, metric: String, mean: Double?, sd: Double?, unit: String = "fraction",
                rounds: Int? = nil, text: String, knownDifference: String? = nil) {
        self.knownDifference = knownDifference
        self.report = report
        self.table = table
        self.metric = metric
        self.mean = mean
        self.sd = sd
        self.unit = unit
        self.rounds = rounds
        self.text = text
    }
}

/// One engine's run in one round: its trace without the step tensors.
public struct EngineRun: Equatable, Sendable {
    /// "framework", "reference", "shadow", or an outside engine's name.
    public var name: String
    /// The engine's own description.
    public var engine: String
    /// Wall time of training plus evaluation (nil when unknown).
    public var seconds: Double?
    public var epochs: [EpochMetrics]
    public var divergence: Divergence?

    public init(name: String, trace: Trace) {
        self.name = name
        engine = trace.engine
        seconds = trace.seconds
        epochs = trace.epochs
        divergence = trace.divergence
    }

    init(name: String, engine: String, seconds: Double?, epochs: [EpochMetrics], divergence: Divergence?) {
        self.name = name
        self.engine = engine
        self.seconds = seconds
        self.epochs = epochs
        self.divergence = divergence
    }

    public var epochTrace: EpochTrace { (epochs, divergence) }
    public var last: EpochMetrics? { epochs.last }
}

/// One round: its seed, every engine's run, and the judgement.
public struct RoundRecord: Equatable, Sendable {
    public var round: Int
    public var seed: UInt64
    /// In the order they ran: framework, reference, shadow, then the outside engines.
    public var engines: [EngineRun]
    /// The referee's verification of each judged engine (all but the referee and the shadow), by name.
    public var verifications: [String: Verification] = [:]
    /// Every comparison made (`judge`), the first being Framework against Reference.
    public var comparisons: [Parity]
    /// Where each failing engine first differs from Reference (`locate`), for the first failing round of an
    /// experiment; in the JSON, the `"locate"` of that comparison.
    public var localisations: [Localisation] = []

    /// Every comparison passed, and there was one: a round judged against nothing is not a pass.
    public var passed: Bool { status == .pass }
    /// Fail when a comparison fails, else unverified when one is, else pass; a round judged against nothing fails.
    public var status: VerdictStatus {
        comparisons.isEmpty ? .fail : comparisons.reduce(VerdictStatus.pass) { $0.worse($1.status) }
    }
    public func engine(_ name: String) -> EngineRun? { engines.first { $0.name == name } }
    public var framework: EngineRun? { engine(EngineName.framework) }
    public var reference: EngineRun? { engine(EngineName.reference) }
    /// Framework against Reference.
    public var parity: Parity { comparisons.first { $0.engine == EngineName.framework && $0.referee == EngineName.reference } ?? comparisons[0] }
}

/// The comparisons of one round, given every engine's trace (by name) and the referee's verification of each
/// judged engine (by name): each engine but the referee and the shadow against the referee (Reference), and each
/// outside engine against Framework too, free-running up to the comparability horizon (`compareTraces`); then
/// the verification decides (`applyVerification`). `run`, `check` and `merge` all judge with this.
public func judge(_ engines: [EngineRun], verifications: [String: Verification], tolerances: Tolerances) -> [Parity] {
    guard let referee = engines.first(where: { $0.name == EngineName.reference }) else { return [] }
    let framework = engines.first { $0.name == EngineName.framework }
    let shadow = engines.first { $0.name == EngineName.shadow }
    let horizon = framework.flatMap { f in shadow.map { comparabilityHorizon(framework: f.epochTrace, shadow: $0.epochTrace, tolerances: tolerances) } }
    var comparisons: [Parity] = []
    for engine in engines where engine.name != EngineName.reference && engine.name != EngineName.shadow {
        let verifiedThrough = verifications[engine.name].flatMap { $0.failure == nil ? $0.verifiedThrough : nil }
        var parity = compareTraces(engine.epochTrace, with: referee.epochTrace, horizon: horizon?.horizon, tolerances: tolerances,
                                   engineName: engine.name, refereeName: EngineName.reference, verifiedThrough: verifiedThrough)
        parity.maxShadowDifference = horizon?.shadowDifference ?? 0
        applyVerification(verifications[engine.name], to: &parity, run: engine)
        comparisons.append(parity)
        if let framework, engine.name != EngineName.framework {
            var versus = compareTraces(engine.epochTrace, with: framework.epochTrace, horizon: horizon?.horizon, tolerances: tolerances,
                                       engineName: engine.name, refereeName: EngineName.framework,
                                       verifiedThrough: verifiedThrough.flatMap { v in verifications[EngineName.framework]?.verifiedThrough.map { min(v, $0) } })
            versus.maxShadowDifference = horizon?.shadowDifference ?? 0
            comparisons.append(versus)
        }
    }
    return comparisons
}

/// The verdict of `parity` (free-running, up to the horizon) with the referee's `verification` of the engine:
/// - a difference the verification found fails (the earlier of the two failures is the first failing epoch);
/// - the engine's reported metrics must agree with the referee's evaluation of its own parameters at every epoch
///   evaluated (checked again here, so that `merge` re-judges them from what a report holds);
/// - past the horizon, every epoch must be verified (its training replayed and its evaluation recomputed), else
///   the round is unverified after the last epoch that is: free-running curves are no evidence there.
func applyVerification(_ verification: Verification?, to parity: inout Parity, run: EngineRun) {
    parity.verification = verification
    var problems: [(epoch: Int, text: String)] = []
    if let verification {
        let reported = Dictionary(run.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { a, _ in a })
        for evaluation in verification.evaluations {
            guard let metrics = reported[evaluation.epoch] else { continue }
            if let problem = evaluation.problem(metrics) {
                problems.append((evaluation.epoch, "epoch \(evaluation.epoch): \(run.name) reports \(problem)"))
                break
            }
        }
        if let text = verification.failureText, let epoch = verification.failureEpoch ?? verification.verifiedThrough.map({ $0 + 1 }) {
            problems.append((epoch, text))
        } else if let text = verification.failureText {
            problems.append((0, text))
        }
    }
    if let first = problems.min(by: { $0.epoch < $1.epoch }) {
        if parity.status != .fail || first.epoch < (parity.firstFailingEpoch ?? Int.max) {
            parity.firstFailingEpoch = first.epoch
            parity.reason = parity.status == .fail ? first.text + "; " + parity.reason : first.text
        }
        parity.status = .fail
        return
    }
    guard parity.status == .pass, let horizon = parity.horizon, let last = run.epochs.last?.epoch else { return }
    let through = verification?.verifiedThrough ?? -1
    if let divergence = run.divergence, divergence.epoch >= horizon, through >= last, verification?.divergenceVerified != true {
        parity.status = .unverified
        parity.reason = "unverified divergence: free-running comparison stops at the horizon (epoch \(horizon)), and "
            + (verification?.gap ?? "the divergence at epoch \(divergence.epoch), batch \(divergence.batch) was not replayed "
               + "(give per-epoch parameters: \"trace\": {\"epochParameters\": true})")
        return
    }
    guard last >= horizon, through < last else { return }
    let since = max(horizon - 1, through)
    parity.status = .unverified
    parity.reason = "unverified after epoch \(since): free-running comparison stops at the horizon (epoch \(horizon)), and "
        + (verification?.gap ?? "nothing after it was replayed (give per-epoch parameters: \"trace\": {\"epochParameters\": true})")
}

/// One experiment: what it is, its rounds, and what was published for it.
public struct ExperimentRecord: Equatable, Sendable {
    public var name: String
    /// The table of the suite this belongs to ("" outside suites).
    public var table: String
    /// The configuration in one line, hyperparameters included.
    public var configuration: String
    /// Where this run deviates from what the original report describes, and why.
    public var notes: [String]
    /// The experiment itself, as a file would give it.
    public var experiment: Experiment
    public var published: [PublishedFigure]
    public var rounds: [RoundRecord]
}

/// What a run was asked to do, so that the shards of one run can be told from pieces of different runs.
public struct RunPlan: Equatable, Sendable {
    /// Rounds per experiment.
    public var rounds: Int
    /// Every experiment of the run, in order (a shard holds the rounds of some of them).
    public var experiments: [String]
    /// The outside engines and stored traces judged beside Framework, by name.
    public var outsideEngines: [String]
    /// `--plant-difference`, if given.
    public var plantedDifference: Double?
    /// This report's shard, "K/N", or nil for a whole run.
    public var shard: Shard?
    /// (experiment, round) jobs of the whole run, over all shards.
    public var jobs: Int
}

/// The whole report.
public struct Report: Equatable, Sendable {
    public static let formatName = "minidl-report"
    /// 3: the verdict by replay (verifications, the horizon, "unverified"); 2 and earlier are not read.
    public static let version = 3

    public var build: BuildInfo
    /// The command line that produced it.
    public var command: [String]
    /// When it was produced (ISO 8601).
    public var date: String
    public var plan: RunPlan
    public var tolerances: Tolerances
    public var experiments: [ExperimentRecord]

    public init(build: BuildInfo = .current, command: [String] = CommandLine.arguments, date: String = isoDate(), plan: RunPlan,
                tolerances: Tolerances, experiments: [ExperimentRecord]) {
        self.build = build
        self.command = command
        self.date = date
        self.plan = plan
        self.tolerances = tolerances
        self.experiments = experiments
    }

    public var rounds: [RoundRecord] { experiments.flatMap(\.rounds) }
    /// Pass when there is at least one round and every comparison of every round passes: a run with zero
    /// rounds is not a pass.
    public var passed: Bool { status == .pass }
    /// Fail when a round fails (or there is none), else unverified when a round is, else pass.
    public var status: VerdictStatus { rounds.isEmpty ? .fail : rounds.reduce(VerdictStatus.pass) { $0.worse($1.status) } }
    public var verdict: String { status.rawValue }
}

/// Now, ISO 8601 in UTC.
public func isoDate() -> String { ISO8601DateFormatter().string(from: Date()) }

// MARK: - JSON

extension Report {
    public var jsonValue: JSONValue {
        jsonObject { o in
            o["format"] = .string(Report.formatName)
            o["version"] = .integer(Report.version)
            o["verdict"] = .string(verdict)
            o["provenance"] = jsonObject { p in
                p["tool"] = .string("compare \(build.version)")
                p["commit"] = .string(build.commit)
                p["build"] = .string(build.flavour)
                p["configuration"] = .string(build.configuration)
                p["nativeCPU"] = .bool(build.nativeCPU)
                p["kernel"] = .string(build.kernel)
                p["blas"] = .string(build.blas)
                p["command"] = .array(command.map { .string($0) })
                p["date"] = .string(date)
            }
            o["tolerances"] = .object([("rtol", .number(tolerances.rtol)), ("atol", .number(tolerances.atol)),
                                        ("accuracy", .number(tolerances.accuracy)), ("horizonMargin", .number(Tolerances.horizonMargin))])
            o["plan"] = jsonObject { p in
                p["rounds"] = .integer(plan.rounds)
                p["experiments"] = .array(plan.experiments.map { .string($0) })
                p["outsideEngines"] = .array(plan.outsideEngines.map { .string($0) })
                p["plantedDifference"] = plan.plantedDifference.map { .number($0) } ?? .null
                p["shard"] = plan.shard.map { .object([("index", .integer($0.index)), ("count", .integer($0.count))]) } ?? .null
                p["jobs"] = .integer(plan.jobs)
            }
            o["experiments"] = .array(experiments.map(\.jsonValue))
        }
    }
}

extension ExperimentRecord {
    var jsonValue: JSONValue {
        jsonObject { o in
            o["name"] = .string(name)
            o["table"] = .string(table)
            o["configuration"] = .string(configuration)
            o["notes"] = .array(notes.map { .string($0) })
            o["summary"] = summaryJSON
            o["published"] = .array(published.map(\.jsonValue))
            o["experiment"] = experiment.jsonValue
            o["rounds"] = .array(rounds.map(\.jsonValue))
        }
    }
}

extension PublishedFigure {
    var jsonValue: JSONValue {
        jsonObject { o in
            o["report"] = .string(report)
            o["table"] = .string(table)
            o["metric"] = .string(metric)
            o["mean"] = mean.map { .number($0) } ?? .null
            o["sd"] = sd.map { .number($0) } ?? .null
            o["unit"] = .string(unit)
            o["rounds"] = rounds.map { .integer($0) } ?? .null
            o["text"] = .string(text)
            o["knownDifference"] = knownDifference.map { .string($0) } ?? .null
        }
    }
}

extension RoundRecord {
    var jsonValue: JSONValue {
        jsonObject { o in
            o["round"] = .integer(round)
            o["seed"] = .number(Double(seed), integer: Int64(exactly: seed))
            o["passed"] = .bool(passed)
            o["status"] = .string(status.rawValue)
            o["parity"] = .array(comparisons.map { comparison in
                var entry = comparison.jsonValue
                if case var .object(pairs) = entry,
                   let found = localisations.first(where: { $0.engine == comparison.engine && $0.referee == comparison.referee }) {
                    pairs.append(("locate", found.jsonValue))
                    entry = .object(pairs)
                }
                return entry
            })
            o["engines"] = .object(engines.map { run in
                (run.name, jsonObject { e in
                    e["engine"] = .string(run.engine)
                    e["seconds"] = run.seconds.map { .number($0) } ?? .null
                    e["divergence"] = run.divergence.map(\.jsonValue) ?? .null
                    e["epochs"] = .array(run.epochs.map(\.jsonValue))
                    if let verification = verifications[run.name] { e["verification"] = verification.jsonValue }
                })
            })
        }
    }
}

extension Parity {
    var jsonValue: JSONValue {
        jsonObject { o in
            o["engine"] = .string(engine)
            o["referee"] = .string(referee)
            o["passed"] = .bool(passed)
            o["status"] = .string(status.rawValue)
            o["reason"] = .string(reason)
            o["maxTestLossDifference"] = .number(maxTestLossDifference)
            o["maxTrainLossDifference"] = .number(maxTrainLossDifference)
            o["maxTestAccuracyDifference"] = .number(maxTestAccuracyDifference)
            o["maxTrainAccuracyDifference"] = .number(maxTrainAccuracyDifference)
            o["worstEpoch"] = .integer(worstEpoch)
            o["epochsCompared"] = .integer(epochsCompared)
            o["maxShadowDifference"] = .number(maxShadowDifference)
            o["horizon"] = horizon.map { .integer($0) } ?? .null
            o["maxDifferenceAfterHorizon"] = .number(maxDifferenceAfterHorizon)
            o["accuracyTies"] = .array(accuracyTies.map { .integer($0) })
            o["firstFailingEpoch"] = firstFailingEpoch.map { .integer($0) } ?? .null
            o["divergence"] = .string(divergence)
        }
    }
}

// MARK: - Reading a report back (for `compare merge`)

/// A report file that cannot be used, naming the file and the JSON path.
public struct ReportError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public var description: String { "\(file): \(message)" }
}

extension Report {
    /// The largest report read (and written: a run whose report would be larger is refused before training):
    /// 500 000 000 bytes. A report's parsed tree takes about 1.9 times its size, so this is what
    /// `JSONValue.maxTreeBytes` lets `merge` read (reports of up to 2 GB were accepted before, and would have
    /// taken some 30 GB).
    public static let maxFileBytes = 500_000_000

    /// Reads a report written by `compare --json`. The verdicts in the file are not read: every round is judged
    /// again from its traces with the report's tolerances.
    public static func load(contentsOf url: URL) throws -> Report {
        let file = url.relativePath
        let data: Data
        do { data = try readFile(url, limit: maxFileBytes) } catch let error as FileReadError {
            throw ReportError(file: file, message: error.message)
        }
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch let error as JSONSyntaxError {
            throw ReportError(file: file, message: "not a compare report: \(error.message(for: data))")
        }
        do {
            return try Report(node: JSONNode(json), file: file)
        } catch let problem as JSONProblem {
            throw ReportError(file: file, message: "not a compare report: \(problem)")
        } catch let error as ExperimentError {
            throw ReportError(file: file, message: "not a compare report: \(error)")
        }
    }

    init(node: JSONNode, file: String) throws {
        let top = try node.members()
        let format = try top.required("format", "missing: a report starts with \"format\": \"\(Report.formatName)\"")
        guard try format.string() == Report.formatName else { throw format.problem("expected \"\(Report.formatName)\"") }
        let version = try top.required("version", "missing")
        guard try version.integer() == Report.version else {
            throw version.problem("this build reads version \(Report.version), got \(version.value.summary)")
        }
        let provenance = try top.required("provenance", "missing").members()
        build = BuildInfo(version: String(try provenance.required("tool", "missing").string().dropFirst("compare ".count)),
                          commit: try provenance["commit"].flatMap { $0.isNull ? nil : try $0.string() },
                          configuration: try provenance.required("configuration", "missing").string(),
                          nativeCPU: try provenance.required("nativeCPU", "missing").bool(),
                          kernel: try provenance.required("kernel", "missing").string(),
                          blas: try provenance.required("blas", "missing").string())
        command = try provenance.required("command", "missing").array().map { try $0.string() }
        date = try provenance.required("date", "missing").string()
        let t = try top.required("tolerances", "missing").members()
        tolerances = Tolerances(rtol: try t.required("rtol", "missing").number(), atol: try t.required("atol", "missing").number(),
                                accuracy: try t.required("accuracy", "missing").number())
        let p = try top.required("plan", "missing").members()
        let shardNode = try p.required("shard", "missing")
        var shard: Shard? = nil
        if !shardNode.isNull {
            let s = try shardNode.members()
            shard = Shard(index: try s.required("index", "missing").integer(), count: try s.required("count", "missing").integer())
            if shard == nil { throw shardNode.problem("expected 1 ≤ index ≤ count") }
        }
        let planted = try p.required("plantedDifference", "missing")
        plan = RunPlan(rounds: try p.required("rounds", "missing").integer(),
                       experiments: try p.required("experiments", "missing").array().map { try $0.string() },
                       outsideEngines: try p.required("outsideEngines", "missing").array().map { try $0.string() },
                       plantedDifference: planted.isNull ? nil : try planted.number(), shard: shard,
                       jobs: try p.required("jobs", "missing").integer())
        experiments = try top.required("experiments", "missing").array().map { try ExperimentRecord(node: $0, file: file) }
        // The verdicts in the file are not read: every round is judged again from its traces.
        for e in experiments.indices {
            for r in experiments[e].rounds.indices {
                let round = experiments[e].rounds[r]
                experiments[e].rounds[r].comparisons = judge(round.engines, verifications: round.verifications, tolerances: tolerances)
            }
        }
    }
}

extension ExperimentRecord {
    init(node: JSONNode, file: String) throws {
        let m = try node.members()
        let nameNode = try m.required("name", "missing")
        name = try nameNode.string()
        if let problem = Experiment.nameProblem(name) { throw nameNode.problem(problem) }
        table = try m.required("table", "missing").string()
        configuration = try m.required("configuration", "missing").string()
        notes = try m.required("notes", "missing").array().map { try $0.string() }
        published = try m.required("published", "missing").array().map(PublishedFigure.init(node:))
        experiment = try Experiment.decode(try m.required("experiment", "missing").value, file: "\(file): \(node.child("experiment"))")
        let roundsNode = try m.required("rounds", "missing")
        rounds = try roundsNode.array().map(RoundRecord.init(node:))
        // What merge can check without re-running: each round's seed and every engine's epochs.
        for (k, round) in rounds.enumerated() {
            let at = roundsNode.element(k)
            guard round.round >= 0 && round.round < 1_000_000, round.seed == experiment.seed &+ UInt64(round.round) else {
                throw JSONProblem("\(at).seed", "round \(round.round) has seed \(round.seed), but the experiment's seed is "
                                  + "\(experiment.seed), so round \(round.round) has seed \(experiment.seed &+ UInt64(max(round.round, 0)))")
            }
            for run in round.engines {
                let last = run.divergence.map { $0.epoch - 1 } ?? experiment.training.epochs
                let expected = Array(0...max(last, 0))
                guard run.epochs.map(\.epoch) == expected else {
                    throw JSONProblem("\(at).engines[\"\(run.name)\"].epochs",
                                      "epochs \(run.epochs.map { String($0.epoch) }.prefix(6).joined(separator: ", "))"
                                      + (run.epochs.count > 6 ? ", …" : "") + ", but a round has epochs 0 to \(last), each once, in order")
                }
            }
        }
    }
}

extension PublishedFigure {
    init(node: JSONNode) throws {
        let m = try node.members()
        func optionalNumber(_ key: String) throws -> Double? {
            let value = try m.required(key, "missing")
            return value.isNull ? nil : try value.number()
        }
        let rounds = try m.required("rounds", "missing")
        self.init(report: try m.required("report", "missing").string(), table: try m.required("table", "missing").string(),
                  metric: try m.required("metric", "missing").string(), mean: try optionalNumber("mean"), sd: try optionalNumber("sd"),
                  unit: try m.required("unit", "missing").string(), rounds: rounds.isNull ? nil : try rounds.integer(),
                  text: try m.required("text", "missing").string(),
                  knownDifference: try m["knownDifference"].flatMap { $0.isNull ? nil : try $0.string() })
    }
}

extension RoundRecord {
    init(node: JSONNode) throws {
        let m = try node.members()
        round = try m.required("round", "missing").integer()
        let seedNode = try m.required("seed", "missing")
        guard case .number(_, let integer?) = seedNode.value, integer >= 0 else { throw seedNode.problem("expected a seed") }
        seed = UInt64(integer)
        let enginesNode = try m.required("engines", "missing")
        let members = try enginesNode.members()
        var verifications: [String: Verification] = [:]
        engines = try members.keys.map { name in
            let e = try members[name]!.members()
            let seconds = try e.required("seconds", "missing")
            let divergence = try e.required("divergence", "missing")
            var d: Divergence? = nil
            if !divergence.isNull {
                let dm = try divergence.members()
                d = Divergence(epoch: try dm.required("epoch", "missing").integer(), batch: try dm.required("batch", "missing").integer(),
                               loss: try dm["loss"]?.numberOrNonFinite() ?? .nan)
            }
            if let v = e["verification"] { verifications[name] = try Verification(node: v, engine: name) }
            return EngineRun(name: name, engine: try e.required("engine", "missing").string(),
                             seconds: seconds.isNull ? nil : try seconds.number(),
                             epochs: try e.required("epochs", "missing").array().map { try EpochMetrics(node: $0) }, divergence: d)
        }
        // Every round of a compare report has the three built-in engines, each with its epochs: a round without
        // them could not be judged, and would otherwise count as passed.
        for name in [EngineName.framework, EngineName.reference, EngineName.shadow] {
            guard let run = engines.first(where: { $0.name == name }) else { throw enginesNode.problem("round \(round) has no \"\(name)\" engine") }
            guard !run.epochs.isEmpty else { throw JSONProblem(enginesNode.child(name), "round \(round): the \(name) engine has no epochs") }
        }
        self.verifications = verifications
        // Every engine judged has its verification: without it, a forged shard could leave it out.
        for run in engines where run.name != EngineName.reference && run.name != EngineName.shadow && verifications[run.name] == nil {
            throw JSONProblem(enginesNode.child(run.name), "round \(round): the \(run.name) engine has no verification")
        }
        comparisons = []  // judged again by `Report.init(node:)`
        // The localisations are evidence, not verdicts: kept as written.
        localisations = try m.required("parity", "missing").array().compactMap { entry in
            try entry.members()["locate"].map(Localisation.init(node:))
        }
    }
}

// MARK: - Merging shards

public struct MergeError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

extension Report {
    /// Joins the reports of the shards of one run (`--shard K/N`) into the run's report.
    ///
    /// They must be one complete set: every K of the same N exactly once (or a single whole run), with the same
    /// plan (experiments, rounds, outside engines, planted difference), the same experiments (each embedded in
    /// full: seeds, overrides and data included), the same tolerances and the same build (version, commit,
    /// configuration, kernel, BLAS); together they must hold every (experiment, round) job exactly once. Every
    /// round is judged again from its traces: the verdicts written in the files are not trusted.
    public static func merge(_ reports: [(file: String, report: Report)]) throws -> Report {
        guard let (firstFile, first) = reports.first else { throw MergeError(message: "nothing to merge") }
        if let problem = first.tolerances.rangeProblem { throw MergeError(message: "\(firstFile): tolerances out of range: \(problem)") }
        var wholePlan = first.plan
        wholePlan.shard = nil
        for (file, report) in reports.dropFirst() {
            var plan = report.plan
            plan.shard = nil
            guard plan == wholePlan else {
                throw MergeError(message: "\(file): a different run from \(firstFile) (plan: rounds, experiments, engines or planted difference differ)")
            }
            guard report.tolerances == first.tolerances else { throw MergeError(message: "\(file): tolerances differ from \(firstFile)'s") }
            let a = report.build, b = first.build
            guard a.version == b.version && a.commit == b.commit && a.configuration == b.configuration && a.kernel == b.kernel
                    && a.nativeCPU == b.nativeCPU && a.blas == b.blas else {
                throw MergeError(message: "\(file): built differently from \(firstFile) (\(a.description) against \(b.description))")
            }
        }
        // One complete set of shards.
        let shards = reports.map { ($0.file, $0.report.plan.shard) }
        if shards.contains(where: { $0.1 == nil }) {
            guard reports.count == 1 else {
                let whole = shards.first { $0.1 == nil }!.0
                throw MergeError(message: "\(whole) is a whole run, not a shard: it cannot be merged with others")
            }
        } else {
            let count = shards[0].1!.count
            if let other = shards.first(where: { $0.1!.count != count }) {
                throw MergeError(message: "\(other.0) is shard \(other.1!) but \(shards[0].0) is of \(count) shards: not one set")
            }
            var seen: [Int: String] = [:]
            for (file, shard) in shards {
                if let earlier = seen.updateValue(file, forKey: shard!.index) {
                    throw MergeError(message: "shard \(shard!) is given twice: \(earlier) and \(file)")
                }
            }
            let missing = (1...count).filter { seen[$0] == nil }
            if !missing.isEmpty {
                throw MergeError(message: "incomplete set: shard\(missing.count == 1 ? "" : "s") \(missing.map { "\($0)/\(count)" }.joined(separator: ", ")) "
                                 + "of \(count) missing")
            }
        }
        // Every job exactly once, each experiment the same everywhere.
        var records: [String: ExperimentRecord] = [:]
        for (file, report) in reports {
            for experiment in report.experiments {
                guard wholePlan.experiments.contains(experiment.name) else {
                    throw MergeError(message: "\(file): experiment \(experiment.name) is not in the run's plan")
                }
                if var existing = records[experiment.name] {
                    guard existing.experiment == experiment.experiment && existing.configuration == experiment.configuration else {
                        throw MergeError(message: "\(file): experiment \(experiment.name) differs from the one in another shard")
                    }
                    for round in experiment.rounds {
                        if existing.rounds.contains(where: { $0.round == round.round }) {
                            throw MergeError(message: "\(file): experiment \(experiment.name) round \(round.round) is in another shard too")
                        }
                        existing.rounds.append(round)
                    }
                    existing.rounds.sort { $0.round < $1.round }
                    records[experiment.name] = existing
                } else {
                    records[experiment.name] = experiment
                }
            }
        }
        var experiments: [ExperimentRecord] = []
        var jobs = 0
        for name in wholePlan.experiments {
            guard var record = records[name] else { throw MergeError(message: "experiment \(name) has no rounds in any of the reports") }
            let rounds = Set(record.rounds.map(\.round))
            let missing = (0..<wholePlan.rounds).filter { !rounds.contains($0) }
            guard missing.isEmpty, rounds.count == wholePlan.rounds else {
                throw MergeError(message: "experiment \(name): rounds \(missing.map(String.init).joined(separator: ", ")) are in none of the reports")
            }
            for index in record.rounds.indices {
                let round = record.rounds[index]
                record.rounds[index].comparisons = judge(round.engines, verifications: round.verifications, tolerances: first.tolerances)
            }
            jobs += record.rounds.count
            experiments.append(record)
        }
        guard jobs == wholePlan.jobs else {
            throw MergeError(message: "the reports hold \(jobs) jobs but the run had \(wholePlan.jobs)")
        }
        return Report(build: first.build, command: CommandLine.arguments, plan: wholePlan, tolerances: first.tolerances,
                      experiments: experiments)
    }
}
