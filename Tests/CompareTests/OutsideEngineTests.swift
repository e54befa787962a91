// Outside engines, as a user brings one: `compare export` → the engine → `compare check`, and
// `compare run --engine NAME=COMMAND`, with the example NumPy engine (examples/engines/numpy_engine.py, which
// `make test` makes sure can import NumPy), a copy of it with a planted bug, and fake engines that break the
// protocol in every way it can be broken.

import CompareCore
import Foundation
import Framework
import TestSupport
import XCTest

final class OutsideEngineTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("outside-engine-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try writeScratchFile(name, text, in: scratch)
    }

    static let numpyEngine = TestPaths.packageRoot.appendingPathComponent("examples/engines/numpy_engine.py").path
    static let plantedEngine = TestPaths.packageRoot.appendingPathComponent("Tests/CompareTests/Engines/planted_engine.py").path

    /// A small shuffled experiment with momentum and a smaller last batch (50 rows in batches of 7).
    static let small = """
    { "name": "small", "seed": 5, "data": { "disk": { "train": 50, "test": 30 } },
      "model": { "layers": [ { "type": "linear", "in": 2, "out": 6 }, { "type": "tanh" },
                             { "type": "linear", "in": 6, "out": 2 } ] },
      "optimizer": { "type": "sgd", "lr": 0.1, "momentum": 0.5 },
      "training": { "epochs": 4, "batchSize": 7 } }
    """

    func compare(_ arguments: [String]) throws -> (status: Int32?, stdout: String, stderr: String) {
        try runProcess(TestPaths.compareExecutable, arguments)
    }

    // MARK: The three commands of the README's "Check your own framework"

    func testExportRunYourEngineCheck() throws {
        let experiment = try write("small.experiment.json", Self.small)
        let folder = scratch.appendingPathComponent("rounds").path
        let export = try compare(["export", "--experiment", experiment, "--rounds", "2", "--out", folder])
        XCTAssertEqual(export.status, 0, export.stderr)
        let exported = folder + "/small.round-1.experiment.json"
        XCTAssertTrue(export.stdout.contains(exported), export.stdout)

        let trace = scratch.appendingPathComponent("numpy.trace.json").path
        let engine = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", Self.numpyEngine, exported, trace])
        XCTAssertEqual(engine.status, 0, engine.stderr)

        let check = try compare(["check", "--experiment", exported, "--trace", trace])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("Verdict: PASS"), check.stdout)
        XCTAssertTrue(check.stdout.contains("numpy"), "the trace's engine is a column: \(check.stdout)")
    }

    /// `compare --experiment` on an exported round gives bit for bit the traces of that round of the original.
    func testAnExportedRoundReplaysBitForBit() throws {
        let experiment = try write("small.json", Self.small)
        let folder = scratch.appendingPathComponent("rounds").path
        XCTAssertEqual(try compare(["export", "--experiment", experiment, "--rounds", "3", "--out", folder]).status, 0)
        let whole = scratch.appendingPathComponent("whole.json").path, one = scratch.appendingPathComponent("one.json").path
        XCTAssertEqual(try compare(["--experiment", experiment, "--rounds", "3", "--json", whole]).status, 0)
        XCTAssertEqual(try compare(["--experiment", folder + "/small.round-2.experiment.json", "--json", one]).status, 0)
        let original = try Report.load(contentsOf: URL(fileURLWithPath: whole)).experiments[0].rounds[2]
        let replayed = try Report.load(contentsOf: URL(fileURLWithPath: one)).experiments[0].rounds[0]
        XCTAssertEqual(replayed.seed, original.seed, "the exported file carries the round's seed")
        for engine in [EngineName.framework, EngineName.reference, EngineName.shadow] {
            let a = try XCTUnwrap(original.engine(engine)), b = try XCTUnwrap(replayed.engine(engine))
            XCTAssertEqual(a.epochs.count, 5)
            XCTAssertEqual(a.epochs.map { [$0.trainLoss, $0.testLoss, $0.trainAccuracy, $0.testAccuracy].map(\.bitPattern) },
                           b.epochs.map { [$0.trainLoss, $0.testLoss, $0.trainAccuracy, $0.testAccuracy].map(\.bitPattern) },
                           "\(engine): bit-identical")
        }
        let file = try Experiment.load(contentsOf: URL(fileURLWithPath: folder + "/small.round-2.experiment.json"))
        XCTAssertEqual(file.training.orders?.count, 4, "one order per epoch")
        XCTAssertTrue(file.training.orders?.allSatisfy { $0.sorted() == Array(0..<50) } ?? false, "permutations of the train rows")
        guard case .explicit = file.data else { return XCTFail("explicit data") }
    }

    func testTheNumPyEngineRunsBesideTheOthers() throws {
        let experiment = try write("small.json", Self.small)
        let json = scratch.appendingPathComponent("r.json").path
        let result = try compare(["--experiment", experiment, "--rounds", "2", "--json", json,
                                  "--engine", "numpy=python3 \(Self.numpyEngine)"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let report = try Report.load(contentsOf: URL(fileURLWithPath: json))
        XCTAssertEqual(report.plan.outsideEngines, ["numpy"])
        for round in report.experiments[0].rounds {
            XCTAssertEqual(round.engines.map(\.name), ["framework", "reference", "shadow", "numpy"])
            let numpy = round.comparisons.filter { $0.engine == "numpy" }
            XCTAssertEqual(numpy.map(\.referee), ["reference", "framework"], "against the referee and against Framework")
            XCTAssertTrue(numpy.allSatisfy(\.passed), numpy.map(\.reason).joined())
            XCTAssertLessThan(numpy[0].maxTestLossDifference, 1e-13)
        }
    }

    /// A copy of the engine whose MSE gradient divides by the batch's rows instead of all its elements: the
    /// trained trajectory differs from epoch 1 on (epoch 0, before any update, still agrees).
    func testAPlantedBugFailsCheckAtTheFirstEpochItChanges() throws {
        let experiment = try write("small.experiment.json", Self.small)
        let folder = scratch.appendingPathComponent("rounds").path
        XCTAssertEqual(try compare(["export", "--experiment", experiment, "--out", folder]).status, 0)
        let exported = folder + "/small.round-0.experiment.json", trace = scratch.appendingPathComponent("bug.trace.json").path
        let engine = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                    ["python3", Self.plantedEngine, "mse-gradient-over-rows", exported, trace])
        XCTAssertEqual(engine.status, 0, engine.stderr)
        let check = try compare(["check", "--experiment", exported, "--trace", trace])
        XCTAssertEqual(check.status, 1, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("Verdict: FAIL"), check.stdout)
        XCTAssertTrue(check.stdout.contains("bug against reference: epoch 1: loss differs"), check.stdout)
    }

    /// A trace beside its experiment file (NAME.torch.json) is judged by `compare run` too.
    func testAStoredTraceBesideTheExperimentIsJudged() throws {
        let pytorch = TestPaths.fixtures.appendingPathComponent("pytorch/torch-2.experiment.json").path
        let json = scratch.appendingPathComponent("r.json").path
        let result = try compare(["--experiment", pytorch, "--json", json])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let round = try Report.load(contentsOf: URL(fileURLWithPath: json)).experiments[0].rounds[0]
        XCTAssertTrue(round.comparisons.contains { $0.engine == "pytorch" && $0.referee == "reference" && $0.passed }, "\(round.comparisons)")
    }

    // MARK: The engine protocol's failures

    /// A fake engine: a shell script, run as `sh SCRIPT <experiment.json> <trace.json>` (no shell in between:
    /// `sh` is the program, the script its first word).
    func fakeEngine(_ name: String, _ script: String) throws -> String {
        "\(name)=sh \(try write("\(name).sh", script))"
    }

    func assertEngineError(_ specification: String, timeout: String? = nil, mustName words: [String],
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let experiment = try write("small.json", Self.small)
        let json = scratch.appendingPathComponent("never.json").path
        var arguments = ["--experiment", experiment, "--engine", specification, "--json", json]
        if let timeout { arguments += ["--engine-timeout", timeout] }
        let result = try compare(arguments)
        XCTAssertNotNil(result.status, "ended by a signal", file: file, line: line)
        XCTAssertEqual(result.status, 2, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stdout, "", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("compare: ") && result.stderr.filter { $0 == "\n" }.count == 1,
                      "one line: \(result.stderr)", file: file, line: line)
        for word in words where !result.stderr.contains(word) {
            XCTFail("stderr lacks \"\(word)\": \(result.stderr)", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: json), "no report for a run that could not finish", file: file, line: line)
    }

    func testAnEngineThatExitsNonZeroIsAnEngineError() throws {
        try assertEngineError(try fakeEngine("failing", "echo 'Traceback: something broke' >&2\necho 'ValueError: bad shape' >&2\nexit 3\n"),
                              mustName: ["engine failing", "small round 0", "exited with status 3",
                                         "last lines of its stderr: Traceback: something broke | ValueError: bad shape"])
    }

    func testAnEngineKilledByASignalIsAnEngineError() throws {
        try assertEngineError(try fakeEngine("killed", "kill -9 $$\n"), mustName: ["engine killed", "killed by signal 9"])
    }

    func testAnEngineThatRunsTooLongIsKilled() throws {
        let start = Date()
        try assertEngineError(try fakeEngine("slow", "sleep 30\n"), timeout: "1",
                              mustName: ["engine slow", "longer than the time limit of 1 s", "--engine-timeout"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 15, "killed at the limit, not waited for")
    }

    func testAnEngineThatWritesNoTraceIsAnEngineError() throws {
        try assertEngineError(try fakeEngine("silent", "exit 0\n"), mustName: ["engine silent", "wrote no trace"])
    }

    func testAnEngineThatCannotStartIsAnEngineError() throws {
        try assertEngineError("absent=/no/such/engine", mustName: ["engine absent", "cannot start /no/such/engine"])
    }

    func testAMalformedTraceIsAnEngineError() throws {
        try assertEngineError(try fakeEngine("garbled", "printf '{\"format\": ' > \"$2\"\n"),
                              mustName: ["engine garbled", "wrote a trace that is not valid", "not valid JSON"])
    }

    /// The experiment has 4 epochs: a trace with epochs 0…5 is refused with the count it needs.
    func testATraceWithTheWrongNumberOfEpochsIsAnEngineError() throws {
        let epochs = (0...5).map { #"{"epoch": \#($0), "trainLoss": 0.5, "testLoss": 0.5, "trainAccuracy": 0.5, "testAccuracy": 0.5}"# }
        let trace = #"{"format": "minidl-trace", "version": 1, "experiment": "small", "engine": "fake", "epochs": [\#(epochs.joined(separator: ", "))], "divergence": null}"#
        try assertEngineError(try fakeEngine("counting", "cat > \"$2\" <<'EOF'\n\(trace)\nEOF\n"),
                              mustName: ["engine counting", "epochs: 6 entries, but the experiment has 4 epochs plus epoch 0 (5 entries)"])
    }

    func testEngineSpecificationsAreChecked() throws {
        let experiment = try write("small.json", Self.small)
        for (specification, words) in [("no-equals-sign", ["expected NAME=COMMAND"]), ("framework=python3 x.py", ["built-in engine's name"]),
                                       ("bad name=python3 x.py", ["must be 1 to 40 letters"]), ("quote=python3 'x.py", ["quote is not closed"]),
                                       ("empty=", ["--engine empty=", "the command is empty"]),
                                       ("blank=   ", ["--engine blank=", "the command is empty"])] {
            let result = try compare(["--experiment", experiment, "--engine", specification])
            XCTAssertEqual(result.status, 2, "\(specification): \(result.stderr)")
            for word in words { XCTAssertTrue(result.stderr.contains(word), "\(specification): \(result.stderr)") }
        }
    }

    func testShellWordsSplitLikeAShell() throws {
        XCTAssertEqual(try ShellWords.split(#"python3  "my engine.py" --flag='a b' c\ d "q\"x\\""#),
                       ["python3", "my engine.py", "--flag=a b", "c d", #"q"x\"#])
        XCTAssertEqual(try ShellWords.split(""), [])
        XCTAssertThrowsError(try ShellWords.split(#"a "b"#))
    }

    // MARK: Bad traces: the file, the JSON path and what was expected

    /// The trace `mutate` makes of Framework's, read against `small` asking for its first step.
    func traceProblem(_ mutate: (inout [String: Any]) -> Void) throws -> String {
        var experiment = try Experiment.decode(Data(Self.small.utf8), file: "small.json")
        experiment.trace = TraceRequest(steps: 1, epochParameters: false)
        var trace = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(try FrameworkEngine().train(MaterializedRound(experiment, round: 0)).jsonValue.text().utf8)) as? [String: Any])
        mutate(&trace)
        let data = try JSONSerialization.data(withJSONObject: trace)
        do {
            _ = try Trace.decode(data, file: "t.json", experiment: experiment)
            return "accepted"
        } catch let error as TraceError {
            return "\(error)"
        }
    }

    func testBadTracesAreRefusedWithTheirPath() throws {
        XCTAssertEqual(try traceProblem { t in
            var epochs = t["epochs"] as! [[String: Any]]
            epochs[3]["testLoss"] = NSNull()
            t["epochs"] = epochs
        }, "t.json: epochs[3].testLoss: expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got null")
        XCTAssertEqual(try traceProblem { t in t["epochs"] = Array((t["epochs"] as! [Any]).dropLast()) },
                       "t.json: epochs: 4 entries, ending at epoch 3, but the experiment has 4 epochs plus epoch 0 (5 entries); "
                       + "the last entry must be epoch 4 (or the trace must say where it diverged)")
        XCTAssertEqual(try traceProblem { t in t["experiment"] = "other" }, "t.json: experiment: \"other\", but the experiment is named \"small\"")
        XCTAssertEqual(try traceProblem { t in t["enigne"] = "x" }.prefix(37), "t.json: enigne: unknown key \"enigne\";")
        XCTAssertEqual(try traceProblem { t in
            t["steps"] = [["epoch": 1, "batch": 1, "tensors": ["layers[2].dWeight": [[1.0, 2.0]]]]]
        }, "t.json: steps[0].tensors[\"layers[2].dWeight\"]: 1×2, but layer 2 is 2×6")
        XCTAssertEqual(try traceProblem { t in
            t["steps"] = [["epoch": 1, "batch": 1, "tensors": ["layers[1].dWeight": [[1.0]]]]]
        }, "t.json: steps[0].tensors[\"layers[1].dWeight\"]: layer 1 is tanh, which has no parameters")
        XCTAssertEqual(try traceProblem { t in
            t["steps"] = [["epoch": 1, "batch": 9, "tensors": [:] as [String: Any]]]
        }, "t.json: steps[0]: epoch 1, batch 9, but epochs are 1…4 and batches 1…8 (1-based)")
        XCTAssertEqual(try traceProblem { t in
            var epochs = t["epochs"] as! [[String: Any]]
            epochs[1]["trainAccuracy"] = 1.5
            t["epochs"] = epochs
        }, "t.json: epochs[1].trainAccuracy: an accuracy is a fraction in [0, 1], got 1.5")
        XCTAssertEqual(try traceProblem { _ in }, "accepted", "the unaltered trace is read")
    }
}
