import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An outside engine (`compare run --engine NAME=COMMAND`): for every round, the round is exported to a
/// temporary experiment file (explicit data, weights and orders: `MaterializedRound.exported`) and
///
///     COMMAND <experiment.json> <trace.json>
///
/// is run, with no shell (the command line is split into words as a shell would: `ShellWords`). The engine
/// must write a version-2 (or 1) trace (docs/trace-format.md) and exit 0 within `timeout` seconds. Anything else is
/// an `EngineError` naming the engine and the round, with the exit status and the last lines of its stderr:
/// it cannot be started, exits non-zero, is killed by a signal, runs out of time (its process group is killed),
/// writes no trace, a trace over `Trace.maxFileBytes`, or a trace that is not valid.
public struct CommandEngine: TrainingEngine, Sendable {
    public let name: String
    /// The command's words, the program first.
    public let arguments: [String]
    /// Seconds before the engine is killed. Default 600.
    public var timeout: Double

    public static let defaultTimeout = 600.0

    /// `NAME=COMMAND`; throws a message for a malformed one.
    public init(specification: String, timeout: Double = CommandEngine.defaultTimeout) throws {
        guard let equals = specification.firstIndex(of: "=") else {
            throw EngineSpecificationError(message: "--engine \(specification): expected NAME=COMMAND, e.g. numpy=\"python3 examples/engines/numpy_engine.py\"")
        }
        let name = String(specification[..<equals]), command = String(specification[specification.index(after: equals)...])
        guard OutputName.isSafe(name) else {
            throw EngineSpecificationError(message: "--engine \(specification): the name \"\(name)\" must be 1 to 40 letters, digits, '-' or '_' (it names columns and files)")
        }
        guard !EngineName.reserved.contains(name) else {
            throw EngineSpecificationError(message: "--engine \(specification): \"\(name)\" is a built-in engine's name; choose another")
        }
        let words: [String]
        do { words = try ShellWords.command(command) } catch let error as ShellWords.SplitError {
            throw EngineSpecificationError(message: "--engine \(name)=\(command): \(error.message)")
        }
        self.name = name
        self.arguments = words
        self.timeout = timeout
    }

    public func train(_ round: MaterializedRound) throws -> Trace {
        func failure(_ message: String) -> EngineError {
            EngineError(engine: name, experiment: round.experiment.name, round: round.round, message: message)
        }
        let folder: URL
        do { folder = try TemporaryFolder.make(prefix: "minidl-engine") } catch { throw failure("cannot make a temporary folder: \(error)") }
        let experimentFile = folder.appendingPathComponent("round.experiment.json")
        let traceFile = folder.appendingPathComponent("trace.json")
        CleanupRegistry.register(experimentFile.path)
        CleanupRegistry.register(traceFile.path)
        defer {
            TemporaryFolder.remove(folder)
            CleanupRegistry.unregister(experimentFile.path)
            CleanupRegistry.unregister(traceFile.path)
        }
        let exported = round.exported
        do { try writeAtomically(try exported.encoded(), to: experimentFile) } catch { throw failure("cannot write the experiment: \(error)") }

        let start = monotonicSeconds()
        let result: Subprocess.Result
        do {
            result = try Subprocess.run(arguments + [experimentFile.path, traceFile.path], timeout: timeout)
        } catch let error as Subprocess.LaunchError {
            throw failure("cannot start \(arguments[0]): \(error.reason)")
        }
        let wall = monotonicSeconds() - start
        let stderr = result.stderrTail.isEmpty ? "" : "; last lines of its stderr: " + result.stderrTail
        switch result.ending {
        case .timedOut:
            throw failure("ran longer than the time limit of \(formatNumber(timeout)) s (--engine-timeout) and was killed\(stderr)")
        case let .signal(number):
            throw failure("was killed by signal \(number) (\(String(cString: strsignal(number))))\(stderr)")
        case let .exit(status) where status != 0:
            throw failure("exited with status \(status)\(stderr)")
        case .exit:
            break
        }
        guard FileManager.default.fileExists(atPath: traceFile.path) else {
            throw failure("exited with status 0 but wrote no trace to the path it was given (its second argument)\(stderr)")
        }
        var trace: Trace
        do {
            trace = try Trace.load(contentsOf: traceFile, experiment: exported)
        } catch let error as TraceError {
            throw failure("wrote a trace that is not valid: \(error.path.isEmpty ? "" : "\(error.path): ")\(error.message)\(stderr)")
        }
        if trace.seconds == nil { trace.seconds = wall }
        return trace
    }
}

/// A malformed `--engine` argument.
public struct EngineSpecificationError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Splitting a command line into words as a POSIX shell does, without a shell: blanks separate words; `'…'`
/// keeps everything literally; `"…"` keeps everything but `\"`, `\\`, `\$` and `` \` `` (their backslash goes);
/// outside quotes a backslash keeps the next character. No variables, globs, pipes or redirections.
public enum ShellWords {
    public struct SplitError: Error { public let message: String }

    /// The words of a command to run: `split`, and a `SplitError` "the command is empty" when there are none.
    public static func command(_ line: String) throws -> [String] {
        let words = try split(line)
        guard !words.isEmpty else { throw SplitError(message: "the command is empty") }
        return words
    }

