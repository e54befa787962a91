import Foundation
import Framework
import Reference

/// The two engines `compare` runs.
public enum Engine: String, CaseIterable, Codable, Sendable {
    case framework
    case reference
}

/// What one engine did in one round: its wall time, per-epoch trace, divergence, and a predictor built
/// from its final parameters (for plots; not part of the JSON report).
public struct EngineOutcome {
    /// Wall time of the whole run (training and per-epoch evaluation), excluding loading and data generation.
    public var seconds: Double
    public var epochs: [EpochMetrics]
    public var divergence: Divergence?
    /// Final parameters, weight `(out, in)` and bias `(1, out)` per linear layer.
    public var finalParameters: [(weight: Matrix, bias: Matrix)]
    /// The trained network's outputs for inputs `(n, inWidth)` → `(n, outWidth)`.
    public var predict: (Matrix) throws -> Matrix
}

/// Builds `experiment`'s model in Framework with the given initial parameters.
public func frameworkModel(_ model: ModelSpec, parameters: [(weight: Matrix, bias: Matrix)]) throws -> Sequential {
    var remaining = parameters[...]
    let modules: [Module] = model.layers.map { layer in
        switch layer {
        case .linear:
            let values = remaining.removeFirst()
            return Linear(weight: values.weight, bias: values.bias)
        case .relu: return ReLU()
        case .tanh: return Tanh()
        case .sigmoid: return Sigmoid()
        case let .leakyRelu(slope): return LeakyReLU(slope: slope)
        }
    }
    return try Sequential(modules)
}

/// Framework's loss for a loss kind.
public func frameworkLoss(_ kind: LossKind) -> Loss {
    switch kind {
    case .mse: return MSELoss()
    case .mae: return MAELoss()
    case .bce: return BCELoss()
    case .crossEntropy: return CrossEntropyLoss()
    }
}

/// Framework's optimizer for a spec (throws `HyperparameterError` for values out of range).
public func frameworkOptimizer(_ spec: OptimizerSpec) throws -> Optimizer {
    switch spec {
    case let .sgd(s):
        return try SGD(learningRate: s.lr, momentum: s.momentum, dampening: s.dampening,
                       nesterov: s.nesterov, weightDecay: s.weightDecay)
    case let .adam(a):
        return try Adam(learningRate: a.lr, beta1: a.beta1, beta2: a.beta2, epsilon: a.eps, weightDecay: a.weightDecay)
    }
}

/// Trains `round` in Framework; `nudged` starts from the initial parameters moved up by one ulp each
/// (`nextUp`): the shadow run that measures how much rounding alone moves the trajectory.
public func runFramework(_ round: MaterializedRound, nudged: Bool = false) throws -> EngineOutcome {
    let experiment = round.experiment
    var parameters = round.initialParameters
    if nudged {
        for index in parameters.indices {
            parameters[index].weight.elements = parameters[index].weight.elements.map(\.nextUp)
            parameters[index].bias.elements = parameters[index].bias.elements.map(\.nextUp)
        }
    }
    let model = try frameworkModel(experiment.model, parameters: parameters)
    let loss = frameworkLoss(experiment.loss)
    let optimizer = try frameworkOptimizer(experiment.optimizer)
    let trainer = Trainer(epochs: experiment.training.epochs, batchSize: experiment.training.batchSize, order: round.order)
    let start = DispatchTime.now().uptimeNanoseconds
    let trace = trainer.fit(model, loss: loss, optimizer: optimizer, train: round.train, test: round.test)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let final = model.modules.compactMap { $0 as? Linear }.map { ($0.weight.value, $0.bias.value) }
    return EngineOutcome(seconds: seconds, epochs: trace.epochs, divergence: trace.divergence,
                         finalParameters: final, predict: { x in model.forward(x) })
}

/// `experiment`'s layers as Reference layers with the given parameter values.
public func referenceLayers(_ model: ModelSpec, parameters: [(weight: Matrix, bias: Matrix)]) -> [ReferenceLayer] {
    var remaining = parameters[...]
    return model.layers.map { layer in
        switch layer {
        case .linear:
            let values = remaining.removeFirst()
            return .linear(weight: values.weight.rowArrays, bias: values.bias.elements)
        case .relu: return .relu
        case .tanh: return .tanh
        case .sigmoid: return .sigmoid
        case let .leakyRelu(slope): return .leakyRelu(slope: slope)
        }
    }
}

/// Reference's loss for a loss kind.
public func referenceLoss(_ kind: LossKind) -> ReferenceLoss {
    switch kind {
    case .mse: return .mse
    case .mae: return .mae
    case .bce: return .bce
    case .crossEntropy: return .crossEntropy
    }
}

/// Reference's optimizer for a spec.
public func referenceOptimizer(_ spec: OptimizerSpec) -> ReferenceOptimizer {
    switch spec {
    case let .sgd(s):
        return .sgd(lr: s.lr, momentum: s.momentum, dampening: s.dampening, nesterov: s.nesterov, weightDecay: s.weightDecay)
    case let .adam(a):
        return .adam(lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weightDecay)
    }
}

/// Trains `round` in Reference, given the same data, initial values and batch orders as Framework.
public func runReference(_ round: MaterializedRound, layers override: [ReferenceLayer]? = nil) throws -> EngineOutcome {
    let experiment = round.experiment
    let run = ReferenceRun(
        layers: override ?? referenceLayers(experiment.model, parameters: round.initialParameters),
        loss: referenceLoss(experiment.loss),
        optimizer: referenceOptimizer(experiment.optimizer),
        train: ReferenceData(inputs: round.train.inputs.rowArrays, targets: round.train.targets.rowArrays),
        test: ReferenceData(inputs: round.test.inputs.rowArrays, targets: round.test.targets.rowArrays),
        epochs: experiment.training.epochs,
        batchSize: experiment.training.batchSize,
        batchOrder: experiment.training.shuffle ? round.orders : nil)
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try ReferenceEngine.train(run)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let epochs = result.epochs.map {
        EpochMetrics(epoch: $0.epoch, trainLoss: $0.trainLoss, testLoss: $0.testLoss,
                     trainAccuracy: $0.trainAccuracy, testAccuracy: $0.testAccuracy)
    }
    let divergence = result.divergence.map { Divergence(epoch: $0.epoch, batch: $0.batch, loss: $0.loss) }
    var final: [(weight: Matrix, bias: Matrix)] = []
    for case let .linear(weight, bias) in result.finalLayers {
        final.append((Matrix(weight), Matrix([bias])))
    }
    let finalLayers = result.finalLayers
    return EngineOutcome(seconds: seconds, epochs: epochs, divergence: divergence, finalParameters: final,
                         predict: { x in Matrix(try ReferenceNetwork(layers: finalLayers).forward(x.rowArrays)) })
}
