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
        let half = Tolerances(rtol: 0.5, atol: 0, accuracy: 0)
        XCTAssertTrue(judge(trace(1), trace(2), tolerances: half).passed, "1 vs 2 within ½·max")
        XCTAssertTrue(judge(trace(2), trace(1), tolerances: half).passed, "symmetric")
        XCTAssertFalse(judge(trace(1), trace(2.5), tolerances: half).passed)
        let absolute = Tolerances(rtol: 0, atol: 0.25, accuracy: 0)
        XCTAssertTrue(judge(trace(1), trace(1.25), tolerances: absolute).passed, "atol alone, at its boundary")
        XCTAssertFalse(judge(trace(1), trace(1.5), tolerances: absolute).passed)
    }

    /// The horizon is the first epoch where the shadow leaves rtol/`horizonMargin` of Framework: a shadow 10⁻¹³
    /// away from epoch 2 on (above 10⁻¹¹/1000) puts it at 2. Before it, a 10⁻⁸ difference fails; from it on, the
    /// same difference is reported (`maxDifferenceAfterHorizon`), not judged, and not excused: `judge` then asks
    /// the replay, and without one the round is unverified, never passed.
    func testTheHorizonIsWhereTheShadowParts() {
        let framework = epochs(4)
        var shadow = framework
        for e in 2..<4 { shadow[e].trainLoss *= 1 + 1e-13 }
        XCTAssertEqual(comparabilityHorizon(framework: (framework, nil), shadow: (shadow, nil), tolerances: Tolerances()).horizon, 2)
        var closer = framework
        for e in 2..<4 { closer[e].trainLoss *= 1 + 1e-15 }
        XCTAssertNil(comparabilityHorizon(framework: (framework, nil), shadow: (closer, nil), tolerances: Tolerances()).horizon,
                     "10⁻¹⁵ is within rtol/1000: no horizon")
        var flipped = framework
        flipped[3].testAccuracy += 0.001
        XCTAssertEqual(comparabilityHorizon(framework: (framework, nil), shadow: (flipped, nil), tolerances: Tolerances()).horizon, 3,
                       "an accuracy that differs is a horizon too")

        var atOne = framework
        atOne[1].testLoss *= 1 + 1e-8
        let one = judge(framework, atOne, shadow: shadow)
        XCTAssertFalse(one.passed, "epoch 1 is before the horizon")
        XCTAssertEqual(one.firstFailingEpoch, 1)

        var atTwo = framework
        atTwo[2].testLoss *= 1 + 1e-8
        let two = judge(framework, atTwo, shadow: shadow)
        XCTAssertTrue(two.passed, "free-running, epoch 2 is not judged: \(two.reason)")
        XCTAssertEqual(two.horizon, 2)
        XCTAssertEqual(two.maxDifferenceAfterHorizon, 1e-8, accuracy: 1e-12)
        XCTAssertEqual(two.epochsCompared, 2)

        // Through `judge`, the epochs past the horizon need a replay: with none, unverified after epoch 1.
        let runs = [EngineRun(name: EngineName.framework, trace: Trace(experiment: "e", engine: "f", epochs: framework, divergence: nil)),
                    EngineRun(name: EngineName.reference, trace: Trace(experiment: "e", engine: "r", epochs: atTwo, divergence: nil)),
                    EngineRun(name: EngineName.shadow, trace: Trace(experiment: "e", engine: "s", epochs: shadow, divergence: nil))]
        let verdict = CompareCore.judge(runs, verifications: [:], tolerances: Tolerances())
        XCTAssertEqual(verdict.first?.status, .unverified)
        XCTAssertTrue(verdict.first?.reason.hasPrefix("unverified after epoch 1") ?? false, verdict.first?.reason ?? "")
    }

    /// A non-finite loss never agrees with a finite one, however wide the tolerance (∞ ≤ atol + rtol·∞ held
    /// before); NaN agrees with NaN and ∞ with ∞.
    func testANonFiniteLossNeverAgreesWithAFiniteOne() {
        var infinite = epochs(3)
        for e in infinite.indices { infinite[e].trainLoss = .infinity; infinite[e].testLoss = .infinity }
        let parity = judge(infinite, epochs(3), tolerances: Tolerances(rtol: 1e-6, atol: 1e-6, accuracy: 0))
        XCTAssertFalse(parity.passed)
        XCTAssertEqual(parity.firstFailingEpoch, 0)
        XCTAssertTrue(judge(infinite, infinite).passed, "∞ agrees with ∞")
        var nan = epochs(3)
        nan[1].testLoss = .nan
        XCTAssertFalse(judge(nan, epochs(3)).passed)
        XCTAssertTrue(judge(nan, nan).passed, "NaN agrees with NaN")
    }
}
