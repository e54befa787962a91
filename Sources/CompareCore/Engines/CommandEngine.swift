import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An outside engine (`compare run --engine NAME=COMMAND`): for every round, the round is exported to a
/// temporary experiment file (explicit data, weights and orders: `MaterializedRound.exported`) and
///
///     COMMAND <experiment.json> <trace.json>
///
/// is run, with no shell (the command line is split into words as a shell would: `ShellWords`), in a private
/// temporary folder that is removed afterwards with everything in it. The engine must write a version-2 (or 1)
/// trace (docs/trace-format.md) as a regular file and exit 0 within `timeout` seconds. Anything else is an
/// `EngineError` naming the engine and the round, with the exit status and the last lines of its stderr: it
/// cannot be started, exits non-zero, is killed by a signal, runs out of time, writes no trace, a trace that is
/// not a regular file (a FIFO would block the read forever, a link could point anywhere), a trace over
/// `Trace.maxFileBytes`, or a trace that is not valid. Nothing the engine started outlives it (`Subprocess.run`).
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
        defer { TemporaryFolder.remove(folder) }
        let experimentFile = folder.appendingPathComponent("round.experiment.json")
        let traceFile = folder.appendingPathComponent("trace.json")
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
        let leftovers = result.killedLeftovers ? "; processes it left running were killed" : ""
        let stderr = result.stderrTail.isEmpty ? "" : "; last lines of its stderr: " + result.stderrTail
        switch result.ending {
        case .timedOut:
            throw failure("ran longer than the time limit of \(formatNumber(timeout)) s (--engine-timeout) and was killed\(stderr)")
        case let .signal(number):
            throw failure("was killed by signal \(number) (\(String(cString: strsignal(number))))\(leftovers)\(stderr)")
        case let .exit(status) where status != 0:
            throw failure("exited with status \(status)\(leftovers)\(stderr)")
        case .exit:
            break
        }
        let data: Data
        switch Self.readTrace(traceFile) {
        case let .read(bytes): data = bytes
        case .missing: throw failure("exited with status 0 but wrote no trace to the path it was given (its second argument)\(leftovers)\(stderr)")
        case let .refused(reason): throw failure("\(reason)\(leftovers)\(stderr)")
        }
        var trace: Trace
        do {
            trace = try Trace.decode(data, file: traceFile.relativePath, experiment: exported)
        } catch let error as TraceError {
            throw failure("wrote a trace that is not valid: \(error.path.isEmpty ? "" : "\(error.path): ")\(error.message)\(leftovers)\(stderr)")
        }
        if trace.seconds == nil { trace.seconds = wall }
        return trace
    }

    /// What was found at the trace's path.
    enum TraceFile {
        case read(Data)
        case missing
        /// Not read: the words of the message ("wrote its trace as a FIFO, not a regular file").
        case refused(String)
    }

    /// The bytes of the trace at `url`, read only if it is a regular file, at most `Trace.maxFileBytes` of them.
    /// Opened with `O_NOFOLLOW | O_NONBLOCK` and checked with fstat(2) on the open descriptor, so that neither a
    /// FIFO (whose open and read would wait for a writer that never comes, past any time limit), nor a device,
    /// nor a symbolic link (to any file of the user's) is ever read, even if the path changed after lstat(2).
    static func readTrace(_ url: URL) -> TraceFile {
        let path = url.path
        var status = stat()
        guard lstat(path, &status) == 0 else {
            return errno == ENOENT ? .missing : .refused("cannot read its trace: \(String(cString: strerror(errno)))")
        }
        func notRegular(_ mode: mode_t) -> TraceFile {
            let kind: String
            switch mode & S_IFMT {
            case S_IFIFO: kind = "a FIFO"
            case S_IFLNK: kind = "a symbolic link (to \((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"))"
            case S_IFDIR: kind = "a directory"
            case S_IFSOCK: kind = "a socket"
            case S_IFCHR: kind = "a character device"
            case S_IFBLK: kind = "a block device"
            default: kind = "a file of type \(String(mode & S_IFMT, radix: 8))"
            }
            return .refused("wrote its trace as \(kind), not a regular file")
        }
        guard status.st_mode & S_IFMT == S_IFREG else { return notRegular(status.st_mode) }
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .refused("cannot read its trace: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fstat(fd, &status) == 0 else { return .refused("cannot read its trace: \(String(cString: strerror(errno)))") }
        guard status.st_mode & S_IFMT == S_IFREG else { return notRegular(status.st_mode) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                return .refused("cannot read its trace: \(String(cString: strerror(errno)))")
            }
            if count == 0 { return .read(data) }
            data.append(contentsOf: buffer[0..<count])
            if data.count > Trace.maxFileBytes {
                return .refused("wrote a trace that is not valid: the file is larger than the limit of \(Trace.maxFileBytes) bytes")
            }
        }
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

