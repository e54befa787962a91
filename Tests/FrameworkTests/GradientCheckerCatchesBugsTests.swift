import Framework
import TestSupport
import XCTest

// Modules and losses with planted bugs: the gradient checker must report each one, twice: the element check
// names the element (module, tensor, index, analytical, numerical), and the Taylor certificate of that tensor
// falls to order 1, while the tensors the bug leaves alone stay at order 2.

/// Tanh whose derivative is `factor`·(1 − y²): 1.01 is a derivative off by 1 %, −1 the wrong sign
/// (`wrongSign`).
private final class TanhWithScaledDerivative: Module {
    private let tanh = Tanh()
    let factor: Double
    let name: String
    init(factor: Double, name: String? = nil) {
        self.factor = factor
        self.name = name ?? "TanhWithScaledDerivative(\(factor))"
    }
    /// dX = −dY·(1 − y²).
    static var wrongSign: TanhWithScaledDerivative { TanhWithScaledDerivative(factor: -1, name: "TanhWithWrongSign") }
    var inputWidth: Int? { nil }
    func outputWidth(forInputWidth width: Int) -> Int { width }
    var description: String { name }
    func forward(_ input: Matrix) -> Matrix { tanh.forward(input) }
    func backward(_ dOutput: Matrix) -> Matrix {
        var dX = tanh.backward(dOutput)
        for k in dX.elements.indices { dX.elements[k] *= factor }
        return dX
    }
}

/// Linear that forgets its bias gradient: backward leaves db at zero.
private final class LinearWithoutBiasGradient: Module {
    let linear: Linear
    init(_ linear: Linear) { self.linear = linear }
    var inputWidth: Int? { linear.inputWidth }
    func outputWidth(forInputWidth width: Int) -> Int { linear.outWidth }
    var parameters: [Parameter] { linear.parameters }
    var description: String { "LinearWithoutBiasGradient" }
    func forward(_ input: Matrix) -> Matrix { linear.forward(input) }
    func backward(_ dOutput: Matrix) -> Matrix {
        let dX = linear.backward(dOutput)
        linear.bias.zeroGradient()
        return dX
    }
}

/// MSE whose gradient misses the 1/N: ∂L/∂p = 2(p − t).
private struct MSEWithoutMean: Loss {
    var description: String { "MSEWithoutMean" }
    func value(predictions: Matrix, targets: Matrix) -> Double { MSELoss().value(predictions: predictions, targets: targets) }
    func gradient(predictions: Matrix, targets: Matrix) -> Matrix {
        var g = MSELoss().gradient(predictions: predictions, targets: targets)
        for k in g.elements.indices { g.elements[k] *= Double(predictions.elements.count) }
        return g
    }
}

final class GradientCheckerCatchesBugsTests: XCTestCase {
    var generator = Xoshiro256StarStar(seed: 7)

    /// The certificate of `tensor` says order 1, with the last clean halvings' orders within 0.15 of 1.
    func assertFirstOrder(_ report: GradientReport, _ tensor: String, file: StaticString = #filePath, line: UInt = #line) {
        print(report)
        guard let check = report.tensor(tensor) else { return XCTFail("no tensor \(tensor) in \(report.subject)", file: file, line: line) }
        guard case let .firstOrder(order, _) = check.taylor.verdict else {
            return XCTFail("\(tensor): expected order 1, got: \(check.taylor) (orders \(check.taylor.ordersDescription))", file: file, line: line)
        }
        XCTAssertFalse(check.passed, file: file, line: line)
        assertClose(order, 1, rtol: 0, atol: 0.15, "\(tensor): the last clean order; orders \(check.taylor.ordersDescription)", file: file, line: line)
        let tail = check.taylor.cleanOrders.suffix(4)
        XCTAssertEqual(tail.count, 4, "at least four clean halvings: \(check.taylor.ordersDescription)", file: file, line: line)
        for order in tail { assertClose(order, 1, rtol: 0, atol: 0.15, "\(tensor): orders \(check.taylor.ordersDescription)", file: file, line: line) }
        XCTAssertTrue(check.description.contains("order 1: gradient wrong"), check.description, file: file, line: line)
    }

    /// The certificate of `tensor` is a clean order 2.
    func assertSecondOrder(_ report: GradientReport, _ tensor: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let check = report.tensor(tensor) else { return XCTFail("no tensor \(tensor) in \(report.subject)", file: file, line: line) }
        guard case .secondOrder = check.taylor.verdict else {
            return XCTFail("\(tensor): expected order 2, got: \(check.taylor) (orders \(check.taylor.ordersDescription))", file: file, line: line)
        }
    }

    func testCatchesTanhWithWrongSign() {
        let input = randomMatrix(3, 4, generator: &generator)
        let report = GradientChecker().check(TanhWithScaledDerivative.wrongSign, input: input, generator: &generator)
        XCTAssertEqual(report.mismatches.count, 12, "every element of dInput is wrong")
        XCTAssertEqual(Set(report.mismatches.map(\.tensor)), ["dInput"])
        let first = report.mismatches[0]
        assertClose(first.analytical, -first.numerical, rtol: 1e-6, "the analytical value is the negated numerical one")
        XCTAssertTrue(first.description.contains("TanhWithWrongSign dInput[0, 0]: analytical"), first.description)
        assertFirstOrder(report, "dInput")
    }

