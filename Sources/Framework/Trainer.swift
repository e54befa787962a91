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
        switch self {
        case .sequential:
            return Array(repeating: Array(0..<count), count: epochs)
        case let .shuffled(seed):
            var generator = Xoshiro256StarStar(seed: seed)
            return (0..<epochs).map { _ in generator.permutation(count) }
        case let .explicit(orders):
            precondition(orders.count == epochs && orders.allSatisfy { $0.sorted() == Array(0..<count) },
                         "BatchOrder.explicit: need \(epochs) permutations of 0..<\(count)")
            return orders
        }
    }
}

/// Mini-batch training with an evaluation after every epoch.
///
/// Epoch 0 evaluates before any update. Then for each epoch e = 1…`epochs`, the training samples are taken
/// in that epoch's order (`BatchOrder`), in consecutive batches of `batchSize` rows (the last may be
/// smaller), and for each batch b = 1, 2, …: zero gradients, forward, loss; if the loss is NaN or ±∞ the
/// run stops and reports `Divergence(epoch: e, batch: b)`; else backward and one optimizer step. After each
/// epoch the whole train and test sets are evaluated (one forward each) for loss and accuracy.
///
/// The batches run through a `TrainingStep` (preallocated buffers, no allocation per step) when it accepts
/// the model and loss, else through the module API; both compute the same values.
public struct Trainer {
    public var epochs: Int
    public var batchSize: Int
    public var order: BatchOrder

    /// `epochs` ≥ 0, `batchSize` ≥ 1; default order: file order.
    public init(epochs: Int, batchSize: Int, order: BatchOrder = .sequential) {
        precondition(epochs >= 0 && batchSize >= 1, "Trainer: epochs \(epochs), batch size \(batchSize)")
        self.epochs = epochs
        self.batchSize = batchSize
        self.order = order
    }

    /// Trains `model` on `train` and evaluates on `train` and `test` after every epoch.
    public func fit(_ model: Module, loss: Loss, optimizer: Optimizer, train: Dataset, test: Dataset) -> TrainingTrace {
        precondition(train.count > 0 && test.count > 0, "Trainer: empty data set")
        let parameters = model.parameters
        var metrics = [evaluate(model, loss: loss, train: train, test: test, epoch: 0)]
        let step = TrainingStep(model: model, loss: loss)
        for (index, order) in order.orders(count: train.count, epochs: epochs).enumerated() {
            let epoch = index + 1
            var start = 0, batch = 0
            while start < order.count {
                let rows = order[start..<min(start + batchSize, order.count)]
                start += rows.count
                batch += 1
                if let step {
                    // The same step on preallocated buffers (see TrainingStep); gradients are set, not zeroed
                    // and then accumulated, so on divergence they are zeroed here as the plain path leaves them.
                    let value = step.forward(inputs: train.inputs, targets: train.targets, rows: rows)
                    guard value.isFinite else {
                        model.zeroGradients()
                        return TrainingTrace(epochs: metrics, divergence: Divergence(epoch: epoch, batch: batch, loss: value))
                    }
                    step.backward()
                    optimizer.step(parameters)
                    continue
                }
                let x = train.inputs.gatheringRows(rows), t = train.targets.gatheringRows(rows)
                model.zeroGradients()
                let y = model.forward(x)
                let value = loss.value(predictions: y, targets: t)
                guard value.isFinite else {
                    return TrainingTrace(epochs: metrics, divergence: Divergence(epoch: epoch, batch: batch, loss: value))
                }
                _ = model.backward(loss.gradient(predictions: y, targets: t))
                optimizer.step(parameters)
            }
            metrics.append(evaluate(model, loss: loss, train: train, test: test, epoch: epoch))
        }
        return TrainingTrace(epochs: metrics, divergence: nil)
    }

    /// Loss and accuracy of `model` on the whole of `train` and of `test`.
    public func evaluate(_ model: Module, loss: Loss, train: Dataset, test: Dataset, epoch: Int) -> EpochMetrics {
        let yTrain = model.forward(train.inputs), yTest = model.forward(test.inputs)
        return EpochMetrics(epoch: epoch,
                            trainLoss: loss.value(predictions: yTrain, targets: train.targets),
                            testLoss: loss.value(predictions: yTest, targets: test.targets),
                            trainAccuracy: accuracy(predictions: yTrain, targets: train.targets),
                            testAccuracy: accuracy(predictions: yTest, targets: test.targets))
    }
}