/// A child process run until it exits or to a deadline, its output read as it comes (so that it never blocks on
/// a full pipe): stdout is read and discarded, the last 4 KiB of stderr kept for messages. The child leads a
/// process group of its own and carries a marker in its environment (`ChildProcesses.marker`); when it exits (or
/// at the deadline) every process that still holds the marker, and every process left in its group, is killed,
/// so nothing it started outlives it, not even a child that called setsid(2).
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
        /// Whether processes the child started were still running after it exited, and were killed.
        let killedLeftovers: Bool
    }

    /// How long the pipes are still read after the child exits, for what its last moments wrote: 1 s. A
    /// background process that keeps them open longer does not make the child wait (it is killed).
    static let pipeGrace = 1.0
    /// How often the child is checked for its exit while its pipes are quiet: every 10 ms.
    static let exitCheckInterval = 0.01

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
        // Its own process group (whose id is its pid), so that a timeout or an interrupt kills everything it
        // started; default signal handling (compare ignores SIGPIPE, the child must not inherit that).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGXFSZ, SIGINT, SIGTERM] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let marker = ChildProcesses.marker()
        let markerVariable = strdup(marker + "=1")
        defer { free(markerVariable) }
        var environment: [UnsafeMutablePointer<CChar>?] = []
        var inherited: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = environ
        while let variable = inherited.pointee { environment.append(variable); inherited += 1 }
        environment += [markerVariable, nil]
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environment)
        close(outPipe[1])
        close(errPipe[1])
        guard status == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw LaunchError(reason: String(cString: strerror(status)))
        }
        ChildProcesses.add(pid)
        defer { ChildProcesses.remove(pid) }

        // Read until the child has exited and both pipes are closed, or the grace after its exit is over, or
        // the deadline. The exit is seen with waitid(WNOWAIT), which leaves the child a zombie: its pid, which
        // is the group's id, cannot be reused until it is reaped below, after its group has been killed.
        let deadline = monotonicSeconds() + timeout
        var stopReading = deadline
        var exited = false
        var tail = [UInt8]()
        var open = [outPipe[0], errPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if !exited && hasExited(pid) {
                exited = true
                stopReading = min(monotonicSeconds() + pipeGrace, deadline)
            }
            let remaining = stopReading - monotonicSeconds()
            if (exited && open.isEmpty) || remaining <= 0 { break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), Int32((min(remaining, exitCheckInterval) * 1000).rounded(.up)))
            for entry in fds where entry.revents != 0 {
                let count = read(entry.fd, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                } else if entry.fd == errPipe[0] {
                    tail += buffer[0..<count]
                    if tail.count > 4096 { tail.removeFirst(tail.count - 4096) }
                }
            }
        }
        let killedLeftovers = ChildProcesses.killLeftovers(group: pid, marker: marker)
        for fd in open { close(fd) }
        var wait: Int32 = 0
        while waitpid(pid, &wait, 0) < 0 && errno == EINTR {}
        let ending: Ending = !exited ? .timedOut : (wait & 0x7f) == 0 ? .exit((wait >> 8) & 0xff) : .signal(wait & 0x7f)
        return Result(ending: ending, stderrTail: lastLines(tail), killedLeftovers: exited && killedLeftovers)
    }

    /// Whether the child `pid` has exited, without reaping it (a child reaped elsewhere counts as exited).
    private static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return errno == ECHILD }
        return info._sifields._sigchld.si_pid == pid
    }

    private static func lastLines(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.suffix(8).joined(separator: " | ")
    }
}

/// The outside engines running now and everything they started, so that an engine's exit or an interrupt can
/// kill them (see the Compare executable's signal handling).
///
/// Two nets: each engine leads a process group, whose id is kept in a fixed table a signal handler can read; and
/// each carries the variable `MINIDL_ENGINE_RUN_<compare's pid>_<n>=1` in its environment, which every process
/// it starts inherits, so that one that left the group (setsid(2), a daemon) is still found, by reading
/// /proc/PID/environ (the environment a process was started with), and killed. A subreaper
/// (prctl(PR_SET_CHILD_SUBREAPER)) would only make such orphans compare's children, still to be told apart
/// from another engine's; the inherited variable names the very run (the cookie Jenkins' ProcessTreeKiller
/// uses). What escapes both: a process that clears its environment and leaves the group, or runs as another
/// user.
public enum ChildProcesses {
    /// Process group ids, 0 for a free slot; read by `killAll` from a signal handler.
    nonisolated(unsafe) static let slots = UnsafeMutablePointer<pid_t>.allocate(capacity: 64)
    /// "MINIDL_ENGINE_RUN_<pid>_": the start of every marker this process gives, for `killAll`.
    nonisolated(unsafe) static let markerPrefix = strdup("MINIDL_ENGINE_RUN_\(getpid())_")!
    private static let lock = NSLock()
    nonisolated(unsafe) private static var runs = 0
    /// Creates the tables and looks up the functions a signal handler uses, which allocates: done by the first
    /// `killAll()`, which `ProcessSetup.prepare` calls before it installs the handler.
    private static let initialized: Void = {
        slots.initialize(repeating: 0, count: 64)
        _ = markerPrefix
        _ = sendSignal
        _ = DirectoryEntries.getdents64
    }()

