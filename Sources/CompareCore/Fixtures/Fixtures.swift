import Foundation
import Framework

// Regression fixtures: recorded training traces that `swift test` replays through both engines.
//
// Two kinds live under fixtures/:
// - recorded/NAME.fixture.json: written by `compare record` from Framework, one self-describing file per
//   case (format "minidl-fixture", version 1): the experiment inline, the expected per-epoch trace,
//   per-tensor sums and norms of the final parameters, the tolerances, and where it came from.
// - pytorch/NAME.experiment.json + NAME.torch.json: PyTorch's float64 traces, kept as given and never
//   re-recorded, read as version-1 traces (Traces/TraceFile.swift): both engines must match them (losses to
//   1e-10 relative, accuracies exactly).

/// A recorded fixture.
public struct Fixture: Equatable, Sendable {
    public static let formatName = "minidl-fixture"
    public static let currentVersion = 1

    public var name: String
    /// What the case covers, in a sentence.
    public var covers: String
    /// The experiment (inline in the file, in the experiment file format).
    public var experiment: Experiment
    /// The round whose seed (experiment seed + round) was recorded.
    public var round: Int
    /// Epochs 0…E, or fewer when the run diverged.
    public var epochs: [EpochMetrics]
    public var divergence: Divergence?
    /// Per linear layer: sum and Euclidean norm of the final weight and bias.
    public var parameters: [TensorSummary]
    public var tolerances: Tolerances
    public var provenance: Provenance

    public struct TensorSummary: Equatable, Sendable {
        public var weightSum: Double
        public var weightNorm: Double
        public var biasSum: Double
        public var biasNorm: Double
    }

    /// Losses and parameter summaries agree when `|a − e| ≤ atol + rtol·|e|`; accuracies when `|a − e| ≤ accuracy`.
    public struct Tolerances: Equatable, Sendable {
        public var rtol: Double
        public var atol: Double
        public var accuracy: Double
    }

    public struct Provenance: Equatable, Sendable {
        public var recordedBy: String
        public var swift: String
        public var blas: String
        public var date: String
        public var command: String
    }

    /// The PyTorch referee's tolerances: losses to 1e-10 relative, accuracies exactly.
    public static let pytorchTolerances = Tolerances(rtol: 1e-10, atol: 0, accuracy: 0)
}

/// A fixture file that cannot be used; names the file and the field.
public struct FixtureError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let field: String
    public let message: String
    public var description: String { "\(file): \(field.isEmpty ? "" : "\(field): ")\(message)" }
}

/// One disagreement found by replay.
public struct FixtureMismatch: CustomStringConvertible, Equatable {
    public var fixture: String
    public var engine: String
    public var epoch: Int?
    public var metric: String
    public var expected: Double
    public var actual: Double
    public var tolerance: String
    public var rerecord: String
    public var description: String {
        "fixture \(fixture), engine \(engine)" + (epoch.map { ", epoch \($0)" } ?? "")
            + ", \(metric): expected \(expected), actual \(actual), tolerance \(tolerance); \(rerecord)"
    }
}

extension Fixture {
    /// Loads and checks a recorded fixture: known format and version, a valid inline experiment, an epoch list
    /// that matches it. Errors name the file and the field.
    public static func load(contentsOf url: URL) throws -> (fixture: Fixture, experiment: Experiment) {
        let file = url.lastPathComponent
        let data: Data
        do { data = try readFile(url, limit: Experiment.maxFileBytes) } catch let error as FileReadError {
            throw FixtureError(file: file, field: "", message: error.message)
        }
        return try decode(data, file: file)
    }

    public static func decode(_ data: Data, file: String) throws -> (fixture: Fixture, experiment: Experiment) {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch let error as JSONSyntaxError {
            throw FixtureError(file: file, field: "", message: error.message(for: data))
        }
        do {
            let fixture = try Fixture(node: JSONNode(json), file: file)
            return (fixture, fixture.experiment)
        } catch let problem as JSONProblem {
            throw FixtureError(file: file, field: problem.path, message: problem.message)
        }
    }

