// Tests of the reference engine on its own: every expected value is worked out by hand (in the
// comments) or by central finite differences, never pasted from the engine's output.
import XCTest
@testable import Reference

final class ReferenceEngineTests: XCTestCase {

    // MARK: - Linear, by hand

    /// W = [[1, 2], [3, 4]], b = [0.5, −1], x = [[1, 1], [2, −1]], dy = [[1, 0], [0, 2]].
    func testLinearForwardAndBackwardByHand() throws {
        let network = try ReferenceNetwork(layers: [.linear(weight: [[1, 2], [3, 4]], bias: [0.5, -1])])
        // y = x·Wᵀ + b: row 1 = [1+2+0.5, 3+4−1], row 2 = [2−2+0.5, 6−4−1]
        assertClose(try network.forward([[1, 1], [2, -1]]), [[3.5, 6], [0.5, 1]])
        // dx = dy·W: row 1 = 1·[1, 2], row 2 = 2·[3, 4]
        assertClose(try network.backward([[1, 0], [0, 2]]), [[1, 2], [6, 8]])
        // dW = dyᵀ·x: row 0 = 1·[1, 1] + 0·[2, −1], row 1 = 0·[1, 1] + 2·[2, −1];  db = column sums of dy
        assertClose(network.gradients[0].weight, [[1, 1], [4, -2]])
        assertClose([network.gradients[0].bias], [[1, 2]])
    }

    func testGradientsAccumulateUntilZeroed() throws {
        let network = try ReferenceNetwork(layers: [.linear(weight: [[1, 2], [3, 4]], bias: [0.5, -1])])
        for _ in 0..<2 {
            _ = try network.forward([[1, 1], [2, -1]])
            _ = try network.backward([[1, 0], [0, 2]])
        }
        assertClose(network.gradients[0].weight, [[2, 2], [8, -4]])  // twice the single pass
        assertClose([network.gradients[0].bias], [[2, 4]])
        network.zeroGradients()
        assertClose(network.gradients[0].weight, [[0, 0], [0, 0]])
        assertClose([network.gradients[0].bias], [[0, 0]])
    }

    // MARK: - Activations

    func testActivationForwardByHand() throws {
        let x: [[Double]] = [[-2, 0, 3]]
        assertClose(try ReferenceNetwork(layers: [.relu]).forward(x), [[0, 0, 3]])
        assertClose(try ReferenceNetwork(layers: [.leakyRelu(slope: 0.1)]).forward(x), [[-0.2, 0, 3]])
        assertClose(try ReferenceNetwork(layers: [.tanh]).forward(x), [[Foundation.tanh(-2), 0, Foundation.tanh(3)]])
        assertClose(try ReferenceNetwork(layers: [.sigmoid]).forward(x), [[1 / (1 + exp(2)), 0.5, 1 / (1 + exp(-3))]])
    }

    /// PyTorch: relu's gradient is 1 only where x > 0, leaky relu's is the slope where x ≤ 0.
    func testKinkGradientsAtZeroFollowPyTorch() throws {
        let relu = try ReferenceNetwork(layers: [.relu])
        _ = try relu.forward([[-1, 0, 1]])
        assertClose(try relu.backward([[5, 5, 5]]), [[0, 0, 5]])
        let leaky = try ReferenceNetwork(layers: [.leakyRelu(slope: 0.25)])
        _ = try leaky.forward([[-1, 0, 1]])
        assertClose(try leaky.backward([[4, 4, 4]]), [[1, 1, 4]])
    }

    /// For L(x) = Σ w ⊙ f(x), backward(w) must equal the central difference of L in x.
    func testActivationBackwardMatchesFiniteDifferences() throws {
        var rng = SplitMix64(seed: 1)
        // Values kept away from 0 so the kinks of relu / leaky relu are not straddled by ±h.
        let x = (0..<3).map { _ in (0..<4).map { _ in awayFromZero(Double.random(in: -3...3, using: &rng)) } }
        let w = (0..<3).map { _ in (0..<4).map { _ in Double.random(in: -1...1, using: &rng) } }
        for layer in [ReferenceLayer.relu, .tanh, .sigmoid, .leakyRelu(slope: 0.05)] {
            let network = try ReferenceNetwork(layers: [layer])
            _ = try network.forward(x)
            let analytical = try network.backward(w)
            let numerical = try centralDifference(at: x) { x in
                weightedSum(w, try ReferenceNetwork(layers: [layer]).forward(x))
            }
            assertGradient(module: "\(layer)", tensor: "dInput", analytical, numerical)
        }
    }

