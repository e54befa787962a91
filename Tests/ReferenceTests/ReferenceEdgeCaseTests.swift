// The referee where its stabilisations and its less travelled paths act: cross-entropy on logits of −1000,
// Neumaier's compensated sum, GELU's backward, an evaluation in several chunks, and the edges of the
// hyperparameter ranges. Expected values are worked by hand in the comments, or are finite differences.
import Foundation
import XCTest
@testable import Reference

final class ReferenceEdgeCaseTests: XCTestCase {
    /// z = [[−1000, −1000], [−1000, 1000]], classes [0, 0]: row 1 has ℓ = ln 2 (its maximum is −1000, not 0, so
    /// nothing underflows), row 2 has ℓ = 1000 − (−1000) = 2000; L = (ln 2 + 2000)/2; ∂L/∂z = (softmax − onehot)/2
    /// with softmax [½, ½] and [0, 1].
    func testCrossEntropyOnLogitsOfMinusAThousand() throws {
        let (value, gradient) = try referenceLoss(.crossEntropy, predictions: [[-1000, -1000], [-1000, 1000]],
                                                  targets: [[1, 0], [1, 0]])
        assertClose(value, (log(2) + 2000) / 2, rtol: 1e-15)
        assertClose(gradient, [[-0.25, 0.25], [-0.5, 0.5]], rtol: 1e-15, atol: 1e-300)
    }

    /// Neumaier's example 1 + 10¹⁰⁰ + 1 − 10¹⁰⁰ = 2 (Kahan's compensation gives 1, a plain sum 0); a sum that
    /// reaches ∞ stays ∞.
    func testTheCompensatedSumKeepsWhatALargerTermWouldLose() {
        var sum = NeumaierSum()
        for x in [1, 1e100, 1, -1e100] { sum += x }
        XCTAssertEqual(sum.value, 2)
        var infinite = NeumaierSum()
        for x in [1, Double.infinity, 1] { infinite += x }
        XCTAssertEqual(infinite.value, .infinity)
    }

    /// GELU's backward, dy·(Φ(x) + x·φ(x)), against central differences of its forward, and its forward at
    /// x = ±1 by hand: 1·Φ(1) = ½(1 + erf(1/√2)).
    func testGELUBackwardMatchesFiniteDifferences() throws {
        let x: [[Double]] = [[-2.5, -1, -0.3, 0.2], [0.7, 1.5, 3, -0.05]]
        let w: [[Double]] = [[0.3, -1.2, 0.8, 0.5], [-0.7, 1.1, 0.4, -0.9]]
        let network = try ReferenceNetwork(layers: [.gelu])
        _ = try network.forward(x)
        let analytical = try network.backward(w)
        let numerical = try centralDifference(at: x) { x in
            let y = try ReferenceNetwork(layers: [.gelu]).forward(x)
            return zip(w.joined(), y.joined()).reduce(0) { $0 + $1.0 * $1.1 }
        }
        assertGradient(module: "gelu", tensor: "dInput", analytical, numerical)
        let y = try ReferenceReplay.forward(.gelu, input: [[1, -1]])
        let phi = 0.5 * (1 + erf(1 / 2.0.squareRoot()))
        assertClose(y, [[phi, -(1 - phi)]], rtol: 1e-14)
    }

    /// A layer 4096 wide gives chunks of 2¹⁸/4096 = 64 rows, so 150 rows are evaluated in chunks of 64, 64 and 22;
    /// the loss and the accuracy are those of one forward pass over all 150 rows.
    func testAnEvaluationInChunksEqualsOnePass() throws {
        var rng = SplitMix64(seed: 3)
        let width = 4096
        XCTAssertEqual(ReferenceEngine.evaluationChunkElements / width, 64)
        let layers: [ReferenceLayer] = [
            .linear(weight: (0..<width).map { _ in (0..<2).map { _ in Double.random(in: -1...1, using: &rng) } },
                    bias: (0..<width).map { _ in Double.random(in: -1...1, using: &rng) }),
            .tanh,
            .linear(weight: (0..<2).map { _ in (0..<width).map { _ in Double.random(in: -0.05...0.05, using: &rng) } },
                    bias: [0, 0]),
        ]
        let inputs = (0..<150).map { _ in (0..<2).map { _ in Double.random(in: 0...1, using: &rng) } }
        let targets = (0..<150).map { n -> [Double] in n % 3 == 0 ? [1, 0] : [0, 1] }
        let data = ReferenceData(inputs: inputs, targets: targets)
        let result = try ReferenceEngine.train(ReferenceRun(
            layers: layers, loss: .mse, optimizer: .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
            train: data, test: data, epochs: 0, batchSize: 10))
        let outputs = try ReferenceNetwork(layers: layers).forward(inputs)
        let loss = try referenceLoss(.mse, predictions: outputs, targets: targets).value
        let correct = zip(outputs, targets).filter { o, t in (o[1] > o[0]) == (t[1] > t[0]) }.count
        XCTAssertGreaterThan(correct, 0)
        XCTAssertLessThan(correct, 150, "the accuracy is not trivially 0 or 1")
        XCTAssertEqual(result.epochs.count, 1)
        assertClose(result.epochs[0].trainLoss, loss, rtol: 1e-14)
        XCTAssertEqual(result.epochs[0].trainAccuracy, Double(correct) / 150)
        XCTAssertEqual(result.epochs[0].testAccuracy, Double(correct) / 150)
    }