    public static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(line.unicodeScalars).makeIterator()
        while let c = iterator.next() {
            switch c {
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "'" { closed = true; break }
                    current.unicodeScalars.append(d)
                }
                if !closed { throw SplitError(message: "a ' quote is not closed") }
            case "\"":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = iterator.next() else { break }
                        if !["\"", "\\", "$", "`"].contains(e) { current.unicodeScalars.append("\\") }
                        current.unicodeScalars.append(e)
                    } else {
                        current.unicodeScalars.append(d)
                    }
                }
                if !closed { throw SplitError(message: "a \" quote is not closed") }
            case "\\":
                inWord = true
                guard let d = iterator.next() else { throw SplitError(message: "a \\ ends the command") }
                current.unicodeScalars.append(d)
            default:
                inWord = true
                current.unicodeScalars.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}

extension CommandEngine {
    /// Whether `arguments` runs and exits 0 within `timeout` seconds (e.g. `python3 -c "import torch"`).
    public static func succeeds(_ arguments: [String], timeout: Double = 60) -> Bool {
        (try? Subprocess.run(arguments, timeout: timeout).ending) == .exit(0)
    }
}

/// A child process run to completion or to a deadline, its output read as it comes (so that it never blocks
/// on a full pipe): stdout is read and discarded, the last 4 KiB of stderr kept for messages.
enum Subprocess {
    struct LaunchError: Error { let reason: String }

    enum Ending: Equatable {
        case exit(Int32)
        case signal(Int32)
        case timedOut
    }

    struct Result {
        let ending: Ending
        /// The last lines of stderr (at most 4 KiB, at most 8 lines), on one line with " | " between them.
        let stderrTail: String
    }

    static func run(_ arguments: [String], timeout: Double) throws -> Result {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw LaunchError(reason: String(cString: strerror(errno))) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in [outPipe[0], outPipe[1], errPipe[0], errPipe[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so that a timeout or an interrupt kills everything it started; default signal
        // handling (compare ignores SIGPIPE, the child must not inherit that).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGXFSZ, SIGINT, SIGTERM] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard status == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw LaunchError(reason: String(cString: strerror(status)))
        }
        ChildProcesses.add(pid)
        defer { ChildProcesses.remove(pid) }

        let deadline = monotonicSeconds() + timeout
        var tail = [UInt8]()
        var open = [outPipe[0], errPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        while !open.isEmpty {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { timedOut = true; break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1) * 1000))
            if ready < 0 && errno != EINTR { break }
            for entry in fds where entry.revents != 0 {
                let count = read(entry.fd, &buffer, buffer.count)
                if count <= 0 {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                } else if entry.fd == errPipe[0] {
                    tail += buffer[0..<count]
                    if tail.count > 4096 { tail.removeFirst(tail.count - 4096) }
                }
            }
        }
        if timedOut {
            kill(-pid, SIGKILL)
            for fd in open { close(fd) }
        }
        var wait: Int32 = 0
        while waitpid(pid, &wait, 0) < 0 && errno == EINTR {}
        if timedOut { return Result(ending: .timedOut, stderrTail: lastLines(tail)) }
        let ending: Ending = (wait & 0x7f) == 0 ? .exit((wait >> 8) & 0xff) : .signal(wait & 0x7f)
        return Result(ending: ending, stderrTail: lastLines(tail))
    }

    private static func lastLines(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.suffix(8).joined(separator: " | ")
    }
}

/// The outside engines running now, so that an interrupt can kill them (see the Compare executable's signal
/// handling): their process group ids, in a fixed table a signal handler can read.
public enum ChildProcesses {
    /// Process group ids, 0 for a free slot; read by `killAll` from a signal handler.
    nonisolated(unsafe) static let slots = UnsafeMutablePointer<pid_t>.allocate(capacity: 64)
    private static let lock = NSLock()
    private static let initialized: Void = { slots.initialize(repeating: 0, count: 64) }()

    static func add(_ pid: pid_t) {
        _ = initialized
        lock.lock(); defer { lock.unlock() }
        for k in 0..<64 where slots[k] == 0 { slots[k] = pid; return }
    }

    static func remove(_ pid: pid_t) {
        lock.lock(); defer { lock.unlock() }
        for k in 0..<64 where slots[k] == pid { slots[k] = 0 }
    }

    /// Kills every child's process group (async-signal-safe: reads the table, calls kill).
    public static func killAll() {
        _ = initialized
        for k in 0..<64 where slots[k] != 0 { kill(-slots[k], SIGKILL) }
    }
}

/// Private temporary folders (mkdtemp, mode 0700), removed when done; registered so that an interrupt removes
/// them too.
enum TemporaryFolder {
    static func make(prefix: String) throws -> URL {
        var template = Array((NSTemporaryDirectory() + "/\(prefix).XXXXXX").utf8CString)
        guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw OutputError(path: NSTemporaryDirectory(), reason: String(cString: strerror(errno)))
        }
        let url = URL(fileURLWithPath: String(cString: path))
        CleanupRegistry.register(url.path)
        return url
    }

    static func remove(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
        CleanupRegistry.unregister(url.path)
    }
}
