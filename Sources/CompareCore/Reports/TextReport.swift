import Foundation
import Framework

/// A plain-text table with left-aligned first column and right-aligned others; `leftAligned` columns too.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    var leftAligned: Set<Int> = [0]

    func render() -> String {
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return leftAligned.contains(c) ? cell + pad : pad + cell
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
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

func fraction(_ x: Double) -> String { x.isFinite ? String(format: "%.3f", x) : "\(x)" }

/// 1.234 → "1.234", 1e300 → "1.0e+300": at most 9 characters for any value, so that a trace's claimed "seconds"
/// (or their ratio to Reference's) cannot widen the table past its 120 columns.
func compact(_ x: Double, decimals: Int) -> String {
    x.isFinite && abs(x) < 1e5 ? String(format: "%.\(decimals)f", x) : scientific(x)
}

/// "0.980 ± 0.009" ("0.980±0.009" when `compact`), "0.980" for one round, "—" for none; "(2 div.)" when rounds diverged.
func statisticText(_ s: Statistic?, compact: Bool = false) -> String {
    guard let s, s.rounds > 0 else { return "—" }
    let plusMinus = compact ? "±" : " ± "
    return (s.rounds > 1 ? "\(fraction(s.mean))\(plusMinus)\(fraction(s.deviation))" : fraction(s.mean)) + (s.diverged > 0 ? " (\(s.diverged) div.)" : "")
}

/// `name` cut to `width` characters, with "…" when it is longer.
func clipped(_ name: String, _ width: Int) -> String { name.count <= width ? name : String(name.prefix(width - 1)) + "…" }

/// The text report, at most 120 columns wide (details that do not fit are in the JSON report): the verdict
/// first, then per table the accuracy summary (each engine's mean ± σ after the last epoch beside every
/// published figure, with Δ and a verdict per figure), then the parity per round, then why any round failed.
public func textReport(_ report: Report) -> String {
    var out: [String] = []
    let rounds = report.rounds
    let outside = report.plan.outsideEngines
    let engines = ["Framework"] + outside
    let counts = (pass: rounds.filter { $0.status == .pass }.count, unverified: rounds.filter { $0.status == .unverified }.count)
    out.append("Verdict: \(report.status.rawValue.uppercased()) — parity holds in \(counts.pass) of \(rounds.count) rounds"
               + (counts.unverified > 0 ? ", \(counts.unverified) unverified" : "")
               + " (\(engines.joined(separator: ", ")) against Reference)" + (rounds.isEmpty ? "; a run with no rounds is not a pass" : ""))
    let t = report.tolerances
    out += wrapped("Rule: the referee replays every step and epoch each engine gives from the engine's own state, within tolerances "
                   + "derived from that computation; free-running losses agree within rtol \(t.rtol), atol \(t.atol), accuracies within "
                   + "\(t.accuracy), up to the comparability horizon (docs/verdict.md). BLAS: \(report.build.blas)", indent: "  ", width: 120)

    var tables: [String] = []
    for experiment in report.experiments where !tables.contains(experiment.table) { tables.append(experiment.table) }
    for table in tables {
        let members = report.experiments.filter { $0.table == table }
        let count = members.map(\.rounds.count).max() ?? 0
        out.append("")
        out.append("Accuracy after the last epoch, mean ± σ over \(count) round\(count == 1 ? "" : "s")" + (table.isEmpty ? "" : ": \(table)"))
        let shown = [EngineName.framework, EngineName.reference] + outside.filter { name in members.contains { $0.rounds.contains { $0.engine(name) != nil } } }
        var accuracy = TextTable(header: ["experiment", "figure"] + shown + ["published", "Δ", "verdict"])
        var notes: [String] = []
        var explained = Set<String>()
        for experiment in members {
            let comparisons = experiment.figureComparisons
            var starred: [String] = []
            for (k, (metric, label)) in [("trainAccuracy", "train"), ("testAccuracy", "test")].enumerated() {
                let c = comparisons.first { $0.figure.metric == metric }
                let published = c.map { c in c.figure.mean.map { fraction($0) + (c.figure.sd.map { "±\(fraction($0))" } ?? "") } ?? "(text)" } ?? "—"
                var verdict = c?.difference == nil ? "—" : c!.verdict
                // A known reason is shown when the figure differs, or agrees only within our own wide σ.
                if let c, let known = c.figure.knownDifference, let d = c.difference, c.verdict == "differs" || abs(d) > 0.01 {
                    verdict += "*"
                    let why = c.verdict == "differs" ? "differs, as expected" : "is consistent only within our σ of \(fraction(c.ours?.deviation ?? .nan))"
                    starred += wrapped("* \(label) \(why): " + (explained.insert(known).inserted ? known : "as above"), indent: "    ", width: 120)
                }
                accuracy.rows.append([k == 0 ? clipped(experiment.name, 26) : "", label]
                                     + shown.map { statisticText(experiment.statistic(metric, engine: $0), compact: true) }
                                     + [published, c?.difference.map { String(format: "%+.3f", $0) } ?? "—", verdict])
            }
            notes += wrapped("\(experiment.name): \(experiment.configuration)", indent: "  ", width: 120) + starred
            for c in comparisons where c.figure.mean == nil {
                notes += wrapped("published (\(c.figure.report), \(c.figure.table)): \"\(c.figure.text)\"", indent: "    ", width: 120)
            }
            for note in experiment.notes { notes += wrapped(note, indent: "    ", width: 120) }
        }
        accuracy.leftAligned = [0, 1, accuracy.header.count - 1]
        out.append(accuracy.render())
        out += wrapped("verdict per published figure: consistent when |Δ| ≤ max(2σ published, 2σ ours, 0.01), else differs; "
                       + "Δ = Framework's mean − the published mean", indent: "", width: 120)
        out.append(contentsOf: notes)
    }

    out.append("")
    out.append("Parity per round: each engine against Reference (Δ: the largest relative loss difference and the largest accuracy")
    out.append("difference over the epochs before the horizon; horizon: the first epoch where Framework's one-ulp shadow parts from")
    out.append("it, from which curves are not compared; verified: the last epoch through which the referee replayed the engine)")
    out += wrapped("seconds: wall time of training and evaluation, from a \(report.build.flavour) build"
                   + (report.build.isFast ? "" : " (not the fast one: see `make run`)") + "; × ref: over Reference's", indent: "", width: 120)
    var parity = TextTable(header: ["experiment", "round", "seed", "engine", "seconds", "× ref", "Δ test", "Δ train", "Δ acc",
                                    "horizon", "verified", "verdict"])
    for experiment in report.experiments {
        for round in experiment.rounds {
            let referenceSeconds = round.reference?.seconds
            for (k, run) in round.engines.enumerated() where run.name != EngineName.shadow {
                let versus = round.comparisons.filter { $0.engine == run.name }
                let first = versus.first { $0.referee == EngineName.reference }
                var verdict = "referee"
                if let first {
                    let status = versus.reduce(VerdictStatus.pass) { $0.worse($1.status) }
                    verdict = status == .pass ? "pass" : status == .fail ? "FAIL" : "unverified"
                    if first.divergence.hasPrefix("both") { verdict += ", both diverged" }
                }
                let ratio = run.seconds.flatMap { s in referenceSeconds.map { s / $0 } }
                let verified = round.verifications[run.name].map { v in v.verifiedThrough.map(String.init) ?? "—" } ?? ""
                parity.rows.append([k == 0 ? clipped(experiment.name, 24) : "", k == 0 ? "\(round.round)" : "",
                                    k == 0 ? "\(round.seed)" : "", clipped(run.name, 10),
                                    run.seconds.map { compact($0, decimals: 3) } ?? "—",
                                    ratio.map { compact($0, decimals: 2) } ?? "—",
                                    first.map { scientific($0.maxTestLossDifference) } ?? "",
                                    first.map { scientific($0.maxTrainLossDifference) } ?? "",
                                    first.map { fraction(max($0.maxTestAccuracyDifference, $0.maxTrainAccuracyDifference)) } ?? "",
                                    first.map { $0.horizon.map(String.init) ?? "none" } ?? "", verified, verdict])
            }
        }
    }
    parity.leftAligned = [0, 3, 11]
    out.append(parity.render())
    var notes: [String] = []
    for experiment in report.experiments {
        for round in experiment.rounds {
            for c in round.comparisons where c.status == .pass {
                var what: [String] = []
                if c.divergence != "none" { what.append("diverged: \(c.divergence)") }
                if let first = c.accuracyTies.first {
                    what.append("the accuracies differ from the \(c.referee)'s at \(counted(c.accuracyTies.count, "epoch")) from epoch \(first) while "
                                + "the losses agree: a decision tipped by rounding; the replay checked the engine's count from its own "
                                + "parameters there")
                }
                if c.maxDifferenceAfterHorizon > 0 && c.referee == EngineName.reference {
                    what.append("past the horizon, epoch \(c.horizon ?? 0), the curves differ by up to \(scientific(c.maxDifferenceAfterHorizon)): "
                                + "reported, not judged; the replay is the evidence there")
                }
                if c.referee == EngineName.reference { what += c.verification?.remarks ?? [] }
                guard !what.isEmpty else { continue }
                notes += wrapped("\(experiment.name) round \(round.round) (seed \(round.seed)), \(c.engine) against \(c.referee): pass "
                                 + what.map { "(\($0))" }.joined(separator: " "), indent: "  ", width: 120)
            }
        }
    }
    if !notes.isEmpty {
        out.append("")
        out.append("Passed, with a remark:")
        out.append(contentsOf: notes)
    }
    let unverified = report.experiments.flatMap { e in e.rounds.flatMap { r in r.comparisons.filter { $0.status == .unverified }.map { (e.name, r, $0) } } }
    if !unverified.isEmpty {
        out.append("")
        out.append("Unverified:")
        for (name, round, comparison) in unverified {
            out += wrapped("\(name) round \(round.round) (seed \(round.seed)), \(comparison.engine): \(comparison.reason)", indent: "  ", width: 120)
            for line in comparison.verification?.textLines ?? [] { out += wrapped(line, indent: "    ", width: 120) }
        }
    }
    let failures = report.experiments.flatMap { e in e.rounds.flatMap { r in r.comparisons.filter { $0.status == .fail }.map { (e.name, r, $0) } } }
    if !failures.isEmpty {
        out.append("")
        out.append("Why:")
        for (name, round, comparison) in failures {
            out += wrapped("\(name) round \(round.round) (seed \(round.seed)), \(comparison.engine) against \(comparison.referee): \(comparison.reason)",
                           indent: "  ", width: 120)
            if let found = round.localisations.first(where: { $0.engine == comparison.engine && $0.referee == comparison.referee }) {
                out += found.textLines(indent: "    ")
            }
        }
    }
    return out.joined(separator: "\n")
}

/// Per-epoch traces as CSV: one file per experiment, a row per (round, engine, epoch), and a row marked
/// `diverged` for a run that stopped (its epoch and batch, and the loss it saw).
public func csvTraces(_ experiment: ExperimentRecord) -> String {
    var lines = ["experiment,round,seed,engine,epoch,trainLoss,testLoss,trainAccuracy,testAccuracy,note"]
    let name = csvField(experiment.name)
    for round in experiment.rounds {
        for run in round.engines {
            for e in run.epochs {
                lines.append("\(name),\(round.round),\(round.seed),\(csvField(run.name)),\(e.epoch),\(e.trainLoss),\(e.testLoss),\(e.trainAccuracy),\(e.testAccuracy),")
            }
            if let d = run.divergence {
                lines.append("\(name),\(round.round),\(round.seed),\(csvField(run.name)),\(d.epoch),\(d.loss),,,,diverged at batch \(d.batch)")
            }
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// One row per experiment: each engine's mean ± σ of the last-epoch accuracies, and the verdict.
public func csvSummary(_ report: Report) -> String {
    var lines = ["experiment,engine,rounds,passed,trainAccuracyMean,trainAccuracySd,testAccuracyMean,testAccuracySd,diverged"]
    for experiment in report.experiments {
        let engines = experiment.rounds.first?.engines.map(\.name) ?? []
        let passed = experiment.rounds.filter(\.passed).count
        for engine in engines {
            let train = experiment.statistic("trainAccuracy", engine: engine), test = experiment.statistic("testAccuracy", engine: engine)
            lines.append([csvField(experiment.name), csvField(engine), "\(experiment.rounds.count)", "\(passed)",
                          train.map { "\($0.mean)" } ?? "", train.map { "\($0.deviation)" } ?? "",
                          test.map { "\($0.mean)" } ?? "", test.map { "\($0.deviation)" } ?? "", "\(test?.diverged ?? 0)"]
                .joined(separator: ","))
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// A CSV text field (a name; numbers are written as they are): quoted when it holds a comma, a quote or a line
/// break, and, when it starts with `=`, `+`, `-`, `@`, a tab or a carriage return, led by `'` so that a
/// spreadsheet shows it as text instead of evaluating it as a formula (`=HYPERLINK(…)`; OWASP's CSV injection).
func csvField(_ text: String) -> String {
    let inert = text.first.map { "=+-@\t\r".contains($0) } == true ? "'" + text : text
    return inert.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) ? "\"" + inert.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : inert
}
