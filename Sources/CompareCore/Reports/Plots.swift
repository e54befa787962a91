import Foundation
import Framework

// SVG figures (`--plots DIR`, and inline in the HTML page), written by hand: no plotting library. Each figure
// is self-contained and opens in a browser. Colours: Framework blue, Reference orange (drawn dashed on top,
// so where the curves coincide both are visible), the shadow grey, tolerances red.

private let frameworkColour = "#1f77b4"
private let referenceColour = "#ff7f0e"
private let shadowColour = "#7f7f7f"
private let toleranceColour = "#d62728"
private let publishedColour = "#2ca02c"

/// A rectangle of an SVG in which data coordinates are mapped to pixels.
private struct Panel {
    var x: Double, y: Double, width: Double, height: Double
    var xRange: ClosedRange<Double>, yRange: ClosedRange<Double>
    var logY = false

    func px(_ v: Double) -> Double { x + (v - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * width }
    func py(_ v: Double) -> Double {
        let (lo, hi, w) = logY ? (log10(yRange.lowerBound), log10(yRange.upperBound), log10(max(v, yRange.lowerBound)))
                               : (yRange.lowerBound, yRange.upperBound, v)
        return y + height - (min(max(w, lo), hi) - lo) / (hi - lo) * height
    }

    /// Frame, title, axis labels, ticks and grid lines: "nice" linear ticks (1, 2 or 5 × 10ᵏ apart), decades on
    /// a log axis.
    func axes(title: String, xLabel: String, yLabel: String) -> String {
        var s = "<rect x='\(x)' y='\(y)' width='\(width)' height='\(height)' fill='none' stroke='#333'/>\n"
        s += "<text x='\(x + width / 2)' y='\(y - 8)' text-anchor='middle' font-size='14'>\(escape(title))</text>\n"
        s += "<text x='\(x + width / 2)' y='\(y + height + 34)' text-anchor='middle' font-size='12'>\(escape(xLabel))</text>\n"
        s += "<text transform='translate(\(x - 54),\(y + height / 2)) rotate(-90)' text-anchor='middle' font-size='12'>\(escape(yLabel))</text>\n"
        for xv in niceTicks(xRange) {
            s += "<text x='\(px(xv))' y='\(y + height + 16)' text-anchor='middle' font-size='10'>\(tick(xv))</text>\n"
            s += "<line x1='\(px(xv))' x2='\(px(xv))' y1='\(y + height)' y2='\(y + height + 4)' stroke='#333'/>\n"
        }
        let yTicks = logY ? decadeTicks(yRange) : niceTicks(yRange)
        for yv in yTicks {
            s += "<text x='\(x - 6)' y='\(py(yv) + 4)' text-anchor='end' font-size='10'>\(logY ? decade(yv) : tick(yv))</text>\n"
            s += "<line x1='\(x)' x2='\(x + width)' y1='\(py(yv))' y2='\(py(yv))' stroke='#e4e4e4'/>\n"
        }
        return s
    }
}

/// About five ticks at 1, 2 or 5 × 10ᵏ apart, inside `range`.
private func niceTicks(_ range: ClosedRange<Double>) -> [Double] {
    let span = range.upperBound - range.lowerBound
    guard span > 0, span.isFinite else { return [range.lowerBound] }
    let raw = span / 5, magnitude = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var ticks: [Double] = []
    var v = (range.lowerBound / step).rounded(.up) * step
    while v <= range.upperBound + step * 1e-9 {
        ticks.append(abs(v) < step * 1e-9 ? 0 : v)
        v += step
    }
    return ticks
}

/// The powers of ten inside `range` (at most 8, thinned evenly).
private func decadeTicks(_ range: ClosedRange<Double>) -> [Double] {
    let lo = Int(ceil(log10(range.lowerBound) - 1e-9)), hi = Int(floor(log10(range.upperBound) + 1e-9))
    guard lo <= hi else { return [] }
    let every = max(1, (hi - lo + 1 + 7) / 8)
    return stride(from: lo, through: hi, by: every).map { pow(10, Double($0)) }
}

private func tick(_ v: Double) -> String {
    if v == 0 { return "0" }
    if abs(v) >= 10000 || abs(v) < 0.001 { return String(format: "%.0e", v) }
    if v.rounded() == v { return String(format: "%.0f", v) }
    return String(format: abs(v) >= 10 ? "%.0f" : (abs(v) >= 0.1 ? "%.2f" : "%.3f"), v).replacingOccurrences(of: "0+$", with: "", options: .regularExpression)
}

/// "10⁻¹²".
private func decade(_ v: Double) -> String {
    let exponent = Int(log10(v).rounded())
    let superscripts: [Character: Character] = ["-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹"]
    return "10" + String(String(exponent).map { superscripts[$0]! })
}

private func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}

