// Fixture.compare, the judge of fixture replay, clause by clause: a trace that matches a fixture's expectations
// gives no mismatch, and each kind of difference is named (the number of epochs, a loss beyond rtol, where the
// run diverged, a final parameter), on in-memory traces so that no engine runs.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

final class FixtureCompareTests: XCTestCase {
    let weight = Matrix([[3, 4]]), bias = Matrix([[-1, 2, 2]])
    let epochs = (0...3).map { e in
        EpochMetrics(epoch: e, trainLoss: 1000 / Double(e + 1), testLoss: 2 / Double(e + 1), trainAccuracy: 0.5, testAccuracy: 0.25)
    }

    /// A recorded fixture with these epochs, no divergence, these parameters' summaries and the recorded tolerances.
    func fixture() throws -> Fixture {
        let url = TestPaths.fixtures.appendingPathComponent("recorded/linear-mse-sgd-one-output.fixture.json")
        var (fixture, _) = try Fixture.load(contentsOf: url)
        fixture.epochs = epochs
        fixture.divergence = nil
        fixture.parameters = Fixture.summaries([(weight, bias)])
        XCTAssertEqual([fixture.tolerances.rtol, fixture.tolerances.atol, fixture.tolerances.accuracy], [1e-10, 1e-14, 0],
                       "the recorded tolerances these tests are written for")
        return fixture
    }

    func trace(epochs: [EpochMetrics]? = nil, divergence: Divergence? = nil, weight: Matrix? = nil) -> Trace {
        Trace(experiment: "case", engine: "test", epochs: epochs ?? self.epochs, divergence: divergence,
              finalParameters: [(weight ?? self.weight, bias)])
    }

    /// Sum and Euclidean norm: weight [3, 4] → 7 and 5; bias [−1, 2, 2] → 3 and 3.
    func testSummariesAreSumsAndEuclideanNorms() {
        let summary = Fixture.summaries([(weight, bias)])
        XCTAssertEqual(summary.count, 1)
        XCTAssertEqual(summary.map { [$0.weightSum, $0.weightNorm, $0.biasSum, $0.biasNorm] }, [[7, 5, 3, 3]])
    }

    func testAMatchingTraceHasNoMismatch() throws {
        XCTAssertEqual(try fixture().compare(trace(), engine: "test"), [])
    }

    /// A loss 10⁻¹¹ relative away (10⁻⁸ absolute, far above atol) is within rtol 10⁻¹⁰; 10⁻⁹ relative is not.
    func testLossesAreComparedRelatively() throws {
        var close = epochs, far = epochs
        close[1].trainLoss *= 1 + 1e-11
        far[1].trainLoss *= 1 + 1e-9
        XCTAssertEqual(try fixture().compare(trace(epochs: close), engine: "test"), [])
        let mismatches = try fixture().compare(trace(epochs: far), engine: "test")
        XCTAssertEqual(mismatches.map(\.metric), ["trainLoss"])
        XCTAssertEqual(mismatches.first?.epoch, 1)
    }

    /// A trace that stops early matches on the epochs it has, so the count itself is checked.
    func testAMissingEpochIsAMismatch() throws {
        let mismatches = try fixture().compare(trace(epochs: Array(epochs.dropLast())), engine: "test")
        XCTAssertEqual(mismatches.map(\.metric), ["number of epochs"])
        XCTAssertEqual(mismatches.first?.expected, 4)
        XCTAssertEqual(mismatches.first?.actual, 3)
    }

    func testWhereTheRunDivergedIsCompared() throws {
        let mismatches = try fixture().compare(trace(divergence: Divergence(epoch: 4, batch: 2, loss: .infinity)), engine: "test")
        XCTAssertEqual(mismatches.map(\.metric), ["divergence epoch (0: none)"])
        XCTAssertEqual(mismatches.first?.actual, 4)
    }

    /// The final parameters are compared through their summaries: one weight moved by 10⁻⁶ changes its sum and norm.
    func testAFinalParameterIsCompared() throws {
        let moved = Matrix([[3, 4 + 1e-6]])
        let mismatches = try fixture().compare(trace(weight: moved), engine: "test")
        XCTAssertEqual(mismatches.map(\.metric), ["layer 0 weight sum", "layer 0 weight norm"])
        XCTAssertTrue(mismatches.first?.description.contains("re-record with: swift run compare record --mode failed") ?? false)
    }

    /// The loader refuses epochs that are not numbered 0…E in order, as well as a wrong count.
    func testTheLoaderRefusesEpochsOutOfOrder() throws {
        let url = TestPaths.fixtures.appendingPathComponent("recorded/linear-mse-sgd-one-output.fixture.json")
        var object = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as! [String: Any]
        var expected = object["expected"] as! [String: Any]
        var list = expected["epochs"] as! [[String: Any]]
        XCTAssertGreaterThan(list.count, 2)
        list.swapAt(1, 2)
        expected["epochs"] = list
        object["expected"] = expected
        let data = try JSONSerialization.data(withJSONObject: object)
        XCTAssertThrowsError(try Fixture.decode(data, file: "case.fixture.json")) { error in
            XCTAssertEqual((error as? FixtureError)?.field, "expected.epochs", "\(error)")
        }
    }
}
