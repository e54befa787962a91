import CompareCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The process's relation to its environment: standard streams that may be closed or full, signals that must
// become exit statuses, and the one way text leaves the process.

enum ProcessSetup {
    /// Run first. Opens /dev/null on a closed standard stream (so that no file the run opens becomes fd 1 or 2
    /// and receives messages meant for a terminal); ignores SIGPIPE and SIGXFSZ, so that a closed pipe, a full
    /// disk or a file-size limit is an error the code sees (EPIPE, EFBIG) rather than a death by signal; and on
    /// SIGINT, SIGTERM or SIGHUP kills the outside engines and everything they started, then removes every
    /// temporary file and folder (an engine's folder with whatever the engine put in it), and exits with 128 +
    /// the signal's number (130 for SIGINT, 143 for SIGTERM).
    ///
    /// All of it is done in the handler itself, with async-signal-safe calls only (kill, open, getdents64,
    /// unlinkat, rmdir: `ChildProcesses.killAll`, `CleanupRegistry.removeAll`). A watcher thread woken by the
    /// handler could use FileManager instead, but the handler would then have to return (and the interrupted code
    /// run on, to print an engine's failure and exit 2 before the watcher exits 143) or park the interrupted
    /// thread, whose held locks (malloc's, the runtime's) the watcher could then wait for forever.
    static func prepare() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 {
            let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0 && opened != fd { dup2(opened, fd); close(opened) }
        }
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        // Both tables (and the functions looked up for the handler) are created lazily, which allocates: create
        // them now (both are still empty), so that the handler never allocates; a signal arriving while another
        // thread holds malloc's lock would hang it.
        CleanupRegistry.removeAll()
        ChildProcesses.killAll()
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number) { received in
                ChildProcesses.killAll()  // first, so that no engine writes into a folder being removed
                CleanupRegistry.removeAll()
                _exit(128 + received)
            }
        }
    }
}

/// A failure to write what the user asked for (a report file, or standard output): exit status 2, with the
/// run's verdict in the message, so that it is not lost.
struct OutputFailure: Error, CustomStringConvertible {
    let description: String
}

/// Writes `text` to standard output with write(2), every byte, or throws an `OutputFailure` naming the reason
/// (a closed pipe, a full device). Control characters but the line break are written as escapes, as on stderr
/// (`oneLine`): names that could hold them are refused when read, and this is the last guard, so that no escape
/// sequence reaches a terminal from a report.
func writeStandardOutput(_ text: String) throws {
    let bytes = Array(text.split(separator: "\n", omittingEmptySubsequences: false).map { oneLine(String($0)) }.joined(separator: "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            throw OutputFailure(description: "standard output: cannot write: \(String(cString: strerror(errno)))")
        }
        offset += written
    }
}

/// `text` on one line: line breaks and other control characters (which a file name, a JSON key or a type
/// name can hold) are written as escapes, so every error is exactly one line on stderr.
func oneLine(_ text: String) -> String {
    var result = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}":
            result += "\\u{\(String(scalar.value, radix: 16))}"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result
}

/// Writes `compare: <message>` as one line on stderr (failures to write are ignored: there is nowhere left).
func reportError(_ message: String) {
    writeStandardError("compare: \(oneLine(message))\n")
}
