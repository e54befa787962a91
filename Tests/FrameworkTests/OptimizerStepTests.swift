import Framework
import TestSupport
import XCTest

/// Three steps of each optimizer on f(p) = p₁² + 2p₂², ∇f = (2p₁, 4p₂), from p = (1, −1).
/// The SGD values are worked by hand (they are exact decimals; the derivation is in each test); the Adam
/// values come from the hand-worked first step and an independent Python transcription of Kingma & Ba.
final class OptimizerStepTests: XCTestCase {
    /// Runs `steps` steps of `optimizer` and returns p after each.
    func trajectory(_ optimizer: Optimizer, steps: Int = 3) -> [Matrix] {
        let p = Parameter(name: "p", value: Matrix([[1, -1]]))
        return (0..<steps).map { _ in
            p.zeroGradient()
            p.gradient = Matrix([[2 * p.value[0, 0], 4 * p.value[0, 1]]])
            optimizer.step([p])
            return p.value
        }
    }

    func assertTrajectory(_ actual: [Matrix], _ expected: [[Double]], rtol: Double, atol: Double,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (step, (a, e)) in zip(actual, expected).enumerated() {
            assertClose(a, Matrix([e]), rtol: rtol, atol: atol, "after step \(step + 1)", file: file, line: line)
        }
    }

    func testPlainSGD() throws {
        // p ← p − 0.1·g: (1, −1) → (0.8, −0.6) → (0.64, −0.36) → (0.512, −0.216)
        assertTrajectory(trajectory(try SGD(learningRate: 0.1)),
                         [[0.8, -0.6], [0.64, -0.36], [0.512, -0.216]], rtol: 0, atol: 1e-15)
    }

    func testSGDMomentum() throws {
        // b₁ = g₁ = (2, −4), p = (0.8, −0.6); g₂ = (1.6, −2.4), b₂ = 0.9·b₁ + g₂ = (3.4, −6), p = (0.46, 0);
        // g₃ = (0.92, 0), b₃ = (3.98, −5.4), p = (0.062, 0.54)
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.9)),
                         [[0.8, -0.6], [0.46, 0], [0.062, 0.54]], rtol: 0, atol: 1e-15)
    }

    func testSGDNesterov() throws {
        // g₁ = (2, −4), b₁ = g₁, step g₁ + 0.9·b₁ = (3.8, −7.6), p = (0.62, −0.24);
        // g₂ = (1.24, −0.96), b₂ = (3.04, −4.56), step (3.976, −5.064), p = (0.2224, 0.2664);
        // g₃ = (0.4448, 1.0656), b₃ = (3.1808, −3.0384), step (3.30752, −1.66896), p = (−0.108352, 0.433296)
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.9, nesterov: true)),
                         [[0.62, -0.24], [0.2224, 0.2664], [-0.108352, 0.433296]], rtol: 0, atol: 1e-15)
    }

    func testSGDWeightDecayMomentumDampening() throws {
        // g = ∇f + 0.1·p; b₁ = g₁ = (2.1, −4.1), p = (0.79, −0.59);
        // g₂ = (1.659, −2.419), b₂ = 0.5·b₁ + 0.5·g₂ = (1.8795, −3.2595), p = (0.60205, −0.26405);
        // g₃ = (1.264305, −1.082605), b₃ = (1.5719025, −2.1710525), p = (0.44485975, −0.04694475)
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.5, dampening: 0.5, weightDecay: 0.1)),
                         [[0.79, -0.59], [0.60205, -0.26405], [0.44485975, -0.04694475]], rtol: 0, atol: 1e-15)
    }

    func testAdam() throws {
        // Step 1: m̂ = g, v̂ = g², so p −= 0.1·g/(|g| + ε) = 0.1·sign(g)·(1 − ε/|g|): p₁ = 0.9 + 5·10⁻¹⁰.
        assertTrajectory(trajectory(try Adam(learningRate: 0.1)),
                         [[0.9000000005, -0.90000000025],
                          [0.8004122286917928, -0.8004122281815201],
                          [0.7015862729460303, -0.7015862721668379]], rtol: 1e-13, atol: 0)
    }

    func testAdamWithWeightDecayAndOtherBetas() throws {
        assertTrajectory(trajectory(try Adam(learningRate: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-3, weightDecay: 0.5)),
                         [[0.9000399840063974, -0.9000222172850478],
                          [0.8007773901298396, -0.8007412292596607],
                          [0.70277991384687, -0.7027249443153004]], rtol: 1e-13, atol: 0)
    }

    func testInvalidHyperparametersAreRejectedWithTheValue() {
        let cases: [(String, () throws -> Optimizer)] = [
            ("learning rate must be a finite number > 0, got 0.0", { try SGD(learningRate: 0) }),
            ("momentum must be in [0, 1), got 1.0", { try SGD(learningRate: 0.1, momentum: 1) }),
            ("dampening must be in [0, 1], got -0.5", { try SGD(learningRate: 0.1, dampening: -0.5) }),
            ("nesterov needs momentum > 0 and dampening 0", { try SGD(learningRate: 0.1, nesterov: true) }),
            ("weight decay must be a finite number ≥ 0, got -1.0", { try SGD(learningRate: 0.1, weightDecay: -1) }),
            ("learning rate must be a finite number > 0, got nan", { try Adam(learningRate: .nan) }),
            ("beta2 must be in [0, 1), got 1.0", { try Adam(beta2: 1) }),
            ("eps must be a finite number > 0, got 0.0", { try Adam(epsilon: 0) }),
        ]
        for (expected, make) in cases {
            XCTAssertThrowsError(try make(), expected) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) should contain \(expected)")
            }
        }
    }
}
