/// Loss and accuracy on the whole train and test sets after `epoch` epochs (epoch 0: before any update).
public struct EpochMetrics: Equatable, Sendable, Codable {
    public var epoch: Int
    public var trainLoss: Double
    public var testLoss: Double
    /// Fraction in [0, 1].
    public var trainAccuracy: Double
    /// Fraction in [0, 1].
    public var testAccuracy: Double

    public init(epoch: Int, trainLoss: Double, testLoss: Double, trainAccuracy: Double, testAccuracy: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.testLoss = testLoss
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
    }
}

/// Where training stopped because a batch loss was NaN or infinite: epoch and batch are 1-based.
public struct Divergence: Equatable, Sendable, Codable, CustomStringConvertible {
    public var epoch: Int
    public var batch: Int
    public var loss: Double
    public init(epoch: Int, batch: Int, loss: Double) {
        self.epoch = epoch
        self.batch = batch
        self.loss = loss
    }
    public var description: String { "diverged at epoch \(epoch), batch \(batch) (loss \(loss))" }
}

/// What a training run gives: metrics for epochs 0…E (fewer if it diverged) and the divergence, if any.
public struct TrainingTrace: Equatable, Sendable {
    public var epochs: [EpochMetrics]
    public var divergence: Divergence?
    public init(epochs: [EpochMetrics], divergence: Divergence?) {
        self.epochs = epochs
        self.divergence = divergence
    }
}

/// The order in which the training samples are visited in each epoch.
public enum BatchOrder: Sendable, Equatable {
    /// File order, 0..<count, every epoch.
    case sequential
    /// A fresh Fisher–Yates permutation every epoch, from one `Xoshiro256StarStar(seed:)` that runs on
    /// across epochs (epoch 1 takes the first permutation).
    case shuffled(seed: UInt64)
    /// Given permutations, one per epoch.
    case explicit([[Int]])

    /// The visiting orders of `epochs` epochs over `count` samples.
    public func orders(count: Int, epochs: Int) -> [[Int]] {
        var sequence = EpochOrders(self, count: count, epochs: epochs)
        return (0..<epochs).map { _ in sequence.next() }
    }
}

/// The orders of a `BatchOrder`, one epoch at a time (a shuffled order holds one permutation at a time).
public struct EpochOrders {
    private let order: BatchOrder
    private let count: Int
    private var generator: Xoshiro256StarStar
    private var epoch = 0
    private var sequential: [Int] = []

    public init(_ order: BatchOrder, count: Int, epochs: Int) {
        self.order = order
        self.count = count
        switch order {
        case .sequential:
            generator = Xoshiro256StarStar(seed: 0)
            sequential = Array(0..<count)
        case let .shuffled(seed):
            generator = Xoshiro256StarStar(seed: seed)
        case let .explicit(orders):
            generator = Xoshiro256StarStar(seed: 0)
            precondition(orders.count == epochs && orders.allSatisfy { $0.count == count && Set($0) == Set(0..<count) },
                         "BatchOrder.explicit: need \(epochs) permutations of 0..<\(count)")
        }
    }

    /// The next epoch's order.
    public mutating func next() -> [Int] {
        defer { epoch += 1 }
        switch order {
        case .sequential: return sequential
        case .shuffled: return generator.permutation(count)
        case let .explicit(orders): return orders[epoch]
        }
    }
}

/// Mini-batch training with an evaluation after every epoch.
///
/// Epoch 0 evaluates before any update. Then for each epoch e = 1…`epochs`, the training samples are taken
/// in that epoch's order (`BatchOrder`), in consecutive batches of `batchSize` rows (the last may be
/// smaller; with `dropLast` it is skipped, as PyTorch's `DataLoader(drop_last=True)`), and for each batch
/// b = 1, 2, …:
///
///     gather the batch's rows into kept buffers     (batch, in), (batch, out)
///     model.zeroGradients()
///     y = model.forward(x)
///     L = loss.valueAndGradient(y, t, into: dL)      a NaN or ±∞ L stops the run: Divergence(e, b)
///     model.accumulateGradients(dL)                  backward, without the model's own dInput
///     optimizer.step(parameters)
///
/// After each epoch the whole train and test sets are evaluated, in chunks of at most
/// `evaluationChunkElements / widest` rows (`widest`: the largest width of the input, the output or any
/// parameter), so that a large set and a wide layer need memory for one chunk only: the loss's terms are
/// added across chunks (`Loss.accumulate`) and the correct rows counted, so the numbers are those of one
/// pass over the whole set. Every step runs through the module API; there is no other path.
public struct Trainer {
    public var epochs: Int
    public var batchSize: Int
    public var order: BatchOrder
    /// Skip the last batch of each epoch when it is smaller than `batchSize`. Default false.
    public var dropLast: Bool
    /// Elements of the widest activation per evaluation chunk. Default 2¹⁸ (2 MiB of doubles).
    public var evaluationChunkElements: Int

