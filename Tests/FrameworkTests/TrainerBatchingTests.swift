import Framework
import TestSupport
import XCTest

/// How `Trainer` cuts work into pieces: the evaluation in chunks (the numbers are those of one pass; a chunk has
/// at most `evaluationChunkElements / widest` rows, `widest` counting the layers' widths), `dropLast`, and the
/// orders of each epoch.
final class TrainerBatchingTests: XCTestCase {
    /// Wraps a model and records the row count of every forward it is given.
    final class RowCounting: Module {
        let inner: Module
        var forwardRows: [Int] = []
        init(_ inner: Module) { self.inner = inner }
        var inputWidth: Int? { inner.inputWidth }
        func outputWidth(forInputWidth width: Int) -> Int { inner.outputWidth(forInputWidth: width) }
        var parameters: [Parameter] { inner.parameters }
        var description: String { "RowCounting(\(inner))" }
        func zeroGradients() { inner.zeroGradients() }
        func forward(_ input: Matrix) -> Matrix {
            forwardRows.append(input.rows)
            return inner.forward(input)
        }
        func backward(_ dOutput: Matrix) -> Matrix { inner.backward(dOutput) }
    }

    func network(seed: UInt64, hidden: Int = 5, outputs: Int = 2) throws -> Sequential {
        var g = Xoshiro256StarStar(seed: seed)
        return try Sequential([Linear(2, hidden, generator: &g), Tanh(), Linear(hidden, outputs, generator: &g)])
    }

    /// 103 rows evaluated in chunks of 7 (14 full chunks and a last one of 5) give exactly the loss and accuracy of
    /// one pass: the same terms, added in the same order by the same compensated sum, and every row counted.
    func testAChunkedEvaluationEqualsOnePass() throws {
        var g = Xoshiro256StarStar(seed: 5)
        let train = Dataset.disk(count: 103, targetWidth: 2, generator: &g), test = Dataset.disk(count: 31, targetWidth: 2, generator: &g)
        let model = try network(seed: 6)
        for loss in [MSELoss(), CrossEntropyLoss(), MAELoss()] as [Loss] {
            let whole = Trainer(epochs: 0, batchSize: 1).evaluate(model, loss: loss, train: train, test: test, epoch: 0)
            // widest = 5 (the hidden layer), so 35 elements give chunks of 7 rows.
            let counting = RowCounting(model)
            let chunked = Trainer(epochs: 0, batchSize: 1, evaluationChunkElements: 35)
                .evaluate(counting, loss: loss, train: train, test: test, epoch: 0)
            XCTAssertEqual(counting.forwardRows, Array(repeating: 7, count: 14) + [5] + [7, 7, 7, 7, 3], "\(loss)")
            XCTAssertEqual(chunked, whole, "\(loss): chunks of 7 rows")
            XCTAssertGreaterThan(whole.trainAccuracy, 0)
            XCTAssertLessThan(whole.trainAccuracy, 1, "an untrained model gets some rows wrong")
        }
    }

    /// The chunk is sized by the widest width in sight, a layer's included: Linear(2 → 50) on 2 inputs and
    /// 2 targets, with 100 elements per chunk, gives chunks of 100/50 = 2 rows, not 100/2 = 50.
    func testTheChunkCountsTheLayersWidths() throws {
        var g = Xoshiro256StarStar(seed: 8)
        let data = Dataset.disk(count: 9, targetWidth: 2, generator: &g)
        let counting = RowCounting(try network(seed: 9, hidden: 50))
        _ = Trainer(epochs: 0, batchSize: 1, evaluationChunkElements: 100).evaluate(counting, loss: MSELoss(), train: data,
                                                                                    test: data, epoch: 0)
        XCTAssertEqual(counting.forwardRows, [2, 2, 2, 2, 1, 2, 2, 2, 2, 1])
        // And at least one row, whatever the width.
        let one = RowCounting(try network(seed: 9, hidden: 50))
        _ = Trainer(epochs: 0, batchSize: 1, evaluationChunkElements: 1).evaluate(one, loss: MSELoss(), train: data, test: data, epoch: 0)
        XCTAssertEqual(one.forwardRows, Array(repeating: 1, count: 18))
    }

