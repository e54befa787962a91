import Foundation

/// One self-contained HTML page (`--report DIR` writes `DIR/index.html`): the verdict, the tables of the text
/// report and every figure inline as SVG, readable in a browser from the file, without a server.
public func htmlReport(_ report: Report, figures: [String: [PlotKind: String]]) -> String {
    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    let rounds = report.rounds
    var html = """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><title>compare: \(report.passed ? "PASS" : "FAIL")</title>
    <style>
    body { font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
    table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
    th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
    th:first-child, td:first-child { text-align: left; }
    .pass { color: #1a7f37; } .fail { color: #cf222e; font-weight: bold; }
    .note { color: #555; font-size: 13px; } svg { max-width: 100%; height: auto; }
    pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }
    </style></head><body>
    <h1 class="\(report.passed ? "pass" : "fail")">\(report.status.rawValue.uppercased()) — parity holds in \(rounds.filter(\.passed).count) of \(rounds.count) rounds</h1>
    <p class="note">\(escape(report.build.description)); \(escape(report.date)); <code>\(escape(report.command.joined(separator: " ")))</code></p>
    <p class="note">Tolerances: losses rtol \(report.tolerances.rtol), atol \(report.tolerances.atol); accuracy \(report.tolerances.accuracy), free-running up to the comparability horizon; beyond it, and throughout, every step and epoch each engine gives is replayed by the referee (docs/verdict.md).</p>

    """
    for experiment in report.experiments {
        html += "<h2>\(escape(experiment.name))</h2>\n<p class=\"note\">\(escape(experiment.configuration))\(experiment.table.isEmpty ? "" : " — \(escape(experiment.table))")</p>\n"
        html += "<table><tr><th>engine</th><th>train accuracy</th><th>test accuracy</th></tr>\n"
        for engine in (experiment.rounds.first?.engines.map(\.name) ?? []) where engine != EngineName.shadow {
            html += "<tr><td>\(escape(engine))</td><td>\(statisticText(experiment.statistic("trainAccuracy", engine: engine)))</td>"
                + "<td>\(statisticText(experiment.statistic("testAccuracy", engine: engine)))</td></tr>\n"
        }
        html += "</table>\n"
        let comparisons = experiment.figureComparisons
        if !comparisons.isEmpty {
            html += "<table><tr><th>published (report, table)</th><th>metric</th><th>published</th><th>ours (Framework)</th><th>Δ</th><th>verdict</th></tr>\n"
            for c in comparisons {
                let published = c.figure.mean.map { fraction($0) + (c.figure.sd.map { " ± \(fraction($0))" } ?? "") } ?? escape("“\(c.figure.text)”")
                html += "<tr><td>\(escape(c.figure.report)), \(escape(c.figure.table))</td><td>\(escape(c.figure.metric))</td><td>\(published)</td>"
                    + "<td>\(statisticText(c.ours))</td><td>\(c.difference.map { String(format: "%+.3f", $0) } ?? "—")</td>"
                    + "<td class=\"\(c.verdict == "differs" ? "fail" : "")\">\(escape(c.verdict))"
                    + (c.verdict == "differs" ? c.figure.knownDifference.map { ", as expected: " + escape($0) } ?? "" : "") + "</td></tr>\n"
            }
            html += "</table>\n"
        }
        for note in experiment.notes { html += "<p class=\"note\">\(escape(note))</p>\n" }
        html += "<table><tr><th>round</th><th>seed</th><th>engine</th><th>seconds</th><th>Δ test loss</th><th>Δ train loss</th><th>Δ accuracy</th><th>horizon</th><th>verified through</th><th>verdict</th></tr>\n"
        for round in experiment.rounds {
            for comparison in round.comparisons {
                let seconds = round.engine(comparison.engine)?.seconds.map { compact($0, decimals: 3) } ?? "—"
                html += "<tr><td>\(round.round)</td><td>\(round.seed)</td><td>\(escape(comparison.engine)) vs \(escape(comparison.referee))</td><td>\(seconds)</td>"
                    + "<td>\(scientific(comparison.maxTestLossDifference))</td><td>\(scientific(comparison.maxTrainLossDifference))</td>"
                    + "<td>\(fraction(max(comparison.maxTestAccuracyDifference, comparison.maxTrainAccuracyDifference)))</td>"
                    + "<td>\(comparison.horizon.map(String.init) ?? "none")</td>"
                    + "<td>\(comparison.verification.map { $0.verifiedThrough.map(String.init) ?? "—" } ?? "")</td>"
                    + "<td class=\"\(comparison.passed ? "pass" : "fail")\">\(comparison.status.rawValue)"
                    + "\(comparison.passed ? "" : ": " + escape(comparison.reason))</td></tr>\n"
            }
        }
        html += "</table>\n"
        for round in experiment.rounds {
            for found in round.localisations {
                html += "<p class=\"note\"><b>round \(round.round), \(escape(found.engine)) against \(escape(found.referee))</b><br>"
                    + found.textLines(indent: "", width: Int.max).map(escape).joined(separator: "<br>") + "</p>\n"
            }
        }
        for kind in PlotKind.allCases {
            if let svg = figures[experiment.name]?[kind] { html += "<figure>\(svg)</figure>\n" }
        }
    }
    html += "<h2>The text report</h2>\n<pre>\(escape(textReport(report)))</pre>\n</body></html>\n"
    return html
}
