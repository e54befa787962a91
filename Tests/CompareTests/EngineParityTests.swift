import CompareCore
import Framework
import Reference
import TestSupport
import XCTest

/// Framework against Reference: each module's forward and backward, each loss, each optimizer step, and
/// whole training runs, on seeded random inputs. The engines compute the same sums in a different order,
/// so they agree to rounding: single operations within rtol 10⁻¹³ (+ atol 10⁻¹⁵ for values near zero),
/// short training runs within rtol 10⁻¹². Each test prints its largest relative difference.
final class EngineParityTests: XCTestCase {
    var generator = Xoshiro256StarStar(seed: 31_337)
    static let rtol = 1e-13, atol = 1e-15

    /// Largest |a − b| / max(|a|, |b|) over the elements.
    func maxRelative(_ a: Matrix, _ b: Matrix) -> Double {
        zip(a.elements, b.elements).map { x, y in x == y ? 0 : abs(x - y) / max(abs(x), abs(y)) }.max() ?? 0
    }

    func assertParity(_ name: String, _ framework: Matrix, _ reference: [[Double]], file: StaticString = #filePath, line: UInt = #line) {
        let r = Matrix(reference)
        assertClose(framework, r, rtol: Self.rtol, atol: Self.atol, name, file: file, line: line)
        print("PARITY \(name) maxrel=\(maxRelative(framework, r))")
    }

    /// A Framework module and the same layer in Reference, forward and backward on one batch.
    func checkLayer(_ name: String, _ module: Module, _ layer: ReferenceLayer, width: Int = 5, batch: Int = 6) throws {
        let inWidth = module.inputWidth ?? width
        let x = randomMatrix(batch, inWidth, in: -2...2, generator: &generator)
        let network = try ReferenceNetwork(layers: [layer])
        let y = module.forward(x)
        assertParity("\(name) forward", y, try network.forward(x.rowArrays))
        let dY = randomMatrix(y.rows, y.columns, generator: &generator)
        module.zeroGradients()
        network.zeroGradients()
        assertParity("\(name) backward dInput", module.backward(dY), try network.backward(dY.rowArrays))
        if let linear = module as? Linear {
            let gradients = try XCTUnwrap(network.gradients.first)
            assertParity("\(name) dWeight", linear.weight.gradient, gradients.weight)
            assertParity("\(name) dBias", linear.bias.gradient, [gradients.bias])
        }
    }

    func testLinearParity() throws {
        let linear = Linear(7, 5, generator: &generator)
        try checkLayer("Linear(7 → 5)", linear, .linear(weight: linear.weight.value.rowArrays, bias: linear.bias.value.elements))
    }

    func testActivationParity() throws {
        try checkLayer("ReLU", ReLU(), .relu)
        try checkLayer("Tanh", Tanh(), .tanh)
        try checkLayer("Sigmoid", Sigmoid(), .sigmoid)
        try checkLayer("LeakyReLU(0.2)", LeakyReLU(slope: 0.2), .leakyRelu(slope: 0.2))
        try checkLayer("GELU", GELU(), .gelu)
    }

    func testLossParity() throws {
        let cases: [(Loss, ReferenceLoss, ClosedRange<Double>, Int)] = [
            (MSELoss(), .mse, -2...2, 3), (MAELoss(), .mae, -2...2, 3),
            (BCELoss(), .bce, 0.02...0.98, 1), (CrossEntropyLoss(), .crossEntropy, -4...4, 4),
        ]
        for (loss, referenceKind, range, width) in cases {
            let p = randomMatrix(8, width, in: range, generator: &generator)
            let t = randomMatrix(8, width, in: 0...1, generator: &generator)
            let (value, gradient) = try referenceLoss(referenceKind, predictions: p.rowArrays, targets: t.rowArrays)
            assertParity("\(loss) value", Matrix([[loss.value(predictions: p, targets: t)]]), [[value]])
            assertParity("\(loss) gradient", loss.gradient(predictions: p, targets: t), gradient)
        }
    }

