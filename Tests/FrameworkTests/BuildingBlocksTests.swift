import Foundation
import Framework
import TestSupport
import XCTest

/// The pieces around the modules: generator, matrix products, initialisers, data, accuracy, Sequential.
final class BuildingBlocksTests: XCTestCase {
    func testGeneratorIsXoshiro256StarStarSeededBySplitMix64() {
        // Reference values: SplitMix64(0) gives the state words e220a8397b1dcdaf, 6e789e6aa1b965f4,
        // 06c45d188009454f, f88bb8a8724c81ec (Vigna's splitmix64.c); xoshiro256** 1.0 from that state
        // gives 99ec5f36cb75f2b4 then bf6e1f784956452a (computed with Vigna's xoshiro256starstar.c).
        var g = Xoshiro256StarStar(seed: 0)
        XCTAssertEqual(g.next(), 0x99EC_5F36_CB75_F2B4)
        XCTAssertEqual(g.next(), 0xBF6E_1F78_4956_452A)
    }

    func testSameSeedSameNumbersAndStreamsDiffer() {
        var a = Xoshiro256StarStar(seed: 42, stream: 3), b = Xoshiro256StarStar(seed: 42, stream: 3)
        var c = Xoshiro256StarStar(seed: 42, stream: 4)
        let first = (0..<5).map { _ in a.uniform() }
        XCTAssertEqual(first, (0..<5).map { _ in b.uniform() })
        XCTAssertNotEqual(first, (0..<5).map { _ in c.uniform() })
        XCTAssertTrue(first.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    func testUniformAndNormalMoments() {
        var g = Xoshiro256StarStar(seed: 1)
        let n = 100_000
        let u = (0..<n).map { _ in g.uniform(-1, 3) }
        let z = (0..<n).map { _ in g.normal(mean: 2, standardDeviation: 0.5) }
        func meanAndSD(_ v: [Double]) -> (Double, Double) {
            let m = v.reduce(0, +) / Double(v.count)
            return (m, (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot())
        }
        // Standard errors: uniform mean σ/√n = 1.15/316 ≈ 0.004, normal mean 0.5/316 ≈ 0.0016; 5 SE bounds.
        let (um, us) = meanAndSD(u), (zm, zs) = meanAndSD(z)
        assertClose(um, 1, rtol: 0, atol: 0.02)
        assertClose(us, 4 / 12.0.squareRoot(), rtol: 0.01)
        assertClose(zm, 2, rtol: 0, atol: 0.008)
        assertClose(zs, 0.5, rtol: 0.01)
    }

    func testPermutationAndIndexBelow() {
        var g = Xoshiro256StarStar(seed: 9)
        let p = g.permutation(1000)
        XCTAssertEqual(p.sorted(), Array(0..<1000))
        XCTAssertNotEqual(p, Array(0..<1000))
        var counts = [0, 0, 0]
        for _ in 0..<30_000 { counts[g.index(below: 3)] += 1 }
        XCTAssertTrue(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")  // σ ≈ 82
    }

    func testLinearProductsByHand() {
        // x = [[1, 2]], W = [[1, 0], [2, −1], [0.5, 3]] (3 out, 2 in), b = [0.1, 0.2, 0.3]
        // y = x·Wᵀ + b = [1.1, 0.2, 6.8]
        let linear = Linear(weight: Matrix([[1, 0], [2, -1], [0.5, 3]]), bias: Matrix([[0.1, 0.2, 0.3]]))
        XCTAssertEqual(linear.description, "Linear(2 → 3)")
        assertClose(linear(Matrix([[1, 2]])), Matrix([[1.1, 0.2, 6.8]]), rtol: 1e-15)
        // dY = [[1, −1, 2]]: dX = dY·W = [1 − 2 + 1, 0 + 1 + 6] = [0, 7]; dW = dYᵀ·x; db = dY
        assertClose(linear.backward(Matrix([[1, -1, 2]])), Matrix([[0, 7]]), rtol: 1e-15)
        assertClose(linear.weight.gradient, Matrix([[1, 2], [-1, -2], [2, 4]]), rtol: 1e-15)
        assertClose(linear.bias.gradient, Matrix([[1, -1, 2]]), rtol: 1e-15)
        _ = linear.backward(Matrix([[1, -1, 2]]))
        assertClose(linear.bias.gradient, Matrix([[2, -2, 4]]), rtol: 1e-15, "gradients accumulate")
        linear.zeroGradients()
        assertClose(linear.weight.gradient, Matrix(rows: 3, columns: 2), rtol: 0)
    }

    func testDefaultInitialisationBoundsAndOrder() {
        var g = Xoshiro256StarStar(seed: 5)
        let layer = Linear(4, 3, generator: &g)
        XCTAssertTrue((layer.weight.value.elements + layer.bias.value.elements).allSatisfy { abs($0) <= 0.5 }, "U(±1/√4)")
        var replay = Xoshiro256StarStar(seed: 5)
        let firstWeight = replay.uniform(-0.5, 0.5)
        XCTAssertEqual(layer.weight.value[0, 0], firstWeight, "weight is drawn first, from the given generator")
        var x = Xoshiro256StarStar(seed: 5)
        let xavier = Linear(4, 2, initializer: .xavier, generator: &x)
        XCTAssertTrue(xavier.weight.value.elements.allSatisfy { abs($0) <= 1 }, "U(±√(6/6))")
        XCTAssertEqual(xavier.bias.value.elements, [0, 0])
        let uniform = Linear(4, 2, initializer: .uniform(2, 3), generator: &x)
        XCTAssertTrue((uniform.weight.value.elements + uniform.bias.value.elements).allSatisfy { $0 >= 2 && $0 < 3 })
    }

    func testSequentialChecksShapesAtConstruction() throws {
        var g = Xoshiro256StarStar(seed: 1)
        XCTAssertThrowsError(try Sequential([Linear(2, 25, generator: &g), ReLU(), Linear(30, 2, generator: &g)])) { error in
            XCTAssertEqual("\(error)", "Sequential: module 2 (Linear(30 → 2)) takes 30 inputs, but the previous module gives 25")
        }
        XCTAssertThrowsError(try Sequential([ReLU()]))
        let model = try Sequential([Linear(2, 25, generator: &g), ReLU(), Linear(25, 2, generator: &g), Sigmoid()])
        XCTAssertEqual(model.description, "Sequential(Linear(2 → 25), ReLU, Linear(25 → 2), Sigmoid)")
        XCTAssertEqual(model.parameters.map(\.name), ["weight", "bias", "weight", "bias"])
        XCTAssertEqual(model.forward(Matrix(rows: 7, columns: 2)).shape.columns, 2)
    }

    func testActivationsByHand() {
        let x = Matrix([[-2, 0, 3]])
        assertClose(ReLU()(x), Matrix([[0, 0, 3]]), rtol: 0)
        assertClose(LeakyReLU(slope: 0.1)(x), Matrix([[-0.2, 0, 3]]), rtol: 1e-15)
        let relu = ReLU(); _ = relu(x)
        assertClose(relu.backward(Matrix([[1, 1, 1]])), Matrix([[0, 0, 1]]), rtol: 0, "PyTorch: relu′(0) = 0")
        let sigmoid = Sigmoid()
        assertClose(sigmoid(Matrix([[0]])), Matrix([[0.5]]), rtol: 0)
        assertClose(sigmoid.backward(Matrix([[1]])), Matrix([[0.25]]), rtol: 0)
        let tanh = Tanh()
        assertClose(tanh(Matrix([[0.5]])), Matrix([[0.46211715726000974]]), rtol: 1e-15)  // tanh(0.5)
    }

    /// A module's kept buffers take the shape of each call, also when only the shape changes and the element
    /// count does not: an activation (any width) applied to (2, 3) and then to (3, 2) returns (3, 2) both ways,
    /// and `Matrix.reshape` itself keeps the storage but never the old shape.
    func testBuffersFollowTheShapeWhenTheCountStaysTheSame() {
        var m = Matrix([[1, 2, 3], [4, 5, 6]])
        m.reshape(rows: 3, columns: 2)
        XCTAssertEqual(m.shape.rows, 3)
        XCTAssertEqual(m.shape.columns, 2)
        XCTAssertEqual(m.elements.count, 6)
        let tanh = Tanh()
        _ = tanh(Matrix([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
        let tall = Matrix([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
        let y = tanh(tall)
        XCTAssertEqual(y.rows, 3, "forward on (3, 2) after (2, 3)")
        XCTAssertEqual(y.columns, 2)
        assertClose(y, Matrix(rows: 3, columns: 2, elements: tall.elements.map { Foundation.tanh($0) }), rtol: 5e-16, "within 2 ulp")
        let dX = tanh.backward(Matrix(rows: 3, columns: 2, repeating: 1))
        XCTAssertEqual(dX.rows, 3, "backward on (3, 2) after (2, 3)")
        XCTAssertEqual(dX.columns, 2)
    }

    func testLossValuesByHand() {
        let p = Matrix([[0.2, 0.8], [0.6, 0.4]]), t = Matrix([[0, 1], [1, 0]])
        assertClose(MSELoss().value(predictions: p, targets: t), (0.04 + 0.04 + 0.16 + 0.16) / 4, rtol: 1e-15)
        assertClose(MAELoss().value(predictions: p, targets: t), (0.2 + 0.2 + 0.4 + 0.4) / 4, rtol: 1e-15)
        // BCE = −(ln 0.8 + ln 0.8 + ln 0.6 + ln 0.6)/4
        assertClose(BCELoss().value(predictions: p, targets: t), -(2 * 0.8.logValue + 2 * 0.6.logValue) / 4, rtol: 1e-15)
        XCTAssertEqual(BCELoss().value(predictions: Matrix([[0]]), targets: Matrix([[1]])), 100, "log clamped at −100")
        XCTAssertEqual(MAELoss().gradient(predictions: Matrix([[1]]), targets: Matrix([[1]])).elements, [0], "sign(0) = 0")
        // Cross-entropy, logits [0, ln 3] with class 1: −ln(3/4); class 0: −ln(1/4)
        let z = Matrix([[0, 3.0.logValue], [0, 3.0.logValue]])
        assertClose(CrossEntropyLoss().value(predictions: z, targets: t),
                    (-(0.75).logValue - (0.25).logValue) / 2, rtol: 1e-15)
    }

    func testAccuracy() {
        let t2 = Dataset.targets(labels: [1, 0, 1, 0], width: 2)
        XCTAssertEqual(accuracy(predictions: Matrix([[0, 1], [1, 0], [1, 0], [0.5, 0.5]]), targets: t2), 0.75,
                       "row 3 wrong; row 4 ties resolve to the first column, which is right")
        let t1 = Dataset.targets(labels: [1, 0, 1], width: 1)
        XCTAssertEqual(accuracy(predictions: Matrix([[0.5], [0.49], [0.2]]), targets: t1), 2.0 / 3)
    }

    func testDiskData() {
        var g = Xoshiro256StarStar(seed: 3)
        let data = Dataset.disk(count: 10_000, targetWidth: 2, generator: &g)
        XCTAssertEqual(data.inputs.shape.columns, 2)
        let inside = (0..<data.count).filter { data.targets[$0, 1] == 1 }
        // The disk has area 1/2, so about half the points (σ = 50) are inside.
        XCTAssertLessThan(abs(inside.count - 5000), 250)
        for n in 0..<data.count {
            let dx = data.inputs[n, 0] - 0.5, dy = data.inputs[n, 1] - 0.5
            XCTAssertEqual(data.targets[n, 1] == 1, dx * dx + dy * dy < 1 / (2 * Double.pi))
            XCTAssertEqual(data.targets[n, 0] + data.targets[n, 1], 1)
        }
        var again = Xoshiro256StarStar(seed: 3)
        let one = Dataset.disk(count: 10_000, targetWidth: 1, generator: &again)
        XCTAssertEqual(one.inputs, data.inputs, "same seed, same points")
        XCTAssertEqual(one.targets.elements, (0..<data.count).map { data.targets[$0, 1] })
    }
}

private extension Double {
    var logValue: Double { Foundation.log(self) }
}
