// The convention fingerprint (Sources/CompareCore/Judgement/Conventions.swift): every catalogued variant,
// planted in the NumPy engine (Engines/planted_engine.py), is named by the fingerprint; bugs outside the
// catalogue and the unplanted engine match nothing; variants that do not apply are skipped; and the step rule
// can fail.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

final class ConventionTests: XCTestCase {
    static let plantedEngine = TestPaths.packageRoot.appendingPathComponent("Tests/CompareTests/Engines/planted_engine.py").path

    /// The catalogue's ids, verbatim and in order.
    static let ids = [
        "mse-mean-over-rows", "mse-sum", "ce-sum", "sgd-momentum-ema", "sgd-dampening-first-step",
        "sgd-weight-decay-after-momentum", "nesterov-ignored", "adam-eps-inside-sqrt", "adam-no-bias-correction",
        "adamw-decoupled", "drop-last-batch", "orders-ignored", "gradients-not-zeroed", "sigmoid-derivative-from-input",
        "tanh-derivative-from-input", "leaky-relu-derivative-no-slope", "trace-starts-at-epoch-1", "metrics-before-update",
    ]

    /// A 2→4→3→3→2 network with a tanh, a sigmoid and a leaky ReLU, on 23 disk points in batches of 5 (a last
    /// batch of 3), shuffled, for 4 epochs: every variant but the optimizer's applies to it.
    static func experiment(_ name: String, loss: LossKind = .mse, optimizer: OptimizerSpec, steps: Int?) -> Experiment {
        Experiment(name: name, seed: 7, data: .disk(train: 23, test: 11),
                   model: ModelSpec(layers: [.linear(in: 2, out: 4, initialization: .default), .tanh,
                                             .linear(in: 4, out: 3, initialization: .default), .sigmoid,
                                             .linear(in: 3, out: 3, initialization: .default), .leakyRelu(slope: 0.2),
                                             .linear(in: 3, out: 2, initialization: .default)]),
                   loss: loss, optimizer: optimizer, training: TrainingSpec(epochs: 4, batchSize: 5, shuffle: true),
                   trace: steps.map { TraceRequest(steps: $0) })
    }

    /// SGD with momentum, dampening and weight decay, MSE, 3 steps traced.
    static let momentum = experiment("momentum", optimizer: .sgd(SGDSpec(lr: 0.1, momentum: 0.6, dampening: 0.3, weightDecay: 0.01)),
                                     steps: 3)
    /// Nesterov SGD with weight decay, cross-entropy, no steps.
    static let nesterov = experiment("nesterov", loss: .crossEntropy,
                                     optimizer: .sgd(SGDSpec(lr: 0.1, momentum: 0.5, nesterov: true, weightDecay: 0.01)), steps: nil)
    /// Adam with weight decay, MSE, 2 steps traced.
    static let adam = experiment("adam", optimizer: .adam(AdamSpec(lr: 0.01, weightDecay: 0.05)), steps: 2)

    /// The ids each experiment is tested on.
    static let tested: [(experiment: Experiment, ids: [String])] = [
        (momentum, ["mse-mean-over-rows", "mse-sum", "sgd-momentum-ema", "sgd-dampening-first-step", "sgd-weight-decay-after-momentum",
                    "drop-last-batch", "orders-ignored", "gradients-not-zeroed", "sigmoid-derivative-from-input",
                    "tanh-derivative-from-input", "leaky-relu-derivative-no-slope", "trace-starts-at-epoch-1", "metrics-before-update"]),
        (nesterov, ["ce-sum", "sgd-weight-decay-after-momentum", "nesterov-ignored", "gradients-not-zeroed"]),
        (adam, ["adam-eps-inside-sqrt", "adam-no-bias-correction", "adamw-decoupled"]),
    ]

    /// Round 0 of `experiment` and its comparability horizon (Framework against its one-ulp shadow), as `compare`
    /// would give the fingerprint.
    func round(_ experiment: Experiment) throws -> (round: MaterializedRound, horizon: Int?) {
        let round = MaterializedRound(experiment, round: 0)
        let framework = try FrameworkEngine().train(round), shadow = try FrameworkEngine(nudged: true).train(round)
        return (round, comparabilityHorizon(framework: (framework.epochs, framework.divergence), shadow: (shadow.epochs, shadow.divergence),
                                            tolerances: Tolerances()).horizon)
    }

