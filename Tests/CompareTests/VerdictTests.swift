// Verdicts that cannot lie (docs/hardening.md, "Verdicts"): a mean over a million equal rows that does not
// depend on summation order, NaN ranked the same in both engines' argmax, tolerance flags limited to ranges
// that cannot switch the check off, a self-check that must plant something, `merge` that accepts one
// complete set of shards only and judges every round again, and a run with zero rounds that is never a pass.
// Every case would fail on the code before these fixes (the cases in the comments say what it did then).

import CompareCore
import Foundation
import Framework
import Reference
import TestSupport
import XCTest

final class VerdictTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("verdict-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try writeScratchFile(name, text, in: scratch)
    }

    // MARK: Summation order

    /// 1 000 000 identical rows [0.5, 0.25] → [1, 0], linear 2 → 2, one full batch of plain SGD: the losses are
    /// means over 10⁶ terms, added in another order by each engine. Compensated sums make them agree (before:
    /// "epoch 0: loss differs (train 0.19378347283034536 vs 0.19378347283329417 …)", 1.5·10⁻¹¹ apart). One
    /// weight moved by 10⁻⁶ still fails at epoch 0.
    func testAMeanOverAMillionEqualRowsDoesNotDependOnSummationOrder() throws {
        let count = 1_000_000
        let row = [0.5, 0.25], target = [1.0, 0.0]
        let train = DataSetSpec(inputs: Array(repeating: row, count: count), targets: Array(repeating: target, count: count))
        let experiment = Experiment(name: "million", seed: 1, data: .explicit(train: train, test: DataSetSpec(inputs: [row], targets: [target])),
                                    model: ModelSpec(layers: [.linear(in: 2, out: 2, initialization: .default)]),
                                    optimizer: .sgd(SGDSpec(lr: 0.1)), training: TrainingSpec(epochs: 1, batchSize: count))
        try experiment.validate(file: "million")

        let start = Date()
        let plain = try CompareCore.run(RunRequest(experiments: [PlannedExperiment(experiment)], rounds: 1)).report
        let parity = try XCTUnwrap(plain.rounds.first?.parity)
        XCTAssertTrue(plain.passed, parity.reason)
        XCTAssertEqual(parity.epochsCompared, 2)
        let round = try XCTUnwrap(plain.rounds.first)
        let framework = try XCTUnwrap(round.framework?.epochs.first), reference = try XCTUnwrap(round.reference?.epochs.first)
        XCTAssertEqual(framework.epoch, 0)
        XCTAssertEqual(framework.trainLoss, reference.trainLoss, accuracy: 4 * reference.trainLoss.ulp,
                       "epoch 0's mean over 10⁶ terms: equal to the last bits, whatever the order")

        let planted = try CompareCore.run(RunRequest(experiments: [PlannedExperiment(experiment)], rounds: 1, plantedDifference: 1e-6)).report
        let failed = try XCTUnwrap(planted.rounds.first?.parity)
        XCTAssertFalse(planted.passed)
        XCTAssertEqual(failed.firstFailingEpoch, 0)
        XCTAssertTrue(failed.reason.hasPrefix("epoch 0: loss differs"), failed.reason)
        // A bound against a pathological slowdown, not a speed measurement: AddressSanitizer (`make sanitize`) runs
        // these 10⁶ rows about 5 times slower, and took 30.2 s on a loaded 2-core machine.
        let bound = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil ? 30.0 : 120.0
        XCTAssertLessThan(Date().timeIntervalSince(start), bound, "both runs in seconds")
    }

    // MARK: NaN in argmax

    /// PyTorch's rule (`torch.argmax`): a NaN is larger than every number, and the first NaN wins. Framework's
    /// `argmax` and `accuracy`, and Reference's accuracy (an epoch-0 evaluation through `ReferenceEngine.train`
    /// of a network of one tanh, which keeps NaN and the order of the numbers), count the same rows.
    func testNaNIsTheLargestInBothEnginesArgmax() throws {
        XCTAssertEqual(Framework.argmax([1, .nan, 3]), 1)
        XCTAssertEqual(Framework.argmax([.nan, 5, .nan]), 0)
        XCTAssertEqual(Framework.argmax([1, 3, .nan, .nan]), 2)
        XCTAssertEqual(Framework.argmax([2, 7, 7]), 1, "first maximum on ties")
        XCTAssertEqual(Framework.argmax([-Double.infinity, -Double.infinity]), 0)

        // Row by row: NaN in the middle (class 1), two NaNs (the first, class 0), no NaN (class 0), a miss.
        let inputs: [[Double]] = [[1, .nan, 3], [.nan, 5, .nan], [2, 1, 0], [0, 4, 1]]
        let targets: [[Double]] = [[0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]]
        let outputs = Matrix(inputs.map { $0.map { Foundation.tanh($0) } })
        let framework = Framework.accuracy(predictions: outputs, targets: Matrix(targets))
        XCTAssertEqual(framework, 0.75, "a NaN ranked below the numbers would give 0.25")

        let data = ReferenceData(inputs: inputs, targets: targets)
        let result = try ReferenceEngine.train(ReferenceRun(
            layers: [.tanh], loss: .mse, optimizer: .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
            train: data, test: data, epochs: 0, batchSize: 4))
        let epoch0 = try XCTUnwrap(result.epochs.first)
        XCTAssertEqual(epoch0.trainAccuracy, framework, "Reference counts the same rows")
        XCTAssertEqual(epoch0.testAccuracy, framework)
    }

    /// xor, linear 2 → 2, SGD lr 10³⁰⁸, weight decay 10³⁰⁸, momentum 0.9999999999999999: epoch 1 ends with NaN
    /// outputs, and both engines diverge at epoch 2, batch 1. Before: "FAIL (diverged: both at epoch 2, batch 1)"
    /// with "epoch 1: accuracy differs (train 0.25 vs 0.5, test 0.25 vs 0.5)"; now the accuracies agree and it
    /// passes.
    func testNaNOutputsGiveTheSameAccuracyInBothEngines() throws {
        let experiment = try write("nan.json", """
            {"name": "nan", "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 2}]},
             "optimizer": {"type": "sgd", "lr": 1e308, "weightDecay": 1e308, "momentum": 0.9999999999999999}}
            """)
        let json = scratch.appendingPathComponent("nan.report.json").path
        let result = try Hardened.compare(["--experiment", experiment, "--json", json])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("pass (diverged: both at epoch 2, batch 1)"), result.stdout)
        XCTAssertFalse(result.stdout.contains("accuracy differs"), result.stdout)
        let round = try XCTUnwrap(try Report.load(contentsOf: URL(fileURLWithPath: json)).rounds.first)
        let framework = try XCTUnwrap(round.framework?.epochs.last), reference = try XCTUnwrap(round.reference?.epochs.last)
        XCTAssertEqual(framework.epoch, 1)
        XCTAssertTrue(framework.trainLoss.isNaN && reference.trainLoss.isNaN, "epoch 1's outputs are NaN")
        XCTAssertEqual(framework.trainAccuracy, reference.trainAccuracy)
        XCTAssertEqual(framework.testAccuracy, reference.testAccuracy)
    }

    // MARK: Tolerances that would switch the check off

    /// Each tolerance outside its range is refused (exit 2, one line stating the range), so that no flag can
    /// pass a real difference: before, `--atol 1e300`, `--accuracy-tolerance 1` and `--rtol 3` ran and passed
    /// (exit 0). `--amplification` (an allowance that grew with chaos) no longer exists.
    func testToleranceFlagsOutsideTheirRangesAreRefused() throws {
        let experiment = try write("small.json", CompareCommandTests.smallExperiment)
        let gone = try Hardened.compare(["--experiment", experiment, "--amplification", "1e6"])
        XCTAssertEqual(gone.status, 2, gone.stderr)
        XCTAssertTrue(gone.stderr.contains("--amplification"), gone.stderr)
        let cases: [(arguments: [String], mustName: [String])] = [
            (["--atol", "1e300"], ["--atol must be from 0 to 1e-06", "got 1e+300"]),
            (["--accuracy-tolerance", "1"], ["--accuracy-tolerance must be from 0 to 0.01", "got 1"]),
            (["--rtol", "3"], ["--rtol must be from 0 to 1e-06", "got 3"]),
            (["--rtol", "nan"], ["--rtol must be from 0 to 1e-06", "got nan"]),
            (["check", "--experiment", experiment, "--trace", experiment, "--rtol", "3"], ["--rtol must be from 0 to 1e-06"]),
        ]
        for c in cases {
            let arguments = c.arguments.first == "check" ? c.arguments : ["--experiment", experiment] + c.arguments
            let result = try Hardened.compare(arguments)
            assertRefused(result, label: c.arguments.joined(separator: " "), mustName: c.mustName + ["wider values could pass real differences"])
        }

        // A report whose tolerances were widened by hand is refused by merge.
        let json = scratch.appendingPathComponent("whole.json").path
        XCTAssertEqual(try Hardened.compare(["--experiment", experiment, "--json", json]).status, 0)
        let widened = try editReport(json, to: "widened.json") { report in
            var tolerances = try XCTUnwrap(report["tolerances"] as? [String: Any])
            tolerances["rtol"] = 3
            report["tolerances"] = tolerances
        }
        assertRefused(try Hardened.compare(["merge", widened]), label: "merge of widened tolerances",
                      mustName: ["widened.json", "tolerances out of range", "--rtol must be from 0 to 1e-06"])
    }

    /// A planted 0.1 fails at epoch 0, and the replay locates it in the initial parameters; merge re-judges it
    /// from the report alike.
    func testAPlantedDifferenceFailsAtEpochZero() throws {
        let experiment = try write("small.json", CompareCommandTests.smallExperiment)
        let json = scratch.appendingPathComponent("r.json").path
        let result = try Hardened.compare(["--experiment", experiment, "--plant-difference", "0.1", "--json", json])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("framework against reference: epoch 0: loss differs"), result.stdout)
        XCTAssertTrue(result.stdout.contains("initial parameter layers[0].weight differs"), result.stdout)
        let parity = try XCTUnwrap(try Report.load(contentsOf: URL(fileURLWithPath: json)).rounds.first?.parity)
        XCTAssertEqual(parity.firstFailingEpoch, 0)
        XCTAssertEqual(parity.status, .fail)
    }

    /// `compare --help` (the root's help and the run options) states each range.
    func testHelpListsTheRanges() throws {
        let result = try Hardened.compare(["--help"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let text = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for range in ["--rtol <rtol> Relative tolerance on losses, 0 to 1e-6.", "--atol <atol> Absolute tolerance on losses, 0 to 1e-6.",
                      "Largest accepted difference of accuracies (fractions), 0 to 0.01.",
                      "(default: 10 for a suite, 1 for files; 1 to 10000)"] {
            XCTAssertTrue(text.contains(range), "the help lacks \"\(range)\"")
        }
    }

    // MARK: A self-check that plants nothing

    /// `--plant-difference 1e-17` (or 1e-300) added to a weight of 0.3 leaves it 0.3: refused (exit 2) with the
    /// smallest delta that changes it (before: accepted, nothing planted, exit 0: "PASS"). That delta, given
    /// back, is accepted and changes the weight: with zero tolerances the run that passes bit for bit without
    /// it fails with it, at epoch 0.
    func testAPlantedDifferenceThatChangesNothingIsRefused() throws {
        // Inputs of 10⁶ in column 0 make one ulp of the weight visible in the losses.
        let experiment = try write("ulp.json", """
            {"name": "ulp", "data": {"train": {"inputs": [[1000000, 0], [0, 1]], "targets": [[1, 0], [0, 1]]},
                                     "test": {"inputs": [[1000000, 0]], "targets": [[1, 0]]}},
             "model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[0.3, 0.1], [0.2, 0.4]], "bias": [0, 0]}]},
             "optimizer": {"type": "sgd", "lr": 1e-15}, "training": {"epochs": 1, "batchSize": 2}}
            """)
        let smallest = smallestChange(of: 0.3, positive: true)
        XCTAssertNotEqual(0.3 + smallest, 0.3)
        XCTAssertEqual(0.3 + smallest.nextDown, 0.3, "the smallest that changes it")
        var given: Double?
        for (delta, expected) in [("1e-17", smallest), ("1e-300", smallest), ("-1e-17", smallestChange(of: 0.3, positive: false))] {
            let result = try Hardened.compare(["--experiment", experiment, "--plant-difference", delta])
            assertRefused(result, label: "--plant-difference \(delta)",
                          mustName: ["--plant-difference \(delta) does not change the weight it plants into (0.3, ulp round 0)",
                                     "the smallest that does is \(expected)", "a self-check needs one well above the tolerances"])
            let named = result.stderr.components(separatedBy: "the smallest that does is ").last?
                .components(separatedBy: ",").first?.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(named.flatMap(Double.init), expected, "the message gives the delta exactly")
            if delta == "1e-17" { given = named.flatMap(Double.init) }
        }
        let delta = try XCTUnwrap(given)
        let exact = ["--rtol", "0", "--atol", "0"]
        let unplanted = try Hardened.compare(["--experiment", experiment] + exact)
        XCTAssertEqual(unplanted.status, 0, "bit for bit without a plant: \(unplanted.stdout)")
        let planted = try Hardened.compare(["--experiment", experiment, "--plant-difference", "\(delta)"] + exact)
        XCTAssertEqual(planted.status, 1, planted.stdout + planted.stderr)
        XCTAssertTrue(planted.stdout.contains("framework against reference: epoch 0: loss differs"), planted.stdout)
    }

    // MARK: merge

    /// Only one complete set of shards of one run is merged: a missing shard, shards of different N, shards of
    /// runs with different seeds and a shard given twice are refused (exit 2, one line, nothing written);
    /// before, shard 1/2 alone merged into "PASS". The complete set merges.
    func testMergeAcceptsOnlyOneCompleteSetOfOneRun() throws {
        let experiment = try write("small.json", CompareCommandTests.smallExperiment)
        func shard(_ spec: String, _ extra: [String] = []) throws -> String {
            let path = scratch.appendingPathComponent("shard-\(spec.replacingOccurrences(of: "/", with: "of"))\(extra.joined()).json").path
            let result = try Hardened.compare(["--experiment", experiment, "--rounds", "3", "--shard", spec, "--json", path] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            return path
        }
        let oneOfTwo = try shard("1/2"), twoOfTwo = try shard("2/2"), twoOfThree = try shard("2/3"), otherSeed = try shard("2/2", ["--seed", "9"])
        let merged = scratch.appendingPathComponent("merged.json").path
        let cases: [(label: String, reports: [String], mustName: [String])] = [
            ("shard 1/2 alone", [oneOfTwo], ["incomplete set: shard 2/2 of 2 missing"]),
            ("shards 1/2 and 2/3", [oneOfTwo, twoOfThree], [twoOfThree, "is shard 2/3", "of 2 shards: not one set"]),
            ("shards of different seeds", [oneOfTwo, otherSeed], [otherSeed, "experiment small differs from the one in another shard"]),
            ("a shard twice", [oneOfTwo, oneOfTwo], ["shard 1/2 is given twice"]),
        ]
        for c in cases {
            assertRefused(try Hardened.compare(["merge"] + c.reports + ["--json", merged]), label: c.label, mustName: c.mustName)
            XCTAssertFalse(FileManager.default.fileExists(atPath: merged), "\(c.label): nothing written")
        }
        let complete = try Hardened.compare(["merge", twoOfTwo, oneOfTwo, "--json", merged])
        XCTAssertEqual(complete.status, 0, complete.stderr)
        XCTAssertTrue(complete.stdout.hasPrefix("Verdict: PASS — parity holds in 3 of 3 rounds"), complete.stdout)
    }

    /// A report of a failing run (a planted 10⁻⁶) whose verdicts were edited to pass: merge judges every round
    /// again from its traces and fails (exit 1).
    func testMergeJudgesAForgedVerdictAgain() throws {
        let experiment = try write("small.json", CompareCommandTests.smallExperiment)
        let json = scratch.appendingPathComponent("planted.json").path
        let run = try Hardened.compare(["--experiment", experiment, "--rounds", "2", "--plant-difference", "1e-6", "--json", json])
        XCTAssertEqual(run.status, 1, run.stderr)
        let forged = try editReport(json, to: "forged.json") { report in
            report["verdict"] = "pass"
            var experiments = try XCTUnwrap(report["experiments"] as? [[String: Any]])
            for e in experiments.indices {
                var rounds = try XCTUnwrap(experiments[e]["rounds"] as? [[String: Any]])
                for r in rounds.indices {
                    rounds[r]["passed"] = true
                    rounds[r]["parity"] = try XCTUnwrap(rounds[r]["parity"] as? [[String: Any]]).map { parity -> [String: Any] in
                        var parity = parity
                        parity["passed"] = true
                        parity["reason"] = ""
                        parity["firstFailingEpoch"] = NSNull()
                        return parity
                    }
                }
                experiments[e]["rounds"] = rounds
            }
            report["experiments"] = experiments
        }
        XCTAssertTrue(try String(contentsOfFile: forged, encoding: .utf8).contains("\"passed\":true"))
        XCTAssertFalse(try Report.load(contentsOf: URL(fileURLWithPath: forged)).passed, "the reader judges again")
        let result = try Hardened.compare(["merge", forged])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("Verdict: FAIL — parity holds in 0 of 2 rounds"), result.stdout)
        XCTAssertTrue(result.stdout.contains("framework against reference: epoch 0: loss differs"), result.stdout)
    }

    /// `--shard 5/10` (or 2/2) of a one-job run would be empty: refused before running (the experiment would
    /// train for minutes); before, it ran nothing and said "PASS — parity holds in 0 of 0 rounds".
    func testAnEmptyShardIsRefusedBeforeRunning() throws {
        let experiment = try write("long.json", HardeningTests.longExperiment(name: "long"))
        for spec in ["5/10", "2/2"] {
            let result = try Hardened.compare(["--experiment", experiment, "--shard", spec], timeout: 60)
            assertRefused(result, label: "--shard \(spec)",
                          mustName: ["--shard \(spec): this run has only 1 (experiment, round) job, so shard \(spec.prefix(1)) would be empty"])
            XCTAssertLessThan(result.seconds, 10, "refused before training")
        }
    }

    /// A run with no rounds is never a pass: a shard that holds no job through the API, and a report with zero
    /// rounds through merge (exit 1).
    func testARunWithZeroRoundsIsNeverAPass() throws {
        let tiny = try Experiment.decode(Data(HardeningTests.tinyExperiment(name: "tiny").utf8), file: "tiny.json")
        let empty = try CompareCore.run(RunRequest(experiments: [PlannedExperiment(tiny)], rounds: 1, shard: Shard(index: 2, count: 2))).report
        XCTAssertTrue(empty.rounds.isEmpty)
        XCTAssertFalse(empty.passed)
        XCTAssertEqual(empty.verdict, "fail")
        XCTAssertTrue(textReport(empty).hasPrefix("Verdict: FAIL — parity holds in 0 of 0 rounds"), textReport(empty))
        XCTAssertTrue(textReport(empty).contains("a run with no rounds is not a pass"))

        let experiment = try write("tiny.json", HardeningTests.tinyExperiment(name: "tiny"))
        let json = scratch.appendingPathComponent("whole.json").path
        XCTAssertEqual(try Hardened.compare(["--experiment", experiment, "--json", json]).status, 0)
        let zero = try editReport(json, to: "zero.json") { report in
            var plan = try XCTUnwrap(report["plan"] as? [String: Any])
            plan["rounds"] = 0
            plan["jobs"] = 0
            report["plan"] = plan
            report["experiments"] = try XCTUnwrap(report["experiments"] as? [[String: Any]]).map { e -> [String: Any] in
                var e = e
                e["rounds"] = [Any]()
                return e
            }
        }
        let result = try Hardened.compare(["merge", zero])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("Verdict: FAIL — parity holds in 0 of 0 rounds"), result.stdout)
    }

    // MARK: Helpers

    /// Reads the JSON report at `path`, lets `edit` change it, and writes it to `name` in the scratch folder.
    private func editReport(_ path: String, to name: String, _ edit: (inout [String: Any]) throws -> Void) throws -> String {
        var report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        try edit(&report)
        let url = scratch.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: report).write(to: url)
        return url.path
    }

    /// Exit 2 (never a signal, not after a timeout), nothing on stdout, one stderr line `compare: …` with `words`.
    private func assertRefused(_ result: Hardened.Outcome, label: String, mustName words: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(result.signal, "\(label): ended by signal \(result.signal ?? 0)", file: file, line: line)
        XCTAssertFalse(result.timedOut, "\(label): still running after the timeout", file: file, line: line)
        XCTAssertEqual(result.status, 2, "\(label): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "\(label): nothing on stdout", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("compare: ") && result.stderr.hasSuffix("\n") && result.stderr.filter { $0 == "\n" }.count == 1,
                      "\(label): not one line `compare: …`: \(result.stderr)", file: file, line: line)
        for word in words where !result.stderr.contains(word) {
            XCTFail("\(label): stderr lacks \"\(word)\": \(result.stderr)", file: file, line: line)
        }
    }
}
