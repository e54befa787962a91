import Framework
import TestSupport
import XCTest

/// Every module's and every loss's backward against central finite differences (see `GradientChecker`
/// for h and the tolerances). Inputs are seeded and kept at least 0.1 away from the kinks of ReLU,
/// LeakyReLU (x = 0) and MAE (p = t). Each test prints one line per tensor with its largest relative error.
final class GradientCheckTests: XCTestCase {
    var generator = Xoshiro256StarStar(seed: 20_261_121)

    /// A `(rows, columns)` matrix of draws in ±[0.1, 1.5): random sign, clear of 0.
    func clearOfZero(_ rows: Int, _ columns: Int) -> Matrix {
        var m = randomMatrix(rows, columns, in: 0.1...1.5, generator: &generator)
        for k in m.elements.indices where generator.uniform() < 0.5 { m.elements[k].negate() }
        return m
    }

    func checkModule(_ module: Module, batch: Int = 4, width: Int = 3, file: StaticString = #filePath, line: UInt = #line) {
        let input = clearOfZero(batch, module.inputWidth ?? width)
        assertGradientsMatch(GradientChecker().check(module, input: input, generator: &generator), file: file, line: line)
    }

    func testLinear() {
        checkModule(Linear(3, 4, generator: &generator))
    }

    func testLinearSingleSample() {
        checkModule(Linear(5, 2, generator: &generator), batch: 1)
    }

    func testReLU() { checkModule(ReLU(), width: 5) }

    func testLeakyReLU() { checkModule(LeakyReLU(slope: 0.1), width: 5) }

    func testLeakyReLUDefaultSlope() { checkModule(LeakyReLU(), width: 5) }

    func testTanh() { checkModule(Tanh(), width: 5) }

    func testSigmoid() { checkModule(Sigmoid(), width: 5) }

    /// Every module kind in one network: Linear, ReLU, Tanh, Sigmoid, LeakyReLU.
    func testDeepSequential() throws {
        let model = try Sequential([
            Linear(3, 6, generator: &generator), ReLU(),
            Linear(6, 5, generator: &generator), Tanh(),
            Linear(5, 4, generator: &generator), Sigmoid(),
            Linear(4, 4, generator: &generator), LeakyReLU(slope: 0.05),
            Linear(4, 2, generator: &generator),
        ])
        checkModule(model, batch: 5)
    }

    func testMSE() {
        let p = randomMatrix(4, 3, generator: &generator), t = randomMatrix(4, 3, generator: &generator)
        assertGradientsMatch(GradientChecker().check(MSELoss(), predictions: p, targets: t))
    }

    func testMAE() {
        let t = randomMatrix(4, 3, generator: &generator)
        var p = clearOfZero(4, 3)
        for k in p.elements.indices { p.elements[k] += t.elements[k] }  // |p − t| ≥ 0.1
        assertGradientsMatch(GradientChecker().check(MAELoss(), predictions: p, targets: t))
    }

    func testBCE() {
        let p = randomMatrix(4, 2, in: 0.05...0.95, generator: &generator)
        let t = randomMatrix(4, 2, in: 0...1, generator: &generator)
        assertGradientsMatch(GradientChecker().check(BCELoss(), predictions: p, targets: t))
    }

    func testBCEWithHardTargets() {
        let p = randomMatrix(6, 1, in: 0.05...0.95, generator: &generator)
        let t = Dataset.targets(labels: [0, 1, 1, 0, 1, 0], width: 1)
        assertGradientsMatch(GradientChecker().check(BCELoss(), predictions: p, targets: t))
    }

    func testCrossEntropy() {
        let z = randomMatrix(5, 4, in: -3...3, generator: &generator)
        let t = randomMatrix(5, 4, in: 0...1, generator: &generator)  // class = argmax of each row
        assertGradientsMatch(GradientChecker().check(CrossEntropyLoss(), predictions: z, targets: t))
    }

    func testCrossEntropyTwoClasses() {
        let z = randomMatrix(3, 2, in: -3...3, generator: &generator)
        let t = Dataset.targets(labels: [1, 0, 1], width: 2)
        assertGradientsMatch(GradientChecker().check(CrossEntropyLoss(), predictions: z, targets: t))
    }
}