/// `text` as SVG lines of at most `width` characters, broken at spaces, from baseline `y`, `spacing` apart.
private func wrapped(_ text: String, x: Double, y: Double, width: Int, size: Int, spacing: Double) -> (svg: String, lines: Int) {
    var lines: [String] = [], current = ""
    for word in text.split(separator: " ") {
        if !current.isEmpty && current.count + 1 + word.count > width { lines.append(current); current = "" }
        current += (current.isEmpty ? "" : " ") + word
    }
    if !current.isEmpty { lines.append(current) }
    let svg = lines.enumerated().map { k, line in
        "<text x='\(x)' y='\(y + Double(k) * spacing)' font-size='\(size)'>\(escape(line))</text>\n"
    }.joined()
    return (svg, lines.count)
}

private func svg(width: Int, height: Int, _ body: String) -> String {
    "<svg xmlns='http://www.w3.org/2000/svg' width='\(width)' height='\(height)' viewBox='0 0 \(width) \(height)' font-family='sans-serif'>\n"
        + "<rect width='100%' height='100%' fill='white'/>\n" + body + "</svg>\n"
}

/// A legend of line samples and labels from (x, y), wrapping onto a new row before `maxX`; returns the SVG and
/// the height it takes.
private func legend(_ entries: [(String, String, Bool)], x: Double, y: Double, maxX: Double = 920) -> (svg: String, height: Double) {
    var s = "", at = x, row = y
    for (label, colour, dashed) in entries {
        let width = 44 + Double(label.count) * 7
        if at > x && at + width > maxX {
            at = x
            row += 20
        }
        s += "<line x1='\(at)' x2='\(at + 28)' y1='\(row)' y2='\(row)' stroke='\(colour)' stroke-width='2.5'" + (dashed ? " stroke-dasharray='6,4'" : "") + "/>"
        s += "<text x='\(at + 34)' y='\(row + 4)' font-size='12'>\(escape(label))</text>\n"
        at += width
    }
    return (s, row - y + 20)
}

/// Per-epoch mean, min and max of `metric` over the rounds of one engine.
private func band(_ experiment: ExperimentRecord, _ engine: String, _ metric: (EpochMetrics) -> Double)
    -> [(epoch: Int, mean: Double, low: Double, high: Double)] {
    let traces = experiment.rounds.compactMap { $0.engine(engine)?.epochs }
    let length = traces.map(\.count).min() ?? 0
    return (0..<length).compactMap { e in
        let values = traces.map { metric($0[e]) }.filter(\.isFinite)
        guard !values.isEmpty else { return nil }
        return (traces[0][e].epoch, values.reduce(0, +) / Double(values.count), values.min()!, values.max()!)
    }
}

private func polyline(_ points: [(Double, Double)], colour: String, width: Double, dashed: Bool = false) -> String {
    guard !points.isEmpty else { return "" }
    let text = points.map { "\(String(format: "%.2f", $0.0)),\(String(format: "%.2f", $0.1))" }.joined(separator: " ")
    return "<polyline points='\(text)' fill='none' stroke='\(colour)' stroke-width='\(width)'" + (dashed ? " stroke-dasharray='6,4'" : "") + "/>\n"
}

