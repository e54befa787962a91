import Foundation

/// A trace already written, by any engine, read as if that engine had just run: `compare check --trace T.json`,
/// and a `NAME.trace.json` or `NAME.torch.json` that `compare run` finds beside `NAME.experiment.json`. It is
/// the trace of the experiment file's own round (round 0), and is checked against that experiment.
public struct StoredTraceEngine: TrainingEngine {
    public let name: String
    public let url: URL

    public init(name: String, url: URL) {
        self.name = name
        self.url = url
    }

    public func train(_ round: MaterializedRound) throws -> Trace {
        do {
            return try Trace.load(contentsOf: url, experiment: round.experiment)
        } catch let error as TraceError {
            throw EngineError(engine: name, experiment: round.experiment.name, round: round.round, message: "\(error)")
        }
    }

    /// The name a stored trace goes by when none is given: the file's stem before ".trace.json"/".json",
    /// "pytorch" for a `*.torch.json`.
    public static func defaultName(for path: String) -> String {
        let file = URL(fileURLWithPath: path).lastPathComponent
        if file.hasSuffix(".torch.json") { return "pytorch" }
        var stem = file
        for suffix in [".trace.json", ".json"] where stem.hasSuffix(suffix) {
            stem.removeLast(suffix.count)
            break
        }
        let safe = String(stem.unicodeScalars.map { OutputName.isSafe(String($0)) ? Character($0) : "-" }.prefix(40))
        return safe.isEmpty || EngineName.reserved.contains(safe) ? "trace" : safe
    }
}
