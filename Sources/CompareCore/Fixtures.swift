import Foundation
import Framework

// Regression fixtures: recorded training traces that `swift test` replays through both engines.
//
// Two kinds live under fixtures/:
// - recorded/NAME.fixture.json: written by `compare record` from Framework, one self-describing file per
//   case (format "minidl-fixture", version 1): the experiment inline, the expected per-epoch trace,
//   per-tensor sums and norms of the final parameters, the tolerances, and where it came from.
// - pytorch/NAME.experiment.json + NAME.torch.json: PyTorch 2.15's float64 traces, kept as given and
//   never re-recorded: both engines must match them (losses to 1e-10 relative, accuracies exactly).

/// The recorded fixture file format.
public struct Fixture: Codable, Equatable, Sendable {
    public static let formatName = "minidl-fixture"
    public static let currentVersion = 1

    /// Always "minidl-fixture".
    public var format: String
    /// The format version; a loader refuses versions it does not know.
    public var version: Int
    public var name: String
    /// What the case covers, in a sentence.
    public var covers: String
    /// The experiment, inline (the experiment file format).
    public var experiment: JSONObject
    /// The round whose seed (experiment seed + round) was recorded.
    public var round: Int
    public var expected: Expected
    public var tolerances: FixtureTolerances
    public var provenance: Provenance

    public struct Expected: Codable, Equatable, Sendable {
        public var epochs: [EpochRecord]
        public var divergence: DivergenceRecord?
        /// Per linear layer: sum and Euclidean norm of the final weight and bias.
        public var parameters: [TensorSummary]

        enum CodingKeys: String, CodingKey { case epochs, divergence, parameters }

        public init(epochs: [EpochRecord], divergence: DivergenceRecord?, parameters: [TensorSummary]) {
            self.epochs = epochs
            self.divergence = divergence
            self.parameters = parameters
        }

        /// Writes `"divergence": null` explicitly, so the file says there was none.
        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(epochs, forKey: .epochs)
            try container.encode(divergence, forKey: .divergence)
            try container.encode(parameters, forKey: .parameters)
        }
    }

    public struct TensorSummary: Codable, Equatable, Sendable {
        public var weightSum: Double
        public var weightNorm: Double
        public var biasSum: Double
        public var biasNorm: Double
    }

    /// Losses and parameter summaries agree when `|a − e| ≤ atol + rtol·|e|`; accuracies when `|a − e| ≤ accuracy`.
    public struct FixtureTolerances: Codable, Equatable, Sendable {
        public var rtol: Double
        public var atol: Double
        public var accuracy: Double
    }

    public struct Provenance: Codable, Equatable, Sendable {
        public var recordedBy: String
        public var swift: String
        public var blas: String
        public var date: String
        public var command: String
    }
}

/// A JSON object kept as parsed (the inline experiment), encoded back unchanged.
public struct JSONObject: Codable, Equatable, @unchecked Sendable {
    public var data: Data
    public init(_ object: [String: Any]) throws {
        data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }
    public init(from decoder: Decoder) throws {
        let value = try decoder.singleValueContainer().decode(AnyJSON.self)
        guard case .object = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: decoder.codingPath, debugDescription: "expected a JSON object"))
        }
        data = try JSONEncoder().encode(value)
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(try JSONDecoder().decode(AnyJSON.self, from: data))
    }
}

/// Any JSON value, for carrying an object through Codable unchanged (numbers kept as Double or Int).
indirect enum AnyJSON: Codable, Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([AnyJSON]), object([String: AnyJSON])
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([AnyJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: AnyJSON].self)) }
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(b): try c.encode(b)
        case let .int(i): try c.encode(i)
        case let .double(d): try c.encode(d)
        case let .string(s): try c.encode(s)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        }
    }
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
    public var engine: Engine
    public var epoch: Int?
    public var metric: String
    public var expected: Double
    public var actual: Double
    public var tolerance: String
    public var rerecord: String
    public var description: String {
        "fixture \(fixture), engine \(engine.rawValue)" + (epoch.map { ", epoch \($0)" } ?? "")
            + ", \(metric): expected \(expected), actual \(actual), tolerance \(tolerance); \(rerecord)"
    }
}

