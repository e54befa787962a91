// An outside engine's process, when the engine is hostile or careless (issue 29): a trace that is a FIFO, a link
// or a folder; an engine that closes its output and runs on; background children that outlive the engine, in
// its process group or in a session of their own; a child that holds the engine's pipes open after it exits;
// and an interrupt while the engine has filled its temporary folder. Each test's comment says what the code
// before the fix did. Every engine is a shell script run as `/bin/sh SCRIPT <experiment.json> <trace.json>`.

import CompareCore
import Foundation
import Framework
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import XCTest

final class EngineProcessTests: XCTestCase {
    var scratch: URL!
    /// The processes a test's engines started in the background, killed in `tearDown` should a test fail
    /// (so that a failure does not leave `sleep 300` behind).
    var startedInBackground: [pid_t] = []

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("engine-process-tests")
    }

    override func tearDownWithError() throws {
        for pid in startedInBackground where Self.isRunning(pid) { kill(pid, SIGKILL) }
        removeScratchDirectory(scratch)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try writeScratchFile(name, text, in: scratch)
    }

    /// The small experiment of OutsideEngineTests (4 epochs, 50 train rows), round 0.
    func smallRound() throws -> MaterializedRound {
        MaterializedRound(try Experiment.decode(Data(OutsideEngineTests.small.utf8), file: "small.json"), round: 0)
    }

    /// A valid trace of `smallRound()` (Framework's own), for a script to copy to "$2".
    func validTrace() throws -> String {
        try write("valid.trace.json", try FrameworkEngine().train(try smallRound()).jsonValue.text())
    }

    /// A script engine for `CommandEngine.train`: `/bin/sh SCRIPT`.
    func engine(_ name: String, _ script: String, timeout: Double) throws -> CommandEngine {
        try CommandEngine(specification: "\(name)=/bin/sh \(try write("\(name).sh", script))", timeout: timeout)
    }

    /// The message of the `EngineError` that training `engine` on the small round throws.
    func engineError(_ engine: CommandEngine, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        do {
            _ = try engine.train(try smallRound())
            XCTFail("\(engine.name): accepted", file: file, line: line)
            return ""
        } catch let error as EngineError {
            return "\(error)"
        }
    }

    /// Whether `pid` is a live process (a zombie, dead but not yet reaped, is not).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// The pid a script wrote to `name` in the scratch folder; kept for `tearDown`.
    func backgroundPid(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> pid_t {
        let text = try String(contentsOf: scratch.appendingPathComponent(name), encoding: .utf8)
        let pid = try XCTUnwrap(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), "\(name): \(text)", file: file, line: line)
        startedInBackground.append(pid)
        return pid
    }

    /// Asserts that `pid` is gone within 2 s (time for init to reap it).
    func assertEnded(_ pid: pid_t, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        while Self.isRunning(pid) && Date().timeIntervalSince(start) < 2 { usleep(10_000) }
        XCTAssertFalse(Self.isRunning(pid), "\(what) (pid \(pid)) still runs after the engine was done", file: file, line: line)
    }

    /// Runs the built `compare` with TMPDIR set to `temporary` (so that the engine's folder is made there, where
    /// the test can see it), killed after `timeout` seconds.
    func compare(_ arguments: [String], temporary: URL, timeout: Double,
                 whileRunning: ((Process) -> Void)? = nil) throws -> Hardened.Outcome {
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        return try Hardened.run("/usr/bin/env", ["TMPDIR=\(temporary.path)", Hardened.compareExecutable] + arguments,
                                timeout: timeout, whileRunning: whileRunning)
    }

    /// The engines' temporary folders (`minidl-engine.XXXXXX`) in `temporary`.
    func engineFolders(in temporary: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []).filter { $0.hasPrefix("minidl-engine.") }
    }

    // MARK: The trace must be a regular file

    /// `mkfifo "$2"; exit 0`: reading the trace opened the FIFO, which blocks until a writer comes, and none
    /// ever does: `compare` hung for good, past --engine-timeout (the harness killed it at 20 s).
    func testATraceThatIsAFIFOIsRefusedAtOnce() throws {
        let experiment = try write("small.json", OutsideEngineTests.small)
        let script = try write("fifo.sh", "mkfifo \"$2\"\nexit 0\n")
        let result = try compare(["--experiment", experiment, "--engine", "fifo=/bin/sh \(script)", "--engine-timeout", "5"],
                                 temporary: scratch.appendingPathComponent("tmp"), timeout: 20)
        XCTAssertFalse(result.timedOut, "compare hung on the FIFO")
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, "one line: \(result.stderr)")
        for words in ["engine fifo", "small round 0", "wrote its trace as a FIFO, not a regular file"] {
            XCTAssertTrue(result.stderr.contains(words), "stderr lacks \"\(words)\": \(result.stderr)")
        }
        XCTAssertLessThan(result.seconds, 10)
    }

    /// A symbolic link to a valid trace was followed and accepted (so an engine could have `compare` read any
    /// file); a folder was refused as "not valid: cannot read the file: it is a directory".
    func testATraceThatIsALinkOrAFolderIsRefused() throws {
        let valid = try validTrace()
        let link = try engineError(try engine("link", "ln -s '\(valid)' \"$2\"\nexit 0\n", timeout: 20))
        XCTAssertTrue(link.contains("engine link, small round 0: wrote its trace as a symbolic link (to \(valid)), not a regular file"), link)
        let folder = try engineError(try engine("folder", "mkdir \"$2\"\nexit 0\n", timeout: 20))
        XCTAssertTrue(folder.contains("engine folder, small round 0: wrote its trace as a directory, not a regular file"), folder)
    }

    /// `exec >/dev/null 2>&1; sleep 12`: once both pipes were closed the engine was waited for without a limit
    /// (waitpid), so a 1 s --engine-timeout became 12 s and the engine was then blamed for writing no trace.
    func testAnEngineThatClosesItsOutputIsStillTimedOut() throws {
        let start = Date()
        let message = try engineError(try engine("quiet", "exec >/dev/null 2>&1\nexec sleep 12\n", timeout: 1))
        XCTAssertTrue(message.contains("engine quiet, small round 0: ran longer than the time limit of 1 s"), message)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "killed at the limit")
    }

    // MARK: Nothing the engine started outlives it

    /// `sleep 300 &` (output to /dev/null, so that the pipes close) then a valid trace and `exit 0`: the trace
    /// was accepted and the `sleep` ran on after `compare` was done with the engine.
    func testABackgroundChildInTheEnginesGroupIsKilledWhenTheEngineExits() throws {
        let valid = try validTrace()
        let pidFile = scratch.appendingPathComponent("child.pid").path
        _ = try engine("background", "sleep 300 >/dev/null 2>&1 &\necho $! > '\(pidFile)'\ncp '\(valid)' \"$2\"\nexit 0\n", timeout: 20)
            .train(try smallRound())
        assertEnded(try backgroundPid("child.pid"), "the engine's background child")
    }

    /// A child that calls setsid(2) leaves the engine's process group and session, so killing the group missed
    /// it: it ran on after the engine was done (it is found by the variable it inherited, see ChildProcesses).
    func testAChildInASessionOfItsOwnIsKilledWhenTheEngineExits() throws {
        let valid = try validTrace()
        let pidFile = scratch.appendingPathComponent("escaped.pid").path
        let script = """
            setsid /bin/sh -c 'echo $$ > "$0"; exec sleep 300' '\(pidFile)' >/dev/null 2>&1 &
            while [ ! -s '\(pidFile)' ]; do sleep 0.05; done
            cp '\(valid)' "$2"
            exit 0

            """
        _ = try engine("escaping", script, timeout: 20).train(try smallRound())
        let pid = try backgroundPid("escaped.pid")
        XCTAssertNotEqual(getpgid(pid), getpgid(0), "the child left the engine's group")
        assertEnded(pid, "the child in a session of its own")
    }

    /// `(sleep 30) &` keeps the engine's stdout and stderr open: the engine that exited at once with a valid
    /// trace was read until the time limit (8 s here) and reported as "ran longer than the time limit … and was
    /// killed"; one that exited 3 was reported the same way, not by its status.
    func testABackgroundChildHoldingThePipesDoesNotHoldTheEngine() throws {
        let valid = try validTrace()
        var start = Date()
        let trace = try engine("holding", "(sleep 30) &\ncp '\(valid)' \"$2\"\nexit 0\n", timeout: 8).train(try smallRound())
        XCTAssertEqual(trace.epochs.count, 5)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "read until its exit and a short grace, not until the limit")

        start = Date()
        let message = try engineError(try engine("failing", "(sleep 30) &\necho 'ValueError: bad shape' >&2\nexit 3\n", timeout: 8))
        XCTAssertTrue(message.contains("engine failing, small round 0: exited with status 3; processes it left running were killed"
                                       + "; last lines of its stderr: ValueError: bad shape"), message)
        XCTAssertFalse(message.contains("time limit"), message)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    // MARK: An interrupt removes the engine's whole folder

    /// SIGTERM while the engine sleeps after putting a file and a folder with a file beside its trace path: the
    /// handler removed only the two files it had registered (the experiment and the trace), and its rmdir of the
    /// folder failed, so `minidl-engine.XXXXXX` stayed in TMPDIR with the engine's files.
    func testAnInterruptRemovesTheEnginesWholeFolder() throws {
        let experiment = try write("small.json", OutsideEngineTests.small)
        let script = try write("untidy.sh", """
            folder=$(dirname "$2")
            echo x > "$folder/extra"
            mkdir "$folder/sub"
            echo x > "$folder/sub/deep"
            touch "$folder/ready"
            exec sleep 30

            """)
        let temporary = scratch.appendingPathComponent("tmp")
        var signalledAt = Date.distantFuture
        let result = try compare(["--experiment", experiment, "--engine", "untidy=/bin/sh \(script)"],
                                 temporary: temporary, timeout: 30) { process in
            let start = Date()
            while process.isRunning && Date().timeIntervalSince(start) < 20,
                  !self.engineFolders(in: temporary).contains(where: {
                      FileManager.default.fileExists(atPath: temporary.appendingPathComponent("\($0)/ready").path) }) {
                usleep(10_000)
            }
            signalledAt = Date()
            kill(process.processIdentifier, SIGTERM)
        }
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 143, "exit status 128 + SIGTERM: \(result.stderr)")
        XCTAssertLessThan(Date().timeIntervalSince(signalledAt), 5, "exits at once")
        XCTAssertEqual(engineFolders(in: temporary), [], "the engine's folder, with everything in it, is removed")
    }
}
