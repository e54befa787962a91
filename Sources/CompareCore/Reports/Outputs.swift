import Foundation
import Framework

/// Where a command writes its reports: the JSON file, the CSV folder, the plots folder, the HTML page's folder.
public struct OutputRequest {
    public var json: String?
    public var csv: String?
    public var plots: String?
    public var report: String?

    public init(json: String? = nil, csv: String? = nil, plots: String? = nil, report: String? = nil) {
        self.json = json
        self.csv = csv
        self.plots = plots
        self.report = report
    }

    /// The files the reports of `experiments` (by name) will be, added to `plan`; refuses an empty path.
    public func plan(experiments: [String], into plan: inout OutputPlan) throws {
        for (flag, value) in [("--json", json), ("--csv", csv), ("--plots", plots), ("--report", report)] where value?.isEmpty == true {
            throw OutputError(path: "", reason: "\(flag): the path is empty")
        }
        if let json { plan.addFile(json, flag: "--json") }
        if let csv {
            plan.addFolder(csv, flag: "--csv")
            for name in experiments { plan.addFile(csvPath(name), flag: "--csv") }
            plan.addFile(URL(fileURLWithPath: csv).appendingPathComponent("summary.csv").path, flag: "--csv")
        }
        if let plots {
            plan.addFolder(plots, flag: "--plots")
            for name in experiments { for path in plotPaths(name) { plan.addFile(path, flag: "--plots") } }
        }
        if let report {
            plan.addFolder(report, flag: "--report")
            plan.addFile(URL(fileURLWithPath: report).appendingPathComponent("index.html").path, flag: "--report")
        }
    }

    func csvPath(_ name: String) -> String { URL(fileURLWithPath: csv!).appendingPathComponent("\(OutputName.stem(name)).csv").path }

    func plotPaths(_ name: String) -> [String] {
        let stem = OutputName.stem(name), folder = URL(fileURLWithPath: plots!)
        return PlotKind.allCases.map { folder.appendingPathComponent("\(stem)-\($0.rawValue).svg").path }
    }

    public var isEmpty: Bool { json == nil && csv == nil && plots == nil && report == nil }
}

/// The figures `--plots` writes per experiment, by file name suffix.
public enum PlotKind: String, CaseIterable {
    case curves
    case differences
    case predictions
    case decisionDifference = "decision-difference"
}

/// Writes the reports asked for, each file atomically; returns the files written. An `OutputError` stops at the
/// first file that cannot be written (the ones before it are complete files).
public func writeOutputs(_ result: RunResult, _ request: OutputRequest) throws -> [String] {
    var written: [String] = []
    func write(_ text: String, _ path: String) throws {
        try writeAtomically(Data(text.utf8), to: URL(fileURLWithPath: path))
        written.append(path)
    }
    let report = result.report
    if let json = request.json { try write(report.jsonValue.text(), json) }
    if let csv = request.csv {
        for experiment in report.experiments { try write(csvTraces(experiment), request.csvPath(experiment.name)) }
        try write(csvSummary(report), URL(fileURLWithPath: csv).appendingPathComponent("summary.csv").path)
    }
    var figures: [String: [PlotKind: String]] = [:]
    if request.plots != nil || request.report != nil {
        for experiment in report.experiments { figures[experiment.name] = plots(experiment, result.plotRounds[experiment.name], report) }
    }
    if request.plots != nil {
        for experiment in report.experiments {
            for (kind, path) in zip(PlotKind.allCases, request.plotPaths(experiment.name)) {
                if let svg = figures[experiment.name]?[kind] { try write(svg, path) }
            }
        }
    }
    if let folder = request.report {
        try write(htmlReport(report, figures: figures), URL(fileURLWithPath: folder).appendingPathComponent("index.html").path)
    }
    return written
}

/// The SVG figures of one experiment (those its data allow: predictions need two-dimensional inputs and a
/// round's final parameters).
func plots(_ experiment: ExperimentRecord, _ round: PlotRound?, _ report: Report) -> [PlotKind: String] {
    var result: [PlotKind: String] = [.curves: curvesSVG(experiment), .differences: differencesSVG(experiment, tolerances: report.tolerances)]
    guard let round, round.round.test.inputs.columns == 2,
          let framework = round.finalParameters[EngineName.framework], let reference = round.finalParameters[EngineName.reference],
          let frameworkTest = try? predictions(experiment.experiment.model, parameters: framework, inputs: round.round.test.inputs),
          let referenceTest = try? predictions(experiment.experiment.model, parameters: reference, inputs: round.round.test.inputs)
    else { return result }
    let boundary = Boundary(round.round)
    let title = "\(experiment.name), round \(round.round.round) (seed \(round.round.seed))"
    result[.predictions] = predictionsSVG(name: title, test: round.round.test, framework: frameworkTest, reference: referenceTest,
                                          boundary: boundary)
    let grid = gridInputs(resolution: 200, around: round.round.test.inputs)
    if let a = try? predictions(experiment.experiment.model, parameters: framework, inputs: grid.inputs),
       let b = try? predictions(experiment.experiment.model, parameters: reference, inputs: grid.inputs) {
        result[.decisionDifference] = decisionDifferenceSVG(name: title, grid: grid, framework: a, reference: b, boundary: boundary).svg
    }
    return result
}
