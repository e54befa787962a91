import Foundation

/// A file the project could not write; the message names the path and the reason.
public struct OutputError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): cannot write: \(reason)" }
}

/// Writes `data` to `url` atomically: to a temporary file beside it, then renamed into place, so an
/// interrupted or failed write leaves the previous file intact and never a partial one.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
    do {
        try data.write(to: temporary)
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw OutputError(path: url.path, reason: (error as NSError).localizedDescription)
    }
    if rename(temporary.path, url.path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw OutputError(path: url.path, reason: reason)
    }
}

/// Encodes with `encode` and writes atomically: if encoding throws, nothing is written at all.
public func writeAtomically(to url: URL, _ encode: () throws -> Data) throws {
    let data = try encode()
    try writeAtomically(data, to: url)
}

/// Creates `url` as a directory (and its parents) if needed; an error names the path.
public func makeDirectory(_ url: URL) throws {
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    } catch {
        throw OutputError(path: url.path, reason: (error as NSError).localizedDescription)
    }
}
