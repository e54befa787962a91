// The parity rule of Parity.swift, clause by clause, on synthetic traces: each test changes one thing in a trace
// that otherwise agrees, and checks that exactly that clause decides.

import CompareCore
import Framework
import XCTest

final class ParityRuleTests: XCTestCase {
    /// Epochs 0…count−1 with falling losses and rising accuracies.
    private func epochs(_ count: Int) -> [EpochMetrics] {
        (0..<count).map { (e: Int) -> EpochMetrics in
            let x = Double(e)
            let trainLoss: Double = 1 / (x + 1), testLoss: Double = 1.5 / (x + 1)
            return EpochMetrics(epoch: e, trainLoss: trainLoss, testLoss: testLoss, trainAccuracy: 0.5 + 0.1 * x, testAccuracy: 0.4 + 0.1 * x)
        }
    }

    private func judge(_ engine: [EpochMetrics], _ referee: [EpochMetrics], shadow: [EpochMetrics]? = nil,
                       tolerances: Tolerances = Tolerances()) -> Parity {
        compareTraces((engine, nil), with: (referee, nil), shadow: shadow.map { ($0, nil) }, tolerances: tolerances)
    }

    func testIdenticalTracesPass() {
        let parity = judge(epochs(4), epochs(4))
        XCTAssertTrue(parity.passed, parity.reason)
        XCTAssertEqual(parity.epochsCompared, 4)
    }

    /// Accuracies are compared on the train set as well as the test set.
    func testATrainAccuracyDifferenceAloneFails() {
        var engine = epochs(4)
        engine[2].trainAccuracy += 0.05
        let parity = judge(engine, epochs(4))
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.firstFailingEpoch, 2)
        XCTAssertTrue(parity.reason.hasPrefix("epoch 2: accuracy differs (train "), parity.reason)
        XCTAssertEqual(parity.maxTrainAccuracyDifference, 0.05, accuracy: 1e-15)

        var test = epochs(4)
        test[1].testAccuracy -= 0.05
        XCTAssertFalse(judge(test, epochs(4)).passed, "and on the test set")
    }

    /// An engine trace with an epoch the referee does not have fails, and one lacking an epoch fails.
    func testEpochsMustBeTheSame() {
        let extra = judge(epochs(5), epochs(4))
        XCTAssertFalse(extra.passed)
        XCTAssertEqual(extra.reason, "the framework trace has epochs the reference does not (from epoch 4)")
        XCTAssertEqual(extra.firstFailingEpoch, 4)

        let missing = judge(Array(epochs(4).dropLast()), epochs(4))
        XCTAssertFalse(missing.passed)
        XCTAssertEqual(missing.reason, "the framework trace has no epoch 3")
        let noZero = judge(Array(epochs(4).dropFirst()), epochs(4))
        XCTAssertEqual(noZero.reason, "the framework trace has no epoch 0 (the evaluation before any update)")
    }

    /// `|a − b| ≤ atol + rtol·max(|a|, |b|)`: relative to the larger loss, at the boundary exactly. With rtol ½
    /// (outside `compare`'s ranges, to make the boundary exact in binary), losses 1 and 2 agree (½·2 = 1) and 1 and
    /// 2.5 do not.
    func testTheToleranceIsRelativeToTheLargerLoss() {
        func trace(_ loss: Double) -> [EpochMetrics] {
            [EpochMetrics(epoch: 0, trainLoss: loss, testLoss: loss, trainAccuracy: 1, testAccuracy: 1)]
        }
        let half = Tolerances(rtol: 0.5, atol: 0, accuracy: 0, amplification: 0)
        XCTAssertTrue(judge(trace(1), trace(2), tolerances: half).passed, "1 vs 2 within ½·max")
        XCTAssertTrue(judge(trace(2), trace(1), tolerances: half).passed, "symmetric")
        XCTAssertFalse(judge(trace(1), trace(2.5), tolerances: half).passed)
        let absolute = Tolerances(rtol: 0, atol: 0.25, accuracy: 0, amplification: 0)
        XCTAssertTrue(judge(trace(1), trace(1.25), tolerances: absolute).passed, "atol alone, at its boundary")
        XCTAssertFalse(judge(trace(1), trace(1.5), tolerances: absolute).passed)
    }

    /// The allowance for amplified rounding never applies at epoch 0, before any update, where nothing has been
    /// amplified: a shadow already 10⁻⁶ away at epoch 0 (an input that moved it, not rounding) does not let a
    /// 10⁻⁸ difference from the referee pass there, while the same difference at epoch 1 passes as amplified.
    func testTheAmplificationAllowanceNeverAppliesAtEpochZero() {
        let framework = epochs(3)
        var shadow = framework
        for e in 0..<3 { shadow[e].trainLoss *= 1 + 1e-6 }
        var atZero = framework
        atZero[0].testLoss *= 1 + 1e-8
        let zero = judge(framework, atZero, shadow: shadow)
        XCTAssertFalse(zero.passed, "epoch 0: \(zero.reason)")
        XCTAssertEqual(zero.firstFailingEpoch, 0)

        var atOne = framework
        atOne[1].testLoss *= 1 + 1e-8
        let one = judge(framework, atOne, shadow: shadow)
        XCTAssertTrue(one.passed, "epoch 1, within 1000 × 10⁻⁶: \(one.reason)")
        XCTAssertEqual(one.separatedAt, 1)
    }

    /// s(e) is the running maximum of the shadow's difference up to epoch e: a shadow that separated by 10⁻⁶ at
    /// epoch 1 and came back to 10⁻¹² at epoch 2 still allows 1000·10⁻⁶ at epoch 2.
    func testTheRoundingSensitivityIsARunningMaximum() {
        let framework = epochs(4)
        var shadow = framework
        shadow[1].trainLoss *= 1 + 1e-6
        shadow[2].trainLoss *= 1 + 1e-12
        let s = roundingSensitivity(framework: (framework, nil), shadow: (shadow, nil))
        XCTAssertEqual(s[0], 0)
        XCTAssertEqual(s[1]!, 1e-6, accuracy: 1e-11)
        XCTAssertEqual(s[2]!, s[1]!, "the maximum so far, not epoch 2's own 10⁻¹²")
        XCTAssertEqual(s[3]!, s[1]!)

        var referee = framework
        referee[2].testLoss *= 1 + 1e-4   // 100× the sensitivity: within the allowance of 1000×
        let parity = judge(framework, referee, shadow: shadow)
        XCTAssertTrue(parity.passed, parity.reason)
        XCTAssertEqual(parity.separatedAt, 2)
    }
}