/// Loss and accuracy curves per epoch for Framework and Reference: mean over the rounds, and a band from the
/// lowest to the highest round. Four panels: train loss, test loss (log scale, decade ticks), train accuracy,
/// test accuracy (scaled to the data, with the published mean ± σ as a green band where there is one).
public func curvesSVG(_ experiment: ExperimentRecord) -> String {
    let engines = [EngineName.framework, EngineName.reference]
    let metrics: [(String, String, (EpochMetrics) -> Double, Bool)] = [
        ("train loss", "trainLoss", { $0.trainLoss }, true), ("test (validation) loss", "testLoss", { $0.testLoss }, true),
        ("train accuracy", "trainAccuracy", { $0.trainAccuracy }, false), ("test accuracy", "testAccuracy", { $0.testAccuracy }, false),
    ]
    var body = "<text x='20' y='26' font-size='16'>\(escape(experiment.name)): \(counted(experiment.rounds.count, "round")), mean and min–max band</text>\n"
    let subtitle = wrapped(experiment.configuration, x: 20, y: 46, width: 130, size: 11, spacing: 14)
    body += subtitle.svg
    let key = legend([("Framework", frameworkColour, false), ("Reference", referenceColour, true)], x: 20, y: 56 + Double(subtitle.lines) * 14 + 4)
    body += key.svg
    let top = 56 + Double(subtitle.lines) * 14 + key.height - 20
    for (index, (title, key, metric, isLoss)) in metrics.enumerated() {
        let bands = engines.map { band(experiment, $0, metric) }
        let all = bands.flatMap { $0.flatMap { [$0.low, $0.high] } }.filter { $0.isFinite && (!isLoss || $0 > 0) }
        let maxEpoch = Double(max(bands.flatMap { $0.map(\.epoch) }.max() ?? 1, 1))
        var yRange: ClosedRange<Double> = 0...1
        let published = experiment.published.first { $0.metric == key && $0.mean != nil }
        if isLoss, let lo = all.min(), let hi = all.max() {
            yRange = pow(10, floor(log10(max(lo, 1e-300))))...pow(10, ceil(log10(max(hi, lo * 10))))
        } else if !isLoss, let lo = all.min(), let hi = all.max() {
            var low = lo, high = hi
            if let published, let mean = published.mean {
                low = min(low, mean - (published.sd ?? 0)); high = max(high, mean + (published.sd ?? 0))
            }
            let pad = max((high - low) * 0.08, 0.005)
            yRange = max(0, low - pad)...min(1, high + pad)
        }
        let panel = Panel(x: Double(90 + (index % 2) * 460), y: top + 40 + Double(index / 2) * 300, width: 360, height: 220,
                          xRange: 0...maxEpoch, yRange: yRange, logY: isLoss)
        body += panel.axes(title: title, xLabel: "epoch", yLabel: isLoss ? "loss (log scale)" : "accuracy (fraction)")
        if let published, let mean = published.mean {
            let sd = published.sd ?? 0
            let y1 = panel.py(min(mean + sd, yRange.upperBound)), y2 = panel.py(max(mean - sd, yRange.lowerBound))
            body += "<rect x='\(panel.x)' y='\(y1)' width='\(panel.width)' height='\(max(y2 - y1, 1.5))' fill='\(publishedColour)' fill-opacity='0.18'/>\n"
            // Inside the panel, at its foot, where the curves have long left (they start at chance and rise).
            body += "<text x='\(panel.x + panel.width - 6)' y='\(panel.y + panel.height - 8)' text-anchor='end' font-size='11' fill='\(publishedColour)'>green band: published \(fraction(mean))\(sd > 0 ? " ± \(fraction(sd))" : "") (\(escape(published.report)))</text>\n"
        }
        for (engine, points) in zip(engines, bands) where !points.isEmpty {
            let colour = engine == EngineName.framework ? frameworkColour : referenceColour
            let upper = points.map { "\(panel.px(Double($0.epoch))),\(panel.py($0.high))" }
            let lower = points.reversed().map { "\(panel.px(Double($0.epoch))),\(panel.py($0.low))" }
            body += "<polygon points='\((upper + lower).joined(separator: " "))' fill='\(colour)' fill-opacity='0.15' stroke='none'/>\n"
            body += polyline(points.map { (panel.px(Double($0.epoch)), panel.py($0.mean)) }, colour: colour,
                             width: engine == EngineName.framework ? 3 : 2, dashed: engine == EngineName.reference)
        }
    }
    return svg(width: 940, height: Int(top + 40 + 600), body)
}