    /// Every parameter gradient of a network using every layer kind, against finite differences of the loss.
    func testNetworkParameterGradientsMatchFiniteDifferences() throws {
        var rng = SplitMix64(seed: 7)
        var layers: [ReferenceLayer] = [
            pytorchLinear(3, 4, &rng), .tanh, pytorchLinear(4, 4, &rng), .leakyRelu(slope: 0.1),
            pytorchLinear(4, 3, &rng), .sigmoid, pytorchLinear(3, 2, &rng),
        ]
        let x = (0..<5).map { _ in (0..<3).map { _ in Double.random(in: -1...1, using: &rng) } }
        let t = (0..<5).map { _ in (0..<2).map { _ in Double.random(in: -1...1, using: &rng) } }
        func loss(_ layers: [ReferenceLayer]) throws -> Double {
            try referenceLoss(.mse, predictions: try ReferenceNetwork(layers: layers).forward(x), targets: t).value
        }
        let network = try ReferenceNetwork(layers: layers)
        let (_, dOutput) = try referenceLoss(.mse, predictions: try network.forward(x), targets: t)
        _ = try network.backward(dOutput)
        var linearIndex = 0
        for (index, layer) in layers.enumerated() {
            guard case let .linear(weight, bias) = layer else { continue }
            let numericalWeight = try centralDifference(at: weight) { w in
                layers[index] = .linear(weight: w, bias: bias)
                defer { layers[index] = layer }
                return try loss(layers)
            }
            let numericalBias = try centralDifference(at: [bias]) { b in
                layers[index] = .linear(weight: weight, bias: b[0])
                defer { layers[index] = layer }
                return try loss(layers)
            }
            assertGradient(module: "layers[\(index)] \(layer)", tensor: "dWeight",
                           network.gradients[linearIndex].weight, numericalWeight)
            assertGradient(module: "layers[\(index)] \(layer)", tensor: "dBias",
                           [network.gradients[linearIndex].bias], numericalBias)
            linearIndex += 1
        }
    }

    // MARK: - Losses, by hand

    /// p − t = [[−0.5, 0.2], [0.9, −0.6]], N = 4.
    private let lossPredictions: [[Double]] = [[0.5, 0.2], [0.9, 0.4]]
    private let lossTargets: [[Double]] = [[1, 0], [0, 1]]

    func testMSEByHand() throws {
        let (value, gradient) = try referenceLoss(.mse, predictions: lossPredictions, targets: lossTargets)
        assertClose(value, (0.25 + 0.04 + 0.81 + 0.36) / 4)                // mean of (p − t)²
        assertClose(gradient, [[-0.25, 0.1], [0.45, -0.3]])                // 2(p − t)/4
    }

    func testMAEByHand() throws {
        let (value, gradient) = try referenceLoss(.mae, predictions: lossPredictions, targets: lossTargets)
        assertClose(value, (0.5 + 0.2 + 0.9 + 0.6) / 4)                    // mean of |p − t|
        assertClose(gradient, [[-0.25, 0.25], [0.25, -0.25]])              // sign(p − t)/4
        // sign(0) = 0: an exact prediction contributes no gradient.
        let exact = try referenceLoss(.mae, predictions: [[0.3, 1]], targets: [[0.3, 0]])
        assertClose(exact.gradient, [[0, 0.5]])
    }

    func testBCEByHand() throws {
        let (value, gradient) = try referenceLoss(.bce, predictions: [[0.8, 0.3]], targets: [[1, 0]])
        assertClose(value, -(log(0.8) + log(0.7)) / 2)                     // −(t log p + (1−t) log(1−p)), mean
        // (p − t) / ((1 − p)·p) / N: −0.2/(0.2·0.8)/2 and 0.3/(0.7·0.3)/2
        assertClose(gradient, [[-0.625, 1 / 0.7 / 2]])
    }

    /// PyTorch clamps each log at −100 and the backward denominator at 1e−12.
    func testBCEClampsLikePyTorch() throws {
        let (value, gradient) = try referenceLoss(.bce, predictions: [[0, 1]], targets: [[1, 0]])
        assertClose(value, 100)                                             // (100 + 100)/2
        assertClose(gradient, [[-1 / 1e-12 / 2, 1 / 1e-12 / 2]])
    }

