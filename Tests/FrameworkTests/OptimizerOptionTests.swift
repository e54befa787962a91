import Framework
import TestSupport
import XCTest

/// Each optimizer option alone and in the combinations OptimizerStepTests leaves out, three steps each on
/// f(p) = Σ c_k·p_k², ∇f = 2c_k·p_k. The SGD values are exact decimals worked by hand (the derivation is in each
/// test; checked with exact rational arithmetic); the Adam values come from an independent Python transcription of
/// Kingma & Ba's Algorithm 1 (m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ), p −= lr·m̂/(√v̂ + ε)), whose order of operations
/// differs from the code's, hence rtol 10⁻¹³.
final class OptimizerOptionTests: XCTestCase {
    /// Runs `steps` steps of `optimizer` from `start` with weights `c` and returns p after each.
    func trajectory(_ optimizer: Optimizer, start: [Double] = [1, -1], c: [Double] = [1, 2], steps: Int = 3) -> [Matrix] {
        let p = Parameter(name: "p", value: Matrix([start]))
        return (0..<steps).map { _ in
            p.zeroGradient()
            p.gradient = Matrix([zip(c, p.value.elements).map { 2 * $0 * $1 }])
            optimizer.step([p])
            return p.value
        }
    }

    func assertTrajectory(_ actual: [Matrix], _ expected: [[Double]], rtol: Double = 0, atol: Double = 1e-15,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (step, (a, e)) in zip(actual, expected).enumerated() {
            assertClose(a, Matrix([e]), rtol: rtol, atol: atol, "after step \(step + 1)", file: file, line: line)
        }
    }

