// Localisation (`compare locate`): correct engines never trip the tensor tolerances, a 10⁻⁶ change always does,
// and every planted convention and bug is found at the first tensor it changes, called local or propagated.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

final class LocateTests: XCTestCase {
    static let plantedEngine = TestPaths.packageRoot.appendingPathComponent("Tests/CompareTests/Engines/planted_engine.py").path
    static let numpyEngine = TestPaths.packageRoot.appendingPathComponent("examples/engines/numpy_engine.py").path

    /// Locates `engine` against Reference on round 0 of `experiment` as if parity had failed at `failingEpoch`
    /// (default: the last epoch, so that every step is walked).
    /// `parityFails`, when given, is asserted first: the engine's epochs fail (or pass) the parity check.
    func localise(_ experiment: Experiment, _ engine: TrainingEngine, failingEpoch: Int? = nil, fingerprint: Bool = false,
                  plantedDifference: Double? = nil, parityFails: Bool? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Localisation {
        let round = MaterializedRound(experiment, round: 0)
        let referee = try ReferenceTrainingEngine(plantedDifference: plantedDifference).train(round)
        let trace = try engine.train(round)
        let epoch = failingEpoch ?? experiment.training.epochs
        var parity = compareTraces((trace.epochs, trace.divergence), with: (referee.epochs, referee.divergence), tolerances: Tolerances())
        if let parityFails {
            XCTAssertEqual(!parity.passed, parityFails, "\(engine.name) on \(experiment.name): \(parity.reason)", file: file, line: line)
        }
        parity.firstFailingEpoch = parity.firstFailingEpoch ?? epoch
        return try locate(LocateInput(round: round, engine: engine, engineRun: EngineRun(name: engine.name, trace: trace),
                                      refereeRun: EngineRun(name: EngineName.reference, trace: referee), parity: parity,
                                      plantedDifference: plantedDifference, fingerprint: fingerprint))
    }

    func planted(_ variant: String) throws -> CommandEngine {
        try CommandEngine(specification: "planted=python3 \(Self.plantedEngine) \(variant)")
    }

    /// The tensor difference found, or a failure naming what was found instead.
    func difference(_ l: Localisation, file: StaticString = #filePath, line: UInt = #line) -> TensorDifference? {
        guard case let .tensor(d) = l.finding else {
            XCTFail("expected a differing tensor, found: \(l.whereText)", file: file, line: line)
            return nil
        }
        return d
    }

    // MARK: Correct engines agree within the tolerances, at every step

    /// Every fixture case (every module, loss and optimizer option), every step of every epoch: Framework
    /// against the referee's replay finds no tensor beyond its tolerance.
    func testFrameworkNeverTripsTheTensorTolerances() throws {
        var gelu = fixtureCases[0].experiment
        gelu.name = "gelu"
        gelu.model = ModelSpec(layers: [.linear(in: 2, out: 6, initialization: .default), .gelu, .linear(in: 6, out: 2, initialization: .default)])
        gelu.loss = .mse
        gelu.training.batchSize = 4
        for experiment in fixtureCases.map(\.experiment) + [gelu] where experiment.name != "divergence" {
            let l = try localise(experiment, FrameworkEngine(), parityFails: false)
            if case .tensor = l.finding { XCTFail("\(experiment.name): \(l.whereText)") }
            if case .schedule = l.finding { XCTFail("\(experiment.name): \(l.whereText)") }
            let batches = (MaterializedRound(experiment, round: 0).train.count + experiment.training.batchSize - 1) / experiment.training.batchSize
            XCTAssertEqual(l.stepsWalked, experiment.training.epochs * batches, "\(experiment.name): every step is walked")
        }
    }

    /// The NumPy engine (another language, other summation orders) on cases covering every optimizer option.
    func testTheNumPyEngineNeverTripsTheTensorTolerances() throws {
        let numpy = try CommandEngine(specification: "numpy=python3 \(Self.numpyEngine)")
        for name in ["relu-mae-sgd-momentum", "tanh-bce-nesterov-weight-decay", "sigmoid-cross-entropy-adam",
                     "leaky-relu-mse-adam-weight-decay-xavier", "tanh-mse-momentum-dampening-uniform"] {
            let experiment = try XCTUnwrap(fixtureCases.first { $0.name == name }).experiment
            let l = try localise(experiment, numpy, parityFails: false)
            if case .tensor = l.finding { XCTFail("\(name): \(l.whereText)") }
            if case .schedule = l.finding { XCTFail("\(name): \(l.whereText)") }
            let batches = (MaterializedRound(experiment, round: 0).train.count + experiment.training.batchSize - 1) / experiment.training.batchSize
            XCTAssertEqual(l.stepsWalked, experiment.training.epochs * batches, "\(name): every step is walked")
        }
    }

    /// PyTorch 2.15's own steps (stored float64 traces with steps, fixtures/pytorch-steps: BCE with Nesterov
    /// and weight decay over ReLU/Tanh/Sigmoid; cross-entropy with Adam and weight decay over GELU/LeakyReLU/
    /// Sigmoid; MSE with momentum and dampening): within the tolerances at every step.
    func testPyTorchsStepsAgreeWithinTheTolerances() throws {
        let folder = TestPaths.packageRoot.appendingPathComponent("fixtures/pytorch-steps")
        for name in ["steps-sgd", "steps-adam", "steps-mse"] {
            let experiment = try Experiment.load(contentsOf: folder.appendingPathComponent("\(name).experiment.json"))
            let torch = StoredTraceEngine(name: "pytorch", url: folder.appendingPathComponent("\(name).torch.json"))
            let l = try localise(experiment, torch, parityFails: false)
            if case .tensor = l.finding { XCTFail("\(name): \(l.whereText)") }
            XCTAssertEqual(l.stepsWalked, experiment.trace?.steps, "\(name): every stored step is walked: \(l.whereText)")
        }
    }

    // MARK: A 10⁻⁶ change is always found

    /// An engine whose update moves one weight by 10⁻⁶ more at its third step is found there, at that weight,
    /// and called local to the update.
    func testAWeightMovedBy1e6AtAnyStepIsFound() throws {
        let experiment = try XCTUnwrap(fixtureCases.first { $0.name == "tanh-mse-momentum-dampening-uniform" }).experiment
        for (step, layer) in [(1, 0), (3, 2), (7, 0)] {
            let engine = FrameworkEngine(name: "nudged", adjust: { setup in
                setup.optimizer = NudgingOptimizer(setup.optimizer, atStep: step, parameter: layer == 0 ? 0 : 2)
            })
            let d = try XCTUnwrap(difference(try localise(experiment, engine)))
            XCTAssertEqual(d.step, step)
            XCTAssertEqual(d.tensor, "layers[\(layer)].weight")
            XCTAssertEqual(d.index, "[0, 0]")
            XCTAssertEqual(d.maxDifference, 1e-6, accuracy: 1e-12)
            guard case let .local(operation) = d.cause else { return XCTFail("expected local, got \(d.causeText)") }
            XCTAssertTrue(operation.hasPrefix("SGD update"), operation)
        }
    }

    /// Framework against Reference with --plant-difference: at epoch 0, layers[0].weight [0, 0], traced to the
    /// referee's initial parameters; through the command, with the report's lines and the JSON's "locate".
    func testAPlantedDifferenceIsLocatedAtTheFirstWeight() throws {
        let scratch = try makeScratchDirectory("locate-tests")
        defer { removeScratchDirectory(scratch) }
        let json = scratch.appendingPathComponent("r.json").path
        let result = try runProcess(TestPaths.compareExecutable, ["locate", "--rounds", "1", "--epochs", "2", "--plant-difference", "1e-6",
                                                                  "--json", json])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stdout.contains("Where: epoch 0 (before any update): initial parameter layers[0].weight differs: max |Δ| 1.0e-06 at [0, 0]"),
                      result.stdout)
        XCTAssertTrue(result.stdout.contains("the reference's layers[0].weight is not the experiment's"), result.stdout)
        XCTAssertTrue(result.stdout.split(separator: "\n").allSatisfy { $0.count <= 120 }, result.stdout)
        let report = try Report.load(contentsOf: URL(fileURLWithPath: json))
        let found = try XCTUnwrap(report.experiments[0].rounds[0].localisations.first)
        let d = try XCTUnwrap(difference(found))
        XCTAssertEqual([d.tensor, d.index, "\(d.epoch)"], ["layers[0].weight", "[0, 0]", "0"])
        let text = try String(contentsOfFile: json, encoding: .utf8)
        XCTAssertTrue(text.contains("\"locate\""), "the JSON holds the localisation")
    }

