import Framework
import XCTest

/// One gradient element where the analytical backward and the central finite difference disagree.
public struct GradientMismatch: CustomStringConvertible {
    public var module: String
    public var tensor: String
    public var row: Int
    public var column: Int
    public var analytical: Double
    public var numerical: Double
    public var relativeError: Double
    public var description: String {
        "\(module) \(tensor)[\(row), \(column)]: analytical \(analytical), numerical \(numerical), relative error \(relativeError)"
    }
}

/// What a gradient check saw: every mismatch, and the largest relative error per tensor.
public struct GradientReport: CustomStringConvertible {
    public var subject: String
    public var mismatches: [GradientMismatch] = []
    /// (tensor name, largest relative error, elements checked), in checking order.
    public var worstByTensor: [(tensor: String, relativeError: Double, count: Int)] = []
    public var maxRelativeError: Double { worstByTensor.map(\.relativeError).max() ?? 0 }
    public var passed: Bool { mismatches.isEmpty }
    /// One line per tensor, llm.c style: `OK Linear(3 → 4) dInput maxrel=1.2e-10 (12 elements)`.
    public var description: String {
        worstByTensor.map { entry in
            let ok = mismatches.contains { $0.tensor == entry.tensor } ? "FAIL" : "OK"
            return "\(ok) \(subject) \(entry.tensor) maxrel=\(entry.relativeError) (\(entry.count) elements)"
        }.joined(separator: "\n")
    }
}

/// Checks analytical gradients against central finite differences, `(f(v + h) − f(v − h)) / 2h`, in Double.
///
/// An element passes when `|analytical − numerical| ≤ atol + rtol·max(|analytical|, |numerical|)`.
/// Defaults: h = 10⁻⁶, rtol = 10⁻⁶, atol = 10⁻⁹; with h = 10⁻⁶ the difference quotient's own error is
/// about h²·f‴ + ε·|f|/h ≈ 10⁻¹⁰ for these smooth, O(1) functions, so a correct backward passes by
/// four orders of magnitude and a wrong one (a sign, a missing term, a factor) fails by many.
public struct GradientChecker {
    public var step: Double
    public var rtol: Double
    public var atol: Double

    public init(step: Double = 1e-6, rtol: Double = 1e-6, atol: Double = 1e-9) {
        self.step = step
        self.rtol = rtol
        self.atol = atol
    }

    /// Checks `module`'s input gradient and every element of every parameter's gradient at `input`
    /// `(batch, in)`, for the scalar `f = Σ forward(input) ⊙ R` with a fixed random `R` `(batch, out)`
    /// drawn from `generator`, whose gradient with respect to the output is `R` itself.
    public func check(_ module: Module, input: Matrix, generator: inout Xoshiro256StarStar) -> GradientReport {
        let output = module.forward(input)
        let weights = randomMatrix(output.rows, output.columns, generator: &generator)
        func f(_ x: Matrix) -> Double {
            let y = module.forward(x)
            return zip(y.elements, weights.elements).reduce(0) { $0 + $1.0 * $1.1 }
        }
        module.zeroGradients()
        _ = module.forward(input)
        let dInput = module.backward(weights)
        let parameterGradients = module.parameters.map { $0.gradient }

        var report = GradientReport(subject: module.description)
        var x = input
        compare(name: "dInput", analytical: dInput, into: &report) { k, delta in
            let saved = x.elements[k]
            x.elements[k] = saved + delta
            defer { x.elements[k] = saved }
            return f(x)
        }
        for (index, parameter) in module.parameters.enumerated() {
            let name = "d\(parameter.name.prefix(1).uppercased())\(parameter.name.dropFirst())#\(index)"
            compare(name: name, analytical: parameterGradients[index], into: &report) { k, delta in
                let saved = parameter.value.elements[k]
                parameter.value.elements[k] = saved + delta
                defer { parameter.value.elements[k] = saved }
                return f(input)
            }
        }
        return report
    }

    /// Checks `loss.gradient` against finite differences of `loss.value` in the predictions.
    public func check(_ loss: Loss, predictions: Matrix, targets: Matrix) -> GradientReport {
        var report = GradientReport(subject: loss.description)
        var p = predictions
        compare(name: "dPredictions", analytical: loss.gradient(predictions: predictions, targets: targets),
                into: &report) { k, delta in
            let saved = p.elements[k]
            p.elements[k] = saved + delta
            defer { p.elements[k] = saved }
            return loss.value(predictions: p, targets: targets)
        }
        return report
    }

    /// Compares each element of `analytical` with `(f(k, +h) − f(k, −h)) / 2h`.
    private func compare(name: String, analytical: Matrix, into report: inout GradientReport,
                         _ f: (Int, Double) -> Double) {
        var worst = 0.0
        for k in analytical.elements.indices {
            let numerical = (f(k, step) - f(k, -step)) / (2 * step)
            let a = analytical.elements[k]
            let scale = max(abs(a), abs(numerical))
            let relative = scale == 0 ? 0 : abs(a - numerical) / scale
            worst = max(worst, relative.isNaN ? .infinity : relative)
            if !(abs(a - numerical) <= atol + rtol * scale) {
                report.mismatches.append(GradientMismatch(
                    module: report.subject, tensor: name,
                    row: k / max(analytical.columns, 1), column: k % max(analytical.columns, 1),
                    analytical: a, numerical: numerical, relativeError: relative))
            }
        }
        report.worstByTensor.append((name, worst, analytical.elements.count))
    }
}

/// Fails the test with one line per mismatching element (at most 10), naming module, tensor, index,
/// analytical and numerical values and the relative error; prints the per-tensor summary either way.
public func assertGradientsMatch(_ report: GradientReport, file: StaticString = #filePath, line: UInt = #line) {
    print(report.description)
    for mismatch in report.mismatches.prefix(10) {
        XCTFail("gradient check: \(mismatch)", file: file, line: line)
    }
    if report.mismatches.count > 10 {
        XCTFail("gradient check: \(report.mismatches.count - 10) more mismatches in \(report.subject)", file: file, line: line)
    }
    if report.worstByTensor.isEmpty {
        XCTFail("gradient check of \(report.subject) checked nothing", file: file, line: line)
    }
}