    func testBCERejectsPredictionsOutsideUnitInterval() {
        assertThrowsReferenceError(try referenceLoss(.bce, predictions: [[1.5]], targets: [[1]]), containing: "outside [0, 1]")
        assertThrowsReferenceError(try referenceLoss(.bce, predictions: [[0.5]], targets: [[2]]), containing: "outside [0, 1]")
    }

    /// Logits z = [1, 2, 3] with class 2, and z = [0, 0, 0] with a tied target [0.5, 0.5, 0] (class 0).
    func testCrossEntropyByHand() throws {
        let (value, gradient) = try referenceLoss(.crossEntropy, predictions: [[1, 2, 3], [0, 0, 0]],
                                                  targets: [[0, 0, 1], [0.5, 0.5, 0]])
        let s = exp(1.0) + exp(2.0) + exp(3.0)
        assertClose(value, ((log(s) - 3) + log(3)) / 2)                     // mean over rows of logsumexp − z_c
        // (softmax − onehot) / batch
        assertClose(gradient, [[exp(1) / s / 2, exp(2) / s / 2, (exp(3) / s - 1) / 2],
                               [(1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6]])
    }

    /// Max subtraction keeps huge logits finite.
    func testCrossEntropyIsStableForLargeLogits() throws {
        let (value, gradient) = try referenceLoss(.crossEntropy, predictions: [[1000, 1000]], targets: [[1, 0]])
        assertClose(value, log(2))
        assertClose(gradient, [[-0.5, 0.5]])
    }

    func testLossGradientsMatchFiniteDifferences() throws {
        let p: [[Double]] = [[0.2, 0.7, 0.4], [0.9, 0.35, 0.6]]
        let t: [[Double]] = [[0, 1, 0], [1, 0, 0.25]]
        for loss in ReferenceLoss.allCases {
            let analytical = try referenceLoss(loss, predictions: p, targets: t).gradient
            let numerical = try centralDifference(at: p) { try referenceLoss(loss, predictions: $0, targets: t).value }
            assertGradient(module: "\(loss) loss", tensor: "dPredictions", analytical, numerical)
        }
    }

    // MARK: - Optimizers, by hand

    /// One linear 1 → 1 with W = 2, b = 1; forward x = 3 and backward dy = 1 give ∇W = 3, ∇b = 1.
    private func oneStepNetwork() throws -> ReferenceNetwork {
        try ReferenceNetwork(layers: [.linear(weight: [[2]], bias: [1])])
    }

    private func accumulateGradients(_ network: ReferenceNetwork) throws {
        network.zeroGradients()
        _ = try network.forward([[3]])
        _ = try network.backward([[1]])
    }

    private func parameters(_ network: ReferenceNetwork) -> (weight: Double, bias: Double) {
        guard case let .linear(weight, bias) = network.layers[0] else { return (.nan, .nan) }
        return (weight[0][0], bias[0])
    }

    /// lr 0.1, momentum 0.9, dampening 0.5, weight decay 0.01.
    func testSGDWithMomentumByHand() throws {
        let network = try oneStepNetwork()
        let sgd = ReferenceOptimizerState(.sgd(lr: 0.1, momentum: 0.9, dampening: 0.5, nesterov: false, weightDecay: 0.01))
        try accumulateGradients(network)
        try sgd.step(network)
        // g = 3 + 0.01·2 = 3.02, buf = g (first step: no dampening), W = 2 − 0.1·3.02
        // g = 1 + 0.01·1 = 1.01, buf = g,                             b = 1 − 0.1·1.01
        assertClose(parameters(network).weight, 1.698)
        assertClose(parameters(network).bias, 0.899)
        try accumulateGradients(network)
        try sgd.step(network)
        // g = 3 + 0.01·1.698 = 3.01698, buf = 0.9·3.02 + 0.5·3.01698 = 4.22649, W = 1.698 − 0.422649
        // g = 1 + 0.01·0.899 = 1.00899, buf = 0.9·1.01 + 0.5·1.00899 = 1.413495, b = 0.899 − 0.1413495
        assertClose(parameters(network).weight, 1.275351)
        assertClose(parameters(network).bias, 0.7576505)
    }

    /// lr 0.1, momentum 0.9, nesterov: g = g + μ·buf.
    func testSGDWithNesterovByHand() throws {
        let network = try oneStepNetwork()
        let sgd = ReferenceOptimizerState(.sgd(lr: 0.1, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0))
        try accumulateGradients(network)
        try sgd.step(network)
        // buf = 3, g = 3 + 0.9·3 = 5.7, W = 2 − 0.57;   buf = 1, g = 1.9, b = 1 − 0.19
        assertClose(parameters(network).weight, 1.43)
        assertClose(parameters(network).bias, 0.81)
        try accumulateGradients(network)
        try sgd.step(network)
        // buf = 0.9·3 + 3 = 5.7, g = 3 + 0.9·5.7 = 8.13, W = 1.43 − 0.813;  buf = 1.9, g = 2.71, b = 0.81 − 0.271
        assertClose(parameters(network).weight, 0.617)
        assertClose(parameters(network).bias, 0.539)
    }

    /// lr 0.1, β1 0.9, β2 0.999, eps 1e−8, constant gradients ∇W = 3, ∇b = 1.
    func testAdamByHand() throws {
        let network = try oneStepNetwork()
        let adam = ReferenceOptimizerState(.adam(lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0))
        try accumulateGradients(network)
        try adam.step(network)
        // t = 1: m = 0.1·3 = 0.3, v = 0.001·9 = 0.009, stepSize = 0.1/(1 − 0.9) = 1,
        //        denom = √0.009/√0.001 + eps = 3 + eps, W = 2 − 0.3/(3 + eps)
        assertClose(parameters(network).weight, 2 - 0.3 / (3 + 1e-8))
        assertClose(parameters(network).bias, 1 - 0.1 / (1 + 1e-8))
        try accumulateGradients(network)
        try adam.step(network)
        // t = 2: m = 0.9·0.3 + 0.1·3 = 0.57, v = 0.999·0.009 + 0.001·9 = 0.017991,
        //        stepSize = 0.1/(1 − 0.81) = 0.1/0.19, denom = √0.017991/√0.001999 + eps = 3 + eps,
        //        W = W₁ − (0.1/0.19)·0.57/(3 + eps) = W₁ − 0.3/(3 + eps)
        assertClose(parameters(network).weight, 2 - 0.6 / (3 + 1e-8))
        assertClose(parameters(network).bias, 1 - 0.2 / (1 + 1e-8))
    }

    func testAdamWeightDecayIsAddedToTheGradient() throws {
        let network = try oneStepNetwork()
        let adam = ReferenceOptimizerState(.adam(lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5))
        try accumulateGradients(network)
        try adam.step(network)
        // g = 3 + 0.5·2 = 4: m = 0.4, v = 0.016, denom = 4 + eps, W = 2 − 1·0.4/(4 + eps)
        // g = 1 + 0.5·1 = 1.5: m = 0.15, v = 0.00225, denom = 1.5 + eps, b = 1 − 0.15/(1.5 + eps)
        assertClose(parameters(network).weight, 2 - 0.4 / (4 + 1e-8))
        assertClose(parameters(network).bias, 1 - 0.15 / (1.5 + 1e-8))
    }

    func testInvalidHyperparametersThrowOnStep() throws {
        let network = try oneStepNetwork()
        try accumulateGradients(network)
        let bad: [(ReferenceOptimizer, String)] = [
            (.sgd(lr: -1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0), "lr = -1.0"),
            (.sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: true, weightDecay: 0), "nesterov"),
            (.adam(lr: 0.1, beta1: 1, beta2: 0.999, eps: 1e-8, weightDecay: 0), "beta1 = 1.0"),
            (.adam(lr: 0.1, beta1: 0.9, beta2: 0.999, eps: -1, weightDecay: 0), "eps = -1.0"),
        ]
        for (optimizer, text) in bad {
            assertThrowsReferenceError(try ReferenceOptimizerState(optimizer).step(network), containing: text)
        }
    }