    // MARK: Planted conventions and bugs, at the first tensor they change

    /// A Tanh derivative off by 1 % (no convention): Tanh backward, local, no known convention.
    func testATanhDerivativeOffByOnePercentIsLocalToTanhBackward() throws {
        let experiment = try XCTUnwrap(fixtureCases.first { $0.name == "tanh-mse-momentum-dampening-uniform" }).experiment
        let l = try localise(experiment, try planted("tanh-derivative-off-by-1-percent"), failingEpoch: 1, fingerprint: true,
                             parityFails: true)
        let d = try XCTUnwrap(difference(l))
        XCTAssertEqual([d.tensor, "\(d.step)"], ["layers[1].dInput", "1"], l.whereText)
        guard case let .local(operation) = d.cause else { return XCTFail("expected local, got \(d.causeText)") }
        XCTAssertTrue(operation.hasPrefix("Tanh backward"), operation)
        XCTAssertNil(l.convention?.best, l.conventionText ?? "")
        XCTAssertEqual(l.conventionText?.hasPrefix("no known convention matches"), true)
    }

    /// Each catalogued convention, planted in the NumPy engine, is found at the first tensor it changes.
    func testEachPlantedConventionIsFoundWhereItFirstActs() throws {
        func named(_ name: String) throws -> Experiment { try XCTUnwrap(fixtureCases.first { $0.name == name }).experiment }
        let momentum = try named("tanh-mse-momentum-dampening-uniform")   // [linear, tanh, linear], SGD μ 0.8 τ 0.3, batch 10 of 60
        var decay = momentum
        decay.optimizer = .sgd(SGDSpec(lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0.01))
        let nesterov = try named("tanh-bce-nesterov-weight-decay")        // [linear, tanh, linear, sigmoid], BCE
        let adam = try named("leaky-relu-mse-adam-weight-decay-xavier")   // [linear, leaky, linear], Adam λ 0.01
        let crossEntropy = try named("sigmoid-cross-entropy-adam")        // [linear, sigmoid, linear]
        var lastSmaller = try named("relu-mae-sgd-momentum")              // 60 rows in batches of 7
        lastSmaller.loss = .mse
        let cases: [(String, Experiment, String, Int)] = [
            ("mse-mean-over-rows", momentum, "loss", 1),
            ("mse-sum", momentum, "loss", 1),
            ("ce-sum", crossEntropy, "loss", 1),
            ("sgd-momentum-ema", momentum, "layers[0].weight.momentum", 1),
            ("sgd-dampening-first-step", momentum, "layers[0].weight.momentum", 1),
            ("sgd-weight-decay-after-momentum", decay, "layers[0].weight.momentum", 1),
            ("nesterov-ignored", nesterov, "layers[0].weight", 1),
            ("adam-eps-inside-sqrt", adam, "layers[0].weight", 1),
            ("adam-no-bias-correction", adam, "layers[0].weight", 1),
            ("adamw-decoupled", adam, "layers[0].weight.m", 1),
            ("orders-ignored", crossEntropy, "layers[0].output", 1),
            ("gradients-not-zeroed", momentum, "layers[2].dWeight", 2),
            ("sigmoid-derivative-from-input", crossEntropy, "layers[1].dInput", 1),
            ("tanh-derivative-from-input", momentum, "layers[1].dInput", 1),
            ("leaky-relu-derivative-no-slope", adam, "layers[1].dInput", 1),
        ]
        for (variant, experiment, tensor, step) in cases {
            let l = try localise(experiment, try planted(variant), failingEpoch: 1, parityFails: true)
            guard let d = difference(l) else { continue }
            XCTAssertEqual(d.tensor, tensor, "\(variant): \(l.whereText)")
            XCTAssertEqual(d.step, step, "\(variant): \(l.whereText)")
            if case .local = d.cause {} else { XCTFail("\(variant): expected local, got \(d.causeText)") }
        }
        // A skipped batch is a schedule finding at that batch; evaluation conventions leave every step agreeing.
        let skipped = try localise(lastSmaller, try planted("drop-last-batch"), failingEpoch: 1, parityFails: true)
        guard case let .schedule(epoch, batch, _) = skipped.finding else { return XCTFail(skipped.whereText) }
        XCTAssertEqual([epoch, batch], [1, 9], skipped.whereText)
        for (variant, epoch) in [("trace-starts-at-epoch-1", 0), ("metrics-before-update", 1)] {
            let l = try localise(momentum, try planted(variant), parityFails: true)
            guard case let .evaluation(found, _) = l.finding else { XCTFail("\(variant): \(l.whereText)"); continue }
            XCTAssertEqual(found, epoch, "\(variant): \(l.whereText)")
        }
    }

