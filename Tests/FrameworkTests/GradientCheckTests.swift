import Framework
import TestSupport
import XCTest

/// Every module's and every loss's backward against central finite differences and the Taylor certificate
/// (see `GradientChecker` and `TaylorLadder` for h, the ladder and the thresholds). Inputs are seeded and kept
/// at least 0.1 away from the kinks of ReLU, LeakyReLU (x = 0) and MAE (p = t), so every certificate must be
/// a clean order 2 (`assertGradientsMatch`), and the median of each tensor's clean orders within 0.05 of 2.
/// Each test prints one line per tensor: its largest relative error, the verdict and every halving's order.
final class GradientCheckTests: XCTestCase {
    var generator = Xoshiro256StarStar(seed: 20_261_121)

    /// Both checks pass, and the orders are 2: the median clean order of every tensor within 0.05 of 2.
    func assertCertified(_ report: GradientReport, file: StaticString = #filePath, line: UInt = #line) {
        assertGradientsMatch(report, file: file, line: line)
        for tensor in report.tensors {
            let orders = tensor.taylor.cleanOrders.sorted()
            guard !orders.isEmpty else { continue }  // assertGradientsMatch has failed already
            assertClose(orders[orders.count / 2], 2, rtol: 0, atol: 0.05,
                        "median clean order of \(tensor.module) \(tensor.tensor): \(tensor.taylor.ordersDescription)", file: file, line: line)
        }
    }

    /// A `(rows, columns)` matrix of draws in ±[0.1, 1.5): random sign, clear of 0.
    func clearOfZero(_ rows: Int, _ columns: Int) -> Matrix {
        var m = randomMatrix(rows, columns, in: 0.1...1.5, generator: &generator)
        for k in m.elements.indices where generator.uniform() < 0.5 { m.elements[k].negate() }
        return m
    }

