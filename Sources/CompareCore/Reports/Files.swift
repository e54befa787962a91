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
/// may read: `removeAll()` removes each file, and each folder with everything in it (an outside engine's folder
/// holds whatever the engine put there), using only async-signal-safe calls.
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

    /// Removes every registered path, a file or a folder with everything in it. For signal handlers: the first
    /// call (made before any handler is installed) creates the table and looks up getdents64.
    public static func removeAll() {
        _ = DirectoryEntries.getdents64
        for k in 0..<capacity { if let p = slots[k] { removeTree(p) } }
    }

    /// How deep `removeTree` goes into folders within folders: 16 levels (each holds a 1 KiB buffer on the
    /// stack); anything deeper stays, and so do the folders above it.
    static let maxDepth = 16

    /// Removes `path`, a file or a folder with everything in it, with system calls and stack buffers only
    /// (async-signal-safe, which FileManager and nftw(3) are not: they allocate). A folder that is not empty
    /// after that (an engine killed a moment ago was still writing into it) is emptied again, up to 10 times,
    /// 10 ms apart.
    static func removeTree(_ path: UnsafePointer<CChar>) {
        guard unlink(path) != 0, errno == EISDIR else { return }  // a file removed, or nothing there
        for _ in 0..<10 {
            let folder = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard folder >= 0 else { return }
            removeContents(of: folder, depth: 1)
            close(folder)
            if rmdir(path) == 0 || errno != ENOTEMPTY { return }
            var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&pause, nil)
        }
    }

    /// Removes what it can in the open folder `folder`, depth first, listing it again after every listing that
    /// removed something (an entry removed while listing may hide another from that listing).
    private static func removeContents(of folder: Int32, depth: Int) {
        var removed = true
        while removed {
            removed = false
            lseek(folder, 0, SEEK_SET)
            DirectoryEntries.forEach(in: folder) { name in
                if unlinkat(folder, name, 0) == 0 { removed = true; return }
                guard errno == EISDIR, depth < maxDepth else { return }
                let inner = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if inner >= 0 {
                    removeContents(of: inner, depth: depth + 1)
                    close(inner)
                }
                if unlinkat(folder, name, AT_REMOVEDIR) == 0 { removed = true }
            }
        }
    }
}

/// Listing a folder without allocating, for signal handlers: getdents64(2) into a buffer on the stack, where
/// opendir(3) would call malloc (which deadlocks if the signal came while another thread held its lock).
enum DirectoryEntries {
    /// 1 KiB: the standard library places a temporary allocation of up to 1 KiB on the stack.
    static let bufferSize = 1024

    typealias GetDents64 = @convention(c) (Int32, UnsafeMutableRawPointer?, Int) -> Int
    /// glibc's getdents64 (2.30+), looked up at run time: it is declared only under _GNU_SOURCE, which the Glibc
    /// module is imported without. Nil on an older glibc: nothing is listed, so only empty folders are removed.
    static let getdents64: GetDents64? = dlsym(nil, "getdents64").map { unsafeBitCast($0, to: GetDents64.self) }

    /// Calls `body` with the name of each entry of the open folder `folder` but "." and "..", from the
    /// folder's current offset to the end.
    static func forEach(in folder: Int32, _ body: (UnsafePointer<CChar>) -> Void) {
        guard let getdents64 else { return }
        withUnsafeTemporaryAllocation(byteCount: bufferSize, alignment: 8) { buffer in
            while true {
                let count = getdents64(folder, buffer.baseAddress, buffer.count)
                guard count > 0 else { return }
                var offset = 0
                while offset < count {
                    // struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name (ends in NUL).
                    let entry = buffer.baseAddress! + offset
                    offset += Int(entry.load(fromByteOffset: 16, as: UInt16.self))
                    let name = UnsafePointer((entry + 19).assumingMemoryBound(to: CChar.self))
                    if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { continue }
                    body(name)
                }
            }
        }
    }
}
