import Foundation
import Framework

// SVG figures (`--plots DIR`), written by hand: no plotting library. Each figure is self-contained and
// opens in a browser. Colours: Framework blue, Reference orange (drawn dashed on top, so where the curves
// coincide both are visible).

private let frameworkColour = "#1f77b4"
private let referenceColour = "#ff7f0e"

/// A rectangle of an SVG in which data coordinates are mapped to pixels.
private struct Panel {
    var x: Double, y: Double, width: Double, height: Double
    var xRange: ClosedRange<Double>, yRange: ClosedRange<Double>
    var logY = false

    func px(_ v: Double) -> Double { x + (v - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * width }
    func py(_ v: Double) -> Double {
        let (lo, hi, w) = logY ? (log10(yRange.lowerBound), log10(yRange.upperBound), log10(max(v, yRange.lowerBound)))
                               : (yRange.lowerBound, yRange.upperBound, v)
        return y + height - (w - lo) / (hi - lo) * height
    }

    func axes(title: String, xLabel: String, yLabel: String) -> String {
        var s = "<rect x='\(x)' y='\(y)' width='\(width)' height='\(height)' fill='none' stroke='#333'/>\n"
        s += "<text x='\(x + width / 2)' y='\(y - 8)' text-anchor='middle' font-size='14'>\(escape(title))</text>\n"
        s += "<text x='\(x + width / 2)' y='\(y + height + 34)' text-anchor='middle' font-size='12'>\(escape(xLabel))</text>\n"
        s += "<text transform='translate(\(x - 48),\(y + height / 2)) rotate(-90)' text-anchor='middle' font-size='12'>\(escape(yLabel))</text>\n"
        for i in 0...4 {
            let xv = xRange.lowerBound + Double(i) / 4 * (xRange.upperBound - xRange.lowerBound)
            s += "<text x='\(px(xv))' y='\(y + height + 16)' text-anchor='middle' font-size='10'>\(tick(xv))</text>\n"
            let yv: Double
            if logY {
                let lo = log10(yRange.lowerBound), hi = log10(yRange.upperBound)
                yv = pow(10, lo + Double(i) / 4 * (hi - lo))
            } else {
                yv = yRange.lowerBound + Double(i) / 4 * (yRange.upperBound - yRange.lowerBound)
            }
            s += "<text x='\(x - 6)' y='\(py(yv) + 4)' text-anchor='end' font-size='10'>\(tick(yv))</text>\n"
            s += "<line x1='\(x)' x2='\(x + width)' y1='\(py(yv))' y2='\(py(yv))' stroke='#ddd'/>\n"
        }
        return s
    }
}

private func tick(_ v: Double) -> String {
    if v == 0 { return "0" }
    if abs(v) >= 1000 || abs(v) < 0.01 { return String(format: "%.0e", v) }
    return String(format: abs(v) >= 10 ? "%.0f" : "%.2f", v)
}

private func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}

private func svg(width: Int, height: Int, _ body: String) -> String {
    "<svg xmlns='http://www.w3.org/2000/svg' width='\(width)' height='\(height)' viewBox='0 0 \(width) \(height)' font-family='sans-serif'>\n"
        + "<rect width='100%' height='100%' fill='white'/>\n" + body + "</svg>\n"
}

/// Per-epoch mean, min and max of `metric` over the rounds of one engine.
private func band(_ experiment: ExperimentRecord, _ engine: Engine, _ metric: (EpochRecord) -> Double)
    -> [(epoch: Int, mean: Double, low: Double, high: Double)] {
    let traces = experiment.rounds.compactMap { $0.engines[engine.rawValue]?.epochs }
    let length = traces.map(\.count).min() ?? 0
    return (0..<length).map { e in
        let values = traces.map { metric($0[e]) }.filter(\.isFinite)
        return (traces[0][e].epoch, values.reduce(0, +) / Double(max(values.count, 1)), values.min() ?? .nan, values.max() ?? .nan)
    }
}