    /// 7 rows in batches of 3: batches 3, 3, 1; with `dropLast` the batch of 1 is skipped, so two epochs take 4
    /// Adam steps instead of 6, and the training forwards see 3 rows only.
    func testDropLastSkipsOnlyTheSmallerLastBatch() throws {
        var g = Xoshiro256StarStar(seed: 2)
        let data = Dataset.disk(count: 7, targetWidth: 2, generator: &g)
        for (dropLast, steps, rows) in [(false, 6, [3, 3, 1]), (true, 4, [3, 3])] {
            let counting = RowCounting(try network(seed: 3))
            let adam = try Adam()
            let trace = Trainer(epochs: 2, batchSize: 3, dropLast: dropLast)
                .fit(counting, loss: MSELoss(), optimizer: adam, train: data, test: data)
            XCTAssertEqual(adam.stepCount, steps, "dropLast \(dropLast)")
            XCTAssertEqual(trace.epochs.count, 3)
            // Per epoch: the training batches, then the evaluation of train and test (7 rows each, one chunk).
            XCTAssertEqual(counting.forwardRows, [7, 7] + rows + [7, 7] + rows + [7, 7], "dropLast \(dropLast)")
        }
        // A set that divides evenly loses nothing with dropLast.
        let adam = try Adam()
        _ = Trainer(epochs: 1, batchSize: 7, dropLast: true).fit(try network(seed: 3), loss: MSELoss(), optimizer: adam,
                                                                  train: data, test: data)
        XCTAssertEqual(adam.stepCount, 1)
    }

    /// An infinite batch loss is a divergence as much as a NaN one: y = 10²⁰⁰ on the second row makes MSE's
    /// (y − t)² overflow to +∞ at epoch 1, batch 2, and training stops there with epochs 0…0 kept.
    func testAnInfiniteBatchLossStopsTrainingAtThatBatch() throws {
        let data = Dataset(inputs: Matrix([[0.5], [1e200], [0.25]]), targets: Matrix([[0], [0], [0]]))
        let model = try Sequential([Linear(weight: Matrix([[1]]), bias: Matrix([[0]]))])
        let trace = Trainer(epochs: 3, batchSize: 1).fit(model, loss: MSELoss(), optimizer: try SGD(learningRate: 1e-3),
                                                         train: data, test: data)
        XCTAssertEqual(trace.divergence, Divergence(epoch: 1, batch: 2, loss: .infinity))
        XCTAssertEqual(trace.epochs.map(\.epoch), [0])
    }

    /// Explicit orders are followed epoch by epoch; shuffled ones are a new permutation each epoch from one
    /// generator that runs on (epoch 2's is the generator's second permutation, not its first again).
    func testEachEpochTakesItsOwnOrder() {
        let explicit = [[2, 0, 1], [1, 2, 0], [0, 1, 2]]
        XCTAssertEqual(BatchOrder.explicit(explicit).orders(count: 3, epochs: 3), explicit)
        var generator = Xoshiro256StarStar(seed: 4)
        let expected = (0..<3).map { _ in generator.permutation(10) }
        XCTAssertEqual(BatchOrder.shuffled(seed: 4).orders(count: 10, epochs: 3), expected)
    }

    /// The batches follow the epoch's order: with one row per batch, the order of the rows a model sees in
    /// training is the given permutation.
    func testTrainingVisitsTheRowsInTheEpochsOrder() throws {
        let inputs = Matrix([[0, 0], [1, 0], [2, 0], [3, 0]])
        let data = Dataset(inputs: inputs, targets: Matrix(rows: 4, columns: 1))
        final class FirstInput: Module {
            var seen: [Double] = []
            let linear = Linear(weight: Matrix([[0, 0]]), bias: Matrix([[0]]))
            var inputWidth: Int? { 2 }
            func outputWidth(forInputWidth width: Int) -> Int { 1 }
            var parameters: [Parameter] { linear.parameters }
            var description: String { "FirstInput" }
            func forward(_ input: Matrix) -> Matrix {
                if input.rows == 1 { seen.append(input[0, 0]) }
                return linear.forward(input)
            }
            func backward(_ dOutput: Matrix) -> Matrix { linear.backward(dOutput) }
        }
        let model = FirstInput()
        let orders = [[3, 1, 0, 2], [0, 2, 3, 1]]
        _ = Trainer(epochs: 2, batchSize: 1, order: .explicit(orders))
            .fit(model, loss: MSELoss(), optimizer: try SGD(learningRate: 0.1), train: data, test: data)
        XCTAssertEqual(model.seen, [3, 1, 0, 2, 0, 2, 3, 1])
    }
}
