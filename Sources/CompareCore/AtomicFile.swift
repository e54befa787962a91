import Foundation

/// A file the project could not write; the message names the path and the reason.
public struct OutputError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): cannot write: \(reason)" }
}

/// Writes `data` to `url` atomically: to a temporary file beside it (".NAME.PID.RANDOM.tmp", created
/// exclusively, so concurrent writers never share one), then renamed into place, so an interrupted or failed
/// write leaves the previous file intact and never a partial one. Every file the project writes (reports,
/// CSV, plots, fixtures) goes through here. On failure the temporary file is removed and an `OutputError`
/// names the destination.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    let unique = UUID().uuidString.prefix(8)
    let temporary = directory.appendingPathComponent(
        ".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(unique).tmp")
    do {
        try data.write(to: temporary, options: .withoutOverwriting)
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
