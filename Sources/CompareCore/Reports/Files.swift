import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Writing files: atomically, never half-written, with every error an `OutputError` (never a signal), and
// with the temporary files registered so that an interrupt removes them (`CleanupRegistry`).

/// A file the project could not write; the message names the path and the reason.
public struct OutputError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    /// Whether the error is a failed write ("cannot write"), or a refusal before anything is written.
    public let writing: Bool
    public init(path: String, reason: String, writing: Bool = true) {
        self.path = path
        self.reason = reason
        self.writing = writing
    }
    /// "r.json: cannot write: File too large"; "b.json: the experiment name …"; just the reason when there is
    /// no path.
    public var description: String { path.isEmpty ? reason : "\(path): \(writing ? "cannot write: " : "")\(reason)" }
}

/// Writes `data` to `url` atomically: to a temporary file beside it (".NAME.PID.RANDOM.tmp", created
/// exclusively with `open(O_CREAT | O_EXCL)`, so concurrent writers never share one), written with `write(2)`
/// until every byte is out, closed, then renamed into place, so an interrupted or failed write leaves the
/// previous file intact and never a partial one. Every file the project writes (reports, CSV, plots, traces,
/// exported experiments, fixtures) goes through here. A full disk (ENOSPC), a file-size limit (EFBIG; the
/// process ignores SIGXFSZ so that it gets the error, not the signal) or any other failure removes the
/// temporary file and throws an `OutputError` naming the destination. While the temporary file exists it is
/// registered with `CleanupRegistry`, so SIGINT/SIGTERM remove it too.
///
/// A destination that exists and is neither a regular file nor a folder (a device such as `/dev/stdout` or
/// `/dev/full`, a FIFO, a socket) is written into directly instead: renaming over it would replace the device
/// with a regular file (as root, even in /dev), and "atomic" means nothing for a stream.
public func writeAtomically(_ data: Data, to url: URL) throws {
    var status = stat()
    if stat(url.path, &status) == 0, case let kind = status.st_mode & S_IFMT, kind != S_IFREG, kind != S_IFDIR {
        let fd = open(url.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OutputError(path: url.path, reason: String(cString: strerror(errno))) }
        var failure = writeAll(data, to: fd)
        if close(fd) != 0 && failure == nil { failure = String(cString: strerror(errno)) }
        if let failure { throw OutputError(path: url.path, reason: failure) }
        return
    }
    let directory = url.deletingLastPathComponent()
    let unique = UUID().uuidString.prefix(8)
    let temporary = directory.appendingPathComponent(
        ".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(unique).tmp").path
    CleanupRegistry.register(temporary)
    defer { CleanupRegistry.unregister(temporary) }
    func fail(_ reason: String) -> OutputError {
        unlink(temporary)
        return OutputError(path: url.path, reason: reason)
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw OutputError(path: url.path, reason: String(cString: strerror(errno))) }
    var failure = writeAll(data, to: fd)
    if close(fd) != 0 && failure == nil { failure = String(cString: strerror(errno)) }
    if let failure { throw fail(failure) }
    if rename(temporary, url.path) != 0 { throw fail(String(cString: strerror(errno))) }
}

/// Writes every byte of `data` to `fd` with `write(2)`, retrying on EINTR; the error's text, or nil.
private func writeAll(_ data: Data, to fd: Int32) -> String? {
    data.withUnsafeBytes { bytes -> String? in
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            offset += written
        }
        return nil
    }
}

/// Encodes with `encode` and writes atomically: if encoding throws, its error is rethrown and nothing is
/// written at all (the previous file stays as it was).
public func writeAtomically(to url: URL, _ encode: () throws -> Data) throws {
    let data = try encode()
    try writeAtomically(data, to: url)
}

/// Creates `url` as a directory (and its parents) if needed; an error names the path, and says which part
/// of it is a file where a folder is needed.
public func makeDirectory(_ url: URL) throws {
    var ancestor = url.standardizedFileURL
    while ancestor.path != "/" {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { break }
            let which = ancestor == url.standardizedFileURL ? "it" : ancestor.path
            throw OutputError(path: url.path, reason: "\(which) is a file, not a folder")
        }
        ancestor.deleteLastPathComponent()
    }
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    } catch {
        throw OutputError(path: url.path, reason: (error as NSError).localizedDescription)
    }
}

/// The temporary files and folders that exist right now, in a fixed table of C strings that a signal handler
/// may read: `removeAll()` unlinks each file (and removes each empty folder) using only async-signal-safe calls.
public enum CleanupRegistry {
    static let capacity = 256
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
        p.initialize(repeating: nil, count: capacity)
        return p
    }()
    private static let lock = NSLock()

    static func register(_ path: String) {
        let copy = strdup(path)
        lock.lock(); defer { lock.unlock() }
        for k in 0..<capacity where slots[k] == nil { slots[k] = copy; return }
        free(copy)  // a full table only means this one is not removed on an interrupt
    }

    static func unregister(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        for k in 0..<capacity {
            if let p = slots[k], String(cString: p) == path {
                slots[k] = nil
                free(p)
                return
            }
        }
    }

    /// Removes every registered file, then every registered (then empty) folder. For signal handlers.
    public static func removeAll() {
        for k in 0..<capacity { if let p = slots[k] { unlink(p) } }
        for k in 0..<capacity { if let p = slots[k] { rmdir(p) } }
    }
}