    private init(node: JSONNode, file: String) throws {
        guard case .object = node.value else { throw node.problem("not a JSON object") }
        let top = try node.members()
        try top.allowOnly(["format", "version", "name", "covers", "experiment", "round", "expected", "tolerances", "provenance"])
        let format = try top.required("format", "missing: expected \"\(Fixture.formatName)\"")
        guard case .string(Fixture.formatName) = format.value else {
            throw format.problem("expected \"\(Fixture.formatName)\", got \(format.value.summary)")
        }
        let version = try top.required("version", "missing: unknown format version (missing); this build reads version \(Fixture.currentVersion)")
        guard case .number(_, Int64(Fixture.currentVersion)?) = version.value else {
            throw version.problem("unknown format version \(version.value.summary); this build reads version \(Fixture.currentVersion)")
        }
        name = try top.required("name", "missing").string()
        covers = try top.required("covers", "missing").string()
        let experimentNode = try top.required("experiment", "missing: the experiment, inline")
        do {
            experiment = try Experiment.decode(experimentNode.value, file: file)
        } catch let error as ExperimentError {
            throw JSONProblem("experiment" + (error.path.isEmpty ? "" : ".\(error.path)"), error.message)
        }
        round = try top.required("round", "missing").integer()
        guard round >= 0 else { throw JSONProblem("round", "must be ≥ 0") }
        let expected = try top.required("expected", "missing").members()
        try expected.allowOnly(["epochs", "divergence", "parameters"], in: "expected")
        let epochsNode = try expected.required("epochs", "missing")
        guard case .array = epochsNode.value else { throw epochsNode.problem("expected an array of epochs, got \(epochsNode.value.summary)") }
        epochs = try epochsNode.array().map { try EpochMetrics(node: $0) }
        let divergenceNode = try expected.required("divergence", "missing: null, or where the run diverged")
        if divergenceNode.isNull {
            divergence = nil
        } else {
            let d = try divergenceNode.members()
            divergence = Divergence(epoch: try d.required("epoch", "missing").integer(), batch: try d.required("batch", "missing").integer(),
                                    loss: try d.required("loss", "missing").numberOrNonFinite())
        }
        parameters = try expected.required("parameters", "missing").array().map { entry in
            let m = try entry.members()
            return TensorSummary(weightSum: try m.required("weightSum", "missing").numberOrNonFinite(),
                                 weightNorm: try m.required("weightNorm", "missing").numberOrNonFinite(),
                                 biasSum: try m.required("biasSum", "missing").numberOrNonFinite(),
                                 biasNorm: try m.required("biasNorm", "missing").numberOrNonFinite())
        }
        let t = try top.required("tolerances", "missing").members()
        tolerances = Tolerances(rtol: try t.required("rtol", "missing").number(), atol: try t.required("atol", "missing").number(),
                                accuracy: try t.required("accuracy", "missing").number())
        let p = try top.required("provenance", "missing").members()
        provenance = Provenance(recordedBy: try p.required("recordedBy", "missing").string(), swift: try p.required("swift", "missing").string(),
                                blas: try p.required("blas", "missing").string(), date: try p.required("date", "missing").string(),
                                command: try p.required("command", "missing").string())
        let expectedCount = divergence.map { $0.epoch } ?? experiment.training.epochs + 1
        guard epochs.count == expectedCount, epochs.enumerated().allSatisfy({ $0.offset == $0.element.epoch }) else {
            throw JSONProblem("expected.epochs", "expected epochs 0…\(expectedCount - 1) in order, got \(epochs.count) entries")
        }
    }

    /// The fixture file.
    var jsonValue: JSONValue {
        jsonObject { o in
            o["format"] = .string(Fixture.formatName)
            o["version"] = .integer(Fixture.currentVersion)
            o["name"] = .string(name)
            o["covers"] = .string(covers)
            o["round"] = .integer(round)
            o["expected"] = .object([
                ("epochs", .array(epochs.map(\.jsonValue))),
                ("divergence", divergence.map(\.jsonValue) ?? .null),
                ("parameters", .array(parameters.map {
                    .object([("weightSum", .number($0.weightSum)), ("weightNorm", .number($0.weightNorm)),
                             ("biasSum", .number($0.biasSum)), ("biasNorm", .number($0.biasNorm))])
                })),
            ])
            o["tolerances"] = .object([("rtol", .number(tolerances.rtol)), ("atol", .number(tolerances.atol)),
                                        ("accuracy", .number(tolerances.accuracy))])
            o["provenance"] = .object([("recordedBy", .string(provenance.recordedBy)), ("swift", .string(provenance.swift)),
                                        ("blas", .string(provenance.blas)), ("date", .string(provenance.date)),
                                        ("command", .string(provenance.command))])
            o["experiment"] = experiment.jsonValue
        }
    }