    func testCatchesLinearWithoutBiasGradient() {
        let module = LinearWithoutBiasGradient(Linear(3, 2, generator: &generator))
        let report = GradientChecker().check(module, input: randomMatrix(4, 3, generator: &generator), generator: &generator)
        XCTAssertEqual(Set(report.mismatches.map(\.tensor)), ["dBias#1"], "only the bias gradient is wrong")
        XCTAssertEqual(report.mismatches.count, 2)
        XCTAssertTrue(report.mismatches.allSatisfy { $0.analytical == 0 && abs($0.numerical) > 1e-3 })
        assertFirstOrder(report, "dBias#1")
        assertSecondOrder(report, "dInput")
        assertSecondOrder(report, "dWeight#0")
    }

    func testCatchesLossMissingOneOverN() {
        let p = randomMatrix(4, 2, generator: &generator), t = randomMatrix(4, 2, generator: &generator)
        let report = GradientChecker().check(MSEWithoutMean(), predictions: p, targets: t, generator: &generator)
        XCTAssertEqual(report.mismatches.count, 8)
        for mismatch in report.mismatches {
            assertClose(mismatch.analytical / mismatch.numerical, 8, rtol: 1e-6, "off by the factor N = 8")
        }
        assertFirstOrder(report, "dPredictions")
    }

    /// A derivative off by 1 %: an element tolerance of 2 % lets it through, the order does not.
    func testCatchesDerivativeOffByOnePercentThatALooseToleranceMisses() {
        let input = randomMatrix(3, 4, generator: &generator)
        var loose = generator, strict = generator  // the same R and directions for both checkers
        let looseReport = GradientChecker(rtol: 0.02).check(TanhWithScaledDerivative(factor: 1.01), input: input, generator: &loose)
        XCTAssertTrue(looseReport.mismatches.isEmpty, "rtol 2 % passes every element: \(looseReport.mismatches)")
        assertClose(looseReport.maxRelativeError, 0.01 / 1.01, rtol: 1e-4, "every element is off by 1 %")
        assertFirstOrder(looseReport, "dInput")
        XCTAssertFalse(looseReport.passed, "the report fails on the order alone")

        let strictReport = GradientChecker().check(TanhWithScaledDerivative(factor: 1.01), input: input, generator: &strict)
        XCTAssertEqual(strictReport.mismatches.count, 12, "the default rtol 10⁻⁶ names every element")
        XCTAssertTrue(strictReport.mismatches[0].description.hasPrefix("TanhWithScaledDerivative(1.01) dInput[0, 0]: analytical"),
                      strictReport.mismatches[0].description)
        assertFirstOrder(strictReport, "dInput")
    }

    /// How small an error the order still sees: a derivative off by 10⁻⁴ passes an element tolerance of 10⁻³ and
    /// still falls to order 1 at the bottom of the ladder.
    func testCatchesDerivativeOffByOneInTenThousand() {
        let input = randomMatrix(3, 4, generator: &generator)
        let report = GradientChecker(rtol: 1e-3).check(TanhWithScaledDerivative(factor: 1 + 1e-4), input: input, generator: &generator)
        XCTAssertTrue(report.mismatches.isEmpty, "\(report.mismatches)")
        assertFirstOrder(report, "dInput")
    }

    func testCorrectModulesPassTheSameChecks() {
        // The controls for the tests above: the unbroken modules pass on the same kind of input, at order 2.
        let input = randomMatrix(3, 4, generator: &generator)
        let tanh = GradientChecker().check(Tanh(), input: input, generator: &generator)
        XCTAssertTrue(tanh.passed, "\(tanh)")
        assertSecondOrder(tanh, "dInput")
        let scaled = GradientChecker().check(TanhWithScaledDerivative(factor: 1), input: input, generator: &generator)
        XCTAssertTrue(scaled.passed, "factor 1 is Tanh: \(scaled)")
        let linear = GradientChecker().check(Linear(4, 2, generator: &generator), input: input, generator: &generator)
        XCTAssertTrue(linear.passed, "\(linear)")
        for name in ["dInput", "dWeight#0", "dBias#1"] { assertSecondOrder(linear, name) }
        let p = randomMatrix(4, 2, generator: &generator), t = randomMatrix(4, 2, generator: &generator)
        let mse = GradientChecker().check(MSELoss(), predictions: p, targets: t, generator: &generator)
        XCTAssertTrue(mse.passed, "\(mse)")
        assertSecondOrder(mse, "dPredictions")
    }