    /// What a caller can get wrong is thrown, saying where and what: a loss of mismatched shapes, an input of the
    /// wrong width, backward before any forward or with the wrong shape, an optimizer state stepped on another
    /// network, an update whose gradient does not fit its parameter.
    func testMistakesAreThrownNamingWhereAndWhat() throws {
        assertThrowsReferenceError(try referenceLoss(.mse, predictions: [[1, 2]], targets: [[1], [2]]),
                                   containing: "predictions are (1, 2) but targets are (2, 1)")
        let network = try ReferenceNetwork(layers: [.linear(weight: [[1, 2]], bias: [0]), .tanh])
        assertThrowsReferenceError(try network.backward([[1]]), containing: "backward called before forward")
        assertThrowsReferenceError(try network.forward([[1, 2, 3]]), containing: "the first linear layer expects 2 features")
        _ = try network.forward([[1, 2]])
        assertThrowsReferenceError(try network.backward([[1, 2]]), containing: "dOutput is (1, 2) but the last forward produced (1, 1)")
        _ = try network.backward([[1]])
        let state = ReferenceOptimizerState(.sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0))
        try state.step(network)
        let other = try ReferenceNetwork(layers: [.linear(weight: [[1], [2]], bias: [0, 0])])
        assertThrowsReferenceError(try state.step(other), containing: "differ from those this optimizer state was created for")
        assertThrowsReferenceError(try ReferenceReplay.update(.sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
                                                              parameter: [[1, 2]], gradient: [[1]], state: [:], stepCount: 0),
                                   containing: "parameter is (1, 2) but its gradient (1, 1)")
    }

    /// Each value just outside a range is refused on the first step, naming the value.
    func testTheEdgesOfTheHyperparameterRanges() throws {
        let network = try ReferenceNetwork(layers: [.linear(weight: [[2]], bias: [1])])
        _ = try network.forward([[1]])
        _ = try network.backward([[1]])
        let bad: [(ReferenceOptimizer, String)] = [
            (.sgd(lr: 0.1, momentum: 1, dampening: 0, nesterov: false, weightDecay: 0), "momentum = 1.0"),
            (.sgd(lr: 0.1, momentum: -0.5, dampening: 0, nesterov: false, weightDecay: 0), "momentum = -0.5"),
            (.sgd(lr: 0.1, momentum: 0.5, dampening: 1.5, nesterov: false, weightDecay: 0), "dampening = 1.5"),
            (.sgd(lr: 0.1, momentum: 0.5, dampening: 0.1, nesterov: true, weightDecay: 0), "nesterov"),
            (.sgd(lr: .infinity, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0), "lr = inf"),
            (.sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: -1), "weightDecay = -1.0"),
            (.adam(lr: 0.1, beta1: 0.9, beta2: 1, eps: 1e-8, weightDecay: 0), "beta2 = 1.0"),
            (.adam(lr: 0.1, beta1: -0.1, beta2: 0.999, eps: 1e-8, weightDecay: 0), "beta1 = -0.1"),
            (.adam(lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0), "lr = 0.0"),
        ]
        for (optimizer, text) in bad {
            assertThrowsReferenceError(try ReferenceOptimizerState(optimizer).step(network), containing: text)
        }
        XCTAssertNoThrow(try ReferenceOptimizerState(.sgd(lr: 0.1, momentum: 0.5, dampening: 1, nesterov: false, weightDecay: 0))
            .step(network))
    }
}
