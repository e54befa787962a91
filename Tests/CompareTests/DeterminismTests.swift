// Determinism: the same seeds give bit-identical traces run after run, and rounds run in parallel give
// exactly what they give one after another.

import CompareCore
import Framework
import Foundation
import XCTest

final class DeterminismTests: XCTestCase {
    private static let plan: [PlannedExperiment] = [
        """
        {"name": "sgd-momentum-shuffled", "seed": 40, "data": {"disk": {"train": 60, "test": 30}},
         "model": {"layers": [{"type": "linear", "in": 2, "out": 8}, {"type": "tanh"}, {"type": "linear", "in": 8, "out": 2}]},
         "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}, "training": {"epochs": 5, "batchSize": 7}}
        """,
        """
        {"name": "adam-bce", "seed": 7, "data": {"disk": {"train": 40, "test": 20}},
         "model": {"layers": [{"type": "linear", "in": 2, "out": 6, "init": "xavier"}, {"type": "relu"},
                              {"type": "linear", "in": 6, "out": 1}, {"type": "sigmoid"}]},
         "loss": {"type": "bce"}, "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 4, "batchSize": 3}}
        """,
        """
        {"name": "diverging", "seed": 3, "data": {"disk": {"train": 20, "test": 10}},
         "model": {"layers": [{"type": "linear", "in": 2, "out": 4}, {"type": "tanh"}, {"type": "linear", "in": 4, "out": 2}]},
         "optimizer": {"type": "sgd", "lr": 1e6}, "training": {"epochs": 3, "batchSize": 1}}
        """,
    ].map { PlannedExperiment(try! Experiment.decode(Data($0.utf8), file: "determinism.json")) }

    /// Everything a report holds except wall times, with every number as its bit pattern.
    private func fingerprint(_ report: Report) -> [String] {
        func bits(_ e: EpochMetrics) -> String {
            "\(e.epoch):\(e.trainLoss.bitPattern),\(e.testLoss.bitPattern),\(e.trainAccuracy.bitPattern),\(e.testAccuracy.bitPattern)"
        }
        var lines: [String] = [report.verdict]
        for experiment in report.experiments {
            for round in experiment.rounds {
                var parity = round.parity
                parity.verification?.seconds = 0   // a wall time, not a result
                lines.append("\(experiment.name) round \(round.round) seed \(round.seed) parity \(parity)")
                for engine in [EngineName.framework, EngineName.reference] {
                    let record = round.engine(engine)
                    let divergence = record?.divergence.map { "\($0.epoch)/\($0.batch)/\($0.loss.bitPattern)" } ?? "none"
                    lines.append("  \(engine) divergence \(divergence) epochs "
                                 + (record?.epochs.map(bits).joined(separator: " ") ?? "missing"))
                }
            }
        }
        return lines
    }

    func testParallelRoundsAreBitIdenticalRunAfterRunAndToSequentialOnes() throws {
        let first = try CompareCore.run(RunRequest(experiments: Self.plan, rounds: 4, parallel: true))
        let second = try CompareCore.run(RunRequest(experiments: Self.plan, rounds: 4, parallel: true))
        let sequential = try CompareCore.run(RunRequest(experiments: Self.plan, rounds: 4, parallel: false))

        let reference = fingerprint(first.report)
        XCTAssertEqual(reference.count, 1 + 3 * 4 * 3, "verdict + per round: parity and two engines")
        XCTAssertEqual(fingerprint(second.report), reference, "run after run")
        XCTAssertEqual(fingerprint(sequential.report), reference, "parallel against sequential")
        XCTAssertEqual(first.report.experiments.map { $0.rounds.map(\.seed) }, [[40, 41, 42, 43], [7, 8, 9, 10], [3, 4, 5, 6]])
        XCTAssertTrue(first.report.passed, textReport(first.report))
        XCTAssertTrue(reference.contains { $0.contains("both at epoch") }, "the diverging experiment diverges")
    }
}
