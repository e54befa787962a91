import Dispatch
import Framework

// Engines: anything that trains a materialised round and gives back its `Trace`. Framework, Reference (the
// referee), Framework's one-ulp shadow, an outside command (`--engine NAME=COMMAND`) and a stored trace file
// (`compare check --trace`) are all engines; the judge reads their traces alike.

/// Trains one round and returns its trace.
public protocol TrainingEngine {
    /// The engine's name in reports and file names: "framework", "reference", "shadow", "numpy".
    var name: String { get }
    func train(_ round: MaterializedRound) throws -> Trace
}

/// The names the built-in engines go by.
public enum EngineName {
    public static let framework = "framework"
    public static let reference = "reference"
    public static let shadow = "shadow"
    /// Names an outside engine or a stored trace may not take, in any case: "Framework" would read as the
    /// built-in engine in every report.
    public static let reserved = ReservedNames([framework, reference, shadow])

    public struct ReservedNames: Sendable {
        let lowercased: Set<String>
        init(_ names: [String]) { lowercased = Set(names.map { $0.lowercased() }) }
        /// Whether `name` is one of them, case ignored.
        public func contains(_ name: String) -> Bool { lowercased.contains(name.lowercased()) }
    }
}

/// An engine that could not run (not a parity failure): which engine, which round, what went wrong.
public struct EngineError: Error, CustomStringConvertible {
    public let engine: String
    public let experiment: String
    public let round: Int
    public let message: String

    public init(engine: String, experiment: String, round: Int, message: String) {
        self.engine = engine
        self.experiment = experiment
        self.round = round
        self.message = message
    }

    public var description: String { "engine \(engine), \(experiment) round \(round): \(message)" }
}

/// Seconds on the monotonic clock, for engines' wall times.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