extension Fixture {
    /// Loads and checks a recorded fixture: known format and version, a valid inline experiment,
    /// an epoch list that matches it. Errors name the file and the field.
    public static func load(contentsOf url: URL) throws -> (fixture: Fixture, experiment: Experiment) {
        let file = url.lastPathComponent
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FixtureError(file: file, field: "", message: "cannot read the file")
        }
        return try decode(data, file: file)
    }

    public static func decode(_ data: Data, file: String) throws -> (fixture: Fixture, experiment: Experiment) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError(file: file, field: "", message: "not a JSON object")
        }
        guard object["format"] as? String == formatName else {
            throw FixtureError(file: file, field: "format", message: "expected \"\(formatName)\", got \(object["format"].map { "\($0)" } ?? "nothing")")
        }
        guard let version = object["version"] as? Int, version == currentVersion else {
            throw FixtureError(file: file, field: "version",
                               message: "unknown format version \(object["version"].map { "\($0)" } ?? "(missing)"); this build reads version \(currentVersion)")
        }
        let fixture: Fixture
        do {
            fixture = try Report.decoder().decode(Fixture.self, from: data)
        } catch {
            throw FixtureError(file: file, field: decodingPath(error), message: "malformed: \(decodingMessage(error))")
        }
        let experiment: Experiment
        do {
            experiment = try Experiment.decode(fixture.experiment.data, file: file)
        } catch let error as ExperimentError {
            throw FixtureError(file: file, field: "experiment" + (error.path.isEmpty ? "" : ".\(error.path)"), message: error.message)
        }
        let expectedCount = fixture.expected.divergence.map { $0.epoch } ?? experiment.training.epochs + 1
        guard fixture.expected.epochs.count == expectedCount,
              fixture.expected.epochs.enumerated().allSatisfy({ $0.offset == $0.element.epoch }) else {
            throw FixtureError(file: file, field: "expected.epochs",
                               message: "expected epochs 0…\(expectedCount - 1) in order, got \(fixture.expected.epochs.count) entries")
        }
        guard fixture.round >= 0 else { throw FixtureError(file: file, field: "round", message: "must be ≥ 0") }
        return (fixture, experiment)
    }

    /// Replays the fixture through `engine` and lists every disagreement (empty: it matches).
    public func replay(_ experiment: Experiment, engine: Engine) throws -> [FixtureMismatch] {
        let materialized = MaterializedRound(experiment, round: round)
        let outcome = engine == .framework ? try runFramework(materialized) : try runReference(materialized)
        return compare(outcome: outcome, engine: engine)
    }

    /// The disagreements between this fixture's expectations and an engine's outcome.
    public func compare(outcome: EngineOutcome, engine: Engine) -> [FixtureMismatch] {
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
        if outcome.epochs.count != expected.epochs.count {
            check(nil, "number of epochs", Double(expected.epochs.count), Double(outcome.epochs.count), accuracy: true)
        }
        for (e, a) in zip(expected.epochs, outcome.epochs) {
            check(e.epoch, "trainLoss", e.trainLoss, a.trainLoss)
            check(e.epoch, "testLoss", e.testLoss, a.testLoss)
            check(e.epoch, "trainAccuracy", e.trainAccuracy, a.trainAccuracy, accuracy: true)
            check(e.epoch, "testAccuracy", e.testAccuracy, a.testAccuracy, accuracy: true)
        }
        let divergenceEpoch = outcome.divergence.map { Double($0.epoch) } ?? 0
        check(nil, "divergence epoch (0: none)", expected.divergence.map { Double($0.epoch) } ?? 0, divergenceEpoch, accuracy: true)
        if outcome.divergence == nil {
            for (index, (e, a)) in zip(expected.parameters, Fixture.summaries(outcome.finalParameters)).enumerated() {
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

private func decodingPath(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "" }
    let context: DecodingError.Context
    switch error {
    case let .keyNotFound(key, c): return (c.codingPath + [key]).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    case let .typeMismatch(_, c), let .valueNotFound(_, c), let .dataCorrupted(c): context = c
    @unknown default: return ""
    }
    return context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}

private func decodingMessage(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    switch error {
    case .keyNotFound: return "missing"
    case let .typeMismatch(type, c): return "expected \(type): \(c.debugDescription)"
    case let .valueNotFound(type, _): return "expected \(type), got null"
    case let .dataCorrupted(c): return c.debugDescription
    @unknown default: return "\(error)"
    }
}

// MARK: - PyTorch traces

/// A PyTorch trace file (`NAME.torch.json`): per-epoch metrics and the final parameters.
public struct TorchTrace: Codable, Sendable {
    public var experiment: String
    public var epochs: [EpochRecord]

    public static func load(contentsOf url: URL) throws -> TorchTrace {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FixtureError(file: url.lastPathComponent, field: "", message: "cannot read the file")
        }
        do {
            return try JSONDecoder().decode(TorchTrace.self, from: data)
        } catch {
            throw FixtureError(file: url.lastPathComponent, field: decodingPath(error), message: "malformed: \(decodingMessage(error))")
        }
    }

    /// The PyTorch referee's tolerances: losses to 1e-10 relative, accuracies exactly.
    public static let tolerances = Fixture.FixtureTolerances(rtol: 1e-10, atol: 0, accuracy: 0)

    /// This trace as a fixture's expectations (no parameter summaries: compared on the trace alone).
    public func asFixture(name: String, experiment: Experiment) throws -> Fixture {
        Fixture(format: Fixture.formatName, version: Fixture.currentVersion, name: name,
                covers: "PyTorch 2.15 float64 trace", experiment: try JSONObject(experiment.jsonObject()), round: 0,
                expected: .init(epochs: epochs, divergence: nil, parameters: []),
                tolerances: TorchTrace.tolerances,
                provenance: .init(recordedBy: "PyTorch 2.15 (CPU, float64, one thread)", swift: "", blas: "", date: "", command: "given"))
    }
}