    /// A PyTorch trace as a fixture's expectations (no parameter summaries: compared on the trace alone).
    public static func pytorch(name: String, trace: Trace, experiment: Experiment) -> Fixture {
        Fixture(name: name, covers: "PyTorch float64 trace", experiment: experiment, round: 0, epochs: trace.epochs,
                divergence: trace.divergence, parameters: [], tolerances: pytorchTolerances,
                provenance: .init(recordedBy: trace.engine, swift: "", blas: "", date: "", command: "given"))
    }

    /// Replays the fixture through `engine` and lists every disagreement (empty: it matches).
    public func replay(_ engine: TrainingEngine) throws -> [FixtureMismatch] {
        compare(try engine.train(MaterializedRound(experiment, round: round)), engine: engine.name)
    }

    /// The disagreements between this fixture's expectations and a trace.
    public func compare(_ trace: Trace, engine: String) -> [FixtureMismatch] {
        let rerecord = "if the change is intended, re-record with: swift run compare record --mode failed"
        var mismatches: [FixtureMismatch] = []
        func check(_ epoch: Int?, _ metric: String, _ expected: Double, _ actual: Double, accuracy: Bool = false) {
            let ok: Bool
            let tolerance: String
            if accuracy {
                ok = abs(actual - expected) <= tolerances.accuracy
                tolerance = "\(tolerances.accuracy) absolute"
            } else {
                ok = actual == expected || (actual.isNaN && expected.isNaN)
                    || abs(actual - expected) <= tolerances.atol + tolerances.rtol * abs(expected)
                tolerance = "rtol \(tolerances.rtol), atol \(tolerances.atol)"
            }
            if !ok {
                mismatches.append(FixtureMismatch(fixture: name, engine: engine, epoch: epoch, metric: metric,
                                                  expected: expected, actual: actual, tolerance: tolerance, rerecord: rerecord))
            }
        }
        if trace.epochs.count != epochs.count {
            check(nil, "number of epochs", Double(epochs.count), Double(trace.epochs.count), accuracy: true)
        }
        for (e, a) in zip(epochs, trace.epochs) {
            check(e.epoch, "trainLoss", e.trainLoss, a.trainLoss)
            check(e.epoch, "testLoss", e.testLoss, a.testLoss)
            check(e.epoch, "trainAccuracy", e.trainAccuracy, a.trainAccuracy, accuracy: true)
            check(e.epoch, "testAccuracy", e.testAccuracy, a.testAccuracy, accuracy: true)
        }
        check(nil, "divergence epoch (0: none)", divergence.map { Double($0.epoch) } ?? 0,
              trace.divergence.map { Double($0.epoch) } ?? 0, accuracy: true)
        if trace.divergence == nil, let final = trace.finalParameters {
            for (index, (e, a)) in zip(parameters, Fixture.summaries(final)).enumerated() {
                check(nil, "layer \(index) weight sum", e.weightSum, a.weightSum)
                check(nil, "layer \(index) weight norm", e.weightNorm, a.weightNorm)
                check(nil, "layer \(index) bias sum", e.biasSum, a.biasSum)
                check(nil, "layer \(index) bias norm", e.biasNorm, a.biasNorm)
            }
        }
        return mismatches
    }

    /// Sum and norm of each final weight and bias.
    public static func summaries(_ parameters: [(weight: Matrix, bias: Matrix)]) -> [TensorSummary] {
        parameters.map { p in
            TensorSummary(weightSum: p.weight.elements.reduce(0, +),
                          weightNorm: p.weight.elements.reduce(0) { $0 + $1 * $1 }.squareRoot(),
                          biasSum: p.bias.elements.reduce(0, +),
                          biasNorm: p.bias.elements.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
    }
}
