import Foundation
import Framework
import TestSupport
import XCTest

/// The losses where their clamps and stabilisations act: BCE at p exactly 0 and 1 (PyTorch clamps the logs at
/// −100 and the backward's denominator at 10⁻¹²), cross-entropy on logits of ±1000 (the row maximum is
/// subtracted before exp), and the compensated sum all losses add their terms with. Expected values are
/// worked by hand in the comments.
final class LossEdgeCaseTests: XCTestCase {
    /// p = [0, 1, 0, 1], t = [1, 0, 0, 1]:
    /// ℓ = −[t·max(ln p, −100) + (1 − t)·max(ln(1 − p), −100)] = [100, 100, 0, 0] (0·(−100) = 0 where a
    /// clamped log is multiplied by a zero target), so L = 200/4 = 50;
    /// ℓ′ = (p − t)/max(p(1 − p), 10⁻¹²) = [−10¹², 10¹², 0, 0], ∂L/∂p = ℓ′/4.
    func testBCEAtProbabilitiesExactlyZeroAndOne() {
        let p = Matrix([[0, 1, 0, 1]]), t = Matrix([[1, 0, 0, 1]])
        let loss = BCELoss()
        XCTAssertEqual(loss.value(predictions: p, targets: t), 50)
        var gradient = Matrix.empty
        XCTAssertEqual(loss.valueAndGradient(predictions: p, targets: t, into: &gradient), 50)
        XCTAssertEqual(gradient, Matrix([[-0.25e12, 0.25e12, 0, 0]]))
        XCTAssertEqual(loss.gradient(predictions: p, targets: t), gradient)
        var total = LossTotal()
        loss.accumulate(predictions: p, targets: t, into: &total)
        XCTAssertEqual(total.mean, 50, "the evaluation path clamps too")
        XCTAssertEqual(total.terms, 4)
    }

    /// Each case alone, so that a missing clamp names the term it breaks.
    func testEachBCEClampAlone() {
        let cases: [(p: Double, t: Double, term: Double, derivative: Double)] = [
            (0, 1, 100, -1e12),   // ln 0 clamped: the p-term
            (1, 0, 100, 1e12),    // ln(1 − 1) clamped: the (1 − p)-term
            (1, 1, 0, 0),         // (1 − t)·max(ln 0, −100) = 0·(−100), and 0/10⁻¹²
            (0, 0, 0, 0),         // t·max(ln 0, −100) = 0
        ]
        for c in cases {
            XCTAssertEqual(BCELoss.term(c.p, c.t), c.term, "ℓ(p = \(c.p), t = \(c.t))")
            XCTAssertEqual(BCELoss.termDerivative(c.p, c.t), c.derivative, "ℓ′(p = \(c.p), t = \(c.t))")
        }
    }

    /// z = [[−1000, −1000], [−1000, 1000], [1000, 999]], classes [0, 0, 1]:
    /// row 1: logsumexp = −1000 + ln 2, ℓ = ln 2, softmax = [½, ½];
    /// row 2: logsumexp = 1000 (e^−2000 underflows next to 1), ℓ = 1000 − (−1000) = 2000, softmax = [0, 1];
    /// row 3: logsumexp = 1000 + ln(1 + e^−1), ℓ = 1 + ln(1 + e^−1), softmax = [1, e^−1]/(1 + e^−1).
    /// L = mean over the 3 rows; ∂L/∂z = (softmax − onehot)/3.
    func testCrossEntropyOnLogitsOfPlusMinusAThousand() {
        let z = Matrix([[-1000, -1000], [-1000, 1000], [1000, 999]])
        let t = Matrix([[1, 0], [1, 0], [0, 1]])
        let e = Foundation.exp(-1.0), row3 = 1 + Foundation.log(1 + e)
        let expected = (Foundation.log(2) + 2000 + row3) / 3
        let loss = CrossEntropyLoss()
        assertClose(loss.value(predictions: z, targets: t), expected, rtol: 1e-15)
        var gradient = Matrix.empty
        assertClose(loss.valueAndGradient(predictions: z, targets: t, into: &gradient), expected, rtol: 1e-15)
        let s0 = 1 / (1 + e), s1 = e / (1 + e)
        assertClose(gradient, Matrix([[(0.5 - 1) / 3, 0.5 / 3], [(0 - 1) / 3, 1.0 / 3], [s0 / 3, (s1 - 1) / 3]]),
                    rtol: 1e-15, atol: 1e-300)
        XCTAssertTrue(gradient.elements.allSatisfy(\.isFinite))
        var total = LossTotal()
        loss.accumulate(predictions: z, targets: t, into: &total)
        assertClose(total.mean, expected, rtol: 1e-15, "the evaluation path is stable too")
    }

    /// Neumaier's example: 1 + 10¹⁰⁰ + 1 − 10¹⁰⁰ = 2. A plain sum gives 0; Kahan's compensation gives 1, because
    /// when a term is larger than the running sum it is the running sum's bits that the addition loses.
    func testTheCompensatedSumKeepsWhatALargerTermWouldLose() {
        var sum = CompensatedSum()
        for x in [1, 1e100, 1, -1e100] { sum.add(x) }
        XCTAssertEqual(sum.value, 2)
        var total = LossTotal()
        for x in [1, 1e100, 1, -1e100] { total.add(x) }
        total.count(4)
        XCTAssertEqual(total.mean, 0.5, "a loss's mean uses the same sum")
    }

    /// A loss of one's own has only `value` and `gradient`; the protocol's default `accumulate` weights each
    /// chunk's value by its batch·width elements, so an evaluation in chunks gives its mean over the whole set.
    /// Here L = Σ|p − t|³ / N on 10 rows of 2 (the Trainer evaluates it in chunks of 3, 3, 3 and 1 rows).
    func testALossOfYourOwnIsEvaluatedInChunks() throws {
        struct MeanCubedError: Loss {
            var description: String { "MeanCubedError" }
            func value(predictions p: Matrix, targets t: Matrix) -> Double {
                zip(p.elements, t.elements).map { Swift.abs($0 - $1) * ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(p.elements.count)
            }
            func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix { p }  // not used by an evaluation
        }
        var g = Xoshiro256StarStar(seed: 3)
        let data = Dataset.disk(count: 10, targetWidth: 2, generator: &g)
        let model = try Sequential([Linear(2, 3, generator: &g), Tanh(), Linear(3, 2, generator: &g)])
        let outputs = model.forward(data.inputs)
        let expected = MeanCubedError().value(predictions: outputs, targets: data.targets)
        let metrics = Trainer(epochs: 0, batchSize: 1, evaluationChunkElements: 9)  // widest 3: chunks of 3 rows
            .evaluate(model, loss: MeanCubedError(), train: data, test: data, epoch: 0)
        assertClose(metrics.trainLoss, expected, rtol: 1e-14)
        var none = LossTotal()
        XCTAssertTrue(none.mean.isNaN, "the mean of no terms is NaN")
        none.add(sum: 6, terms: 4)
        XCTAssertEqual(none.mean, 1.5)
    }

    /// Infinity and NaN stay: a diverged batch's loss is reported as such.
    func testTheCompensatedSumKeepsInfinityAndNaN() {
        var sum = CompensatedSum()
        for x in [1, .infinity, 1] { sum.add(x) }
        XCTAssertEqual(sum.value, .infinity)
        sum.add(.nan)
        XCTAssertTrue(sum.value.isNaN)
    }
}