    /// The fingerprint of `planted_engine.py VARIANT` on round 0 of `experiment`.
    func plantedFingerprint(_ variant: String, _ round: MaterializedRound, _ horizon: Int?) throws -> ConventionFingerprint {
        let engine = try CommandEngine(specification: "planted=python3 \(Self.plantedEngine) \(variant)").train(round)
        return try conventionFingerprint(engine: engine, round: round, refereeInitialParameters: round.initialParameters,
                                         horizon: horizon, tolerances: Tolerances())
    }

    /// "mse-sum 0 (matched), ce-sum 0.31, …".
    func describe(_ fingerprint: ConventionFingerprint) -> String {
        fingerprint.candidates.map { "\($0.id) \($0.maxDifference)\($0.matched ? " (matched)" : "")" }.joined(separator: ", ")
    }

    func testTheCatalogueHasEveryIdOnceInOrder() {
        XCTAssertEqual(Conventions.catalogue.map(\.id), Self.ids)
        XCTAssertTrue(Conventions.catalogue.allSatisfy { !$0.summary.isEmpty && !$0.summary.contains("\n") })
        XCTAssertEqual(Set(Self.tested.flatMap(\.ids)), Set(Self.ids), "every id is tested on a planted engine")
    }

    /// For every catalogued id, the planted engine's trace is matched by that variant and no closer one.
    func testEveryPlantedConventionIsNamed() throws {
        for (experiment, ids) in Self.tested {
            let (round, horizon) = try round(experiment)
            for id in ids {
                XCTAssertTrue(Conventions.catalogue.first { $0.id == id }!.applies(to: experiment, round: round), "\(experiment.name): \(id)")
                let fingerprint = try plantedFingerprint(id, round, horizon)
                XCTAssertEqual(fingerprint.best?.id, id, "\(experiment.name), planted \(id): candidates \(describe(fingerprint))")
                // Rounding alone: ≤ 10⁻¹³ (measured ≤ 1.4·10⁻¹⁵), the bound Conventions.swift's step rule assumes.
                XCTAssertLessThan(fingerprint.best?.maxDifference ?? 1, 1e-13, "\(experiment.name), planted \(id)")
            }
        }
    }

    /// Bugs outside the catalogue: a tanh derivative 1 % off, an MSE gradient over rows with the value right.
    func testBugsOutsideTheCatalogueMatchNothing() throws {
        let (round, horizon) = try round(Self.momentum)
        for bug in ["tanh-derivative-off-by-1-percent", "mse-gradient-over-rows"] {
            let fingerprint = try plantedFingerprint(bug, round, horizon)
            XCTAssertNil(fingerprint.best, "planted \(bug): candidates \(describe(fingerprint))")
            XCTAssertEqual(fingerprint.candidates.count, 13, describe(fingerprint))
        }
    }

    /// The unplanted engine follows PyTorch's conventions, and every applicable variant changes something here:
    /// nothing matches, so the fingerprint cannot match by default.
    func testTheUnplantedEngineMatchesNoVariant() throws {
        for experiment in [Self.momentum, Self.nesterov, Self.adam] {
            let (round, horizon) = try round(experiment)
            let fingerprint = try plantedFingerprint("none", round, horizon)
            XCTAssertNil(fingerprint.best, "\(experiment.name): candidates \(describe(fingerprint))")
            // With steps, 10⁴ above the step rule's 10⁻⁹ (smallest measured: adam-eps-inside-sqrt, 4.4·10⁻⁴); without,
            // 10³ above the loss rtol 10⁻¹¹ (smallest measured: tanh-derivative-from-input on nesterov, 1.0·10⁻⁷,
            // an O(x⁴) change of the derivative for small pre-activations x).
            let floor = experiment.trace == nil ? 1e-8 : 1e-5
            for candidate in fingerprint.candidates {
                XCTAssertGreaterThan(candidate.maxDifference, floor, "\(experiment.name): \(candidate.id) changes too little here")
            }
        }
    }

