import Framework
import TestSupport
import XCTest

// Modules and a loss with planted bugs: the gradient checker must report each one, naming the tensor.

/// Tanh whose backward has the wrong sign: dX = −dY·(1 − y²).
private final class TanhWithWrongSign: Module {
    private let tanh = Tanh()
    var inputWidth: Int? { nil }
    func outputWidth(forInputWidth width: Int) -> Int { width }
    var description: String { "TanhWithWrongSign" }
    func forward(_ input: Matrix) -> Matrix { tanh.forward(input) }
    func backward(_ dOutput: Matrix) -> Matrix {
        var dX = tanh.backward(dOutput)
        for k in dX.elements.indices { dX.elements[k].negate() }
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

    func testCatchesTanhWithWrongSign() {
        let input = randomMatrix(3, 4, generator: &generator)
        let report = GradientChecker().check(TanhWithWrongSign(), input: input, generator: &generator)
        XCTAssertEqual(report.mismatches.count, 12, "every element of dInput is wrong")
        XCTAssertEqual(Set(report.mismatches.map(\.tensor)), ["dInput"])
        let first = report.mismatches[0]
        assertClose(first.analytical, -first.numerical, rtol: 1e-6, "the analytical value is the negated numerical one")
        XCTAssertTrue(first.description.contains("TanhWithWrongSign dInput[0, 0]: analytical"), first.description)
    }

    func testCatchesLinearWithoutBiasGradient() {
        let module = LinearWithoutBiasGradient(Linear(3, 2, generator: &generator))
        let report = GradientChecker().check(module, input: randomMatrix(4, 3, generator: &generator), generator: &generator)
        XCTAssertEqual(Set(report.mismatches.map(\.tensor)), ["dBias#1"], "only the bias gradient is wrong")
        XCTAssertEqual(report.mismatches.count, 2)
        XCTAssertTrue(report.mismatches.allSatisfy { $0.analytical == 0 && abs($0.numerical) > 1e-3 })
    }

    func testCatchesLossMissingOneOverN() {
        let p = randomMatrix(4, 2, generator: &generator), t = randomMatrix(4, 2, generator: &generator)
        let report = GradientChecker().check(MSEWithoutMean(), predictions: p, targets: t)
        XCTAssertEqual(report.mismatches.count, 8)
        for mismatch in report.mismatches {
            assertClose(mismatch.analytical / mismatch.numerical, 8, rtol: 1e-6, "off by the factor N = 8")
        }
    }

    func testCorrectModulesPassTheSameChecks() {
        // The controls for the three tests above: the unbroken modules pass on the same kind of input.
        let input = randomMatrix(3, 4, generator: &generator)
        XCTAssertTrue(GradientChecker().check(Tanh(), input: input, generator: &generator).passed)
        XCTAssertTrue(GradientChecker().check(Linear(4, 2, generator: &generator), input: input, generator: &generator).passed)
        let p = randomMatrix(4, 2, generator: &generator), t = randomMatrix(4, 2, generator: &generator)
        XCTAssertTrue(GradientChecker().check(MSELoss(), predictions: p, targets: t).passed)
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
