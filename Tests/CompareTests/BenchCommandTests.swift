import Foundation
import TestSupport
import XCTest

/// `bench`'s exit statuses, as a user meets them: a bad flag stops it before anything runs (exit 2, the flag
/// named, nothing on stdout), and an end-to-end engine that fails leaves its row out, is named under the
/// tables and in the JSON, and makes `bench` exit 2 after printing the rest. PyTorch is not needed: a stand-in
/// server (a shell script speaking scripts/bench_torch.py's `--serve` protocol with made-up timings) takes its
/// place, so the end-to-end rows run, against an engine command that exits 3.
final class BenchCommandTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        // bench defines malloc and its kin itself (Sources/CAllocationCounter, to count allocations per step),
        // in place of the ones AddressSanitizer's runtime must provide, so an ASan build of it stops at start-up
        // ("CHECK failed: asan_posix.cpp"). `make sanitize` sets ASAN_OPTIONS; `make test` runs these.
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] != nil {
            throw XCTSkip("bench replaces malloc, which an AddressSanitizer build cannot run; make test runs this")
        }
        scratch = try makeScratchDirectory("bench-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    /// Answers bench_torch.py's protocol: the ready line, then one line per request (the data set, or one
    /// repetition of the workload asked for, with made-up figures).
    static let standInServer = #"""
    echo '{"ready": true, "torch": "stand-in", "threads": 1}'
    while IFS= read -r line; do
      case "$line" in
        *'"data"'*) echo '{"ok": true, "count": 1000}' ;;
        *) key=$(printf '%s' "$line" | sed 's/.*"workload" *: *"\([^"]*\)".*/\1/')
           echo "{\"workload\": \"$key\", \"steps\": 1, \"samples\": 5, \"wall\": 0.5, \"cpu\": 0.5, \"threadCPU\": 0.5, \"loss\": 0.25, \"maxRSSKiB\": 1}" ;;
      esac
    done
    """#

    func testABadFlagExitsTwoBeforeAnythingRuns() throws {
        let cases: [(arguments: [String], named: String)] = [
            (["--repetitions", "0"], "--repetitions 0"),
            (["--scale", "0"], "--scale 0"),
            (["--scale", "nan"], "--scale nan"),
            (["--only", "seeds-b7"], "seeds-b7"),
            (["--torch-engine", "'unbalanced"], "--torch-engine \"'unbalanced\": a ' quote is not closed"),
            (["--torch-engine", ""], "--torch-engine \"\": the command is empty"),
            (["--no-such-flag"], "--no-such-flag"),
        ]
        for c in cases {
            // With flags that make a run short, should the bad one be let through.
            let quick = (c.arguments.first == "--only" ? [] : ["--only", "none"]) + ["--no-gemm", "--no-pytorch"]
            let result = try runProcess(TestPaths.benchExecutable, c.arguments + quick, in: scratch)
            XCTAssertEqual(result.status, 2, "bench \(c.arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.named), "bench \(c.arguments) names \(c.named): \(result.stderr)")
            XCTAssertEqual(result.stdout, "", "bench \(c.arguments) ran nothing")
            XCTAssertFalse(result.stderr.contains("--engine"), "bench \(c.arguments) speaks of its own flag: \(result.stderr)")
        }
    }

    func testAFailingEndToEndEngineIsNamedAndExitsTwoAfterTheOtherFigures() throws {
        let server = try writeScratchFile("server.sh", Self.standInServer, in: scratch)
        let json = scratch.appendingPathComponent("bench.json")
        let result = try runProcess(TestPaths.benchExecutable,
                                    ["--only", "seeds-b5", "--scale", "0.001", "--repetitions", "1", "--no-reference", "--no-gemm",
                                     "--python", "/bin/sh", "--torch-script", server, "--torch-engine", "sh -c 'exit 3'",
                                     "--json", json.path], in: scratch)
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stdout.contains("PyTorch: PyTorch stand-in"), "the stand-in served the training steps: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("| 2-25-25-25-2 batch 5 |"), "the training-step row is printed: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("end to end seeds-b5: ") && result.stdout.contains("failed, no row"),
                      "the failure is named under the tables: \(result.stdout)")
        XCTAssertTrue(result.stderr.contains("1 end-to-end case(s) failed"), result.stderr)

        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let failures = try XCTUnwrap(root["endToEndFailures"] as? [String], "endToEndFailures in \(root.keys.sorted())")
        XCTAssertEqual(failures.count, 1)
        XCTAssertTrue(failures.first?.hasPrefix("seeds-b5: ") ?? false, "\(failures)")
    }
}
