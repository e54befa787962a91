import CompareCore
import Framework
import Foundation
import TestSupport
import XCTest

/// `compare` end to end, as a user runs it: exit statuses, the JSON report, CSV and plots.
final class CompareCommandTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("compare-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try writeScratchFile(name, text, in: scratch)
    }

    static let smallExperiment = """
    { "name": "small", "seed": 5, "data": { "disk": { "train": 50, "test": 30 } },
      "model": { "layers": [ { "type": "linear", "in": 2, "out": 6 }, { "type": "tanh" },
                             { "type": "linear", "in": 6, "out": 2 } ] },
      "optimizer": { "type": "sgd", "lr": 0.1, "momentum": 0.5 },
      "training": { "epochs": 4, "batchSize": 7 } }
    """

    func testEndToEndWritesTheJSONReport() throws {
        let experiment = try write("small.json", Self.smallExperiment)
        let json = scratch.appendingPathComponent("r.json").path
        let result = try runProcess(TestPaths.compareExecutable,
                                    ["--experiment", experiment, "--rounds", "2", "--json", json,
                                     "--csv", scratch.appendingPathComponent("csv").path,
                                     "--plots", scratch.appendingPathComponent("plots").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("Verdict: PASS — parity holds in 2 of 2 rounds"), result.stdout)

        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "minidl-report")
        XCTAssertEqual(object["verdict"] as? String, "pass")
        let provenance = try XCTUnwrap(object["provenance"] as? [String: Any])
        XCTAssertTrue((provenance["blas"] as? String)?.isEmpty == false)
        XCTAssertEqual((provenance["command"] as? [String])?.contains("--rounds"), true, "the command line is recorded")
        let experiments = try XCTUnwrap(object["experiments"] as? [[String: Any]])
        XCTAssertEqual(experiments.count, 1)
        XCTAssertEqual(experiments[0]["name"] as? String, "small")
        XCTAssertNotNil(experiments[0]["experiment"] as? [String: Any], "the experiment is embedded")
        let rounds = try XCTUnwrap(experiments[0]["rounds"] as? [[String: Any]])
        XCTAssertEqual(rounds.map { $0["seed"] as? Int }, [5, 6], "seeds seed + r")
        for round in rounds {
            let engines = try XCTUnwrap(round["engines"] as? [String: [String: Any]])
            XCTAssertEqual(Set(engines.keys), ["framework", "reference", "shadow"])
            for (_, engine) in engines {
                XCTAssertGreaterThan(engine["seconds"] as? Double ?? 0, 0)
                let epochs = try XCTUnwrap(engine["epochs"] as? [[String: Any]])
                XCTAssertEqual(epochs.map { $0["epoch"] as? Int }, [0, 1, 2, 3, 4], "epoch 0 is before any update")
                for epoch in epochs {
                    for key in ["trainLoss", "testLoss", "trainAccuracy", "testAccuracy"] {
                        XCTAssertNotNil(epoch[key] as? Double, key)
                    }
                    let accuracy = epoch["testAccuracy"] as! Double
                    XCTAssertTrue(accuracy >= 0 && accuracy <= 1)
                    XCTAssertEqual(accuracy * 30, (accuracy * 30).rounded(), accuracy: 1e-9, "a count of 30 test points")
                }
            }
            let parity = try XCTUnwrap((round["parity"] as? [[String: Any]])?.first)
            XCTAssertEqual(parity["engine"] as? String, "framework")
            XCTAssertEqual(parity["referee"] as? String, "reference")
            XCTAssertEqual(parity["passed"] as? Bool, true)
            XCTAssertLessThan(parity["maxTestLossDifference"] as? Double ?? 1, 1e-12)
        }
        let csv = try String(contentsOfFile: scratch.appendingPathComponent("csv/small.csv").path, encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 2 * 3 * 5, "header + rounds × engines × epochs")
        for plot in ["small-curves.svg", "small-differences.svg", "small-predictions.svg", "small-decision-difference.svg"] {
            let svg = try String(contentsOfFile: scratch.appendingPathComponent("plots/\(plot)").path, encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"), plot)
        }
    }

    func testExitStatusesForBadUsageAndInput() throws {
        let good = try write("good.json", Self.smallExperiment)
        let bad = try write("bad.json", #"{ "model": { "layers": [ { "type": "linear", "in": 2, "out": 25 }, { "type": "linear", "in": 30, "out": 2 } ] } }"#)
        let cases: [(arguments: [String], status: Int32, message: String)] = [
            (["--no-such-flag"], 2, "no-such-flag"),
            (["--experiment", scratch.appendingPathComponent("missing.json").path], 2, "missing.json"),
            (["--experiment", bad], 2, "model.layers[1].in: 30, but the previous layer gives 25"),
            (["--experiment", good, "--json", good + "/r.json"], 2, "is a file, not a folder"),
            (["--experiment", good, "--rounds", "0"], 2, "--rounds"),
            (["--experiment", good, "--epochs", "0"], 2, "training.epochs"),
            (["--experiment", good, "--lr=-1"], 2, "optimizer.lr"),
            (["--experiment", good, "--plant-difference", "0"], 2, "--plant-difference"),
            (["--suite", "nope"], 2, "--suite"),
            (["--experiment", good, "--shard", "3/2"], 2, "--shard"),
            (["merge", bad], 2, "not a compare report"),
        ]
        for c in cases {
            let result = try runProcess(TestPaths.compareExecutable, c.arguments)
            XCTAssertEqual(result.status, c.status, "\(c.arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.message), "\(c.arguments): stderr should name \(c.message): \(result.stderr)")
            XCTAssertTrue(result.stdout.isEmpty, "\(c.arguments): nothing on stdout for a usage error")
        }
    }

    /// A planted disagreement (Reference's first weight moved by 10⁻⁶) fails parity: exit 1, reported.
    func testPlantedDifferenceFailsParityWithExitOne() throws {
        let experiment = try write("small.json", Self.smallExperiment)
        let result = try runProcess(TestPaths.compareExecutable, ["--experiment", experiment, "--plant-difference", "1e-6"])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("Verdict: FAIL — parity holds in 0 of 1 rounds"), result.stdout)
        XCTAssertTrue(result.stdout.contains("small round 0 (seed 5), framework against reference: epoch 0: loss differs"), result.stdout)
    }

    func testShardsMergeIntoTheSameReport() throws {
        let experiment = try write("small.json", Self.smallExperiment)
        var paths: [String] = []
        for shard in ["1/2", "2/2", "whole"] {
            let path = scratch.appendingPathComponent("\(shard.replacingOccurrences(of: "/", with: "of")).json").path
            let extra = shard == "whole" ? [] : ["--shard", shard]
            let result = try runProcess(TestPaths.compareExecutable, ["--experiment", experiment, "--rounds", "3", "--json", path] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            paths.append(path)
        }
        let merged = scratch.appendingPathComponent("merged.json").path
        let result = try runProcess(TestPaths.compareExecutable, ["merge", paths[0], paths[1], "--json", merged])
        XCTAssertEqual(result.status, 0, result.stderr)
        func load(_ path: String) throws -> Report {
            try Report.load(contentsOf: URL(fileURLWithPath: path))
        }
        let whole = try load(paths[2]), joined = try load(merged)
        XCTAssertEqual(joined.experiments.map { $0.rounds.map(\.round) }, [[0, 1, 2]])
        func traces(_ r: Report) -> [[EpochMetrics]] { r.experiments[0].rounds.flatMap { $0.engines.sorted { $0.name < $1.name }.map(\.epochs) } }
        XCTAssertEqual(traces(joined), traces(whole), "sharded and merged equals one whole run")
    }
}