    /// `compare run --engine` with a planted convention: the report's Where, Cause and Convention lines, and the
    /// JSON's "locate" with its "convention"; `--no-locate` leaves them out.
    func testRunLocatesAFailingEngineUnlessAskedNotTo() throws {
        let scratch = try makeScratchDirectory("locate-run-tests")
        defer { removeScratchDirectory(scratch) }
        let experiment = try writeScratchFile("small.json", """
        { "name": "small", "seed": 5, "data": { "disk": { "train": 50, "test": 30 } },
          "model": { "layers": [ { "type": "linear", "in": 2, "out": 6 }, { "type": "sigmoid" },
                                 { "type": "linear", "in": 6, "out": 2 } ] },
          "optimizer": { "type": "sgd", "lr": 0.1, "momentum": 0.5 },
          "training": { "epochs": 4, "batchSize": 7 } }
        """, in: scratch)
        let engine = "planted=python3 \(Self.plantedEngine) sigmoid-derivative-from-input"
        let json = scratch.appendingPathComponent("r.json").path
        let located = try runProcess(TestPaths.compareExecutable, ["--experiment", experiment, "--engine", engine, "--json", json])
        XCTAssertEqual(located.status, 1, located.stderr)
        for line in ["Where: epoch 1, batch 1: layers[1] (Sigmoid) backward dInput differs", "Cause: local to Sigmoid backward",
                     "Convention: sigmoid-derivative-from-input (max difference"] {
            XCTAssertTrue(located.stdout.contains(line), "\(line)\n\(located.stdout)")
        }
        let report = try Report.load(contentsOf: URL(fileURLWithPath: json))
        let found = try XCTUnwrap(report.experiments[0].rounds[0].localisations.first { $0.engine == "planted" })
        XCTAssertEqual(found.convention?.best?.id, "sigmoid-derivative-from-input")
        let plain = try runProcess(TestPaths.compareExecutable, ["--experiment", experiment, "--engine", engine, "--no-locate"])
        XCTAssertEqual(plain.status, 1, plain.stderr)
        XCTAssertFalse(plain.stdout.contains("Where:"), plain.stdout)
    }