/// Per epoch, how far the engines are apart against how far rounding alone moves Framework: the largest
/// relative difference over the rounds of the train and test losses between Framework and Reference, the
/// shadow's difference (Framework against itself nudged by one ulp), the rtol line, and a marker at the first
/// epoch the trajectories separated (where the difference left the tolerance and passed only within the
/// shadow's allowance). Log scale; exact agreement (a difference of 0) is drawn at the panel's floor.
public func differencesSVG(_ experiment: ExperimentRecord, tolerances: Tolerances) -> String {
    func series(_ a: String, _ b: String, _ metric: (EpochMetrics) -> Double) -> [(Int, Double)] {
        var worst: [Int: Double] = [:]
        for round in experiment.rounds {
            guard let x = round.engine(a), let y = round.engine(b) else { continue }
            for (p, q) in zip(x.epochs, y.epochs) where p.epoch == q.epoch {
                worst[p.epoch] = max(worst[p.epoch] ?? 0, relativeDifference(metric(p), metric(q)))
            }
        }
        return worst.keys.sorted().map { ($0, worst[$0]!) }
    }
    let lines: [(String, [(Int, Double)], String, Bool)] = [
        ("train loss, Framework vs Reference", series(EngineName.framework, EngineName.reference, \.trainLoss), frameworkColour, false),
        ("test loss, Framework vs Reference", series(EngineName.framework, EngineName.reference, \.testLoss), referenceColour, true),
        ("train loss, Framework vs its shadow", series(EngineName.framework, EngineName.shadow, \.trainLoss), shadowColour, false),
    ]
    let values = lines.flatMap { $0.1.map(\.1) }.filter { $0 > 0 && $0.isFinite } + [tolerances.rtol]
    let floor = pow(10, Foundation.floor(log10(max(values.min() ?? 1e-17, 1e-18))) - 1)
    let ceiling = pow(10, ceil(log10(max(values.max() ?? 1, floor * 100))))
    let maxEpoch = Double(max(lines.flatMap { $0.1.map(\.0) }.max() ?? 1, 1))
    var body = "<text x='20' y='26' font-size='16'>\(escape(experiment.name)): how far the engines are apart, per epoch (worst of \(counted(experiment.rounds.count, "round")))</text>\n"
    let note = wrapped("Relative difference |a − b| / max(|a|, |b|). Grey: Framework against itself from initial parameters nudged by one ulp, the run's own sensitivity to rounding. Purple: the comparability horizon, from which curves are not compared (the referee's replay of each engine is the evidence there). Red: rtol; a 0 is drawn at the floor.",
                       x: 20, y: 46, width: 130, size: 11, spacing: 14)
    body += note.svg
    let key = legend(lines.map { ($0.0, $0.2, $0.3) } + [("rtol \(tolerances.rtol)", toleranceColour, true)], x: 20, y: 56 + Double(note.lines) * 14 + 4)
    body += key.svg
    let top = 56 + Double(note.lines) * 14 + key.height - 20
    let panel = Panel(x: 90, y: top + 40, width: 800, height: 300, xRange: 0...maxEpoch, yRange: floor...ceiling, logY: true)
    body += panel.axes(title: "relative loss difference", xLabel: "epoch", yLabel: "relative difference (log scale)")
    body += "<line x1='\(panel.x)' x2='\(panel.x + panel.width)' y1='\(panel.py(tolerances.rtol))' y2='\(panel.py(tolerances.rtol))' stroke='\(toleranceColour)' stroke-dasharray='4,3'/>\n"
    for (_, points, colour, dashed) in lines {
        body += polyline(points.map { (panel.px(Double($0.0)), panel.py(max($0.1, floor))) }, colour: colour, width: 2, dashed: dashed)
    }
    if let separated = experiment.rounds.compactMap({ $0.parity.horizon }).min() {
        let x = panel.px(Double(separated))
        body += "<line x1='\(x)' x2='\(x)' y1='\(panel.y)' y2='\(panel.y + panel.height)' stroke='#9467bd' stroke-width='2'/>\n"
        // At the foot of the panel, on the side of the line with room for it.
        let right = x > panel.x + panel.width * 0.6
        body += "<text x='\(right ? x - 6 : x + 6)' y='\(panel.y + panel.height - 8)' font-size='11' fill='#9467bd'"
            + (right ? " text-anchor='end'" : "") + ">comparability horizon: epoch \(separated)</text>\n"
    }
    return svg(width: 940, height: Int(top + 40 + 360), body)
}

