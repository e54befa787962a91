import Framework

/// Mean and sample standard deviation (n − 1; 0 for a single value).
public func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
    guard !values.isEmpty else { return (.nan, .nan) }
    let mean = values.reduce(0, +) / Double(values.count)
    guard values.count > 1 else { return (mean, 0) }
    let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)
    return (mean, variance.squareRoot())
}

/// An engine's figure over the rounds: mean ± σ of a last-epoch metric.
public struct Statistic: Equatable, Sendable {
    public var mean: Double
    public var deviation: Double
    public var rounds: Int
    /// Rounds where the engine diverged (they have no last epoch to count).
    public var diverged: Int
}

/// A published figure set beside ours, with the verdict.
public struct FigureComparison: Equatable, Sendable {
    public var figure: PublishedFigure
    /// Framework's value over our rounds (nil when the metric is not one we measure).
    public var ours: Statistic?
    /// ours − published.
    public var difference: Double?
    /// "consistent", "differs", or "no number published" / "not measured".
    public var verdict: String
    /// The margin used: max(2σ_published, 2σ_ours, 0.01).
    public var margin: Double?
}

extension ExperimentRecord {
    /// The last-epoch value of `metric` ("trainAccuracy", "testAccuracy", "trainLoss", "testLoss") over the
    /// rounds, for engine `engine`.
    public func statistic(_ metric: String, engine: String = EngineName.framework) -> Statistic? {
        let pick: (EpochMetrics) -> Double
        switch metric {
        case "trainAccuracy": pick = \.trainAccuracy
        case "testAccuracy": pick = \.testAccuracy
        case "trainLoss": pick = \.trainLoss
        case "testLoss": pick = \.testLoss
        default: return nil
        }
        let runs = rounds.compactMap { $0.engine(engine) }
        guard !runs.isEmpty else { return nil }
        let values = runs.filter { $0.divergence == nil }.compactMap(\.last).map(pick)
        let (mean, deviation) = meanAndDeviation(values)
        return Statistic(mean: mean, deviation: deviation, rounds: values.count, diverged: runs.count - values.count)
    }

    /// Each published figure beside Framework's: consistent when |Δ| ≤ max(2σ_published, 2σ_ours, 1 point)
    /// (σ_published 0 when the report gives none), otherwise "differs".
    public var figureComparisons: [FigureComparison] {
        published.map { figure in
            guard let mean = figure.mean else {
                return FigureComparison(figure: figure, ours: statistic(figure.metric), difference: nil,
                                        verdict: "no number published", margin: nil)
            }
            guard let ours = statistic(figure.metric), ours.rounds > 0 else {
                return FigureComparison(figure: figure, ours: nil, difference: nil, verdict: "not measured", margin: nil)
            }
            let difference = ours.mean - mean
            let margin = max(2 * (figure.sd ?? 0), 2 * ours.deviation, 0.01)
            return FigureComparison(figure: figure, ours: ours, difference: difference,
                                    verdict: abs(difference) <= margin ? "consistent" : "differs", margin: margin)
        }
    }

    /// The experiment's summary in the JSON report: each engine's last-epoch accuracies and losses, and each
    /// published figure with Δ and the verdict.
    var summaryJSON: JSONValue {
        let engines = rounds.first?.engines.map(\.name) ?? []
        return jsonObject { o in
            o["rounds"] = .integer(rounds.count)
            o["passed"] = .bool(!rounds.isEmpty && rounds.allSatisfy(\.passed))
            o["engines"] = .object(engines.map { engine in
                (engine, .object(["trainAccuracy", "testAccuracy", "trainLoss", "testLoss"].compactMap { metric in
                    statistic(metric, engine: engine).map { s in
                        (metric, .object([("mean", .number(s.mean)), ("sd", .number(s.deviation)), ("rounds", .integer(s.rounds)),
                                          ("diverged", .integer(s.diverged))]))
                    }
                }))
            })
            o["published"] = .array(figureComparisons.map { c in
                jsonObject { f in
                    f["report"] = .string(c.figure.report)
                    f["metric"] = .string(c.figure.metric)
                    f["published"] = c.figure.mean.map { .number($0) } ?? .null
                    f["publishedSd"] = c.figure.sd.map { .number($0) } ?? .null
                    f["ours"] = c.ours.map { .number($0.mean) } ?? .null
                    f["oursSd"] = c.ours.map { .number($0.deviation) } ?? .null
                    f["difference"] = c.difference.map { .number($0) } ?? .null
                    f["margin"] = c.margin.map { .number($0) } ?? .null
                    f["verdict"] = .string(c.verdict)
                    f["knownDifference"] = c.verdict == "differs" ? c.figure.knownDifference.map { .string($0) } ?? .null : .null
                }
            })
        }
    }
}