    /// `epochs` ≥ 0, `batchSize` ≥ 1; default order: file order.
    public init(epochs: Int, batchSize: Int, order: BatchOrder = .sequential, dropLast: Bool = false,
                evaluationChunkElements: Int = 1 << 18) {
        precondition(epochs >= 0 && batchSize >= 1 && evaluationChunkElements >= 1,
                     "Trainer: epochs \(epochs), batch size \(batchSize), chunk \(evaluationChunkElements)")
        self.epochs = epochs
        self.batchSize = batchSize
        self.order = order
        self.dropLast = dropLast
        self.evaluationChunkElements = evaluationChunkElements
    }

    /// Trains `model` on `train` and evaluates on `train` and `test` after every epoch.
    public func fit(_ model: Module, loss: Loss, optimizer: Optimizer, train: Dataset, test: Dataset) -> TrainingTrace {
        precondition(train.count > 0 && test.count > 0, "Trainer: empty data set")
        let parameters = model.parameters
        var evaluation = Evaluation(chunkRows: chunkRows(model, train))
        var metrics = [evaluation.metrics(model, loss, train: train, test: test, epoch: 0)]
        var orders = EpochOrders(order, count: train.count, epochs: epochs)
        var inputs = Matrix.empty, targets = Matrix.empty, dLoss = Matrix.empty
        for epoch in stride(from: 1, through: epochs, by: 1) {
            let order = orders.next()
            var start = 0, batch = 0
            while start < order.count {
                let rows = order[start..<min(start + batchSize, order.count)]
                start += rows.count
                batch += 1
                if dropLast && rows.count < batchSize { break }
                inputs.gather(rows: rows, of: train.inputs)
                targets.gather(rows: rows, of: train.targets)
                model.zeroGradients()
                let value = loss.valueAndGradient(predictions: model.forward(inputs), targets: targets, into: &dLoss)
                guard value.isFinite else {
                    return TrainingTrace(epochs: metrics, divergence: Divergence(epoch: epoch, batch: batch, loss: value))
                }
                model.accumulateGradients(dLoss)
                optimizer.step(parameters)
            }
            metrics.append(evaluation.metrics(model, loss, train: train, test: test, epoch: epoch))
        }
        return TrainingTrace(epochs: metrics, divergence: nil)
    }

    /// Loss and accuracy of `model` on the whole of `train` and of `test`.
    public func evaluate(_ model: Module, loss: Loss, train: Dataset, test: Dataset, epoch: Int) -> EpochMetrics {
        var evaluation = Evaluation(chunkRows: chunkRows(model, train))
        return evaluation.metrics(model, loss, train: train, test: test, epoch: epoch)
    }

    /// Rows per evaluation chunk: `evaluationChunkElements` over the widest width in sight, at least 1.
    private func chunkRows(_ model: Module, _ data: Dataset) -> Int {
        let widest = model.parameters.reduce(max(data.inputs.columns, data.targets.columns, 1)) {
            max($0, $1.value.rows, $1.value.columns)
        }
        return max(1, evaluationChunkElements / widest)
    }
}

/// The evaluation of a model on whole sets, chunk by chunk, with the chunk buffers kept across epochs.
private struct Evaluation {
    let chunkRows: Int
    var inputs = Matrix.empty, targets = Matrix.empty

    mutating func metrics(_ model: Module, _ loss: Loss, train: Dataset, test: Dataset, epoch: Int) -> EpochMetrics {
        let (trainLoss, trainAccuracy) = evaluate(model, loss, train)
        let (testLoss, testAccuracy) = evaluate(model, loss, test)
        return EpochMetrics(epoch: epoch, trainLoss: trainLoss, testLoss: testLoss,
                            trainAccuracy: trainAccuracy, testAccuracy: testAccuracy)
    }

    /// The loss (terms added across chunks) and the accuracy (correct rows counted across chunks) on `data`.
    mutating func evaluate(_ model: Module, _ loss: Loss, _ data: Dataset) -> (loss: Double, accuracy: Double) {
        var total = LossTotal()
        var correct = 0
        if data.count <= chunkRows {  // one chunk: the set itself, no copy
            let y = model.forward(data.inputs)
            loss.accumulate(predictions: y, targets: data.targets, into: &total)
            correct = correctCount(predictions: y, targets: data.targets)
        } else {
            var start = 0
            while start < data.count {
                let rows = start..<min(start + chunkRows, data.count)
                inputs.gather(rows: rows, of: data.inputs)
                targets.gather(rows: rows, of: data.targets)
                let y = model.forward(inputs)
                loss.accumulate(predictions: y, targets: targets, into: &total)
                correct += correctCount(predictions: y, targets: targets)
                start = rows.upperBound
            }
        }
        return (total.mean, Double(correct) / Double(data.count))
    }
}
