import Foundation

/// Places the tests read from, found from this file's location, so they work from any working directory.
public enum TestPaths {
    /// The package root (the folder holding Package.swift).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// fixtures/ under the package root.
    public static var fixtures: URL { packageRoot.appendingPathComponent("fixtures") }

    /// The built `compare` executable, beside the test bundle in the build products folder.
    public static var compareExecutable: URL { builtExecutable("compare") }

    /// The built `bench` executable (`swift test` builds every product of the package).
    public static var benchExecutable: URL { builtExecutable("bench") }

    /// The executable `name` in the build products folder that holds the test bundle.
    static func builtExecutable(_ name: String) -> URL {
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // On Linux arguments[0] is the .xctest binary in the products folder; tolerate a bundle layout too.
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), folder.path != "/" {
            folder.deleteLastPathComponent()
        }
        return folder.appendingPathComponent(name)
    }
}

/// Runs `executable` with `arguments`; returns its exit status (nil if killed by a signal) and its output.
public func runProcess(_ executable: URL, _ arguments: [String], in directory: URL? = nil)
    throws -> (status: Int32?, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let status: Int32? = process.terminationReason == .exit ? process.terminationStatus : nil
    return (status, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// A fresh, empty folder under the system's temporary directory, named `prefix-UUID`, for one test's files.
/// Remove it with `removeScratchDirectory` in `tearDown` (it restores permissions a test may have taken away).
public func makeScratchDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Removes a folder made by `makeScratchDirectory`, after making it writable again.
public func removeScratchDirectory(_ url: URL?) {
    guard let url else { return }
    try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    try? FileManager.default.removeItem(at: url)
}

/// Writes `text` (UTF-8) to `name` inside `folder` and returns the file's path.
public func writeScratchFile(_ name: String, _ text: String, in folder: URL) throws -> String {
    let url = folder.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
}