    // MARK: - Training

    /// Identity linear 2 → 2 on four points; predictions equal the inputs before training.
    private func fourPointRun(epochs: Int, batchSize: Int, lr: Double = 0.1, batchOrder: [[Int]]? = nil) -> ReferenceRun {
        ReferenceRun(
            layers: [.linear(weight: [[1, 0], [0, 1]], bias: [0, 0])], loss: .mse,
            optimizer: .sgd(lr: lr, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
            train: ReferenceData(inputs: [[1, 0], [0, 1], [2, 1], [0, 3]], targets: [[1, 0], [0, 1], [0, 1], [1, 0]]),
            test: ReferenceData(inputs: [[1, 2], [3, 0]], targets: [[0, 1], [1, 0]]),
            epochs: epochs, batchSize: batchSize, batchOrder: batchOrder)
    }

    func testEpochZeroIsEvaluatedBeforeTrainingByHand() throws {
        let result = try ReferenceEngine.train(fourPointRun(epochs: 0, batchSize: 2))
        XCTAssertEqual(result.epochs.count, 1)
        XCTAssertNil(result.divergence)
        let epoch = result.epochs[0]
        XCTAssertEqual(epoch.epoch, 0)
        // train: argmax of [1,0],[0,1],[2,1],[0,3] is 0,1,0,1; of the targets 0,1,1,0 → 2 of 4
        assertClose(epoch.trainAccuracy, 0.5)
        // train: p − t = [0,0],[0,0],[2,0],[−1,3] → (4 + 1 + 9)/8
        assertClose(epoch.trainLoss, 14.0 / 8)
        // test: argmax of [1,2],[3,0] is 1,0 = targets → 1;  p − t = [1,1],[2,0] → (1 + 1 + 4)/4
        assertClose(epoch.testAccuracy, 1)
        assertClose(epoch.testLoss, 6.0 / 4)
        XCTAssertEqual(result.finalLayers, fourPointRun(epochs: 0, batchSize: 2).layers)
    }

    /// One full-batch SGD step, lr 0.1: dy = 2(p − t)/8 = [[0,0],[0,0],[0.5,0],[−0.25,0.75]],
    /// dW = dyᵀ·x = [[1, −0.25], [0, 2.25]], db = [0.25, 0.75].
    func testOneFullBatchEpochByHand() throws {
        let result = try ReferenceEngine.train(fourPointRun(epochs: 1, batchSize: 4))
        XCTAssertEqual(result.epochs.map(\.epoch), [0, 1])
        guard case let .linear(weight, bias) = result.finalLayers[0] else { return XCTFail("expected a linear layer") }
        assertClose(weight, [[0.9, 0.025], [0, 0.775]])                    // I − 0.1·dW
        assertClose([bias], [[-0.025, -0.075]])                             // 0 − 0.1·db
        // New predictions x·Wᵀ + b: [0.875,−0.075], [0,0.7], [1.8,0.7], [0.05,2.25]
        let squares = 0.125 * 0.125 + 0.075 * 0.075 + 0.09 + 1.8 * 1.8 + 0.09 + 0.95 * 0.95 + 2.25 * 2.25
        assertClose(result.epochs[1].trainLoss, squares / 8)
        assertClose(result.epochs[1].trainAccuracy, 0.5)                    // argmax 0,1,0,1 vs 0,1,1,0
    }

    /// One output: correct when (output ≥ 0.5) = (target ≥ 0.5); 0.5 itself counts as positive.
    func testSingleOutputAccuracyThresholdByHand() throws {
        let run = ReferenceRun(
            layers: [.linear(weight: [[1]], bias: [0])], loss: .mse,
            optimizer: .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
            train: ReferenceData(inputs: [[0.7], [0.2], [0.5], [0.4]], targets: [[1], [1], [0], [0]]),
            test: ReferenceData(inputs: [[0.5]], targets: [[0.5]]), epochs: 0, batchSize: 1)
        let epoch = try ReferenceEngine.train(run).epochs[0]
        assertClose(epoch.trainAccuracy, 0.5)   // right, wrong (0.2 < 0.5 ≤ 1), wrong (0.5 ≥ 0.5 > 0), right
        assertClose(epoch.testAccuracy, 1)
    }

    /// batchOrder [2, 3, 0, 1] with batch size 2 trains on rows (2, 3) then (0, 1): the same as doing those
    /// two steps by hand with the lower-level API, and not the same as file order.
    func testBatchOrderIsFollowed() throws {
        let ordered = try ReferenceEngine.train(fourPointRun(epochs: 1, batchSize: 2, batchOrder: [[2, 3, 0, 1]]))
        let run = fourPointRun(epochs: 1, batchSize: 2)
        let network = try ReferenceNetwork(layers: run.layers)
        let sgd = ReferenceOptimizerState(run.optimizer)
        for rows in [[2, 3], [0, 1]] {
            network.zeroGradients()
            let output = try network.forward(rows.map { run.train.inputs[$0] })
            let loss = try referenceLoss(.mse, predictions: output, targets: rows.map { run.train.targets[$0] })
            _ = try network.backward(loss.gradient)
            try sgd.step(network)
        }
        XCTAssertEqual(ordered.finalLayers.count, 1)
        guard case let .linear(w1, b1) = ordered.finalLayers[0], case let .linear(w2, b2) = network.layers[0],
              case let .linear(w3, _) = try ReferenceEngine.train(run).finalLayers[0]
        else { return XCTFail("expected linear layers") }
        assertClose(w1, w2)
        assertClose([b1], [b2])
        XCTAssertNotNil(closeFailure(w1, w3, rtol: 1e-6, atol: 1e-9), "file order should give other weights")
    }

    /// lr = 1e6 multiplies the weights by ~1e6 per step until the loss overflows.
    func testDivergenceIsReportedAndTrainingStops() throws {
        let result = try ReferenceEngine.train(fourPointRun(epochs: 500, batchSize: 4, lr: 1e6))
        let divergence = try XCTUnwrap(result.divergence)
        XCTAssertFalse(divergence.loss.isFinite, "divergence loss \(divergence.loss)")
        XCTAssertEqual(divergence.batch, 1)                                  // one batch per epoch
        XCTAssertGreaterThan(divergence.epoch, 1)
        XCTAssertLessThan(divergence.epoch, 500)
        XCTAssertEqual(result.epochs.map(\.epoch), Array(0..<divergence.epoch))  // epochs 0...e−1 only
    }

    func testInvalidRunsThrowInsteadOfTrapping() {
        let good = fourPointRun(epochs: 2, batchSize: 2)
        func with(_ change: (inout ReferenceRun) -> Void) -> ReferenceRun {
            var run = good
            change(&run)
            return run
        }
        let cases: [(ReferenceRun, String)] = [
            (with { $0.layers = [.linear(weight: [[1, 0]], bias: [0]), .linear(weight: [[1, 0]], bias: [0])] },
             "does not match the previous linear layer's output width 1"),
            (with { $0.layers = [.linear(weight: [[1, 0], [0, 1]], bias: [0])] }, "bias has 1 values"),
            (with { $0.layers = [.linear(weight: [[1, 0], [0]], bias: [0, 0])] }, "ragged"),
            (with { $0.train.inputs = [[1, 0, 0], [0, 1, 0], [2, 1, 0], [0, 3, 0]] }, "first linear layer expects 2"),
            (with { $0.test.targets = [[0, 1, 0], [1, 0, 0]] }, "the network outputs 2"),
            (with { $0.train.targets.removeLast() }, "4 input rows but 3 target rows"),
            (with { $0.test = ReferenceData(inputs: [], targets: []) }, "test.inputs is empty"),
            (with { $0.batchSize = 0 }, "batchSize = 0"),
            (with { $0.epochs = -1 }, "epochs = -1"),
            (with { $0.batchOrder = [[0, 1, 2, 3]] }, "1 orders for 2 epochs"),
            (with { $0.batchOrder = [[0, 1, 2, 3], [0, 1, 1, 3]] }, "repeats 1"),
            (with { $0.batchOrder = [[0, 1, 2, 3], [0, 1, 2, 4]] }, "4 is outside 0..<4"),
            (with { $0.batchOrder = [[0, 1, 2, 3], [0, 1, 2]] }, "has 3 indices"),
            (with { $0.optimizer = .sgd(lr: 0.1, momentum: -0.5, dampening: 0, nesterov: false, weightDecay: 0) },
             "momentum = -0.5"),
        ]
        for (run, text) in cases { assertThrowsReferenceError(try ReferenceEngine.train(run), containing: text) }
    }

    // MARK: - GSL errors and BLAS

    /// A (2, 3)·(2, 3) product is not conformant: GSL returns GSL_EBADLEN, which must arrive as a Swift
    /// error carrying gsl_strerror's message, not as an abort from GSL's default handler.
    func testGSLStatusBecomesSwiftError() throws {
        let a = try Matrix(rows: 2, columns: 3, "test a")
        let b = try Matrix(rows: 2, columns: 3, "test b")
        let c = try Matrix(rows: 2, columns: 2, "test c")
        XCTAssertThrowsError(try BLAS.gemm(a, transposeA: false, b, transposeB: false, alpha: 1, beta: 0, into: c,
                                           "mismatched gemm")) { error in
            let error = error as? ReferenceError
            XCTAssertEqual(error?.gslStatus, 19)                                   // GSL_EBADLEN in gsl_errno.h
            XCTAssertEqual(error?.message, "matrix/vector sizes are not conformant")  // GSL 2.7 strerror.c
            XCTAssertTrue(error?.location.hasPrefix("mismatched gemm") ?? false, "\(String(describing: error))")
        }
        XCTAssertThrowsError(try BLAS.axpy(1, a, c, "mismatched axpy")) { error in
            XCTAssertEqual((error as? ReferenceError)?.gslStatus, GSL.badLength)
        }
        // The same shapes transposed are fine: (2, 3)·(2, 3)ᵀ = (2, 2).
        XCTAssertNoThrow(try BLAS.gemm(a, transposeA: false, b, transposeB: true, alpha: 1, beta: 0, into: c, "ok"))
    }

    func testAllocationFailureIsAnError() {
        XCTAssertThrowsError(try Matrix(rows: 0, columns: 3, "empty")) { error in
            XCTAssertEqual((error as? ReferenceError)?.gslStatus, GSL.invalidArgument)
        }
        // 2^50 doubles (8 PiB) cannot be allocated: gsl_matrix_calloc returns NULL.
        XCTAssertThrowsError(try Matrix(rows: 1 << 50, columns: 1, "huge")) { error in
            XCTAssertEqual((error as? ReferenceError)?.gslStatus, GSL.outOfMemory)
        }
    }

    func testBlasLibraryIsIdentified() {
        let name = ReferenceEngine.blasLibrary
        XCTAssertTrue(name.hasPrefix("GSL CBLAS (libgslcblas") || name.hasPrefix("OpenBLAS (libopenblas"), name)
    }

    // MARK: - The checkers can fail

    func testCloseFailureReportsShapeValueAndNaN() {
        XCTAssertNil(closeFailure([[1, 2]], [[1, 2 + 1e-13]], rtol: 1e-12, atol: 0))
        XCTAssertEqual(closeFailure([[1, 2]], [[1, 2], [3, 4]], rtol: 1e-12, atol: 0), "shape (1, 2) ≠ expected (2, 2)")
        XCTAssertEqual(closeFailure([[1, 2]], [[1, 2, 3]], rtol: 1e-12, atol: 0), "row 0 has 2 values, expected 3")
        let value = closeFailure([[1, 2], [3, 4]], [[1, 2], [3, 4.1]], rtol: 1e-12, atol: 0)
        XCTAssertTrue(value?.hasPrefix("worst at [1][1]: 4.0 vs expected 4.1") ?? false, value ?? "nil")
        XCTAssertNotNil(closeFailure([[Double.nan]], [[1]], rtol: 1, atol: 1))
        XCTAssertNotNil(closeFailure([[1]], [[Double.nan]], rtol: 1, atol: 1))
    }

    func testGradientCheckFailureNamesEverything() {
        let message = gradientCheckFailure(module: "Tanh", tensor: "dInput", [[1, 2]], [[1, 2.5]]) ?? "nil"
        for part in ["Tanh", "dInput", "[0][1]", "analytical 2.0", "numerical 2.5", "relative error"] {
            XCTAssertTrue(message.contains(part), "'\(part)' missing from: \(message)")
        }
        XCTAssertNil(gradientCheckFailure(module: "Tanh", tensor: "dInput", [[1, 2]], [[1, 2 + 1e-9]]))
    }
}

// MARK: - Test support

/// SplitMix64 (Steele, Lea & Flood 2014): the tests' only random source, seeded and passed `inout`.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A linear `in → out` layer with PyTorch's default initialisation, weight and bias `U(−1/√in, 1/√in)`.
func pytorchLinear(_ inFeatures: Int, _ outFeatures: Int, _ rng: inout SplitMix64) -> ReferenceLayer {
    let bound = 1 / Double(inFeatures).squareRoot()
    return .linear(weight: (0..<outFeatures).map { _ in (0..<inFeatures).map { _ in Double.random(in: -bound...bound, using: &rng) } },
                   bias: (0..<outFeatures).map { _ in Double.random(in: -bound...bound, using: &rng) })
}

private func awayFromZero(_ x: Double) -> Double { abs(x) < 0.1 ? x + 0.5 : x }

private func weightedSum(_ w: [[Double]], _ y: [[Double]]) -> Double {
    zip(w, y).reduce(0) { sum, rows in sum + zip(rows.0, rows.1).reduce(0) { $0 + $1.0 * $1.1 } }
}

/// `∂f/∂x[r][c] ≈ (f(x + h) − f(x − h)) / 2h` for every element.
func centralDifference(at x: [[Double]], h: Double = 1e-6, _ f: ([[Double]]) throws -> Double) throws -> [[Double]] {
    var result = x.map { $0.map { _ in 0.0 } }
    var probe = x
    for r in x.indices {
        for c in x[r].indices {
            probe[r][c] = x[r][c] + h
            let up = try f(probe)
            probe[r][c] = x[r][c] - h
            let down = try f(probe)
            probe[r][c] = x[r][c]
            result[r][c] = (up - down) / (2 * h)
        }
    }
    return result
}

/// `nil` when `actual` and `expected` have the same shape and every element satisfies
/// `|a − e| ≤ atol + rtol·|e|` (NaN only matches NaN); otherwise a message naming the shape problem or the
/// worst element.
func closeFailure(_ actual: [[Double]], _ expected: [[Double]], rtol: Double, atol: Double) -> String? {
    guard actual.count == expected.count else {
        return "shape (\(actual.count), \(actual.first?.count ?? 0)) ≠ expected (\(expected.count), \(expected.first?.count ?? 0))"
    }
    var worst: (excess: Double, r: Int, c: Int)?
    for r in actual.indices {
        guard actual[r].count == expected[r].count else {
            return "row \(r) has \(actual[r].count) values, expected \(expected[r].count)"
        }
        for c in actual[r].indices {
            let (a, e) = (actual[r][c], expected[r][c])
            if a.isNaN && e.isNaN { continue }
            let excess = a.isNaN || e.isNaN ? Double.infinity : abs(a - e) - (atol + rtol * abs(e))
            if excess > 0 && excess > (worst?.excess ?? -1) { worst = (excess, r, c) }
        }
    }
    guard let w = worst else { return nil }
    let (a, e) = (actual[w.r][w.c], expected[w.r][w.c])
    return "worst at [\(w.r)][\(w.c)]: \(a) vs expected \(e) (|diff| \(abs(a - e)), rtol \(rtol), atol \(atol))"
}

func assertClose(_ actual: [[Double]], _ expected: [[Double]], rtol: Double = 1e-12, atol: Double = 1e-14,
                 file: StaticString = #filePath, line: UInt = #line) {
    if let failure = closeFailure(actual, expected, rtol: rtol, atol: atol) { XCTFail(failure, file: file, line: line) }
}

func assertClose(_ actual: Double, _ expected: Double, rtol: Double = 1e-12, atol: Double = 1e-14,
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose([[actual]], [[expected]], rtol: rtol, atol: atol, file: file, line: line)
}

/// `nil` when every analytical gradient element is within `atol + rtol·|numerical|` of the finite
/// difference; otherwise a message naming module, tensor, index, both values and the relative error.
func gradientCheckFailure(module: String, tensor: String, _ analytical: [[Double]], _ numerical: [[Double]],
                          rtol: Double = 1e-6, atol: Double = 1e-8) -> String? {
    guard closeFailure(analytical, numerical, rtol: rtol, atol: atol) != nil else { return nil }
    guard analytical.count == numerical.count, zip(analytical, numerical).allSatisfy({ $0.count == $1.count }) else {
        return "\(module) \(tensor): analytical and numerical shapes differ"
    }
    var worst = (error: -1.0, r: 0, c: 0)
    for r in analytical.indices {
        for c in analytical[r].indices {
            let (a, n) = (analytical[r][c], numerical[r][c])
            let error = abs(a - n) / max(abs(a), abs(n), 1e-300)
            if error > worst.error || error.isNaN { worst = (error.isNaN ? .infinity : error, r, c) }
        }
    }
    let (a, n) = (analytical[worst.r][worst.c], numerical[worst.r][worst.c])
    return "\(module) \(tensor)[\(worst.r)][\(worst.c)]: analytical \(a), numerical \(n), relative error \(worst.error)"
}

func assertGradient(module: String, tensor: String, _ analytical: [[Double]], _ numerical: [[Double]],
                    file: StaticString = #filePath, line: UInt = #line) {
    if let failure = gradientCheckFailure(module: module, tensor: tensor, analytical, numerical) {
        XCTFail(failure, file: file, line: line)
    }
}

func assertThrowsReferenceError<T>(_ expression: @autoclosure () throws -> T, containing text: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        guard let error = error as? ReferenceError else {
            return XCTFail("expected a ReferenceError, got \(error)", file: file, line: line)
        }
        XCTAssertTrue(error.description.contains(text), "'\(text)' not in: \(error)", file: file, line: line)
    }
}
