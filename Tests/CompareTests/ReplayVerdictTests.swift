// The verdict by replay (docs/verdict.md): every case here passed before it, because an allowance that grew with a
// chaotic run's one-ulp shadow excused any difference past the point where rounding was amplified, and the
// evidence an engine gives (steps, initial and final parameters) was read only when a round already failed.
// Each test also runs an engine that deserves its verdict, so that none can pass by failing everything.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

/// An engine whose trace is given: a forged or edited one.
private struct GivenTraceEngine: TrainingEngine {
    let name: String
    let trace: Trace
    func train(_ round: MaterializedRound) throws -> Trace { trace }
}

final class ReplayVerdictTests: XCTestCase {
    static let numpyEngine = TestPaths.packageRoot.appendingPathComponent("examples/engines/numpy_engine.py").path
    static let plantedEngine = TestPaths.packageRoot.appendingPathComponent("Tests/CompareTests/Engines/planted_engine.py").path

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("replay-verdict-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    func experiment(_ json: String) throws -> Experiment {
        try Experiment.decode(Data(json.utf8), file: "test.json")
    }

    /// Round 0 of `experiment` judged with `engines` as stored traces; the comparison of `name` against Reference.
    func judged(_ experiment: Experiment, _ engines: [TrainingEngine], name: String, file: StaticString = #filePath,
                line: UInt = #line) throws -> (parity: Parity, record: RoundRecord) {
        let request = RunRequest(experiments: [PlannedExperiment(experiment)], rounds: 1, storedTraces: [experiment.name: engines])
        let record = try XCTUnwrap(try CompareCore.run(request).report.rounds.first, file: file, line: line)
        let parity = try XCTUnwrap(record.comparisons.first { $0.engine == name && $0.referee == EngineName.reference }, file: file, line: line)
        return (parity, record)
    }

    func planted(_ variant: String) throws -> CommandEngine {
        try CommandEngine(specification: "\(variant)=python3 \(Self.plantedEngine) \(variant)")
    }

    // MARK: A chaotic run

    /// tanh 2-25-25-2, Adam lr 0.05, batch 1: the shadow parts from Framework at epoch 2. A trace with the
    /// referee's own numbers for epochs 0–2 and then train loss 0.99, test loss 0.01, accuracies 0 and 1 passed
    /// ("pass, amplified"). Now the epochs past the horizon need evidence: it is unverified, never a pass; so is
    /// a trace of the referee's own numbers throughout (they are not evidence either), while the NumPy engine,
    /// which gives per-epoch parameters, is verified as far as one epoch's growth of rounding allows.
    static let chaotic = """
        { "name": "chaos", "seed": 1, "data": { "disk": { "train": 1000, "test": 1000 } },
          "model": { "layers": [ { "type": "linear", "in": 2, "out": 25 }, { "type": "tanh" }, { "type": "linear", "in": 25, "out": 25 },
                                 { "type": "tanh" }, { "type": "linear", "in": 25, "out": 2 } ] },
          "optimizer": { "type": "adam", "lr": 0.05 }, "training": { "epochs": 12, "batchSize": 1 } }
        """

    func testAChaoticForgeryIsNeverAPass() throws {
        let e = try experiment(Self.chaotic)
        let round = MaterializedRound(e, round: 0)
        let referee = try ReferenceTrainingEngine().train(round)
        var forged = referee
        forged.engine = "forged"
        forged.finalParameters = nil
        forged.initialParameters = nil
        for k in forged.epochs.indices where forged.epochs[k].epoch >= 3 {
            forged.epochs[k] = EpochMetrics(epoch: forged.epochs[k].epoch, trainLoss: 0.99, testLoss: 0.01, trainAccuracy: 0, testAccuracy: 1)
        }
        var honest = referee
        honest.finalParameters = nil
        let (parity, record) = try judged(e, [GivenTraceEngine(name: "forged", trace: forged), GivenTraceEngine(name: "honest", trace: honest)],
                                          name: "forged")
        let horizon = try XCTUnwrap(parity.horizon, "the run is chaotic")
        XCTAssertLessThanOrEqual(horizon, 3)
        XCTAssertEqual(parity.status, .unverified, parity.reason)
        XCTAssertTrue(parity.reason.hasPrefix("unverified after epoch \(horizon - 1)"), parity.reason)
        XCTAssertTrue(parity.reason.contains("epochParameters"), "says what to give: \(parity.reason)")

        let same = try XCTUnwrap(record.comparisons.first { $0.engine == "honest" && $0.referee == EngineName.reference })
        XCTAssertEqual(same.status, .unverified, "the referee's own numbers are not evidence past the horizon either: \(same.reason)")
        XCTAssertEqual(record.status, .unverified)
        XCTAssertEqual(record.comparisons.first { $0.engine == EngineName.framework }?.status, .pass,
                       "Framework, replayed step by step, is verified to the end")
        XCTAssertEqual(record.verifications[EngineName.framework]?.verifiedThrough, 12)
    }

