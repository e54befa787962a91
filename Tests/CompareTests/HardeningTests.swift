// Bad input through the built `compare`, as a user meets it: one bad experiment file per kind of mistake,
// and the command-line mistakes (flags, files, output places). Each must end with exit status 2 (never a
// signal), exactly one line on stderr naming the file and the field, and nothing on stdout. The decoder's
// own table (ExperimentFileTests) covers every case at the decode level; this one checks the whole path.

import CompareCore
import Foundation
import TestSupport
import XCTest

/// A model that fits 2-wide inputs and 2-wide targets: linear 2 → 2.
private let model22 = #"{"layers": [{"type": "linear", "in": 2, "out": 2}]}"#
/// Two rows of 2-wide inputs and targets.
private let set2 = #"{"inputs": [[0, 1], [1, 0]], "targets": [[1, 0], [0, 1]]}"#

/// One bad experiment file: the field its error must name (a JSON path, or where the syntax breaks) and
/// words the message must contain.
private struct BadExperiment {
    let label: String
    let json: String
    let field: String
    let words: [String]
    let line: UInt

    init(_ label: String, _ json: String, field: String, _ words: [String], line: UInt = #line) {
        self.label = label
        self.json = json
        self.field = field
        self.words = words
        self.line = line
    }
}

private let badExperiments: [BadExperiment] = [
    BadExperiment("malformed JSON", "{\n  \"model\": {\"layers\": [}\n}", field: "line 2, column 24", ["not valid JSON"]),
    BadExperiment("wrong type", #"{"model": \#(model22), "optimizer": {"type": "sgd", "lr": "0.1"}}"#,
                  field: "optimizer.lr", ["expected a number", "a string (\"0.1\")"]),
    BadExperiment("unknown layer", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "swish"}]}}"#,
                  field: "model.layers[1].type", ["unknown layer type \"swish\"", "allowed: linear, relu, tanh, sigmoid, leakyRelu, gelu"]),
    BadExperiment("unknown loss", #"{"model": \#(model22), "loss": {"type": "hinge"}}"#,
                  field: "loss.type", ["unknown loss \"hinge\"", "allowed: mse, mae, bce, crossEntropy"]),
    BadExperiment("unknown optimizer", #"{"model": \#(model22), "optimizer": {"type": "rmsprop"}}"#,
                  field: "optimizer.type", ["unknown optimizer \"rmsprop\"", "allowed: sgd, adam"]),
    BadExperiment("unknown field name", #"{"model": \#(model22), "trainig": {"epochs": 3}}"#,
                  field: "trainig", ["unknown key \"trainig\"", "did you mean \"training\""]),
    BadExperiment("field name with a line break", #"{"model": \#(model22), "mo\ndel": 1}"#,
                  field: #"mo\ndel"#, [#"unknown key "mo\ndel""#]),
    BadExperiment("ragged inputs", #"{"model": \#(model22), "data": {"train": {"inputs": [[0, 1], [1, 0, 1]], "targets": [[1, 0], [0, 1]]}, "test": \#(set2)}}"#,
                  field: "data.train.inputs[1]", ["3 numbers", "row 0 has 2"]),
    BadExperiment("ragged weight", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3]], "bias": [0, 0]}]}}"#,
                  field: "model.layers[0].weight[1]", ["1 number", "in is 2"]),
    BadExperiment("explicit data with 0 rows", #"{"model": \#(model22), "data": {"train": \#(set2), "test": {"inputs": [], "targets": []}}}"#,
                  field: "data.test.inputs", ["must not be empty"]),
    BadExperiment("empty input rows", #"{"model": \#(model22), "data": {"train": {"inputs": [[], []], "targets": [[1, 0], [0, 1]]}, "test": \#(set2)}}"#,
                  field: "data.train.inputs[0]", ["must not be empty"]),
    BadExperiment("empty layer list", #"{"model": {"layers": []}}"#, field: "model.layers", ["must not be empty"]),
    BadExperiment("weight wrong size", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2]], "bias": [0, 0]}]}}"#,
                  field: "model.layers[0].weight", ["1 row", "out is 2"]),
    BadExperiment("bias wrong size", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3, 4]], "bias": [0, 0, 0]}]}}"#,
                  field: "model.layers[0].bias", ["3 numbers", "out is 2"]),
    BadExperiment("input width mismatch", #"{"model": {"layers": [{"type": "linear", "in": 3, "out": 2}]}, "data": {"train": \#(set2), "test": \#(set2)}}"#,
                  field: "model.layers[0].in", ["3, but the data inputs are 2 wide"]),
    BadExperiment("target width mismatch", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 4}, {"type": "relu"}, {"type": "linear", "in": 4, "out": 3}]}, "data": {"train": \#(set2), "test": \#(set2)}}"#,
                  field: "model.layers[2].out", ["3, but the data targets are 2 wide"]),
    BadExperiment("non-finite weight (1e999)", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1, "weight": [[1, 1e999]], "bias": [0]}]}}"#,
                  field: "model.layers[0].weight[0][1]", ["must be a finite number", "inf"]),
    BadExperiment("non-finite input (-1e999)", #"{"model": \#(model22), "data": {"train": {"inputs": [[-1e999, 0]], "targets": [[1, 0]]}, "test": \#(set2)}}"#,
                  field: "data.train.inputs[0][0]", ["must be a finite number", "-inf"]),
    BadExperiment("epochs < 1", #"{"model": \#(model22), "training": {"epochs": 0}}"#,
                  field: "training.epochs", ["must be at least 1", "got 0"]),
    BadExperiment("batch size < 1", #"{"model": \#(model22), "training": {"batchSize": -5}}"#,
                  field: "training.batchSize", ["must be at least 1", "got -5"]),
    BadExperiment("lr = 0", #"{"model": \#(model22), "optimizer": {"type": "sgd", "lr": 0}}"#,
                  field: "optimizer.lr", ["must be a finite number > 0", "got 0"]),
    BadExperiment("lr < 0", #"{"model": \#(model22), "optimizer": {"type": "adam", "lr": -0.001}}"#,
                  field: "optimizer.lr", ["must be a finite number > 0", "got -0.001"]),
    BadExperiment("momentum out of range", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": 1}}"#,
                  field: "optimizer.momentum", ["must be in [0, 1)", "got 1"]),
    BadExperiment("beta1 out of range", #"{"model": \#(model22), "optimizer": {"type": "adam", "beta1": 1.5}}"#,
                  field: "optimizer.beta1", ["must be in [0, 1)", "got 1.5"]),
    BadExperiment("beta2 out of range", #"{"model": \#(model22), "optimizer": {"type": "adam", "beta2": -0.1}}"#,
                  field: "optimizer.beta2", ["must be in [0, 1)", "got -0.1"]),
    BadExperiment("bce targets outside [0, 1]", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "sigmoid"}]}, "loss": {"type": "bce"}, "data": {"train": {"inputs": [[0, 1]], "targets": [[-0.5, 1]]}, "test": \#(set2)}}"#,
                  field: "data.train.targets[0][0]", ["bce needs targets in [0, 1]", "got -0.5"]),
    BadExperiment("bce model not ending in sigmoid", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "sigmoid"}, {"type": "linear", "in": 2, "out": 2}]}, "loss": {"type": "bce"}}"#,
                  field: "loss.type", ["the last layer must be sigmoid", "model.layers[2] is linear"]),
    BadExperiment("crossEntropy with 1 output", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1}]}, "loss": {"type": "crossEntropy"}}"#,
                  field: "loss.type", ["crossEntropy needs at least two outputs", "gives 1"]),
    BadExperiment("a layer of 10^12 units", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1000000000000}, {"type": "linear", "in": 1000000000000, "out": 2}]}}"#,
                  field: "model.layers[0].out", ["1000000000000 units", "limit of 100000 per layer"]),
    BadExperiment("10^12 data points", #"{"model": \#(model22), "data": {"disk": {"train": 1000000000000}}}"#,
                  field: "data.disk.train", ["1000000000000 points", "limit of 10000000"]),
    BadExperiment("10^9 epochs", #"{"model": \#(model22), "training": {"epochs": 1000000000}}"#,
                  field: "training.epochs", ["1000000000 epochs", "limit of 1000000"]),
    BadExperiment("epochs × points too many", #"{"model": \#(model22), "data": {"disk": {"train": 10000000}}, "training": {"epochs": 11}}"#,
                  field: "training.epochs", ["11 epochs × 10000000 train points", "limit of 100000000"]),
]

