import Foundation

/// File names derived from experiment and engine names: always a plain name inside the folder it is written
/// to, whatever the experiment file says its name is.
///
/// The mapping (documented in docs/hardening.md): every character but ASCII letters, digits, `.`, `_`, `+`
/// and `-` becomes `_`; a leading `.` becomes `_` (so no hidden file, no `.` or `..`); an empty name becomes
/// `experiment`; a name longer than 100 characters keeps its first 91 and ends in `-` and 8 hexadecimal digits
/// of a hash (FNV-1a) of the whole name. Two experiments whose names map to the same file name are refused
/// before the run.
public enum OutputName {
    public static let maxLength = 100

    /// The stem of every file written for the experiment named `name`.
    public static func stem(_ name: String) -> String {
        var stem = String(name.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "+", "-": return Character(scalar)
            default: return "_"
            }
        })
        if stem.isEmpty { stem = "experiment" }
        if stem.hasPrefix(".") { stem = "_" + stem.dropFirst() }
        if stem.count > maxLength {
            var hash: UInt32 = 2_166_136_261
            for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            stem = String(stem.prefix(maxLength - 9)) + "-" + String(format: "%08x", hash)
        }
        return stem
    }

    /// Whether `name` may name an engine: 1 to 40 ASCII letters, digits, `-` or `_`.
    public static func isSafe(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 40 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    /// `STEM.round-R.ENGINE.trace.json`.
    public static func trace(experiment: String, round: Int, engine: String) -> String {
        "\(stem(experiment)).round-\(round).\(engine).trace.json"
    }

    /// `STEM.round-R.experiment.json`.
    public static func exported(experiment: String, round: Int) -> String {
        "\(stem(experiment)).round-\(round).experiment.json"
    }
}

/// Every file a command will write, known before any training: checked for collisions with each other, with
/// the command's input files and with its output folders, and the folders created and checked writable, so
/// that a run never overwrites its input and never ends in an error it could have seen at the start.
public struct OutputPlan {
    /// Files to write, each with what asks for it ("--json", "--csv", …).
    public private(set) var files: [(path: String, flag: String)] = []
    /// Folders to create, each with its flag.
    public private(set) var folders: [(path: String, flag: String)] = []
    /// Files the command reads, with what names them.
    public private(set) var inputs: [(path: String, what: String)] = []

    public init() {}

    public mutating func addInput(_ path: String, _ what: String) { inputs.append((Self.resolved(path), what)) }
    /// The flags given an empty path, which would otherwise resolve to the current directory.
    public private(set) var emptyPaths: [String] = []

    public mutating func addFile(_ path: String, flag: String) {
        if path.isEmpty { emptyPaths.append(flag) } else { files.append((Self.resolved(path), flag)) }
    }
    public mutating func addFolder(_ path: String, flag: String) {
        if path.isEmpty { emptyPaths.append(flag) } else { folders.append((Self.resolved(path), flag)) }
    }

    /// Refuses experiment names that are the same or map to the same file name (they name output files).
    public static func checkNames(_ names: [(name: String, source: String)]) throws {
        var byName: [String: String] = [:], byStem: [String: (String, String)] = [:]
        for (name, source) in names {
            if let other = byName.updateValue(source, forKey: name) {
                throw OutputError(path: source, reason: "the experiment name \"\(name)\" is also the name in \(other); "
                                  + "names must be unique (they name the output files): give one a different \"name\"", writing: false)
            }
            let stem = OutputName.stem(name)
            if let (otherName, otherSource) = byStem.updateValue((name, source), forKey: stem) {
                throw OutputError(path: source, reason: "the experiment names \"\(otherName)\" (\(otherSource)) and \"\(name)\" both map to "
                                  + "the file name \"\(stem)\"; give one a different \"name\"", writing: false)
            }
        }
    }

    /// Checks the plan and creates its folders; throws an `OutputError` naming the flag and the path.
    public func prepare() throws {
        try check()
        try create()
    }

    /// The checks of `prepare` that change nothing: empty paths and collisions.
    public func check() throws {
        if let flag = emptyPaths.first { throw OutputError(path: "", reason: "\(flag): the path is empty") }
        let inputPaths = Dictionary(inputs.map { ($0.path, $0.what) }, uniquingKeysWith: { first, _ in first })
        var seen: [String: String] = [:]
        for (path, flag) in files {
            if let what = inputPaths[path] {
                throw OutputError(path: path, reason: "\(flag) would overwrite \(what), an input of this command")
            }
            if let other = seen.updateValue(flag, forKey: path) {
                throw OutputError(path: path, reason: "\(flag) and \(other) would both write this file")
            }
        }
        for (folder, flag) in folders {
            if let what = inputPaths[folder] { throw OutputError(path: folder, reason: "\(flag) names \(what), a file this command reads") }
            if let other = seen[folder] { throw OutputError(path: folder, reason: "\(flag) is a folder, but \(other) writes a file there") }
        }
    }

    /// Creates the folders, and checks that every file's folder can be written.
    func create() throws {
        for (folder, flag) in folders {
            do { try makeDirectory(URL(fileURLWithPath: folder)) } catch let error as OutputError {
                throw OutputError(path: error.path, reason: "\(flag): \(error.reason)")
            }
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw OutputError(path: folder, reason: "\(flag): the folder is not writable")
            }
        }
        for (path, flag) in files {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw OutputError(path: path, reason: "\(flag): is a folder; expected a file name")
            }
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent()
            do { try makeDirectory(parent) } catch let error as OutputError {
                throw OutputError(path: path, reason: "\(flag): \(error.reason)")
            }
            guard FileManager.default.isWritableFile(atPath: parent.path) else {
                throw OutputError(path: path, reason: "\(flag): folder \(parent.path) is not writable")
            }
        }
    }

    /// An absolute, standardised path with the existing part's symbolic links resolved, so that two spellings
    /// of one file compare equal.
    static func resolved(_ path: String) -> String {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        var tail: [String] = []
        while !FileManager.default.fileExists(atPath: url.path) && url.path != "/" {
            tail.insert(url.lastPathComponent, at: 0)
            url.deleteLastPathComponent()
        }
        url = url.resolvingSymlinksInPath()
        for component in tail { url.appendPathComponent(component) }
        return url.standardizedFileURL.path
    }
}