    /// `compare check` of such a trace exits 3 and says UNVERIFIED; its report says why.
    func testUnverifiedHasItsOwnExitStatus() throws {
        let e = try experiment(Self.chaotic.replacingOccurrences(of: #""train": 1000, "test": 1000"#, with: #""train": 200, "test": 200"#))
        let referee = try ReferenceTrainingEngine().train(MaterializedRound(e, round: 0))
        let experimentFile = scratch.appendingPathComponent("chaos.experiment.json")
        try e.encoded().write(to: experimentFile)
        let traceFile = scratch.appendingPathComponent("chaos.trace.json")
        try Data(Trace(experiment: "chaos", engine: "copy", epochs: referee.epochs, divergence: nil).jsonValue.text().utf8).write(to: traceFile)
        let result = try Hardened.compare(["check", "--experiment", experimentFile.path, "--trace", traceFile.path])
        XCTAssertEqual(result.status, 3, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("Verdict: UNVERIFIED"), result.stdout)
        XCTAssertTrue(result.stdout.contains("Unverified:\n  chaos round 0 (seed 1), chaos: unverified after epoch"), result.stdout)

        // The NumPy engine gives every epoch's parameters, but one epoch of this run amplifies rounding more than
        // 10⁴-fold: its replay from them would excuse a real difference, so it is unverified too, and says why.
        let numpy = try Hardened.compare(["--experiment", experimentFile.path, "--engine", "numpy=python3 \(Self.numpyEngine)"])
        XCTAssertEqual(numpy.status, 3, numpy.stdout + numpy.stderr)
        XCTAssertTrue(numpy.stdout.contains("amplifies rounding"), numpy.stdout)
    }

    /// An epoch's reported metrics against the referee's evaluation of the engine's own parameters: the loss
    /// within its tolerance, the accuracy counting the same rows but for those within rounding of their decision.
    func testReportedMetricsAreJudgedAgainstTheRefereesEvaluation() {
        let train = SetEvaluation(loss: 0.25, lossTolerance: 1e-15, correct: 30, ambiguous: 0, rows: 40)
        let test = SetEvaluation(loss: 0.5, lossTolerance: 1e-15, correct: 10, ambiguous: 1, rows: 20)
        let evaluation = EpochEvaluation(epoch: 3, train: train, test: test)
        func metrics(_ trainLoss: Double, _ trainAccuracy: Double, _ testAccuracy: Double) -> EpochMetrics {
            EpochMetrics(epoch: 3, trainLoss: trainLoss, testLoss: 0.5, trainAccuracy: trainAccuracy, testAccuracy: testAccuracy)
        }
        XCTAssertNil(evaluation.problem(metrics(0.25 + 5e-16, 0.75, 0.5)), "within the loss's tolerance")
        XCTAssertNil(evaluation.problem(metrics(0.25, 0.75, 0.55)), "one test row within rounding of its decision")
        XCTAssertEqual(evaluation.problem(metrics(0.25 + 2e-15, 0.75, 0.5))?.hasPrefix("train loss"), true)
        XCTAssertEqual(evaluation.problem(metrics(0.25, 0.775, 0.5))?.hasPrefix("train accuracy 0.775, but with its own parameters "
                                                                               + "the referee counts 30 of 40 rows correct"), true)
        XCTAssertNotNil(evaluation.problem(metrics(0.25, 0.75, 0.6)), "two test rows off, one ambiguous")
        XCTAssertNotNil(evaluation.problem(metrics(.nan, 0.75, 0.5)), "NaN against a finite loss")
        XCTAssertNotNil(evaluation.problem(metrics(.infinity, 0.75, 0.5)))
    }

    /// XOR through one linear layer: the two outputs of a row converge to a tie, and at epoch 1195 of round 0
    /// rounding tips one row's decision in Framework's free run and not in Reference's, while the losses agree.
    /// Framework's every step and every epoch's evaluation (its count from its own parameters) are replayed, so
    /// the accuracy that differs from Reference's free run is a remark, not a failure; without the replay the
    /// same traces fail.
    func testATieTippedByRoundingIsARemarkWhereTheReplayVerifiedTheEpoch() throws {
        let e = try experiment("""
            {"name": "tie", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2}]},
             "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 2000, "batchSize": 4}}
            """)
        let record = try XCTUnwrap(try CompareCore.run(RunRequest(experiments: [PlannedExperiment(e)], rounds: 1)).report.rounds.first)
        XCTAssertEqual(record.parity.status, .pass, record.parity.reason)
        let first = try XCTUnwrap(record.parity.accuracyTies.first, "an accuracy that differs from the referee's free run")
        XCTAssertLessThan(first, record.parity.horizon ?? Int.max, "before the horizon")
        let unverified = compareTraces(try XCTUnwrap(record.framework).epochTrace, with: try XCTUnwrap(record.reference).epochTrace,
                                       horizon: record.parity.horizon, tolerances: Tolerances(), engineName: EngineName.framework,
                                       refereeName: EngineName.reference)
        XCTAssertEqual(unverified.status, .fail)
        XCTAssertEqual(unverified.firstFailingEpoch, first)
    }

    // MARK: A kink

    /// The first layer starts at zero, so every ReLU input of the first step is exactly 0: an engine whose ReLU′(0)
    /// is 1 (PyTorch: 0) has a step-1 `layers[0].dWeight` where the referee's is exactly 0. It passed as amplified
    /// (its shadow crossed the same kink); the step replay finds it at ReLU's backward. The NumPy engine passes.
    func testReLUDerivativeOneAtZeroFails() throws {
        let e = try experiment("""
            { "name": "kink", "seed": 2, "data": { "disk": { "train": 40, "test": 20 } },
              "model": { "layers": [ { "type": "linear", "in": 2, "out": 4, "weight": [[0, 0], [0, 0], [0, 0], [0, 0]], "bias": [0, 0, 0, 0] },
                                     { "type": "relu" }, { "type": "linear", "in": 4, "out": 2 } ] },
              "optimizer": { "type": "sgd", "lr": 0.05 }, "training": { "epochs": 3, "batchSize": 5 }, "trace": { "steps": 2 } }
            """)
        let round = MaterializedRound(e, round: 0)
        let kink = try planted("relu-derivative-one-at-zero").train(round)
        let (parity, record) = try judged(e, [GivenTraceEngine(name: "kink", trace: kink),
                                              GivenTraceEngine(name: "numpy", trace: try planted("none").train(round))], name: "kink")
        XCTAssertEqual(parity.status, .fail, parity.reason)
        let verification = try XCTUnwrap(parity.verification)
        guard case let .tensor(d)? = verification.failure else { return XCTFail("a tensor differs: \(String(describing: verification.failure))") }
        XCTAssertEqual(d.tensor, TensorName.dInput(1), "ReLU's backward")
        XCTAssertEqual([d.epoch, d.batch], [1, 1])
        XCTAssertEqual(d.refereeValue, 0)
        guard case .local = d.cause else { return XCTFail("local to ReLU backward: \(d.causeText)") }
        XCTAssertEqual(record.comparisons.first { $0.engine == "numpy" && $0.referee == EngineName.reference }?.status, .pass)
    }

    // MARK: Evidence judged on a pass

    static let small = """
        { "name": "small", "seed": 5, "data": { "disk": { "train": 30, "test": 20 } },
          "model": { "layers": [ { "type": "linear", "in": 2, "out": 6 }, { "type": "tanh" }, { "type": "linear", "in": 6, "out": 2 } ] },
          "optimizer": { "type": "sgd", "lr": 0.1, "momentum": 0.9 }, "training": { "epochs": 4, "batchSize": 5 }, "trace": { "steps": 3 } }
        """

    /// The NumPy engine's trace (three steps, initial, per-epoch and final parameters) passes; each piece of its
    /// evidence edited fails, though its epochs are untouched: every step tensor as −3x + 7, the initial
    /// parameters moved by 0.5, the final ones × 100, a NaN step loss with no divergence, an epoch's parameters
    /// moved by 10⁻⁶, and every loss "Infinity" (which passed as ∞ ≤ atol + rtol·∞).
    func testEveryPieceOfEvidenceIsJudgedOnAPass() throws {
        let e = try experiment(Self.small)
        let trace = try CommandEngine(specification: "numpy=python3 \(Self.numpyEngine)").train(MaterializedRound(e, round: 0))
        XCTAssertEqual(trace.steps.count, 3)
        XCTAssertEqual(trace.checkpoints.count, 5, "epochs 0 to 4")
        func verdict(_ edit: (inout Trace) -> Void) throws -> Parity {
            var edited = trace
            edit(&edited)
            return try judged(e, [GivenTraceEngine(name: "numpy", trace: edited)], name: "numpy").parity
        }
        let control = try verdict { _ in }
        XCTAssertEqual(control.status, .pass, control.reason)
        XCTAssertEqual(control.verification?.verifiedThrough, 4)
        XCTAssertEqual(control.verification?.remarks.filter { $0.hasPrefix("an equivalent reformulation") }, [],
                       "a correct engine is not told it reformulates anything")
        XCTAssertEqual(control.accuracyTies, [], "nor that a tie tipped its accuracy")

        func map(_ t: Tensor, _ f: (Double) -> Double) -> Tensor {
            switch t {
            case let .scalar(x): return .scalar(f(x))
            case let .vector(v): return .vector(v.map(f))
            case let .matrix(m): return .matrix(Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map(f)))
            }
        }
        let cases: [(String, (inout Trace) -> Void, String)] = [
            ("steps −3x + 7", { t in for s in t.steps.indices { t.steps[s].tensors = t.steps[s].tensors.mapValues { map($0) { -3 * $0 + 7 } } } },
             "epoch 1, batch 1"),
            ("initial + 0.5", { t in t.initialParameters = t.initialParameters?.mapValues { map($0) { $0 + 0.5 } } }, "the initial parameters"),
            ("final × 100", { t in t.finalParameters = t.finalParameters?.map { (Matrix(rows: $0.weight.rows, columns: $0.weight.columns,
                                                                                            elements: $0.weight.elements.map { $0 * 100 }), $0.bias) } },
             "the final parameters"),
            ("NaN step loss", { t in t.steps[1].tensors[TensorName.loss] = .scalar(.nan) }, "epoch 1, batch 2"),
            ("epoch 2 moved", { t in t.checkpoints[2]![TensorName.weight(2)] = map(t.checkpoints[2]![TensorName.weight(2)]!) { $0 + 1e-6 } },
             "epoch 2"),
            // An accuracy off by one row while the losses agree: not a tie tipped by rounding (the replay counts the
            // engine's own parameters' rows), so no remark excuses it.
            ("accuracy + 1 row", { t in t.epochs[2].trainAccuracy += 1.0 / 30 }, "epoch 2: accuracy differs"),
            ("losses ∞", { t in for k in t.epochs.indices { t.epochs[k].trainLoss = .infinity; t.epochs[k].testLoss = .infinity } }, "epoch 0"),
        ]
        for (label, edit, place) in cases {
            let parity = try verdict(edit)
            XCTAssertEqual(parity.status, .fail, "\(label): \(parity.reason)")
            XCTAssertTrue(parity.reason.contains(place), "\(label) is found at \(place): \(parity.reason)")
        }
    }

    // MARK: An equivalent reformulation

    /// MSE's 1/rows moved into Linear's parameter gradients: every update is PyTorch's, `loss.dInput` and every
    /// dInput are `rows` times the referee's. It passes, with a remark naming the tensor and the factor. MSE's
    /// gradient divided by the rows alone (the updates differ) still fails there.
    func testAnEquivalentReformulationPassesWithARemark() throws {
        let e = try experiment(Self.small)
        let round = MaterializedRound(e, round: 0)
        let (moved, _) = try judged(e, [GivenTraceEngine(name: "moved", trace: try planted("mse-scaling-in-linear").train(round))], name: "moved")
        XCTAssertEqual(moved.status, .pass, moved.reason)
        let remark = try XCTUnwrap(moved.verification?.remarks.first { $0.hasPrefix("an equivalent reformulation") })
        XCTAssertTrue(remark.contains("loss.dInput"), remark)
        XCTAssertTrue(remark.contains("a factor 5 throughout"), remark)

        let (wrong, _) = try judged(e, [GivenTraceEngine(name: "wrong", trace: try planted("mse-gradient-over-rows").train(round))], name: "wrong")
        XCTAssertEqual(wrong.status, .fail, wrong.reason)
        guard case let .tensor(d)? = wrong.verification?.failure else { return XCTFail("a tensor differs") }
        XCTAssertEqual(d.tensor, TensorName.lossDInput, "the first difference in computation order")
    }

    // MARK: A bug past the horizon

    /// SGD lr 0.3, batch 1: the shadow parts from Framework at epoch 23. Weight decay applied from epoch 34 on
    /// changes nothing before the horizon (the free-running curves agree within 10⁻¹⁴ there) and passed as
    /// amplified; the replay of epoch 34 from the engine's own parameters finds it. The same engine without the
    /// bug is verified through epoch 40.
    static let late = """
        { "name": "late", "seed": 4, "data": { "disk": { "train": 200, "test": 200 } },
          "model": { "layers": [ { "type": "linear", "in": 2, "out": 25 }, { "type": "relu" }, { "type": "linear", "in": 25, "out": 25 },
                                 { "type": "tanh" }, { "type": "linear", "in": 25, "out": 2 } ] },
          "optimizer": { "type": "sgd", "lr": 0.3 }, "training": { "epochs": 40, "batchSize": 1 } }
        """

    func testABugPastTheHorizonFails() throws {
        let e = try experiment(Self.late)
        setenv("PLANTED_FROM_EPOCH", "34", 1)
        defer { unsetenv("PLANTED_FROM_EPOCH") }
        let request = RunRequest(experiments: [PlannedExperiment(e)], rounds: 1, engines: [try planted("late-weight-decay"), try planted("none")])
        let record = try XCTUnwrap(try CompareCore.run(request).report.rounds.first)
        let late = try XCTUnwrap(record.comparisons.first { $0.engine == "late-weight-decay" && $0.referee == EngineName.reference })
        let horizon = try XCTUnwrap(late.horizon)
        XCTAssertLessThan(horizon, 34)
        XCTAssertLessThan(late.maxTrainLossDifference, 1e-12, "before the horizon nothing differs")
        XCTAssertEqual(late.status, .fail, late.reason)
        XCTAssertEqual(late.firstFailingEpoch, 34)
        XCTAssertEqual(late.verification?.verifiedThrough, 33)
        let none = try XCTUnwrap(record.comparisons.first { $0.engine == "none" && $0.referee == EngineName.reference })
        XCTAssertEqual(none.status, .pass, none.reason)
        XCTAssertEqual(none.verification?.verifiedThrough, 40)
    }

    /// A divergence past the horizon is not excused either: an engine that claims its loss became ∞ at epoch 36,
    /// batch 5 while the referee's replay of epoch 36 from its parameters does not diverge is unverified, never
    /// passed (free-running, it would be a difference past the horizon, which is not judged).
    func testADivergencePastTheHorizonIsReplayed() throws {
        let e = try experiment(Self.late)
        let trace = try CommandEngine(specification: "numpy=python3 \(Self.numpyEngine)").train(MaterializedRound(e, round: 0))
        var claimed = trace
        claimed.epochs = trace.epochs.filter { $0.epoch <= 35 }
        claimed.checkpoints = trace.checkpoints.filter { $0.key <= 35 }
        claimed.finalParameters = nil
        claimed.divergence = Divergence(epoch: 36, batch: 5, loss: .infinity)
        let (parity, record) = try judged(e, [GivenTraceEngine(name: "claimed", trace: claimed), GivenTraceEngine(name: "numpy", trace: trace)],
                                          name: "claimed")
        XCTAssertLessThan(try XCTUnwrap(parity.horizon), 36)
        XCTAssertEqual(parity.status, .unverified, parity.reason)
        XCTAssertTrue(parity.reason.contains("diverged at epoch 36, batch 5, but the referee's replay of that epoch from its parameters does not "
                                            + "diverge by that batch"), parity.reason)
        XCTAssertEqual(parity.verification?.divergenceVerified, false)
        XCTAssertEqual(record.comparisons.first { $0.engine == "numpy" && $0.referee == EngineName.reference }?.status, .pass)
    }

    // MARK: merge

    /// `merge` judges as `run` does, from what the shards hold: the structure of every round (its seed is the
    /// experiment's + r; every engine's epochs are 0…E, once each, in order; every judged engine has its
    /// verification) and every epoch's reported metrics against the referee's evaluation of the engine's own
    /// parameters, which the shard carries. Framework's epoch-3 train loss × 1.001 in one shard passed (its
    /// shadow allowance was computed from the same edited trace); now it fails. A round's seed edited to 99, a
    /// duplicated last epoch, reversed epochs, a verification left out and one claiming epochs it did not evaluate
    /// are refused (exit 2, one line).
    func testMergeJudgesAsCheckDoes() throws {
        let experimentFile = scratch.appendingPathComponent("small.json")
        try Data(Self.small.utf8).write(to: experimentFile)
        var shards: [String] = []
        for k in 1...2 {
            let json = scratch.appendingPathComponent("shard-\(k).json").path
            let result = try Hardened.compare(["--experiment", experimentFile.path, "--rounds", "2", "--shard", "\(k)/2", "--json", json])
            XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
            shards.append(json)
        }
        let merged = try Hardened.compare(["merge"] + shards)
        XCTAssertEqual(merged.status, 0, merged.stdout + merged.stderr)

        func edited(_ name: String, _ edit: (inout [String: Any]) throws -> Void) throws -> String {
            var report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: shards[0]))) as? [String: Any])
            var experiments = try XCTUnwrap(report["experiments"] as? [[String: Any]])
            var rounds = try XCTUnwrap(experiments[0]["rounds"] as? [[String: Any]])
            try edit(&rounds[0])
            experiments[0]["rounds"] = rounds
            report["experiments"] = experiments
            let url = scratch.appendingPathComponent(name)
            try JSONSerialization.data(withJSONObject: report).write(to: url)
            return url.path
        }
        func editFramework(_ round: inout [String: Any], _ edit: (inout [String: Any]) throws -> Void) throws {
            var engines = try XCTUnwrap(round["engines"] as? [String: Any])
            var framework = try XCTUnwrap(engines["framework"] as? [String: Any])
            try edit(&framework)
            engines["framework"] = framework
            round["engines"] = engines
        }
        let loss = try edited("loss.json") { round in
            try editFramework(&round) { framework in
                var epochs = try XCTUnwrap(framework["epochs"] as? [[String: Any]])
                epochs[3]["trainLoss"] = try XCTUnwrap(epochs[3]["trainLoss"] as? Double) * 1.001
                framework["epochs"] = epochs
            }
        }
        let failed = try Hardened.compare(["merge", loss, shards[1]])
        XCTAssertEqual(failed.status, 1, failed.stdout + failed.stderr)
        XCTAssertTrue(failed.stdout.contains("epoch 3: framework reports train loss"), failed.stdout)

        let refused: [(String, (inout [String: Any]) throws -> Void, [String])] = [
            ("seed.json", { round in round["seed"] = 99 }, ["seed", "round 0 has seed 99", "so round 0 has seed 5"]),
            ("duplicate.json", { round in try editFramework(&round) { f in
                var epochs = try XCTUnwrap(f["epochs"] as? [[String: Any]])
                epochs.append(epochs.last!)
                f["epochs"] = epochs
            } }, ["epochs", "each once, in order"]),
            ("reversed.json", { round in try editFramework(&round) { f in
                f["epochs"] = try XCTUnwrap(f["epochs"] as? [[String: Any]]).reversed() as [[String: Any]]
            } }, ["epochs 4, 3, 2", "each once, in order"]),
            ("unverified.json", { round in try editFramework(&round) { f in f["verification"] = nil } }, ["has no verification"]),
            // A verification claims no more than it evaluated: verified through epoch 4 with evaluations of 0 and 1
            // only is what an unverified round edited to say "verified" looks like.
            ("raised.json", { round in try editFramework(&round) { f in
                var verification = try XCTUnwrap(f["verification"] as? [String: Any])
                verification["evaluations"] = Array(try XCTUnwrap(verification["evaluations"] as? [Any]).prefix(2))
                f["verification"] = verification
            } }, ["verifiedThrough: epoch 4, but there is no evaluation of epoch 2"]),
        ]
        for (name, edit, words) in refused {
            let result = try Hardened.compare(["merge", try edited(name, edit), shards[1]])
            XCTAssertEqual(result.status, 2, "\(name): \(result.stdout) \(result.stderr)")
            XCTAssertEqual(result.stdout, "", name)
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, "one line: \(result.stderr)")
            for word in words { XCTAssertTrue(result.stderr.contains(word), "\(name) names \(word): \(result.stderr)") }
        }
    }
}
