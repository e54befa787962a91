import Framework
import TestSupport
import XCTest

final class TrainerTests: XCTestCase {
    /// A 2 → 1 linear model with known weights on two points, so epoch 0 and epoch 1 can be worked by hand.
    func testEpochZeroAndOneStepByHand() throws {
        // w = [0.5, −0.5], b = 0; points (1, 0) → 1 and (0, 1) → 0; MSE; SGD lr 0.1; one batch of both.
        // Epoch 0: y = [0.5, −0.5], loss = ((0.5 − 1)² + (−0.5)²)/2 = 0.25; accuracy: 0.5 ≥ 0.5 ↔ 1 ≥ 0.5 yes,
        // −0.5 < 0.5 ↔ 0 < 0.5 yes → 1.0.
        // Gradient: dy = 2(y − t)/2 = [−0.5, −0.5]; dW = dyᵀ·x = [−0.5, −0.5]; db = −1.
        // Step: w = [0.55, −0.45], b = 0.1; y = [0.65, −0.35]; loss = (0.1225 + 0.1225)/2 = 0.1225.
        let model = try Sequential([Linear(weight: Matrix([[0.5, -0.5]]), bias: Matrix([[0]]))])
        let data = Dataset(inputs: Matrix([[1, 0], [0, 1]]), targets: Matrix([[1], [0]]))
        let trace = Trainer(epochs: 1, batchSize: 2).fit(model, loss: MSELoss(), optimizer: try SGD(learningRate: 0.1),
                                                          train: data, test: data)
        XCTAssertNil(trace.divergence)
        XCTAssertEqual(trace.epochs.map(\.epoch), [0, 1])
        assertClose(trace.epochs[0].trainLoss, 0.25, rtol: 1e-15)
        XCTAssertEqual(trace.epochs[0].trainAccuracy, 1)
        assertClose(trace.epochs[1].testLoss, 0.1225, rtol: 1e-14)
    }

    func testSmallerLastBatchAndShuffledOrders() {
        let orders = BatchOrder.shuffled(seed: 4).orders(count: 7, epochs: 3)
        XCTAssertEqual(orders.count, 3)
        XCTAssertTrue(orders.allSatisfy { $0.sorted() == Array(0..<7) })
        XCTAssertNotEqual(orders[0], orders[1], "a fresh permutation each epoch")
        XCTAssertEqual(orders, BatchOrder.shuffled(seed: 4).orders(count: 7, epochs: 3), "reproducible")
        XCTAssertEqual(BatchOrder.sequential.orders(count: 3, epochs: 2), [[0, 1, 2], [0, 1, 2]])
    }

    func testBatchSizeChangesTheNumberOfSteps() throws {
        // With batch 3 on 7 points there are 3 steps per epoch (3, 3, 1): Adam's step count shows it.
        var g = Xoshiro256StarStar(seed: 2)
        let data = Dataset.disk(count: 7, targetWidth: 2, generator: &g)
        let model = try Sequential([Linear(2, 2, generator: &g)])
        let adam = try Adam()
        _ = Trainer(epochs: 2, batchSize: 3).fit(model, loss: MSELoss(), optimizer: adam, train: data, test: data)
        XCTAssertEqual(adam.stepCount, 6)
    }

    func testDivergenceIsReportedNotCrashed() throws {
        // lr 10⁶ on MSE makes the parameters explode; the run must stop with the epoch and batch.
        var g = Xoshiro256StarStar(seed: 11)
        let data = Dataset.disk(count: 20, targetWidth: 2, generator: &g)
        let model = try Sequential([Linear(2, 8, generator: &g), Tanh(), Linear(8, 2, generator: &g)])
        let trace = Trainer(epochs: 50, batchSize: 1).fit(model, loss: MSELoss(), optimizer: try SGD(learningRate: 1e6),
                                                           train: data, test: data)
        let divergence = try XCTUnwrap(trace.divergence)
        XCTAssertFalse(divergence.loss.isFinite)
        XCTAssertEqual(trace.epochs.count, divergence.epoch, "epochs 0…e−1 are kept")
        XCTAssertTrue(divergence.batch >= 1 && divergence.batch <= 20)
        XCTAssertTrue(divergence.description.hasPrefix("diverged at epoch \(divergence.epoch), batch \(divergence.batch)"))
    }

    /// The original task learns: the seeds' network reaches high accuracy quickly with Adam.
    func testDiskTaskLearns() throws {
        var g = Xoshiro256StarStar(seed: 1, stream: 1)
        let train = Dataset.disk(count: 500, targetWidth: 2, generator: &g)
        let test = Dataset.disk(count: 500, targetWidth: 2, generator: &g)
        var i = Xoshiro256StarStar(seed: 1, stream: 2)
        let model = try Sequential([Linear(2, 25, generator: &i), ReLU(), Linear(25, 25, generator: &i), Tanh(),
                                    Linear(25, 25, generator: &i), Sigmoid(), Linear(25, 2, generator: &i)])
        let trace = Trainer(epochs: 40, batchSize: 10, order: .shuffled(seed: 3))
            .fit(model, loss: MSELoss(), optimizer: try Adam(learningRate: 0.005), train: train, test: test)
        let last = try XCTUnwrap(trace.epochs.last)
        XCTAssertGreaterThan(last.testAccuracy, 0.9, "\(last)")
        XCTAssertLessThan(last.trainLoss, trace.epochs[0].trainLoss / 2)
    }
}
