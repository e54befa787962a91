import Foundation

/// Mean and sample standard deviation (n − 1; 0 for a single value).
public func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
    guard !values.isEmpty else { return (.nan, .nan) }
    let mean = values.reduce(0, +) / Double(values.count)
    guard values.count > 1 else { return (mean, 0) }
    let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)
    return (mean, variance.squareRoot())
}

/// A plain-text table with left-aligned first column and right-aligned others.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

func scientific(_ x: Double) -> String {
    if x == 0 { return "0" }
    if !x.isFinite { return "\(x)" }
    return String(format: "%.1e", x)
}

func seconds(_ x: Double) -> String { String(format: "%.3f", x) }

func fraction(_ x: Double) -> String { x.isFinite ? String(format: "%.3f", x) : "\(x)" }

func meanPlusMinus(_ values: [Double]) -> String {
    let (m, s) = meanAndDeviation(values)
    return values.count > 1 ? "\(fraction(m)) ± \(fraction(s))" : fraction(m)
}

/// The text report: the parity table (one row per round), the accuracy table(s) (mean ± σ over rounds,
/// beside published figures), and the verdict.
public func textReport(_ report: Report) -> String {
    var out: [String] = []
    out.append("Parity: Framework against Reference (\(report.blas)), per round")
    var parity = TextTable(header: ["experiment", "round", "seed", "framework s", "reference s", "ratio",
                                    "max Δ test loss", "max Δ train loss", "max Δ accuracy", "shadow Δ", "verdict"])
    for experiment in report.experiments {
        for round in experiment.rounds {
            let f = round.framework, r = round.reference
            let ratio = (f.map(\.seconds) ?? .nan) > 0 ? (r?.seconds ?? .nan) / f!.seconds : .nan
            let p = round.parity
            var verdict = p.passed ? "pass" : "FAIL"
            if let epoch = p.separatedAt { verdict += " (rounding amplified from epoch \(epoch), as in the shadow)" }
            if p.divergence != "none" { verdict += " (diverged: \(p.divergence))" }
            parity.rows.append([experiment.name, "\(round.round)", "\(round.seed)",
                                seconds(f?.seconds ?? .nan), seconds(r?.seconds ?? .nan),
                                String(format: "%.1f×", ratio),
                                scientific(p.maxTestLossDifference), scientific(p.maxTrainLossDifference),
                                fraction(max(p.maxTestAccuracyDifference, p.maxTrainAccuracyDifference)),
                                scientific(p.maxShadowDifference), verdict])
        }
    }
    out.append(parity.render())
    out.append("(Δ loss: largest relative difference over all epochs; Δ accuracy: largest absolute difference; ratio: reference s / framework s;")
    out.append(" shadow Δ: how far Framework moves from itself when its initial parameters are nudged by one ulp, the run's sensitivity to rounding)")

    var tables: [String] = []
    for experiment in report.experiments where !tables.contains(experiment.table) { tables.append(experiment.table) }
    for table in tables {
        out.append("")
        let members = report.experiments.filter { $0.table == table }
        let rounds = members.map(\.rounds.count).max() ?? 0
        out.append("Accuracy after the last epoch, mean ± σ over \(rounds) round\(rounds == 1 ? "" : "s")"
                   + (table.isEmpty ? "" : ": \(table)"))
        var accuracy = TextTable(header: ["experiment", "framework train", "framework test",
                                          "reference train", "reference test", "published train", "published test"])
        var notes: [String] = []
        for experiment in members {
            func last(_ engine: Engine, _ pick: (EpochRecord) -> Double) -> String {
                let values = experiment.rounds.compactMap { $0.engines[engine.rawValue]?.last }.map(pick)
                let diverged = experiment.rounds.filter { $0.engines[engine.rawValue]?.divergence != nil }.count
                return meanPlusMinus(values) + (diverged > 0 ? " (\(diverged) diverged)" : "")
            }
            accuracy.rows.append([experiment.name,
                                  last(.framework, \.trainAccuracy), last(.framework, \.testAccuracy),
                                  last(.reference, \.trainAccuracy), last(.reference, \.testAccuracy),
                                  experiment.published?.train ?? "—", experiment.published?.test ?? "—"])
            notes.append("  \(experiment.name): \(experiment.configuration)"
                         + (experiment.published.map { "; published: \($0.source)" } ?? ""))
        }
        out.append(accuracy.render())
        out.append(contentsOf: notes)
    }

    let all = report.experiments.flatMap(\.rounds)
    let passed = all.filter(\.parity.passed).count
    out.append("")
    out.append("BLAS behind Reference: \(report.blas)")
    out.append("Tolerances: losses rtol \(report.tolerances.rtol), atol \(report.tolerances.atol); accuracy \(report.tolerances.accuracy); "
               + "beyond them, up to \(report.tolerances.amplification)× the shadow's difference")
    out.append("Verdict: \(report.passed ? "PASS" : "FAIL") — parity holds in \(passed) of \(all.count) rounds")
    for experiment in report.experiments {
        for round in experiment.rounds where !round.parity.passed {
            out.append("  \(experiment.name) round \(round.round): \(round.parity.reason)")
        }
    }
    return out.joined(separator: "\n")
}

/// Per-epoch traces as CSV: one file per experiment, a row per (round, engine, epoch).
public func csvTraces(_ experiment: ExperimentRecord) -> String {
    var lines = ["round,seed,engine,epoch,trainLoss,testLoss,trainAccuracy,testAccuracy"]
    for round in experiment.rounds {
        for engine in Engine.allCases {
            guard let record = round.engines[engine.rawValue] else { continue }
            for e in record.epochs {
                lines.append("\(round.round),\(round.seed),\(engine.rawValue),\(e.epoch),\(e.trainLoss),\(e.testLoss),\(e.trainAccuracy),\(e.testAccuracy)")
            }
        }
    }
    return lines.joined(separator: "\n") + "\n"
}