    /// A variant that does not apply is skipped, never tried: Adam's on SGD, SGD's on Adam, ce-sum on MSE,
    /// and the schedule's on a single full-batch epoch in file order. (The engine here is Framework itself.)
    func testVariantsThatDoNotApplyAreSkipped() throws {
        func fingerprint(_ experiment: Experiment) throws -> ConventionFingerprint {
            let round = MaterializedRound(experiment, round: 0)
            return try conventionFingerprint(engine: try FrameworkEngine().train(round), round: round,
                                             refereeInitialParameters: round.initialParameters, horizon: nil, tolerances: Tolerances())
        }
        func assertSkipped(_ fingerprint: ConventionFingerprint, _ ids: [String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(fingerprint.skipped, ids, file: file, line: line)
            XCTAssertEqual(fingerprint.candidates.map(\.id), Self.ids.filter { !ids.contains($0) }, file: file, line: line)
            XCTAssertNil(fingerprint.best, "Framework itself follows no variant: \(describe(fingerprint))", file: file, line: line)
        }
        assertSkipped(try fingerprint(Self.momentum), ["ce-sum", "nesterov-ignored", "adam-eps-inside-sqrt", "adam-no-bias-correction",
                                                       "adamw-decoupled"])
        assertSkipped(try fingerprint(Self.adam), ["ce-sum", "sgd-momentum-ema", "sgd-dampening-first-step",
                                                   "sgd-weight-decay-after-momentum", "nesterov-ignored"])
        var single = Self.experiment("single", optimizer: .sgd(SGDSpec(lr: 0.1)), steps: nil)
        single.training = TrainingSpec(epochs: 1, batchSize: 23, shuffle: false)
        assertSkipped(try fingerprint(single), ["ce-sum", "sgd-momentum-ema", "sgd-dampening-first-step", "sgd-weight-decay-after-momentum",
                                                "nesterov-ignored", "adam-eps-inside-sqrt", "adam-no-bias-correction", "adamw-decoupled",
                                                "drop-last-batch", "orders-ignored", "gradients-not-zeroed"])
    }

    /// The step rule can fail: a variant's own trace matches it exactly; one weight of step 2 moved by 10⁻⁷ of
    /// the tensor's scale (epochs untouched) no longer does, and the distance says by how much; moved by 10⁻¹²
    /// (rounding's size) it still does.
    func testTheStepRuleCanFail() throws {
        let round = MaterializedRound(Self.momentum, round: 0)
        let ema = try XCTUnwrap(Conventions.catalogue.first { $0.id == "sgd-momentum-ema" })
        let own = try ema.trace(of: round, from: round.initialParameters)
        XCTAssertEqual(own.steps.count, 3)
        func candidate(nudgedBy relative: Double) throws -> ConventionCandidate? {
            var engine = own
            guard case var .matrix(weight) = engine.steps[1].tensors[TensorName.weight(0)] else { return nil }
            let scale = weight.elements.map(abs).max()!
            weight.elements[3] += relative * scale
            engine.steps[1].tensors[TensorName.weight(0)] = .matrix(weight)
            let fingerprint = try conventionFingerprint(engine: engine, round: round, refereeInitialParameters: round.initialParameters,
                                                        horizon: nil, tolerances: Tolerances())
            return fingerprint.candidates.first { $0.id == ema.id }
        }
        let exact = try XCTUnwrap(try candidate(nudgedBy: 0))
        XCTAssertTrue(exact.matched)
        XCTAssertEqual(exact.maxDifference, 0, "the same code from the same parameters")
        let rounding = try XCTUnwrap(try candidate(nudgedBy: 1e-12))
        XCTAssertTrue(rounding.matched, "\(rounding)")
        let moved = try XCTUnwrap(try candidate(nudgedBy: 1e-7))
        XCTAssertFalse(moved.matched, "\(moved)")
        XCTAssertEqual(moved.maxDifference, 1e-7, accuracy: 1e-9)
    }
}