/// Loss and accuracy curves per epoch for both engines: mean over the rounds, and a band from the lowest
/// to the highest round. Four panels: train loss, test loss (log scale), train accuracy, test accuracy.
public func curvesSVG(_ experiment: ExperimentRecord) -> String {
    let metrics: [(String, (EpochRecord) -> Double, Bool)] = [
        ("train loss", { $0.trainLoss }, true), ("test (validation) loss", { $0.testLoss }, true),
        ("train accuracy", { $0.trainAccuracy }, false), ("test accuracy", { $0.testAccuracy }, false),
    ]
    var body = "<text x='20' y='24' font-size='16'>\(escape(experiment.name)): \(experiment.rounds.count) round(s), mean and min–max band</text>\n"
    body += "<text x='20' y='44' font-size='11'>\(escape(experiment.configuration))</text>\n"
    body += "<line x1='560' x2='590' y1='20' y2='20' stroke='\(frameworkColour)' stroke-width='3'/><text x='596' y='24' font-size='12'>Framework</text>\n"
    body += "<line x1='680' x2='710' y1='20' y2='20' stroke='\(referenceColour)' stroke-width='2' stroke-dasharray='6,4'/><text x='716' y='24' font-size='12'>Reference</text>\n"
    for (index, (title, metric, isLoss)) in metrics.enumerated() {
        let bands = Engine.allCases.map { band(experiment, $0, metric) }
        let all = bands.flatMap { $0.flatMap { [$0.low, $0.high] } }.filter { $0.isFinite && (!isLoss || $0 > 0) }
        let maxEpoch = Double(max(bands.flatMap { $0.map(\.epoch) }.max() ?? 1, 1))
        var yRange: ClosedRange<Double> = 0...1
        if isLoss, let lo = all.min(), let hi = all.max() { yRange = max(lo, 1e-12)...max(hi, lo * 10, 1e-11) }
        let panel = Panel(x: Double(80 + (index % 2) * 430), y: Double(80 + (index / 2) * 300), width: 340, height: 220,
                          xRange: 0...maxEpoch, yRange: yRange, logY: isLoss)
        body += panel.axes(title: title, xLabel: "epoch", yLabel: isLoss ? "loss (log scale)" : "accuracy")
        for (engine, points) in zip(Engine.allCases, bands) where !points.isEmpty {
            let colour = engine == .framework ? frameworkColour : referenceColour
            let upper = points.map { "\(panel.px(Double($0.epoch))),\(panel.py($0.high))" }
            let lower = points.reversed().map { "\(panel.px(Double($0.epoch))),\(panel.py($0.low))" }
            body += "<polygon points='\((upper + lower).joined(separator: " "))' fill='\(colour)' fill-opacity='0.15' stroke='none'/>\n"
            let mean = points.map { "\(panel.px(Double($0.epoch))),\(panel.py($0.mean))" }.joined(separator: " ")
            body += "<polyline points='\(mean)' fill='none' stroke='\(colour)' stroke-width='\(engine == .framework ? 3 : 2)'"
                + (engine == .reference ? " stroke-dasharray='6,4'" : "") + "/>\n"
        }
    }
    return svg(width: 900, height: 680, body)
}

/// The class an output row predicts: argmax for two or more outputs, `≥ 0.5` for one.
private func predictedClass(_ y: Matrix, _ row: Int) -> Int {
    if y.columns == 1 { return y[row, 0] >= 0.5 ? 1 : 0 }
    var best = 0
    for c in 1..<y.columns where y[row, c] > y[row, best] { best = c }
    return best
}