    /// Weight decay without momentum, on three elements (the last one is the partial SIMD lane of the portable
    /// kernel): p_k ← p_k − lr·(2c_k·p_k + λ·p_k) = p_k·(1 − lr·(2c_k + λ)), factors 0.79, 0.59, 0.39 for
    /// c = (1, 2, 3), lr = λ = 0.1. From (1, −1, 0.5): (0.79, −0.59, 0.195) → (0.6241, −0.3481, 0.07605) →
    /// (0.493039, −0.205379, 0.0296595).
    func testSGDWeightDecayWithoutMomentum() throws {
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, weightDecay: 0.1), start: [1, -1, 0.5], c: [1, 2, 3]),
                         [[0.79, -0.59, 0.195], [0.6241, -0.3481, 0.07605], [0.493039, -0.205379, 0.0296595]])
    }

    /// Plain SGD on an odd number of elements: every element moves, the partial last lane too.
    func testPlainSGDOnAnOddNumberOfElements() throws {
        // p_k·(1 − 0.1·2c_k): factors 0.8, 0.6, 0.4, 0.2, 0.0 (c = 1…5)
        let p = trajectory(try SGD(learningRate: 0.1), start: [1, 1, 1, 1, 1], c: [1, 2, 3, 4, 5], steps: 1)
        assertTrajectory(p, [[0.8, 0.6, 0.4, 0.2, 0]])
    }

    /// Dampening τ = 0.3 with momentum 0.9, no weight decay. b₁ = g₁ = (2, −4) (PyTorch does not dampen the first
    /// step), p = (0.8, −0.6); g₂ = (1.6, −2.4), b₂ = 0.9·b₁ + 0.7·g₂ = (2.92, −5.28), p = (0.508, −0.072);
    /// g₃ = (1.016, −0.288), b₃ = (3.3392, −4.9536), p = (0.17408, 0.42336).
    func testSGDDampeningAlone() throws {
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.9, dampening: 0.3)),
                         [[0.8, -0.6], [0.508, -0.072], [0.17408, 0.42336]])
    }

    /// Momentum 0.9 with weight decay 0.1, no dampening: g = ∇f + 0.1·p. g₁ = (2.1, −4.1) = b₁, p = (0.79, −0.59);
    /// g₂ = (1.659, −2.419), b₂ = 0.9·b₁ + g₂ = (3.549, −6.109), p = (0.4351, 0.0209);
    /// g₃ = (0.91371, 0.08569), b₃ = (4.10781, −5.41241), p = (0.024319, 0.562141).
    func testSGDMomentumWithWeightDecay() throws {
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 0.1)),
                         [[0.79, -0.59], [0.4351, 0.0209], [0.024319, 0.562141]])
    }

    /// Nesterov with weight decay: μ = 0.5, λ = 0.2. g₁ = (2.2, −4.2) = b₁, step g₁ + 0.5·b₁ = (3.3, −6.3),
    /// p = (0.67, −0.37); g₂ = (1.474, −1.554), b₂ = 0.5·b₁ + g₂ = (2.574, −3.654), step (2.761, −3.381),
    /// p = (0.3939, −0.0319); g₃ = (0.86658, −0.13398), b₃ = (2.15358, −1.96098), step (1.94337, −1.11447),
    /// p = (0.199563, 0.079547).
    func testSGDNesterovWithWeightDecay() throws {
        assertTrajectory(trajectory(try SGD(learningRate: 0.1, momentum: 0.5, nesterov: true, weightDecay: 0.2)),
                         [[0.67, -0.37], [0.3939, -0.0319], [0.199563, 0.079547]])
    }

    /// A large ε alone (default betas): step 1 is p −= 0.1·g/(|g| + 0.5), p = (1 − 0.2/2.5, −1 + 0.4/4.5).
    func testAdamEpsilonAlone() throws {
        assertTrajectory(trajectory(try Adam(learningRate: 0.1, epsilon: 0.5)),
                         [[0.92, -0.9111111111111111],
                          [0.8408882995653922, -0.8229781594486597],
                          [0.7628760716160647, -0.73587381305819]], rtol: 1e-13, atol: 0)
    }

    /// Other betas alone (β1 = 0.5, β2 = 0.6, default ε): the bias corrections 1 − βᵗ differ most from 1 here.
    func testAdamBetasAlone() throws {
        assertTrajectory(trajectory(try Adam(learningRate: 0.1, beta1: 0.5, beta2: 0.6)),
                         [[0.9000000005, -0.9000000002499999],
                          [0.8005769213180626, -0.8005769208051758],
                          [0.7021295899312412, -0.702129589141509]], rtol: 1e-13, atol: 0)
    }

    /// The ranges the doc comments state, at their edges: each value just outside is refused with its name and
    /// value, each value at the edge inside is accepted.
    func testEveryRangeEdge() {
        let refused: [(String, () throws -> Optimizer)] = [
            ("SGD: momentum must be in [0, 1), got -0.1", { try SGD(learningRate: 0.1, momentum: -0.1) }),
            ("SGD: dampening must be in [0, 1], got 1.5", { try SGD(learningRate: 0.1, momentum: 0.5, dampening: 1.5) }),
            ("SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0.9, dampening 0.1",
             { try SGD(learningRate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true) }),
            ("SGD: learning rate must be a finite number > 0, got inf", { try SGD(learningRate: .infinity) }),
            ("SGD: weight decay must be a finite number ≥ 0, got inf", { try SGD(learningRate: 0.1, weightDecay: .infinity) }),
            ("Adam: beta1 must be in [0, 1), got 1.0", { try Adam(beta1: 1) }),
            ("Adam: beta1 must be in [0, 1), got -0.5", { try Adam(beta1: -0.5) }),
            ("Adam: beta2 must be in [0, 1), got -0.5", { try Adam(beta2: -0.5) }),
            ("Adam: eps must be a finite number > 0, got inf", { try Adam(epsilon: .infinity) }),
            ("Adam: weight decay must be a finite number ≥ 0, got -0.1", { try Adam(weightDecay: -0.1) }),
            ("Adam: learning rate must be a finite number > 0, got -1.0", { try Adam(learningRate: -1) }),
        ]
        for (expected, make) in refused {
            XCTAssertThrowsError(try make(), expected) { error in
                XCTAssertEqual("\(error)", expected)
            }
        }
        XCTAssertNoThrow(try SGD(learningRate: 0.1, momentum: 0, dampening: 1))
        XCTAssertNoThrow(try SGD(learningRate: 0.1, momentum: 0.999, nesterov: true))
        XCTAssertNoThrow(try Adam(beta1: 0, beta2: 0))
    }
}