    /// Five steps of each optimizer configuration on the same parameters and gradients.
    func testOptimizerStepParity() throws {
        let configurations: [(String, () throws -> Optimizer, ReferenceOptimizer)] = [
            ("SGD", { try SGD(learningRate: 0.1) }, .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0)),
            ("SGD momentum+dampening+decay", { try SGD(learningRate: 0.05, momentum: 0.9, dampening: 0.2, weightDecay: 0.01) },
             .sgd(lr: 0.05, momentum: 0.9, dampening: 0.2, nesterov: false, weightDecay: 0.01)),
            ("SGD nesterov", { try SGD(learningRate: 0.05, momentum: 0.8, nesterov: true) },
             .sgd(lr: 0.05, momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0)),
            ("Adam", { try Adam(learningRate: 0.01) }, .adam(lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)),
            // β1 ≤ 0.5 takes the other branch of PyTorch's lerp (weight 1 − β1 ≥ 0.5), in both engines.
            ("Adam β1 0.3", { try Adam(learningRate: 0.05, beta1: 0.3) }, .adam(lr: 0.05, beta1: 0.3, beta2: 0.999, eps: 1e-8, weightDecay: 0)),
            ("Adam decay+betas", { try Adam(learningRate: 0.02, beta1: 0.8, beta2: 0.95, epsilon: 1e-6, weightDecay: 0.1) },
             .adam(lr: 0.02, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1)),
        ]
        for (name, makeOptimizer, referenceOptimizer) in configurations {
            let linear = Linear(4, 3, generator: &generator)
            let network = try ReferenceNetwork(layers: [.linear(weight: linear.weight.value.rowArrays, bias: linear.bias.value.elements)])
            let optimizer = try makeOptimizer()
            let state = ReferenceOptimizerState(referenceOptimizer)
            for _ in 0..<5 {
                let x = randomMatrix(6, 4, generator: &generator), dY = randomMatrix(6, 3, generator: &generator)
                linear.zeroGradients(); network.zeroGradients()
                _ = linear.forward(x); _ = linear.backward(dY)
                _ = try network.forward(x.rowArrays); _ = try network.backward(dY.rowArrays)
                optimizer.step(linear.parameters)
                try state.step(network)
            }
            guard case let .linear(weight, bias)? = network.layers.first else { return XCTFail("no linear layer") }
            assertParity("\(name) 5 steps weight", linear.weight.value, weight)
            assertParity("\(name) 5 steps bias", linear.bias.value, [bias])
        }
    }

    /// Whole training runs: every loss, each with its architecture, × SGD, SGD with Nesterov momentum, Adam with
    /// weight decay × batch sizes 1, 7 and the whole set (60), 8 epochs, shuffled; per-epoch losses within
    /// rtol 10⁻¹² and accuracies exactly equal (no shadow allowance).
    func testWholeTrainingRunsAgree() throws {
        let architectures: [(LossKind, [LayerSpec])] = [
            (.mse, [.linear(in: 2, out: 12, initialization: .default), .relu, .linear(in: 12, out: 8, initialization: .default), .tanh,
                    .linear(in: 8, out: 2, initialization: .default)]),
            (.mae, [.linear(in: 2, out: 8, initialization: .xavier), .leakyRelu(slope: 0.05), .linear(in: 8, out: 2, initialization: .default)]),
            (.bce, [.linear(in: 2, out: 8, initialization: .default), .tanh, .linear(in: 8, out: 1, initialization: .default), .sigmoid]),
            (.crossEntropy, [.linear(in: 2, out: 10, initialization: .default), .sigmoid, .linear(in: 10, out: 2, initialization: .default)]),
            (.mse, [.linear(in: 2, out: 8, initialization: .default), .gelu, .linear(in: 8, out: 2, initialization: .default)]),
        ]
        let optimizers: [OptimizerSpec] = [.sgd(SGDSpec(lr: 0.1)), .sgd(SGDSpec(lr: 0.05, momentum: 0.9, nesterov: true)),
                                           .adam(AdamSpec(lr: 0.01, weightDecay: 0.001))]
        let tolerances = Tolerances(rtol: 1e-12, atol: 1e-15, accuracy: 0)
        var worst = 0.0, runs = 0
        for (loss, layers) in architectures {
            for optimizer in optimizers {
                for batch in [1, 7, 60] {
                    let experiment = Experiment(name: "\(loss)-\(optimizer.typeName)-\(batch)", seed: 3, data: .disk(train: 60, test: 40),
                                                model: ModelSpec(layers: layers), loss: loss, optimizer: optimizer,
                                                training: TrainingSpec(epochs: 8, batchSize: batch, shuffle: true))
                    try experiment.validate(file: experiment.name)
                    let round = MaterializedRound(experiment, round: 0)
                    let f = try FrameworkEngine().train(round), r = try ReferenceTrainingEngine().train(round)
                    let parity = compareTraces((f.epochs, f.divergence), with: (r.epochs, r.divergence), tolerances: tolerances)
                    XCTAssertTrue(parity.passed, "\(experiment.name): \(parity.reason)")
                    XCTAssertEqual(f.epochs.count, 9)
                    worst = max(worst, parity.maxTestLossDifference, parity.maxTrainLossDifference)
                    runs += 1
                }
            }
        }
        print("PARITY \(runs) whole training runs maxrel=\(worst)")
    }

    /// The check can fail: Reference built with one weight changed by 10⁻⁶ is reported as a parity failure.
    func testPlantedDisagreementIsReported() throws {
        let experiment = Suite.default.experiments[0].experiment
        var small = experiment
        small.data = .disk(train: 100, test: 100)
        small.training.epochs = 2
        let round = MaterializedRound(small, round: 0)
        let f = try FrameworkEngine().train(round), r = try ReferenceTrainingEngine(plantedDifference: 1e-6).train(round)
        let shadow = try FrameworkEngine(nudged: true).train(round)
        let parity = compareTraces((f.epochs, f.divergence), with: (r.epochs, r.divergence),
                                   shadow: (shadow.epochs, shadow.divergence), tolerances: Tolerances())
        XCTAssertFalse(parity.passed)
        XCTAssertTrue(parity.reason.hasPrefix("epoch 0: loss differs"), parity.reason)
        XCTAssertGreaterThan(parity.maxTestLossDifference, 1e-10, "a 10⁻⁶ weight change moves the losses by ~10⁻⁹")
        XCTAssertLessThan(parity.maxShadowDifference, 1e-12, "rounding alone moves the run far less")
    }
}