/// The test set coloured by each engine's prediction (after the last epoch of round 0), with the true
/// circle drawn; misclassified points are drawn as crosses. Needs two-dimensional inputs in [0, 1]².
public func predictionsSVG(name: String, test: Dataset, framework: Matrix, reference: Matrix, disk: Bool) -> String {
    var body = "<text x='20' y='24' font-size='16'>\(escape(name)): test set coloured by predicted class (round 0); × = misclassified</text>\n"
    let colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for (index, (title, outputs)) in [("Framework", framework), ("Reference", reference)].enumerated() {
        let panel = Panel(x: Double(60 + index * 440), y: 60, width: 380, height: 380, xRange: 0...1, yRange: 0...1)
        var wrong = 0
        var points = ""
        for n in 0..<test.count {
            let predicted = predictedClass(outputs, n), truth = predictedClass(test.targets, n)
            let cx = panel.px(test.inputs[n, 0]), cy = panel.py(test.inputs[n, 1])
            let colour = colours[predicted % colours.count]
            if predicted == truth {
                points += "<circle cx='\(cx)' cy='\(cy)' r='2.5' fill='\(colour)'/>\n"
            } else {
                wrong += 1
                points += "<path d='M\(cx - 4),\(cy - 4)L\(cx + 4),\(cy + 4)M\(cx - 4),\(cy + 4)L\(cx + 4),\(cy - 4)' stroke='\(colour)' stroke-width='2'/>\n"
            }
        }
        body += panel.axes(title: "\(title): \(wrong) of \(test.count) misclassified", xLabel: "x₁", yLabel: "x₂") + points
        if disk {
            let r = panel.px(0.5 + 1 / (2 * Double.pi).squareRoot()) - panel.px(0.5)
            body += "<circle cx='\(panel.px(0.5))' cy='\(panel.py(0.5))' r='\(r)' fill='none' stroke='black' stroke-width='1.5'/>\n"
        }
    }
    body += "<text x='60' y='490' font-size='12'>colour: predicted class (blue 0 = outside, orange 1 = inside); black circle: the true boundary, radius 1/√(2π)</text>\n"
    return svg(width: 900, height: 510, body)
}

/// A `resolution × resolution` grid of points covering [0, 1]² (cell centres), row-major from the bottom.
public func gridInputs(resolution: Int) -> Matrix {
    var grid = Matrix(rows: resolution * resolution, columns: 2)
    for i in 0..<resolution {
        for j in 0..<resolution {
            grid[i * resolution + j, 0] = (Double(j) + 0.5) / Double(resolution)
            grid[i * resolution + j, 1] = (Double(i) + 0.5) / Double(resolution)
        }
    }
    return grid
}

/// Where the two engines' decisions differ on a dense grid of [0, 1]²: each engine's decision region
/// lightly shaded, cells where they differ in solid red, the true circle for disk data, and the count in
/// the title. Runs of equal cells in a row are drawn as one rectangle, which keeps the file small.
public func decisionDifferenceSVG(name: String, resolution: Int, framework: Matrix, reference: Matrix,
                                  disk: Bool = false) -> (svg: String, differing: Int) {
    let panel = Panel(x: 70, y: 70, width: 480, height: 480, xRange: 0...1, yRange: 0...1)
    let cell = panel.width / Double(resolution)
    var differing = 0
    var cells = ""
    for i in 0..<resolution {
        var runStart = 0
        var runColour = ""
        func flush(_ end: Int) {
            guard end > runStart else { return }
            cells += "<rect x='\(panel.x + Double(runStart) * cell)' y='\(panel.y + panel.height - Double(i + 1) * cell)' "
                + "width='\(Double(end - runStart) * cell + 0.3)' height='\(cell + 0.3)' fill='\(runColour)'/>\n"
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
    var body = "<text x='20' y='24' font-size='15'>\(escape(name)): the two engines' decisions on a \(resolution)×\(resolution) grid (round 0)</text>\n"
    body += cells
    if disk {
        let r = panel.px(0.5 + 1 / (2 * Double.pi).squareRoot()) - panel.px(0.5)
        body += "<circle cx='\(panel.px(0.5))' cy='\(panel.py(0.5))' r='\(r)' fill='none' stroke='black' stroke-width='1.5'/>\n"
    }
    body += panel.axes(title: "\(differing) of \(resolution * resolution) cells differ (red)", xLabel: "x₁", yLabel: "x₂")
    body += "<text x='70' y='625' font-size='12'>light orange: both predict class 1; light blue: both predict class 0; red: the engines disagree</text>\n"
    if disk { body += "<text x='70' y='643' font-size='12'>black circle: the true boundary, radius 1/√(2π)</text>\n" }
    return (svg(width: 700, height: 660, body), differing)
}