    func checkModule(_ module: Module, batch: Int = 4, width: Int = 3, file: StaticString = #filePath, line: UInt = #line) {
        let input = clearOfZero(batch, module.inputWidth ?? width)
        assertCertified(GradientChecker().check(module, input: input, generator: &generator), file: file, line: line)
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

    func testGELU() { checkModule(GELU(), width: 5) }

    /// Every module kind in one network: Linear, ReLU, Tanh, Sigmoid, LeakyReLU, GELU.
    func testDeepSequential() throws {
        let model = try Sequential([
            Linear(3, 6, generator: &generator), ReLU(),
            Linear(6, 5, generator: &generator), Tanh(),
            Linear(5, 4, generator: &generator), Sigmoid(),
            Linear(4, 4, generator: &generator), LeakyReLU(slope: 0.05),
            Linear(4, 3, generator: &generator), GELU(),
            Linear(3, 2, generator: &generator),
        ])
        checkModule(model, batch: 5)
    }

    func testMSE() {
        let p = randomMatrix(4, 3, generator: &generator), t = randomMatrix(4, 3, generator: &generator)
        assertCertified(GradientChecker().check(MSELoss(), predictions: p, targets: t, generator: &generator))
    }

    func testMAE() {
        let t = randomMatrix(4, 3, generator: &generator)
        var p = clearOfZero(4, 3)
        for k in p.elements.indices { p.elements[k] += t.elements[k] }  // |p − t| ≥ 0.1
        assertCertified(GradientChecker().check(MAELoss(), predictions: p, targets: t, generator: &generator))
    }

    func testBCE() {
        let p = randomMatrix(4, 2, in: 0.05...0.95, generator: &generator)
        let t = randomMatrix(4, 2, in: 0...1, generator: &generator)
        assertCertified(GradientChecker().check(BCELoss(), predictions: p, targets: t, generator: &generator))
    }

    func testBCEWithHardTargets() {
        let p = randomMatrix(6, 1, in: 0.05...0.95, generator: &generator)
        let t = Dataset.targets(labels: [0, 1, 1, 0, 1, 0], width: 1)
        assertCertified(GradientChecker().check(BCELoss(), predictions: p, targets: t, generator: &generator))
    }

    func testCrossEntropy() {
        let z = randomMatrix(5, 4, in: -3...3, generator: &generator)
        let t = randomMatrix(5, 4, in: 0...1, generator: &generator)  // class = argmax of each row
        assertCertified(GradientChecker().check(CrossEntropyLoss(), predictions: z, targets: t, generator: &generator))
    }

    func testCrossEntropyTwoClasses() {
        let z = randomMatrix(3, 2, in: -3...3, generator: &generator)
        let t = Dataset.targets(labels: [1, 0, 1], width: 2)
        assertCertified(GradientChecker().check(CrossEntropyLoss(), predictions: z, targets: t, generator: &generator))
    }

    // MARK: Whole steps: a network under every loss

    /// `check(_:loss:input:targets:)`: f = loss(model(x), t) in the input and every parameter, for every loss.
    func testEveryLossThroughANetwork() throws {
        let x = clearOfZero(6, 3)
        let probabilities = randomMatrix(6, 2, in: 0...1, generator: &generator)
        for (loss, last) in [(MSELoss(), nil), (MAELoss(), nil), (BCELoss(), Sigmoid()), (CrossEntropyLoss(), nil)] as [(Loss, Module?)] {
            let model = try Sequential([Linear(3, 5, generator: &generator), Tanh(), Linear(5, 2, generator: &generator)] + (last.map { [$0] } ?? []))
            var targets = probabilities
            if loss is MAELoss {  // |p − t| ≥ 0.1 for every element, clear of MAE's kink
                let y = model.forward(x)
                for k in targets.elements.indices { targets.elements[k] = y.elements[k] + (targets.elements[k] < 0.5 ? -0.3 : 0.3) }
            }
            let report = GradientChecker().check(model, loss: loss, input: x, targets: targets, generator: &generator)
            XCTAssertEqual(report.tensors.map(\.tensor), ["dInput", "dWeight#0", "dBias#1", "dWeight#2", "dBias#3"], "\(loss)")
            assertCertified(report)
        }
    }

    // MARK: The certificate's own claims

    /// A direction that crosses a kink is said, not passed silently. ReLU at inputs ±[0.5, 1.5) but for one
    /// element, 10⁻⁴ from 0 on the side that the direction u leaves from (u is replayed from the generator:
    /// `check` draws R, then u), so that the steps above h_c = 10⁻⁴/|u_k| cross the kink and those below do
    /// not. Above h_c the remainder has the term R_k·|u_k|·(h − h_c), which dominates it: order about 1;
    /// below it order 2.
    func testACrossedKinkIsReported() {
        var x = clearOfZero(4, 8)
        var replay = generator
        for _ in 0..<x.elements.count { _ = replay.uniform(-1, 1) }          // R
        let u = (0..<x.elements.count).map { _ in replay.uniform(-1, 1) }   // the direction of dInput
        let k = u.indices.max { abs(u[$0]) < abs(u[$1]) }!
        x.elements[k] = u[k] > 0 ? -1e-4 : 1e-4
        let crossing = 1e-4 / abs(u[k])
        let report = GradientChecker().check(ReLU(), input: x, generator: &generator)
        let certificate = report.tensors[0].taylor
        guard case let .kinkCrossed(above, _) = certificate.verdict else {
            return XCTFail("expected a crossed kink, got: \(certificate) (orders \(certificate.ordersDescription))")
        }
        XCTAssertTrue(certificate.passed, "a kink is not a wrong gradient: the smallest steps certify it")
        XCTAssertTrue(certificate.description.hasPrefix("a kink is crossed above h = "), certificate.description)
        XCTAssertTrue((crossing / 2...crossing * 2).contains(above), "crossed above h = \(above), h_c = \(crossing): \(certificate)")
        // Above h_c the linear term dominates but q·h² is still there: order from 1 to 1.5 (1.29 1.20 1.16 1.21 here).
        for (h, order) in zip(certificate.steps.dropFirst(), certificate.orders) where h > 4 * crossing {
            XCTAssertTrue((0.9...1.5).contains(order), "order about 1 at h = \(h) > h_c = \(crossing): \(certificate.ordersDescription)")
        }
        for (h, order) in zip(certificate.steps, certificate.orders) where h < crossing && certificate.clean[certificate.steps.firstIndex(of: h)!] {
            assertClose(order, 2, rtol: 0, atol: 0.2, "order 2 at h = \(h) < h_c = \(crossing): \(certificate.ordersDescription)")
        }
        XCTAssertTrue(report.mismatches.isEmpty, "central differences with h = 10⁻⁶ do not cross: \(report.mismatches)")
        print(report)
    }

    /// The floor bounds the rounding noise (the claim `TaylorLadder`'s κ = 64 rests on): for a Linear layer
    /// f = Σ (x·Wᵀ + b) ⊙ R is linear in W, so the exact remainder is the added q·h² alone and whatever else
    /// the measured one holds is rounding, which must stay within the floor at every step.
    func testTheRoundingFloorBoundsTheNoise() {
        let report = GradientChecker().check(Linear(6, 5, generator: &generator), input: clearOfZero(7, 6), generator: &generator)
        for tensor in report.tensors {
            let c = tensor.taylor
            for k in c.steps.indices {
                let noise = abs(c.remainders[k] - abs(c.curvature) * c.steps[k] * c.steps[k])
                XCTAssertLessThanOrEqual(noise, c.floors[k], "\(tensor.tensor) at h = \(c.steps[k]): noise \(noise), floor \(c.floors[k])")
            }
        }
        assertCertified(report)
    }
}