/// The class an output row predicts: argmax for two or more outputs (NaN as the maximum), `≥ 0.5` for one.
private func predictedClass(_ y: Matrix, _ row: Int) -> Int {
    if y.columns == 1 { return y[row, 0] >= 0.5 ? 1 : 0 }
    return argmax(y.elements[(row * y.columns)..<((row + 1) * y.columns)])
}

/// The region drawn for two-dimensional inputs: the data's bounding box with a margin, so that no point is on
/// the frame (XOR's corners included).
private func region(_ inputs: Matrix) -> (x: ClosedRange<Double>, y: ClosedRange<Double>) {
    let xs = (0..<inputs.rows).map { inputs[$0, 0] }, ys = (0..<inputs.rows).map { inputs[$0, 1] }
    func padded(_ v: [Double]) -> ClosedRange<Double> {
        let lo = v.min() ?? 0, hi = v.max() ?? 1, pad = max((hi - lo) * 0.06, 0.05)
        return (lo - pad)...(hi + pad)
    }
    return (padded(xs), padded(ys))
}

/// The true boundary of disk data in the plotted coordinates: the circle at (0.5, 0.5) of radius 1/√(2π), an
/// ellipse once the inputs are z-scored.
public struct Boundary {
    public var centre: (x: Double, y: Double)
    public var radius: (x: Double, y: Double)

    /// For a round of disk data, raw or normalised; nil for other data.
    public init?(_ round: MaterializedRound) {
        guard case .disk = round.experiment.data else { return nil }
        let r = 1 / (2 * Double.pi).squareRoot()
        if let (mean, deviation) = round.normalization {
            centre = ((0.5 - mean[0]) / deviation[0], (0.5 - mean[1]) / deviation[1])
            radius = (r / deviation[0], r / deviation[1])
        } else {
            centre = (0.5, 0.5)
            radius = (r, r)
        }
    }
}

private func boundarySVG(_ boundary: Boundary?, _ panel: Panel) -> String {
    guard let boundary else { return "" }
    let rx = panel.px(boundary.centre.x + boundary.radius.x) - panel.px(boundary.centre.x)
    let ry = panel.py(boundary.centre.y) - panel.py(boundary.centre.y + boundary.radius.y)
    return "<ellipse cx='\(panel.px(boundary.centre.x))' cy='\(panel.py(boundary.centre.y))' rx='\(rx)' ry='\(ry)' fill='none' stroke='black' stroke-width='1.5'/>\n"
}

/// The test set coloured by each engine's prediction (after the last epoch of the round where the engines
/// differ most), with the true boundary drawn; misclassified points are crosses. Needs two-dimensional inputs.
public func predictionsSVG(name: String, test: Dataset, framework: Matrix, reference: Matrix, boundary: Boundary?) -> String {
    var body = "<text x='20' y='26' font-size='16'>\(escape(name)): the test set coloured by predicted class; × misclassified</text>\n"
    let colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    let area = region(test.inputs)
    for (index, (title, outputs)) in [("Framework", framework), ("Reference", reference)].enumerated() {
        let panel = Panel(x: Double(70 + index * 450), y: 70, width: 380, height: 380, xRange: area.x, yRange: area.y)
        var wrong = 0
        var points = ""
        for n in 0..<test.count {
            let predicted = predictedClass(outputs, n), truth = predictedClass(test.targets, n)
            let cx = panel.px(test.inputs[n, 0]), cy = panel.py(test.inputs[n, 1])
            let colour = colours[predicted % colours.count]
            if predicted == truth {
                points += "<circle cx='\(String(format: "%.1f", cx))' cy='\(String(format: "%.1f", cy))' r='2.5' fill='\(colour)'/>\n"
            } else {
                wrong += 1
                points += "<path d='M\(cx - 4),\(cy - 4)L\(cx + 4),\(cy + 4)M\(cx - 4),\(cy + 4)L\(cx + 4),\(cy - 4)' stroke='\(colour)' stroke-width='2'/>\n"
            }
        }
        body += panel.axes(title: "\(title): \(wrong) of \(test.count) misclassified", xLabel: "x₁", yLabel: "x₂") + points
        body += boundarySVG(boundary, panel)
    }
    body += "<text x='70' y='500' font-size='12'>colour: predicted class (blue 0, orange 1)"
        + (boundary == nil ? "" : "; black: the true boundary, the circle of radius 1/√(2π) at (0.5, 0.5) in the raw inputs") + "</text>\n"
    return svg(width: 940, height: 520, body)
}

