// The hostile round against the newer commands (check, export, locate, gradcheck, merge; docs/hardening.md):
// sizes that used to trap, files that could take unbounded memory, time or disk, messages that misled, names
// and CSV fields that could forge output, tensors a trace may not hold, and a gradient check at a kink. Each
// test runs the built `compare` as a user would and asserts the exit status (never a signal), the one line on
// stderr and what is (not) written. The engines' processes and folders are in EngineProcessTests.

@testable import CompareCore
import Foundation
import TestSupport
import XCTest

final class HostileInputTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws { scratch = try makeScratchDirectory("hostile-tests") }
    override func tearDownWithError() throws { removeScratchDirectory(scratch) }

    func write(_ name: String, _ text: String) throws -> String { try writeScratchFile(name, text, in: scratch) }
    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// XOR through 2 → 3 → 2 for `epochs` epochs of SGD, with extra top-level members (`"trace": …`).
    func xor(_ name: String, batchSize: String = "4", epochs: Int = 3, optimizer: String = #"{"type": "sgd", "lr": 0.1}"#,
             extra: String = "") throws -> String {
        try write("\(name).json", """
            {"name": "\(name)", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 3}, {"type": "tanh"},
             {"type": "linear", "in": 3, "out": 2}]}, "optimizer": \(optimizer),
             "training": {"epochs": \(epochs), "batchSize": \(batchSize)}\(extra)}
            """)
    }

    /// Exit status 2, nothing on stdout, one line on stderr holding every one of `words`.
    func assertRefused(_ outcome: Hardened.Outcome, _ words: [String], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(outcome.signal, "\(label): ended by signal \(outcome.signal ?? 0)", file: file, line: line)
        XCTAssertEqual(outcome.status, 2, "\(label): \(outcome.stderr)", file: file, line: line)
        XCTAssertEqual(outcome.stdout, "", "\(label): stdout", file: file, line: line)
        XCTAssertEqual(outcome.stderr.filter { $0 == "\n" }.count, 1, "\(label): one line: \(outcome.stderr)", file: file, line: line)
        for word in words { XCTAssertTrue(outcome.stderr.contains(word), "\(label): lacks \"\(word)\": \(outcome.stderr)", file: file, line: line) }
    }

    // MARK: Traps

    /// A batch size of Int.max (ceiling divisions that overflowed: exit 132) and a shard count of Int.max, in
    /// every command that divides by them: each runs to an exit status.
    func testHugeBatchSizesAndShardCountsNeverTrap() throws {
        let huge = "9223372036854775807"
        let plain = try xor("huge", batchSize: huge)
        let traced = try xor("hugetraced", batchSize: huge, extra: #", "trace": {"steps": 1}"#)
        let runs: [(String, [String])] = [
            ("locate --plant-difference", ["locate", "--experiment", plain, "--plant-difference", "1e-6"]),
            ("run --plant-difference", ["run", "--experiment", plain, "--plant-difference", "1e-6"]),
            ("--batch-size Int.max", ["run", "--experiment", try xor("small"), "--batch-size", huge]),
            ("export --trace-out with steps", ["export", "--experiment", traced, "--out", path("exported"), "--trace-out", path("traces")]),
            ("--shard 1/Int.max", ["run", "--experiment", plain, "--shard", "1/\(huge)"]),
        ]
        for (label, arguments) in runs {
            let outcome = try Hardened.compare(arguments)
            XCTAssertNil(outcome.signal, "\(label): ended by signal \(outcome.signal ?? 0): \(outcome.stderr)")
            XCTAssertTrue([0, 1].contains(outcome.status), "\(label): exit \(outcome.status.map(String.init) ?? "—"): \(outcome.stderr)")
        }
        // `check` of a trace with steps, on the exported round (its batch size is Int.max too).
        let check = try Hardened.compare(["check", "--experiment", path("exported/hugetraced.round-0.experiment.json"),
                                          "--trace", "mine=" + path("traces/hugetraced.round-0.framework.trace.json")])
        XCTAssertEqual(check.status, 0, check.stderr)
    }

    // MARK: Unbounded memory, time, disk

    /// The JSON tree is bounded, not only the file: what a document costs is counted while it is read (36 bytes
    /// per value, 64 per array or object), and a document past the bound is refused there, saying so.
    func testAJSONTreeIsBoundedWhileItIsRead() throws {
        let rows = Data(("[" + Array(repeating: "[0.5]", count: 1000).joined(separator: ",") + "]").utf8)
        let cost = 36 + 64 + 1000 * (36 + 64 + 36)  // the outer array, then each row and its number
        XCTAssertNoThrow(try JSONValue.parse(rows, maxTreeBytes: cost), "exactly at the bound")
        XCTAssertThrowsError(try JSONValue.parse(rows, maxTreeBytes: cost - 1)) { error in
            let failure = error as? JSONSyntaxError
            XCTAssertEqual(failure?.tooLarge, true, "\(error)")
            XCTAssertTrue(failure?.message(for: rows).contains("more than \(cost - 1) bytes of memory once read") == true, "\(error)")
        }
        XCTAssertGreaterThanOrEqual(JSONValue.maxTreeBytes, 1_000_000_000 / 2, "a 500 MB trace of wide matrices must stay readable")
    }

    /// gradcheck's work grows as parameters × elements: a network it could not finish within --time-limit
    /// (default 10 minutes) is refused at once with the estimate, not run for hours.
    func testGradcheckRefusesACheckItCouldNotFinish() throws {
        let wide = try write("wide.json", """
            {"name": "wide", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 100000}, {"type": "tanh"},
             {"type": "linear", "in": 100000, "out": 2}]}, "training": {"epochs": 1, "batchSize": 4}}
            """)
        let outcome = try Hardened.compare(["gradcheck", "--experiment", wide], timeout: 60)
        assertRefused(outcome, ["wide.json: refused before checking", "would take about", "h ", "500002 parameters", "--time-limit 600 s"], "2-100000-2")
        XCTAssertLessThan(outcome.seconds, 30)
        let small = try xor("small")
        assertRefused(try Hardened.compare(["gradcheck", "--experiment", small, "--time-limit", "0"]),
                      ["--time-limit must be from 1 to 86400 seconds, got 0"], "--time-limit 0")
        let estimate = NetworkGradientCheck.estimatedSeconds(try Experiment.load(contentsOf: URL(fileURLWithPath: small)), outsideEngines: 0)
        XCTAssertLessThan(estimate, 0.01, "XOR 2-3-2 is instant")
    }

    /// export checks sizes before it writes: a round larger than `compare --experiment` reads is refused (it
    /// used to be written, then refused by the reader), and so are rounds that would not fit the free space.
    func testExportRefusesRoundsTheReaderOrTheDiskCannotTake() throws {
        let big = try write("big.json", """
            {"name": "big", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2500}, {"type": "tanh"},
             {"type": "linear", "in": 2500, "out": 2500}, {"type": "tanh"}, {"type": "linear", "in": 2500, "out": 2}]},
             "training": {"epochs": 1, "batchSize": 4}}
            """)
        assertRefused(try Hardened.compare(["export", "--experiment", big, "--out", path("big")]),
                      ["big.json: refused before writing", "exported round is", "more than the 100000000 that compare --experiment reads"], "a round over the limit")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("big")), "nothing written, not even the folder")

        // 2-2000-2000-2: about 85 MB a round; 10000 rounds are 850 GB.
        let nearly = try write("nearly.json", """
            {"name": "nearly", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2000}, {"type": "tanh"},
             {"type": "linear", "in": 2000, "out": 2000}, {"type": "tanh"}, {"type": "linear", "in": 2000, "out": 2}]},
             "training": {"epochs": 1, "batchSize": 4}}
            """)
        let free = try XCTUnwrap(FileManager.default.attributesOfFileSystem(forPath: scratch.path)[.systemFreeSize] as? NSNumber).doubleValue
        try XCTSkipIf(free > 700e9, "the scratch disk has more than 700 GB free: 10000 rounds of 85 MB would fit")
        assertRefused(try Hardened.compare(["export", "--experiment", nearly, "--rounds", "10000", "--out", path("many")]),
                      ["--out \(path("many")): refused before writing", "10000 rounds of 1 experiment would take about", "free there"], "rounds beyond the disk")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("many")))
    }

    // MARK: Empty paths

    /// An empty path would resolve to the current directory: refused for every output flag.
    func testEmptyOutputPathsAreRefused() throws {
        let small = try xor("small")
        let cases: [(String, [String], String)] = [
            ("export --out \"\"", ["export", "--experiment", small, "--out", ""], "--out: the path is empty"),
            ("export --trace-out \"\"", ["export", "--experiment", small, "--out", path("o"), "--trace-out", ""], "--trace-out: the path is empty"),
            ("record --fixtures \"\"", ["record", "--fixtures", ""], "--fixtures: the path is empty"),
            ("run --csv \"\"", ["run", "--experiment", small, "--csv", ""], "the path is empty"),
        ]
        let before = try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
        for (label, arguments, words) in cases {
            assertRefused(try Hardened.compare(arguments, in: scratch), [words], label)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted(), before, "nothing written into the current folder")
    }

    // MARK: Injection

    /// A name with a line break or an escape sequence is refused before anything is printed: it could forge
    /// a "Verdict: PASS" line or clear the screen (stdout is not escaped line by line, so names never reach it).
    func testNamesThatCouldForgeOutputAreRefused() throws {
        let forged = try write("forged.json", #"""
            {"name": "x\nVerdict: PASS — parity holds in 1 of 1 rounds\u001b[2J", "data": {"xor": {}},
             "model": {"layers": [{"type": "linear", "in": 2, "out": 2}]}}
            """#)
        assertRefused(try Hardened.compare(["run", "--experiment", forged]),
                      ["forged.json: name: must not hold control characters (it holds U+000A)"], "a forged verdict line")
        XCTAssertNotNil(Experiment.nameProblem("a\u{202E}b"), "a bidirectional override")
        XCTAssertNil(Experiment.nameProblem("disk — ReLU/tanh (β 0.9)"), "ordinary Unicode")
    }

    /// CSV text fields that a spreadsheet would evaluate as formulas are led by a quote.
    func testCSVFieldsAreNeverFormulas() throws {
        let formula = try write("formula.json", #"""
            {"name": "=HYPERLINK(\"http://x\",\"y\")", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2}]},
             "training": {"epochs": 1, "batchSize": 4}}
            """#)
        let outcome = try Hardened.compare(["run", "--experiment", formula, "--csv", path("csv")])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let summary = try String(contentsOfFile: path("csv/summary.csv"), encoding: .utf8)
        let rows = summary.split(separator: "\n").dropFirst()
        XCTAssertFalse(rows.isEmpty)
        for row in rows { XCTAssertTrue(row.hasPrefix(#""'=HYPERLINK(""http://x"",""y"")","#), String(row)) }
        for field in ["=1", "+1", "-1", "@A1", "\tx"] { XCTAssertTrue(csvField(field).hasPrefix("'") || csvField(field).hasPrefix("\"'"), field) }
        XCTAssertEqual(csvField("disk"), "disk")
    }

    // MARK: Messages

    /// Each message says what was found: a fraction is not called an integer, a loop is not called missing,
    /// 0 is not "from 0", a negative shard is not a missing value, a reserved name in another case is refused,
    /// --only is not silently ignored, and a trace's claimed seconds cannot widen the report.
    func testMessagesSayWhatWasFound() throws {
        let small = try xor("small", extra: #", "trace": {"steps": 1}"#)
        XCTAssertEqual(try Hardened.compare(["export", "--experiment", small, "--out", path("e"), "--trace-out", path("t")]).status, 0)
        let round = path("e/small.round-0.experiment.json"), trace = path("t/small.round-0.framework.trace.json")
        let text = try String(contentsOfFile: trace, encoding: .utf8)

        let fraction = try write("fraction.json", text.replacingOccurrences(of: #""version": 2"#, with: #""version": 2.0"#))
        XCTAssertNotEqual(text, try String(contentsOfFile: fraction, encoding: .utf8), "the version was replaced")
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", fraction]),
                      ["version: expected the integer 2 or 1", "got 2.0"], "version 2.0")

        try FileManager.default.createSymbolicLink(atPath: path("loop-a"), withDestinationPath: path("loop-b"))
        try FileManager.default.createSymbolicLink(atPath: path("loop-b"), withDestinationPath: path("loop-a"))
        assertRefused(try Hardened.compare(["run", "--experiment", path("loop-a")]), ["loop-a: cannot read the file: its symbolic links form a loop"], "a link loop")

        assertRefused(try Hardened.compare(["run", "--experiment", small, "--engine-timeout", "0"]),
                      ["--engine-timeout must be more than 0 and at most 86400 seconds, got 0 "], "--engine-timeout 0")
        assertRefused(try Hardened.compare(["run", "--experiment", small, "--shard", "-1/2"]), ["--shard must be K/N with 1 ≤ K ≤ N, got -1/2"], "--shard -1/2")
        assertRefused(try Hardened.compare(["run", "--experiment", small, "--only", "x"]),
                      ["--only selects experiments of a suite; with --experiment"], "--only with --experiment")
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", "Framework=" + trace]),
                      ["the name \"Framework\"", "not framework, reference or shadow in any case"], "--trace Framework=")
        assertRefused(try Hardened.compare(["run", "--experiment", small, "--engine", "REFERENCE=true"]),
                      ["\"REFERENCE\" is a built-in engine's name"], "--engine REFERENCE=")

        var json = try JSONValue.parse(Data(text.utf8))
        guard case .object(var members) = json else { return XCTFail("a trace is an object") }
        members.removeAll { $0.0 == "seconds" }
        members.append(("seconds", .number(1e300)))
        json = .object(members)
        let claimed = try write("claimed.json", json.text())
        let outcome = try Hardened.compare(["check", "--experiment", round, "--trace", "mine=" + claimed])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        for line in outcome.stdout.split(separator: "\n") { XCTAssertLessThanOrEqual(line.count, 120, String(line)) }
        XCTAssertTrue(outcome.stdout.contains("1.0e+300"), outcome.stdout)
    }

    // MARK: Tensors that do not apply

    /// A trace may hold only what its experiment makes: no optimizer state the optimizer does not keep, no more
    /// steps than asked for, no finite loss where it says the loss diverged.
    func testTensorsThatDoNotApplyAreRefused() throws {
        let sgd = try xor("sgd", extra: #", "trace": {"steps": 3}"#)
        XCTAssertEqual(try Hardened.compare(["export", "--experiment", sgd, "--out", path("e"), "--trace-out", path("t")]).status, 0)
        let round = path("e/sgd.round-0.experiment.json")
        let trace = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path("t/sgd.round-0.framework.trace.json"))))
        let weight = try XCTUnwrap(trace["steps"].flatMap { if case .array(let s) = $0 { return s.first?["tensors"]?["layers[0].weight"] } else { return nil } })

        func edited(_ name: String, _ change: (inout [(String, JSONValue)]) -> Void) throws -> String {
            guard case .object(var members) = trace else { throw XCTSkip("a trace is an object") }
            change(&members)
            return try write(name, JSONValue.object(members).text())
        }
        func editStep(_ k: Int, _ change: @escaping (inout [(String, JSONValue)]) -> Void) -> (inout [(String, JSONValue)]) -> Void {
            { members in
                guard let s = members.firstIndex(where: { $0.0 == "steps" }), case .array(var steps) = members[s].1,
                      case .object(var step) = steps[k], let t = step.firstIndex(where: { $0.0 == "tensors" }),
                      case .object(var tensors) = step[t].1 else { return }
                change(&tensors)
                step[t].1 = .object(tensors)
                steps[k] = .object(step)
                members[s].1 = .array(steps)
            }
        }
        let adamState = try edited("adam-v.json", editStep(0) { $0.append(("layers[0].weight.v", weight)) })
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", adamState]),
                      [#"steps[0].tensors["layers[0].weight.v"]"#, "the experiment's optimizer keeps no \"v\" state (it keeps none)"], "Adam's v on SGD")
        let momentum = try edited("momentum.json", editStep(1) { $0.append(("layers[0].weight.momentum", weight)) })
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", momentum]),
                      [#"steps[1].tensors["layers[0].weight.momentum"]"#, "keeps no \"momentum\" state"], "momentum without momentum")

        let fourth = try edited("fourth.json") { members in
            guard let s = members.firstIndex(where: { $0.0 == "steps" }), case .array(var steps) = members[s].1,
                  case .object(var step) = steps[2] else { return }
            step.removeAll { $0.0 == "batch" }
            step.append(("batch", .integer(1)))
            step.removeAll { $0.0 == "epoch" }
            step.insert(("epoch", .integer(2)), at: 0)
            steps.append(.object(step))
            members[s].1 = .array(steps)
        }
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", fourth]),
                      ["steps: 4 steps, but the experiment asks for the first 3"], "a 4th step")

        let finite = try edited("finite.json") { members in
            members.removeAll { $0.0 == "divergence" }
            members.append(("divergence", .object([("epoch", .integer(1)), ("batch", .integer(1)), ("loss", .number(0.25))])))
        }
        assertRefused(try Hardened.compare(["check", "--experiment", round, "--trace", finite]),
                      ["divergence.loss: 0.25 is finite, but a divergence is where the loss became NaN or ±∞"], "a finite divergence loss")
    }

    // MARK: gradcheck at a kink

    /// At an exact MAE kink (every prediction equals its target) f has no gradient: the certificate reads order 1
    /// for any gradient, and the symmetric difference (which involves no gradient) reads order 1 too. The
    /// engines are not called wrong, and no order is printed as NaN (a flat tensor's remainders are all 0).
    func testGradcheckAtAnExactKinkDoesNotBlameTheEngines() throws {
        let kink = try write("kink.json", """
            {"name": "kink", "data": {"train": {"inputs": [[0.5, 0.25], [0.1, 0.3]], "targets": [[0, 1], [0, 1]]},
             "test": {"inputs": [[0, 0]], "targets": [[0, 1]]}},
             "model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[0, 0], [0, 0]], "bias": [0, 1]}]},
             "loss": {"type": "mae"}, "training": {"epochs": 1, "batchSize": 2}}
            """)
        let outcome = try Hardened.compare(["gradcheck", "--experiment", kink])
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("on a kink: no gradient here, elements only"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("PASS, every tensor within tolerance; 2 on a kink of f"), outcome.stdout)
        XCTAssertFalse(outcome.stdout.lowercased().contains("nan"), outcome.stdout)
        XCTAssertFalse(outcome.stdout.contains("gradient wrong"), outcome.stdout)
    }
}