    /// Rounding alone cannot certify anything: f = 10¹⁰ + 10⁻⁸·Σx, whose remainder (the added q·h² ≈ 10⁻¹¹ at
    /// h₀) is below 20 × the floor of a value of size 10¹⁰ (≈ 5·10⁻³) at every step, is inconclusive, a failure,
    /// not a pass. A function that does not change at all, with a zero gradient, is `.flat`: they agree, said,
    /// and a zero gradient where f does change is order 1.
    func testInconclusiveWhenRoundingReachesTheRemainderFirst() {
        let x = randomMatrix(2, 3, generator: &generator)
        let small = CheckedTensor(module: "Huge", name: "dX", value: x, gradient: Matrix(rows: 2, columns: 3, repeating: 1e-8))
        let report = GradientChecker().check("Huge", [small], generator: &generator) { 1e10 + 1e-8 * $0[0].elements.reduce(0, +) }
        print(report)
        let certificate = report.tensors[0].taylor
        guard case .inconclusive = certificate.verdict else { return XCTFail("\(certificate)") }
        XCTAssertFalse(report.passed)
        XCTAssertTrue(certificate.description.contains("rounding reaches the remainder before two clean halvings"), certificate.description)

        let flat = CheckedTensor(module: "Constant", name: "dX", value: x, gradient: Matrix(rows: 2, columns: 3))
        let constant = GradientChecker().check("Constant", [flat], generator: &generator) { _ in 1.5 }
        guard case .flat = constant.tensors[0].taylor.verdict else { return XCTFail("\(constant)") }
        XCTAssertTrue(constant.passed)
        XCTAssertTrue(constant.tensors[0].taylor.description.contains("no order to measure"), "\(constant)")
        let wrongZero = GradientChecker().check("Linear", [flat], generator: &generator) { 1.5 + $0[0].elements.reduce(0, +) }
        guard case .firstOrder = wrongZero.tensors[0].taylor.verdict else { return XCTFail("\(wrongZero)") }
        XCTAssertFalse(wrongZero.passed)
    }

    /// A kink at x itself: f = Σ|x − t| at x = t has no gradient, so every gradient reads order 1; the symmetric
    /// difference f(x + hv) + f(x − hv) − 2f(x), which involves no gradient, reads order 1 too, and the verdict is
    /// `.kinkAtPoint`, a pass that leaves the tensor to its elements. Those still fail a wrong gradient there (0.5
    /// against the central differences' 0). A wrong gradient at a smooth point (the same f one unit away from
    /// its kinks) does not deserve it: its symmetric difference is order 2, and it stays `.firstOrder`.
    func testAKinkAtThePointIsToldFromAWrongGradient() {
        let t = randomMatrix(2, 3, generator: &generator)
        func mae(_ x: [Matrix]) -> Double { zip(x[0].elements, t.elements).reduce(0) { $0 + abs($1.0 - $1.1) } }
        let zero = Matrix(rows: 2, columns: 3)
        let onKink = GradientChecker().check("MAE", [CheckedTensor(module: "MAE", name: "dP", value: t, gradient: zero)],
                                             generator: &generator, mae)
        guard case let .kinkAtPoint(order) = onKink.tensors[0].taylor.verdict else { return XCTFail("\(onKink)") }
        XCTAssertEqual(order, 1, accuracy: 0.2)
        XCTAssertTrue(onKink.passed, "\(onKink)")
        XCTAssertTrue(onKink.tensors[0].taylor.description.contains("x is on a kink"), "\(onKink)")

        let wrong = Matrix(rows: 2, columns: 3, repeating: 0.5)
        let wrongOnKink = GradientChecker().check("MAE", [CheckedTensor(module: "MAE", name: "dP", value: t, gradient: wrong)],
                                                  generator: &generator, mae)
        XCTAssertFalse(wrongOnKink.passed, "a wrong gradient at the kink fails by its elements: \(wrongOnKink)")
        XCTAssertEqual(wrongOnKink.mismatches.count, 6, "\(wrongOnKink)")

        let away = t.elements.map { $0 + 1 }
        let smooth = Matrix(rows: 2, columns: 3, elements: away)
        let wrongSmooth = GradientChecker().check("MAE", [CheckedTensor(module: "MAE", name: "dP", value: smooth, gradient: wrong)],
                                                  generator: &generator, mae)
        guard case .firstOrder = wrongSmooth.tensors[0].taylor.verdict else { return XCTFail("\(wrongSmooth)") }
        XCTAssertFalse(wrongSmooth.passed)
    }

    func testAssertCloseNamesWorstElementAndChecksShapeFirst() {
        let expected = Matrix([[1, 2], [3, 4]])
        XCTAssertNil(closenessFailure(expected, expected, rtol: 0, atol: 0))
        XCTAssertEqual(closenessFailure(Matrix([[1, 2, 3]]), expected, rtol: 1, atol: 1),
                       "shape (rows: 1, columns: 3) ≠ expected (rows: 2, columns: 2)")
        let failure = closenessFailure(Matrix([[1, 2.001], [3.1, 4]]), expected, rtol: 1e-3, atol: 0)
        XCTAssertTrue(failure?.hasPrefix("worst at [1, 0]: actual 3.1, expected 3.0") == true, failure ?? "nil")
        XCTAssertNotNil(closenessFailure(Matrix([[1, .nan], [3, 4]]), expected, rtol: 1, atol: 1), "NaN is never close to a number")
    }
}
