// `compare gradcheck` (CompareCore's `NetworkGradientCheck`): the whole network's gradient at round 0's initial
// parameters on the first batch, in Framework, Reference and outside engines: the example NumPy engine passes,
// planted bugs fall to order 1 with the element named, and bad input exits 2.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

final class GradcheckTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("gradcheck-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    static let numpyEngine = TestPaths.packageRoot.appendingPathComponent("examples/engines/numpy_engine.py").path
    static let plantedEngine = TestPaths.packageRoot.appendingPathComponent("Tests/CompareTests/Engines/planted_engine.py").path

    /// Two tanh layers and two outputs (so that MSE's rows and rows·columns differ), batches of 7, shuffled.
    static let small = """
    { "name": "small", "seed": 5, "data": { "disk": { "train": 50, "test": 30 } },
      "model": { "layers": [ { "type": "linear", "in": 2, "out": 6 }, { "type": "tanh" },
                             { "type": "linear", "in": 6, "out": 4 }, { "type": "tanh" },
                             { "type": "linear", "in": 4, "out": 2 } ] },
      "optimizer": { "type": "sgd", "lr": 0.1, "momentum": 0.5 },
      "training": { "epochs": 3, "batchSize": 7 } }
    """

    /// The tensors every engine reports for `small`, in order: the input gradient, then weight and bias of each
    /// linear layer.
    static let smallTensors = ["layers[0].dInput", "layers[0].dWeight", "layers[0].dBias", "layers[2].dWeight", "layers[2].dBias",
                               "layers[4].dWeight", "layers[4].dBias"]

    func round(_ text: String) throws -> MaterializedRound {
        MaterializedRound(try Experiment.decode(Data(text.utf8), file: "small.json"), round: 0)
    }

    func engine(_ name: String, _ arguments: String) throws -> CommandEngine {
        try CommandEngine(specification: "\(name)=python3 \(arguments)")
    }

    /// Every tensor of `check` is a clean order 2 within the element tolerance, with its median clean order
    /// within 0.05 of 2.
    func assertEveryTensorOrderTwo(_ check: NetworkGradientCheck.EngineCheck, file: StaticString = #filePath, line: UInt = #line) {
        for tensor in check.report.tensors {
            guard case .secondOrder = tensor.taylor.verdict else {
                XCTFail("\(check.name) \(tensor.tensor): \(tensor.taylor) (orders \(tensor.taylor.ordersDescription))", file: file, line: line)
                continue
            }
            XCTAssertTrue(tensor.elementsPassed, "\(check.name) \(tensor.tensor): \(tensor.mismatches.prefix(3))", file: file, line: line)
            let orders = tensor.taylor.cleanOrders.sorted()
            assertClose(orders[orders.count / 2], 2, rtol: 0, atol: 0.05, "\(check.name) \(tensor.tensor): \(tensor.taylor.ordersDescription)",
                        file: file, line: line)
        }
    }

    /// `tensor` of `check` fails on both counts: order 1 at the bottom of the ladder, and elements beyond the
    /// tolerance whose analytical/numerical ratio is `ratio` (within 10⁻⁴).
    func assertOrderOne(_ check: NetworkGradientCheck.EngineCheck, _ tensor: String, ratio: Double,
                        file: StaticString = #filePath, line: UInt = #line) {
        guard let t = check.report.tensor(tensor) else { return XCTFail("\(check.name) has no \(tensor)", file: file, line: line) }
        guard case let .firstOrder(order, _) = t.taylor.verdict else {
            return XCTFail("\(check.name) \(tensor): expected order 1, got \(t.taylor) (orders \(t.taylor.ordersDescription))", file: file, line: line)
        }
        assertClose(order, 1, rtol: 0, atol: 0.15, "\(check.name) \(tensor): orders \(t.taylor.ordersDescription)", file: file, line: line)
        XCTAssertFalse(t.mismatches.isEmpty, "\(check.name) \(tensor): the element check names the elements", file: file, line: line)
        for m in t.mismatches where abs(m.numerical) > 1e-6 {
            assertClose(m.analytical / m.numerical, ratio, rtol: 1e-4, "\(m)", file: file, line: line)
        }
    }

    // MARK: Correct engines pass

    func testCorrectExperimentPassesInFrameworkReferenceAndNumPy() throws {
        let check = try NetworkGradientCheck(try round(Self.small), outside: [try engine("numpy", Self.numpyEngine)])
        print(check.textReport(file: "small.json"))
        XCTAssertEqual(check.engines.map(\.name), ["framework", "reference", "numpy"])
        XCTAssertTrue(check.passed)
        for engine in check.engines {
            XCTAssertEqual(engine.report.tensors.map(\.tensor), Self.smallTensors, engine.name)
            assertEveryTensorOrderTwo(engine)
        }
        XCTAssertEqual(check.rows.count, 7, "one batch of batchSize rows")
        XCTAssertTrue(check.engines[2].function.contains("the referee's"), "an outside engine is checked against the referee's f")
        XCTAssertTrue(check.engines[2].notes.contains { $0.hasPrefix("its loss on the batch: ") }, "\(check.engines[2].notes)")
        // The same directions in every engine: their certificates see the same remainders, to rounding.
        for (a, b) in zip(check.engines[0].report.tensors, check.engines[1].report.tensors) {
            assertClose(a.taylor.remainders[0], b.taylor.remainders[0], rtol: 1e-6, "\(a.tensor): r(h₀) in Framework and Reference")
        }
    }

    /// Every loss and every activation (ReLU's and LeakyReLU's kinks may be crossed: reported, still a pass).
    func testEveryLossAndActivationPassInFrameworkAndReference() throws {
        for (loss, last) in [("mse", ""), ("mae", ""), ("bce", #", { "type": "sigmoid" }"#), ("crossEntropy", "")] {
            let text = """
            { "name": "all-\(loss)", "seed": 11, "data": { "disk": { "train": 40, "test": 10, "normalize": true } },
              "model": { "layers": [ { "type": "linear", "in": 2, "out": 8 }, { "type": "relu" },
                                     { "type": "linear", "in": 8, "out": 8 }, { "type": "tanh" },
                                     { "type": "linear", "in": 8, "out": 8 }, { "type": "gelu" },
                                     { "type": "linear", "in": 8, "out": 8 }, { "type": "leakyRelu", "slope": 0.1 },
                                     { "type": "linear", "in": 8, "out": 8 }, { "type": "sigmoid" },
                                     { "type": "linear", "in": 8, "out": 2 }\(last) ] },
              "loss": { "type": "\(loss)" }, "training": { "epochs": 1, "batchSize": 10 } }
            """
            let check = try NetworkGradientCheck(try round(text))
            print(check.textReport(file: "all-\(loss).json"))
            XCTAssertTrue(check.passed, loss)
            for engine in check.engines {
                XCTAssertEqual(engine.report.tensors.count, 1 + 2 * 6, "\(loss) \(engine.name): the input and 6 linear layers")
                for tensor in engine.report.tensors {
                    XCTAssertTrue(tensor.elementsPassed, "\(loss) \(engine.name) \(tensor.tensor): \(tensor.mismatches.prefix(3))")
                    switch tensor.taylor.verdict {
                    case .secondOrder, .kinkCrossed: break
                    default: XCTFail("\(loss) \(engine.name) \(tensor.tensor): \(tensor.taylor) (orders \(tensor.taylor.ordersDescription))")
                    }
                }
            }
        }
    }

    // MARK: Planted outside engines fail, with the order falling to 1 and the element named

    /// Tanh's derivative 1 % too large: every tensor whose gradient passes through a Tanh's backward falls to
    /// order 1, with every element off by the factor 1.01 (layer 2, behind one Tanh) or 1.01² = 1.0201 (layer 0
    /// and the input, behind both); the last layer's, behind none, stay at order 2.
    func testPlantedTanhDerivativeOffByOnePercentFallsToOrderOne() throws {
        let planted = try engine("planted", "\(Self.plantedEngine) tanh-derivative-off-by-1-percent")
        let check = try NetworkGradientCheck(try round(Self.small), outside: [planted])
        let text = check.textReport(file: "small.json")
        print(text)
        XCTAssertFalse(check.passed)
        XCTAssertTrue(check.engines[0].passed && check.engines[1].passed, "Framework and Reference are right")
        let engine = check.engines[2]
        assertOrderOne(engine, "layers[2].dWeight", ratio: 1.01)
        assertOrderOne(engine, "layers[2].dBias", ratio: 1.01)
        for name in ["layers[0].dInput", "layers[0].dWeight", "layers[0].dBias"] { assertOrderOne(engine, name, ratio: 1.0201) }
        for name in ["layers[4].dWeight", "layers[4].dBias"] {
            let t = try XCTUnwrap(engine.report.tensor(name))
            XCTAssertTrue(t.passed, "\(name) does not pass through a Tanh's backward: \(t)")
        }
        XCTAssertTrue(text.contains("ORDER 1: gradient wrong"), text)
        XCTAssertTrue(text.contains("worst of 24 elements beyond tolerance: Linear(6 → 4) layers[2].dWeight["), text)
        XCTAssertTrue(text.contains("Linear(6 → 4) layers[2].dWeight["), "the element is named: \(text)")
        XCTAssertTrue(text.split(separator: "\n").allSatisfy { $0.count <= 120 }, "≤ 120 columns")
    }

    /// MSE's gradient divided by rows instead of rows·columns (2 outputs): every gradient twice the true one,
    /// order 1 everywhere, elements off by the factor 2.
    func testPlantedMSEGradientOverRowsFallsToOrderOne() throws {
        let planted = try engine("planted", "\(Self.plantedEngine) mse-gradient-over-rows")
        let check = try NetworkGradientCheck(try round(Self.small), outside: [planted])
        print(check.textReport(file: "small.json"))
        XCTAssertFalse(check.passed)
        let engine = check.engines[2]
        XCTAssertEqual(engine.report.tensors.map(\.tensor), Self.smallTensors)
        for name in Self.smallTensors { assertOrderOne(engine, name, ratio: 2) }
        let note = try XCTUnwrap(engine.notes.first { $0.hasPrefix("its loss on the batch") })
        XCTAssertTrue(note.contains("the referee's"), "its loss value is right, only the gradient is not: \(note)")
    }

    // MARK: Bad input

    /// An engine whose trace has no gradients: an `EngineError` naming the engine and the missing tensor.
    func testAnEngineWithoutGradientsIsAnError() throws {
        struct NoSteps: TrainingEngine {
            let name = "bare"
            func train(_ round: MaterializedRound) throws -> Trace {
                Trace(experiment: round.experiment.name, engine: "bare", epochs: [], divergence: nil,
                      steps: [TraceStep(epoch: 1, batch: 1, tensors: [TensorName.loss: .scalar(1)])])
            }
        }
        XCTAssertThrowsError(try NetworkGradientCheck(try round(Self.small), outside: [NoSteps()])) { error in
            let text = "\(error)"
            XCTAssertTrue(error is EngineError, text)
            XCTAssertTrue(text.contains("engine bare") && text.contains("has no layers[0].dWeight"), text)
        }
    }

    /// Skips unless `compare gradcheck` is a subcommand of the built `compare` (main.swift lists it).
    func requireSubcommand() throws {
        let help = try runProcess(TestPaths.compareExecutable, ["gradcheck", "--help"])
        guard help.status == 0, help.stdout.contains("Check the whole network's gradient") else {
            throw XCTSkip("compare gradcheck is not in CompareCommand's subcommands yet (main.swift)")
        }
    }

    func testCommandExitStatusesAndJSON() throws {
        try requireSubcommand()
        let experiment = try writeScratchFile("small.json", Self.small, in: scratch)
        let json = scratch.appendingPathComponent("out/gradcheck.json").path
        let pass = try runProcess(TestPaths.compareExecutable, ["gradcheck", "--experiment", experiment, "--engine",
                                                                "numpy=python3 \(Self.numpyEngine)", "--json", json])
        XCTAssertEqual(pass.status, 0, pass.stdout + pass.stderr)
        XCTAssertTrue(pass.stdout.contains("Verdict: PASS"), pass.stdout)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "minidl-gradcheck")
        XCTAssertEqual(object["passed"] as? Bool, true)
        let engines = try XCTUnwrap(object["engines"] as? [[String: Any]])
        XCTAssertEqual(engines.map { $0["name"] as? String }, ["framework", "reference", "numpy"])
        let tensors = try XCTUnwrap(engines[2]["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.map { $0["tensor"] as? String }, Self.smallTensors)
        let taylor = try XCTUnwrap(tensors[1]["taylor"] as? [String: Any])
        XCTAssertEqual(taylor["verdict"] as? String, "secondOrder")
        XCTAssertEqual((taylor["orders"] as? [Any])?.count, 16)

        let fail = try runProcess(TestPaths.compareExecutable, ["gradcheck", "--experiment", experiment, "--engine",
                                                                "planted=python3 \(Self.plantedEngine) mse-gradient-over-rows"])
        XCTAssertEqual(fail.status, 1, fail.stdout + fail.stderr)
        XCTAssertTrue(fail.stdout.contains("Verdict: FAIL (planted)"), fail.stdout)
        XCTAssertTrue(fail.stdout.contains("ORDER 1: gradient wrong"), fail.stdout)
    }

    func testBadInputExitsTwoNamingTheFileAndField() throws {
        try requireSubcommand()
        let missing = scratch.appendingPathComponent("missing.json").path
        let bad = try writeScratchFile("bad.json", Self.small.replacingOccurrences(of: #""in": 6, "out": 4"#, with: #""in": 5, "out": 4"#),
                                       in: scratch)
        let good = try writeScratchFile("small.json", Self.small, in: scratch)
        for (arguments, expected) in [
            (["gradcheck", "--experiment", missing], "missing.json"),
            (["gradcheck", "--experiment", bad], "model.layers[2].in"),
            (["gradcheck", "--experiment", good, "--engine", "no-equals-sign"], "expected NAME=COMMAND"),
            (["gradcheck", "--experiment", good, "--engine", "broken=python3 -c 'import sys; sys.exit(3)'"], "engine broken"),
            (["gradcheck", "--experiment", good, "--json", good], "would overwrite the experiment file"),
            (["gradcheck"], "--experiment"),
        ] {
            let result = try runProcess(TestPaths.compareExecutable, arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one line: \(result.stderr)")
        }
    }
}