/// A `resolution × resolution` grid of cell centres over the region the inputs cover (padded), row-major from
/// the bottom, with the region.
public func gridInputs(resolution: Int, around inputs: Matrix) -> (inputs: Matrix, x: ClosedRange<Double>, y: ClosedRange<Double>, resolution: Int) {
    let area = region(inputs)
    var grid = Matrix(rows: resolution * resolution, columns: 2)
    for i in 0..<resolution {
        for j in 0..<resolution {
            grid[i * resolution + j, 0] = area.x.lowerBound + (Double(j) + 0.5) / Double(resolution) * (area.x.upperBound - area.x.lowerBound)
            grid[i * resolution + j, 1] = area.y.lowerBound + (Double(i) + 0.5) / Double(resolution) * (area.y.upperBound - area.y.lowerBound)
        }
    }
    return (grid, area.x, area.y, resolution)
}

/// Where the two engines' decisions differ on a dense grid: each engine's decision region lightly shaded,
/// cells where they differ in solid red, the true boundary for disk data, and the count in the title. Runs of
/// equal cells in a row are drawn as one rectangle, which keeps the file small.
public func decisionDifferenceSVG(name: String, grid: (inputs: Matrix, x: ClosedRange<Double>, y: ClosedRange<Double>, resolution: Int),
                                  framework: Matrix, reference: Matrix, boundary: Boundary? = nil) -> (svg: String, differing: Int) {
    let resolution = grid.resolution
    let panel = Panel(x: 80, y: 70, width: 480, height: 480, xRange: grid.x, yRange: grid.y)
    let cell = panel.width / Double(resolution)
    var differing = 0
    var cells = ""
    for i in 0..<resolution {
        var runStart = 0
        var runColour = ""
        func flush(_ end: Int) {
            guard end > runStart else { return }
            cells += "<rect x='\(String(format: "%.2f", panel.x + Double(runStart) * cell))' y='\(String(format: "%.2f", panel.y + panel.height - Double(i + 1) * cell))' "
                + "width='\(String(format: "%.2f", Double(end - runStart) * cell + 0.3))' height='\(String(format: "%.2f", cell + 0.3))' fill='\(runColour)'/>\n"
        }
        for j in 0..<resolution {
            let k = i * resolution + j
            let a = predictedClass(framework, k), b = predictedClass(reference, k)
            if a != b { differing += 1 }
            let colour = a != b ? "#d62728" : (a == 1 ? "#f6c9a4" : "#c6d5ea")
            if colour != runColour { flush(j); runStart = j; runColour = colour }
        }
        flush(resolution)
    }
    var body = "<text x='20' y='26' font-size='15'>\(escape(name)): the two engines' decisions on a \(resolution)×\(resolution) grid</text>\n"
    body += "<g shape-rendering='crispEdges'>\n" + cells + "</g>\n"
    body += boundarySVG(boundary, panel)
    body += panel.axes(title: "\(differing) of \(resolution * resolution) cells differ (red)", xLabel: "x₁", yLabel: "x₂")
    body += "<text x='80' y='625' font-size='12'>light orange: both predict class 1; light blue: both predict class 0; red: the engines disagree</text>\n"
    if boundary != nil { body += "<text x='80' y='643' font-size='12'>black: the true boundary</text>\n" }
    return (svg(width: 700, height: 660, body), differing)
}
