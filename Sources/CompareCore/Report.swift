import Foundation
import Framework

// The machine-readable report (`--json`), and what the text tables and plots are made from.
// Shape: {"experiments": [{"name", "rounds": [{"seed", "engines": {"framework": {"seconds", "epochs": [...]},
// "reference": {...}}, "parity": {...}}]}], "blas", "verdict"}. Epoch 0 is the evaluation before any update.

/// One epoch's metrics as written in reports and fixtures: Framework's `EpochMetrics`, which is Codable.
public typealias EpochRecord = EpochMetrics

/// Where an engine diverged (1-based epoch and batch) and the loss it saw.
public typealias DivergenceRecord = Divergence

/// One engine's run in one round.
public struct EngineRecord: Codable, Equatable, Sendable {
    /// Wall time of training plus per-epoch evaluation, without loading or data generation.
    public var seconds: Double
    public var epochs: [EpochRecord]
    public var divergence: DivergenceRecord?

    public init(_ outcome: EngineOutcome) {
        seconds = outcome.seconds
        epochs = outcome.epochs
        divergence = outcome.divergence
    }
    public var trace: (epochs: [EpochMetrics], divergence: Divergence?) {
        (epochs, divergence)
    }
    public var last: EpochRecord? { epochs.last }
}

/// One round: its seed, both engines' runs, and their parity.
public struct RoundRecord: Codable, Equatable, Sendable {
    public var round: Int
    public var seed: UInt64
    public var engines: [String: EngineRecord]
    public var parity: Parity

    public var framework: EngineRecord? { engines[Engine.framework.rawValue] }
    public var reference: EngineRecord? { engines[Engine.reference.rawValue] }
}

/// A figure an original report published, to print beside ours.
public struct PublishedFigure: Codable, Equatable, Sendable {
    /// Train accuracy as published, e.g. "0.993 ± 0.003" or "98.6 %".
    public var train: String?
    /// Test accuracy as published.
    public var test: String?
    /// Which report and table, e.g. "seeds/002, table II".
    public var source: String
}

/// One experiment: its configuration, its rounds, and what was published for it.
public struct ExperimentRecord: Codable, Equatable, Sendable {
    public var name: String
    /// The table of the suite this belongs to ("" outside suites).
    public var table: String
    /// The configuration in one line, hyperparameters included.
    public var configuration: String
    public var published: PublishedFigure?
    public var rounds: [RoundRecord]
}

/// The whole report.
public struct Report: Codable, Equatable, Sendable {
    public var experiments: [ExperimentRecord]
    /// Which BLAS served `cblas_dgemm` in Reference.
    public var blas: String
    public var tolerances: Tolerances
    /// "pass" when every round of every experiment has parity, else "fail".
    public var verdict: String
    /// "K/N" when this report is one shard of a suite.
    public var shard: String?

    public var passed: Bool { verdict == "pass" }

    /// The verdict implied by the rounds.
    public static func verdict(of experiments: [ExperimentRecord]) -> String {
        experiments.allSatisfy { $0.rounds.allSatisfy(\.parity.passed) } ? "pass" : "fail"
    }

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity",
                                                                      negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity",
                                                                        negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }

    /// Joins shard reports: experiments with the same name have their rounds merged (ordered by round;
    /// a round present twice is an error), tolerances must agree, and the verdict is recomputed.
    public static func merge(_ reports: [(file: String, report: Report)]) throws -> Report {
        guard let first = reports.first else { throw MergeError(message: "nothing to merge") }
        var order: [String] = []
        var byName: [String: ExperimentRecord] = [:]
        for (file, report) in reports {
            guard report.tolerances == first.report.tolerances else {
                throw MergeError(message: "\(file): tolerances differ from \(first.file)'s")
            }
            for experiment in report.experiments {
                if var existing = byName[experiment.name] {
                    guard existing.configuration == experiment.configuration else {
                        throw MergeError(message: "\(file): experiment \(experiment.name) has a different configuration")
                    }
                    for round in experiment.rounds {
                        if existing.rounds.contains(where: { $0.round == round.round }) {
                            throw MergeError(message: "\(file): experiment \(experiment.name) round \(round.round) is already in another report")
                        }
                        existing.rounds.append(round)
                    }
                    existing.rounds.sort { $0.round < $1.round }
                    byName[experiment.name] = existing
                } else {
                    order.append(experiment.name)
                    byName[experiment.name] = experiment
                }
            }
        }
        let experiments = order.map { byName[$0]! }
        let blas = Set(reports.map(\.report.blas)).sorted().joined(separator: " + ")
        return Report(experiments: experiments, blas: blas, tolerances: first.report.tolerances,
                      verdict: verdict(of: experiments), shard: nil)
    }
}

public struct MergeError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
