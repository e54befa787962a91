import Framework
import Reference

/// Reference's training-step throughput, measured through its only public entry point, `ReferenceEngine.train`.
///
/// A run of E epochs costs `S + (E + 1)·V + E·R`: setup S (validation, copying the data into GSL matrices),
/// one evaluation V per epoch and at epoch 0 (a forward of the train set and of the test set), and R for one
/// epoch of steps, the part to report. A run of 0 epochs costs `S + V`, so
///
///     R = (T(E) − T(0)) / E − V,
///
/// with V measured as `ReferenceNetwork.forward` of the train and the test inputs (which also converts
/// between Swift arrays and GSL matrices, so it is at least Reference's own V). The estimate of R is thus
/// a little low and the throughput `samples per epoch / R` a little high: ratios against it understate
/// Framework's lead. The test set is the first 10 training points, to keep V small. Each repetition times
/// T(0), T(E) and V once; the throughput of each repetition is reported.
func referenceThroughput(_ workload: Workload, data: Dataset, repetitions: Int, scale: Double) throws -> Throughput {
    let model = workload.frameworkModel()
    let layers: [ReferenceLayer] = model.modules.map { module in
        switch module {
        case let linear as Linear:
            return .linear(weight: linear.weight.value.rowArrays, bias: linear.bias.value.elements)
        case is ReLU: return .relu
        case is Tanh: return .tanh
        case is Sigmoid: return .sigmoid
        default: preconditionFailure("referenceThroughput: \(module)")
        }
    }
    let inputs = data.inputs.rowArrays, targets = data.targets.rowArrays
    let train = ReferenceData(inputs: inputs, targets: targets)
    let test = ReferenceData(inputs: Array(inputs.prefix(10)), targets: Array(targets.prefix(10)))
    let stepsPerEpoch = (data.count + workload.batchSize - 1) / workload.batchSize
    // Epochs: about the workload's step count scaled, at least one.
    let epochs = max(1, Int((Double(workload.steps) * scale / Double(stepsPerEpoch) / 10).rounded()))
    func run(_ epochs: Int) -> ReferenceRun {
        ReferenceRun(layers: layers, loss: .mse,
                     optimizer: .sgd(lr: Workload.learningRate, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
                     train: train, test: test, epochs: epochs, batchSize: workload.batchSize)
    }
    let network = try ReferenceNetwork(layers: layers)

    _ = try ReferenceEngine.train(run(0))  // warm-up
    var rates: [Double] = []
    var lastLoss = 0.0
    for _ in 0..<repetitions {
        var start = now()
        _ = try ReferenceEngine.train(run(0))
        let setupAndEvaluation = now() - start
        start = now()
        let result = try ReferenceEngine.train(run(epochs))
        let total = now() - start
        start = now()
        _ = try network.forward(train.inputs)
        _ = try network.forward(test.inputs)
        let evaluation = now() - start
        let perEpoch = (total - setupAndEvaluation) / Double(epochs) - evaluation
        rates.append(Double(data.count) / max(perEpoch, 1e-9))
        lastLoss = result.epochs.last?.trainLoss ?? .nan
    }
    return Throughput(repetitions: rates, allocationsPerStep: .nan, lastLoss: lastLoss)
}