    /// An outside engine that gives no steps: said so, and the epoch-level difference is given instead.
    func testAStoredTraceWithoutStepsFallsBackToTheEpochs() throws {
        let experiment = try XCTUnwrap(fixtureCases.first { $0.name == "tanh-mse-momentum-dampening-uniform" }).experiment
        let l = try localise(experiment, PlainTrace(name: "stored", trace: try planted("mse-sum").train(MaterializedRound(experiment, round: 0))))
        guard case let .notFound(message) = l.finding else { return XCTFail(l.whereText) }
        XCTAssertTrue(message.contains("gives no steps"), message)
        XCTAssertTrue(l.notes.contains { $0.contains("the trace has no steps") }, "\(l.notes)")
    }
}

/// A stored trace as an engine.
private struct PlainTrace: TrainingEngine {
    let name: String
    let trace: Trace
    func train(_ round: MaterializedRound) throws -> Trace { trace }
}

/// An optimizer that adds 10⁻⁶ to element [0, 0] of parameter `parameter` after its step number `step`.
private final class NudgingOptimizer: Optimizer {
    let inner: Optimizer
    let step: Int
    let parameter: Int
    var taken = 0

    init(_ inner: Optimizer, atStep step: Int, parameter: Int) {
        self.inner = inner
        self.step = step
        self.parameter = parameter
    }

    func step(_ parameters: [Parameter]) {
        inner.step(parameters)
        taken += 1
        if taken == step { parameters[parameter].value.elements[0] += 1e-6 }
    }

    func state(ofParameter index: Int) -> [(name: String, value: Matrix)] { inner.state(ofParameter: index) }
}
