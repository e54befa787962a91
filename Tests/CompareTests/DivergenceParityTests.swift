// Divergence in the parity verdict, on synthetic traces: both engines diverging at the same epoch and batch
// is parity (reported as such); one diverging alone, or both at different steps, fails.

import CompareCore
import Framework
import XCTest

final class DivergenceParityTests: XCTestCase {
    /// Epochs 0…count−1 with losses that fall and accuracies that rise, scaled by `scale` (1: the same trace)
    /// from epoch `from` on (before it, the unscaled trace).
    private func epochs(_ count: Int, scale: Double = 1, from: Int = 0) -> [EpochMetrics] {
        (0..<count).map { (e: Int) -> EpochMetrics in
            let x = Double(e), scale = e >= from ? scale : 1
            let trainLoss: Double = scale / (x + 1), testLoss: Double = 1.5 * scale / (x + 1)
            let trainAccuracy: Double = 0.5 + 0.1 * x, testAccuracy: Double = 0.4 + 0.1 * x
            return EpochMetrics(epoch: e, trainLoss: trainLoss, testLoss: testLoss,
                                trainAccuracy: trainAccuracy, testAccuracy: testAccuracy)
        }
    }

    private func divergence(_ epoch: Int, _ batch: Int) -> Divergence {
        Divergence(epoch: epoch, batch: batch, loss: .infinity)
    }

    func testBothDivergedAtTheSameStepPassesAndSaysSo() {
        let trace: EpochTrace = (epochs(2), divergence(2, 7))
        let parity = compareTraces(trace, with: trace, shadow: trace, tolerances: Tolerances())
        XCTAssertTrue(parity.passed, parity.reason)
        XCTAssertEqual(parity.divergence, "both at epoch 2, batch 7")
        XCTAssertEqual(parity.reason, "")
        XCTAssertEqual(parity.epochsCompared, 2)
    }

    func testBothDivergedAtTheSameStepStillFailsWhenTheEpochsBeforeDiffer() {
        let parity = compareTraces((epochs(2), divergence(2, 7)),
                                   with: (epochs(2, scale: 1 + 1e-6), divergence(2, 7)), tolerances: Tolerances())
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.divergence, "both at epoch 2, batch 7")
        XCTAssertTrue(parity.reason.contains("epoch 0: loss differs"), parity.reason)
    }

    func testOneEngineDivergingAloneFails() {
        let parity = compareTraces((epochs(4), nil), with: (epochs(2), divergence(2, 7)),
                                   tolerances: Tolerances())
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.divergence, "framework did not diverge; reference at epoch 2, batch 7")
        XCTAssertEqual(parity.reason, "only one engine diverged: framework did not diverge; reference at epoch 2, batch 7")

        let other = compareTraces((epochs(3), divergence(3, 1)), with: (epochs(4), nil), tolerances: Tolerances())
        XCTAssertFalse(other.passed)
        XCTAssertEqual(other.divergence, "framework at epoch 3, batch 1; reference did not diverge")
    }

    func testBothDivergedAtDifferentStepsFails() {
        let parity = compareTraces((epochs(2), divergence(2, 7)), with: (epochs(2), divergence(2, 8)),
                                   tolerances: Tolerances())
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.reason,
                       "both engines diverged, at different steps: framework at epoch 2, batch 7; reference at epoch 2, batch 8")
    }

    /// Before the horizon, one engine diverging fails; past it, a different divergence is reported, and judged by
    /// the replay (which, without one, leaves the round unverified, `judge`).
    func testOneDivergingFailsBeforeTheHorizon() {
        let framework = epochs(3), shadow = epochs(4, scale: 1 + 1e-9, from: 1)
        let parity = compareTraces((framework, divergence(3, 2)), with: (epochs(4), nil), tolerances: Tolerances())
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.reason, "only one engine diverged: framework at epoch 3, batch 2; reference did not diverge")
        let past = compareTraces((framework, divergence(3, 2)), with: (epochs(4, scale: 1 + 1e-7, from: 1), nil),
                                 shadow: (shadow, nil), tolerances: Tolerances())
        XCTAssertEqual(past.horizon, 1)
        XCTAssertTrue(past.passed, "past the horizon nothing free-running is judged: \(past.reason)")
        XCTAssertEqual(past.divergence, "framework at epoch 3, batch 2; reference did not diverge")
    }
}