    static func add(_ pid: pid_t) {
        _ = initialized
        lock.lock(); defer { lock.unlock() }
        for k in 0..<64 where slots[k] == 0 { slots[k] = pid; return }
    }

    static func remove(_ pid: pid_t) {
        lock.lock(); defer { lock.unlock() }
        for k in 0..<64 where slots[k] == pid { slots[k] = 0 }
    }

    /// A new marker's name, "MINIDL_ENGINE_RUN_<pid>_<n>", unique to one run of one engine.
    static func marker() -> String {
        lock.lock(); defer { lock.unlock() }
        runs += 1
        return "MINIDL_ENGINE_RUN_\(getpid())_\(runs)"
    }

    /// Kills every process that carries `marker` and then the process group `group`; whether a process with the
    /// marker was found alive (the group's exited leader, a zombie, has an empty environment and is not).
    static func killLeftovers(group: pid_t, marker: String) -> Bool {
        let found = killMarked(marker + "=")
        kill(-group, SIGKILL)
        return found
    }

    /// Kills every child's process group and every process any of them started (async-signal-safe: reads the
    /// table, calls kill, lists /proc without allocating).
    public static func killAll() {
        _ = initialized
        for k in 0..<64 where slots[k] != 0 { kill(-slots[k], SIGKILL) }
        _ = killMarked(markerPrefix)
    }

    typealias PidfdSendSignal = @convention(c) (Int32, Int32, UnsafeMutablePointer<siginfo_t>?, UInt32) -> Int32
    /// glibc's pidfd_send_signal(2) (2.36+), looked up at run time (the Glibc module does not declare it): it
    /// signals the process whose /proc/PID folder is open, so a pid reused since the listing is never hit.
    static let sendSignal: PidfdSendSignal? = dlsym(nil, "pidfd_send_signal").map { unsafeBitCast($0, to: PidfdSendSignal.self) }

    /// Sends SIGKILL to every other process whose environment has a variable whose "NAME=…" starts with
    /// `prefix`; whether it found one. Passes over /proc until one finds none (a process that forked during a
    /// pass has its child found by the next), at most 4. Async-signal-safe: system calls and stack buffers.
    private static func killMarked(_ prefix: UnsafePointer<CChar>) -> Bool {
        let me = getpid()
        var foundAny = false
        for _ in 0..<4 {
            let proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard proc >= 0 else { break }
            var found = false
            DirectoryEntries.forEach(in: proc) { name in
                guard let pid = processID(name), pid != me else { return }
                let process = openat(proc, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard process >= 0 else { return }
                if environment(of: process, holds: prefix) {
                    found = true
                    killProcess(process, pid)
                }
                close(process)
            }
            close(proc)
            guard found else { break }
            foundAny = true
        }
        return foundAny
    }

    /// SIGKILL to the process whose /proc folder `process` is open: by pidfd_send_signal, or by kill(2) where
    /// glibc or the kernel (before 5.1) lacks it.
    private static func killProcess(_ process: Int32, _ pid: pid_t) {
        if let send = sendSignal, send(process, SIGKILL, nil, 0) == 0 || errno != ENOSYS { return }
        kill(pid, SIGKILL)
    }

    /// The pid a /proc entry's name spells (only digits), or nil.
    private static func processID(_ name: UnsafePointer<CChar>) -> pid_t? {
        var value: pid_t = 0
        var p = name
        while p.pointee != 0 {
            guard p.pointee >= 0x30 && p.pointee <= 0x39, value < 100_000_000 else { return nil }
            value = value * 10 + pid_t(p.pointee - 0x30)
            p += 1
        }
        return p == name ? nil : value
    }

    /// Whether the environment the process (its open /proc/PID folder) started with has a variable beginning
    /// with `prefix`: /proc/PID/environ is the variables, each ending in a NUL, read 1 KiB at a time.
    private static func environment(of process: Int32, holds prefix: UnsafePointer<CChar>) -> Bool {
        let fd = openat(process, "environ", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let length = strlen(prefix)
        var matched = 0  // bytes of the current variable equal to the prefix's, or -1 once one differs
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: DirectoryEntries.bufferSize) { buffer in
            while true {
                let count = read(fd, buffer.baseAddress, buffer.count)
                guard count > 0 else { return false }
                for byte in buffer[0..<count] {
                    if byte == 0 {
                        matched = 0
                    } else if matched >= 0 {
                        guard byte == prefix[matched] else { matched = -1; continue }
                        matched += 1
                        if matched == length { return true }
                    }
                }
            }
        }
    }
}

/// Private temporary folders (mkdtemp, mode 0700, in TMPDIR), removed with everything in them when done;
/// registered so that an interrupt removes them too.
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