final class HardeningTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("hardening-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try writeScratchFile(name, text, in: scratch)
    }

    // MARK: Bad experiment files

    func testEveryKindOfBadExperimentFileExitsTwoWithOneLine() throws {
        let paths = try badExperiments.indices.map { try write("bad-\($0).experiment.json", badExperiments[$0].json) }
        let results = try runConcurrently(paths.map { ["--experiment", $0] })
        for (bad, (path, result)) in zip(badExperiments, zip(paths, results)) {
            assertRefused(result, label: bad.label, mustName: [path, bad.field] + bad.words, line: bad.line)
        }
    }

    // MARK: Command-line mistakes

    func testCommandLineMistakesExitTwoWithOneLine() throws {
        let good = try write("good.json", CompareCommandTests.smallExperiment)
        let file = try write("a-file", "not a folder")
        let folder = scratch.appendingPathComponent("a-folder").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let missing = scratch.appendingPathComponent("missing.json").path

        var cases: [(label: String, arguments: [String], mustName: [String])] = [
            ("unknown flag", ["--no-such-flag"], ["Unknown option '--no-such-flag'", "compare --help"]),
            ("missing file", ["--experiment", missing], [missing, "does not exist"]),
            ("a folder as the file", ["--experiment", folder], [folder, "it is a directory"]),
            ("an endless file", ["--experiment", "/dev/zero"], ["/dev/zero", "larger than the limit of 100000000 bytes"]),
            ("--json under a regular file", ["--experiment", good, "--json", file + "/report.json"],
             ["--json", file, "is a file, not a folder"]),
            ("--json naming a folder", ["--experiment", good, "--json", folder], ["--json", folder, "is a folder"]),
            ("--csv DIR where DIR is a file", ["--experiment", good, "--csv", file], ["--csv", file, "cannot write"]),
            ("--plots DIR where DIR is a file", ["--experiment", good, "--plots", file], ["--plots", file, "cannot write"]),
            ("--csv under a regular file", ["--experiment", good, "--csv", file + "/csv"], ["--csv", file, "cannot write"]),
            ("--rounds 10^9", ["--experiment", good, "--rounds", "1000000000"], ["--rounds", "from 1 to 10000"]),
            ("--rounds -1", ["--experiment", good, "--rounds=-1"], ["--rounds", "got -1"]),
            ("--epochs 10^9", ["--experiment", good, "--epochs", "1000000000"],
             [good, "with command-line overrides", "training.epochs", "limit of 1000000"]),
            ("--batch-size 0", ["--experiment", good, "--batch-size", "0"], [good, "training.batchSize", "at least 1"]),
            ("--lr nan", ["--experiment", good, "--lr", "nan"], [good, "optimizer.lr", "finite number > 0"]),
            ("--seed 2^63", ["--experiment", good, "--seed", "9223372036854775808"], [good, "seed", "below 2^63"]),
            ("--suite epochs override", ["--epochs", "1000000000"], ["suite default", "training.epochs"]),
            ("merge: not a report", ["merge", good], [good, "not a compare report"]),
            ("merge: nested 100 000 deep", ["merge", try write("deep.json", String(repeating: "[", count: 100_000))],
             ["deep.json", "not a compare report"]),
            ("record: fixtures folder is a file", ["record", "--fixtures", file, "--case", "divergence"], [file, "cannot write"]),
        ]
        // Unreadable: permissions where they apply; root reads everything (the folder case above covers it).
        let unreadable = try write("unreadable.json", CompareCommandTests.smallExperiment)
        chmod(unreadable, 0)
        if !FileManager.default.isReadableFile(atPath: unreadable) {
            cases.append(("unreadable file", ["--experiment", unreadable], [unreadable, "cannot read the file"]))
        }
        for (c, result) in zip(cases, try runConcurrently(cases.map(\.arguments))) {
            assertRefused(result, label: c.label, mustName: c.mustName)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [], "nothing written into the folder")
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "not a folder", "the file given as a folder is untouched")
    }

    // MARK: Values that must not end in a signal

    /// A batch larger than the data set is one batch; a large round count of a tiny experiment runs.
    func testExtremeButValidValuesRunToTheEnd() throws {
        let tiny = try write("tiny.json", """
            {"name": "tiny", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2}]},
             "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 1, "batchSize": 4}}
            """)
        let json = scratch.appendingPathComponent("tiny.json.report").path
        let big = try runProcess(TestPaths.compareExecutable,
                                 ["--experiment", tiny, "--batch-size", "9223372036854775807", "--json", json])
        XCTAssertEqual(big.status, 0, big.stderr)
        let report = try Report.load(contentsOf: URL(fileURLWithPath: json))
        XCTAssertTrue(report.passed)
        XCTAssertEqual(report.experiments.first?.rounds.first?.framework?.epochs.count, 2, "epochs 0 and 1")

        let many = try runProcess(TestPaths.compareExecutable, ["--experiment", tiny, "--rounds", "300"])
        XCTAssertEqual(many.status, 0, many.stderr)
        XCTAssertTrue(many.stdout.contains("Verdict: PASS — parity holds in 300 of 300 rounds"), many.stdout.suffix(300) + "")

        let seed = try runProcess(TestPaths.compareExecutable, ["--experiment", tiny, "--seed", "9223372036854775807", "--rounds", "3"])
        XCTAssertEqual(seed.status, 0, "seeds seed + r wrap instead of trapping: \(seed.stderr)")
    }

    /// lr 10⁶: both engines diverge at the same step of epoch 1, which is parity, reported as such.
    func testBothEnginesDivergingAtTheSameStepIsReportedAndPasses() throws {
        let experiment = try write("diverging.json", """
            {"name": "diverging", "seed": 18, "data": {"disk": {"train": 30, "test": 10}},
             "model": {"layers": [{"type": "linear", "in": 2, "out": 8}, {"type": "tanh"}, {"type": "linear", "in": 8, "out": 2}]},
             "optimizer": {"type": "sgd", "lr": 1e6}, "training": {"epochs": 5, "batchSize": 1, "shuffle": false}}
            """)
        let result = try runProcess(TestPaths.compareExecutable, ["--experiment", experiment, "--rounds", "2"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let pattern = try NSRegularExpression(pattern: #"pass \(diverged: both at epoch 1, batch [0-9]+\)"#)
        let matches = pattern.numberOfMatches(in: result.stdout, range: NSRange(result.stdout.startIndex..., in: result.stdout))
        XCTAssertEqual(matches, 2, "one line per round: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("Verdict: PASS — parity holds in 2 of 2 rounds"), result.stdout)
    }

    // MARK: Helpers

    private typealias Outcome = (status: Int32?, stdout: String, stderr: String)

    /// Runs `compare` once per argument list, as many at a time as there are cores; results in order.
    private func runConcurrently(_ argumentLists: [[String]]) throws -> [Outcome] {
        let lock = NSLock()
        var outcomes = [Result<Outcome, Error>?](repeating: nil, count: argumentLists.count)
        DispatchQueue.concurrentPerform(iterations: argumentLists.count) { index in
            let outcome = Result { try runProcess(TestPaths.compareExecutable, argumentLists[index]) }
            lock.lock()
            outcomes[index] = outcome
            lock.unlock()
        }
        return try outcomes.map { try $0!.get() }
    }

    /// HARDENING_PRINT=1 prints each case's message (to review the wording).
    private let printMessages = ProcessInfo.processInfo.environment["HARDENING_PRINT"] == "1"

    private func assertRefused(_ result: Outcome, label: String,
                               mustName words: [String], file: StaticString = #filePath, line: UInt = #line) {
        if printMessages { print("\(label) → \(result.stderr.replacingOccurrences(of: scratch.path + "/", with: ""))", terminator: "") }
        XCTAssertNotNil(result.status, "\(label): ended by a signal", file: file, line: line)
        XCTAssertEqual(result.status, 2, "\(label): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "\(label): nothing on stdout", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("compare: "), "\(label): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasSuffix("\n") && result.stderr.filter { $0 == "\n" }.count == 1,
                      "\(label): not one line: \(result.stderr)", file: file, line: line)
        for word in words where !result.stderr.contains(word) {
            XCTFail("\(label): stderr lacks \"\(word)\": \(result.stderr)", file: file, line: line)
        }
    }
}
