import Foundation

/// What a run will need, estimated before it starts, so that a run too large for this machine (or a JSON report
/// too large to read back) is refused at once, with the estimate and the limit, instead of ending in a crash
/// hours later. Every round's per-epoch metrics stay in memory for the report (3 engines and the outside ones,
/// 5 numbers each per epoch); each running job holds its data (in Framework's matrices and Reference's
/// arrays), its visiting orders (one `Int` per sample visit, for Reference), its parameters in a few copies
/// (values, gradients, optimizer state, packed weights, the other engine's), one training batch's activations per
/// layer and one evaluation chunk per layer.
/// The JSON report takes about 200 bytes per epoch entry as text, and as much again while it is built.
public struct RunEstimate: CustomStringConvertible {
    public var memoryBytes: Double
    public var reportBytes: Double
    /// The larger of the two estimates' shares of their limits, to name the one that is exceeded.
    public static var memoryLimit: Double { Double(ProcessInfo.processInfo.physicalMemory) * 0.8 }
    public static let reportLimit = Double(Report.maxFileBytes)

    public init(_ request: RunRequest, writesJSON: Bool) {
        let engines = Double(3 + request.outsideEngineNames.count)
        let rounds = Double(request.shard.map { ceilingDivision(request.jobCount, $0.count) } ?? request.jobCount)
        var traces = 0.0, report = 0.0, job = 0.0
        for planned in request.experiments {
            let e = planned.experiment
            let epochs = Double(e.training.epochs + 1)
            let perRound = engines * epochs
            let share = rounds / Double(max(request.experiments.count, 1))
            traces += share * perRound * 64
            report += share * perRound * 200
            let width = Double(e.model.widths.max() ?? 1)
            let data = Double(e.data.trainCount + e.data.testCount) * Double(e.model.inputWidth + e.model.outputWidth) * 8 * 6
            let orders = Double(e.training.epochs) * Double(e.data.trainCount) * 8 * 2
            let parameters = Double(e.model.parameterCount) * 8 * 12
            let chunks = Double(e.model.layers.count) * min(Double(1 << 18), Double(max(e.data.trainCount, e.data.testCount)) * width) * 8 * 4
            let batch = Double(min(e.training.batchSize, e.data.trainCount))
            let steps = Double(e.trace?.steps ?? 0) * (Double(e.model.parameterCount) + batch * width * Double(e.model.layers.count)) * 8 * 4
            // One training batch through every layer: each module's output, dInput and kept input in Framework,
            // and Reference's own matrices and product temporaries for the same.
            let activations = batch * width * Double(e.model.layers.count) * 8 * 6
            job = max(job, data + orders + parameters + chunks + steps + activations)
        }
        let parallel = request.parallel ? Double(ProcessInfo.processInfo.activeProcessorCount) : 1
        memoryBytes = 50e6 + traces + job * parallel + (writesJSON ? report * 2 : 0)
        reportBytes = writesJSON ? report : 0
    }

    /// Why the run cannot be done here, or nil.
    public var problem: String? {
        if reportBytes > RunEstimate.reportLimit {
            return "the JSON report would be about \(bytes(reportBytes)), more than the limit of \(bytes(RunEstimate.reportLimit)) "
                + "(fewer rounds or epochs, or run it in shards with --shard K/N)"
        }
        if memoryBytes > RunEstimate.memoryLimit {
            return "the run would need about \(bytes(memoryBytes)) of memory, more than the \(bytes(RunEstimate.memoryLimit)) this machine allows "
                + "(80 % of its memory): fewer rounds, epochs or data points, --sequential, or run it in shards with --shard K/N"
        }
        return nil
    }

    public var description: String { "memory ≈ \(bytes(memoryBytes)), JSON report ≈ \(bytes(reportBytes))" }
}

/// "1.8 GB".
public func bytes(_ n: Double) -> String {
    if n >= 1e12 { return String(format: "%.1f TB", n / 1e12) }
    if n >= 1e9 { return String(format: "%.1f GB", n / 1e9) }
    return String(format: "%.0f MB", max(n / 1e6, 1))
}

/// "45 s", "12 min", "3.2 h", "41 days": a duration for an estimate.
public func duration(_ seconds: Double) -> String {
    if seconds < 120 { return String(format: "%.0f s", seconds) }
    if seconds < 7200 { return String(format: "%.0f min", seconds / 60) }
    if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
    return String(format: "%.0f days", seconds / 86_400)
}

/// ⌈a / b⌉ for a ≥ 0, b ≥ 1, without the overflow of (a + b − 1) / b when b is near Int.max.
func ceilingDivision(_ a: Int, _ b: Int) -> Int { a / b + (a % b == 0 ? 0 : 1) }
