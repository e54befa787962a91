import Framework
import Reference

/// Reference, the referee, as an engine: the same data, initial values and batch orders as every other engine,
/// trained on GSL BLAS.
///
/// `plantedDifference`, the self-check `--plant-difference DELTA`, adds DELTA to element [0, 0] of the first
/// linear layer's weight, so that parity must fail.
public struct ReferenceTrainingEngine: TrainingEngine {
    public var name: String
    public var plantedDifference: Double?

    public init(name: String = EngineName.reference, plantedDifference: Double? = nil) {
        self.name = name
        self.plantedDifference = plantedDifference
    }

    public func train(_ round: MaterializedRound) throws -> Trace {
        let experiment = round.experiment
        let layers = referenceLayers(experiment.model, parameters: plantedParameters(round.initialParameters, plantedDifference))
        let run = ReferenceRun(
            layers: layers,
            loss: experiment.loss.reference,
            optimizer: experiment.optimizer.configuration.reference,
            train: ReferenceData(inputs: round.train.inputs.rowArrays, targets: round.train.targets.rowArrays),
            test: ReferenceData(inputs: round.test.inputs.rowArrays, targets: round.test.targets.rowArrays),
            epochs: experiment.training.epochs,
            batchSize: experiment.training.batchSize,
            batchOrder: round.order == .sequential ? nil : round.orders,
            recordedSteps: experiment.trace?.steps ?? 0)
        let start = monotonicSeconds()
        let result = try ReferenceEngine.train(run)
        let seconds = monotonicSeconds() - start
        let epochs = result.epochs.map {
            EpochMetrics(epoch: $0.epoch, trainLoss: $0.trainLoss, testLoss: $0.testLoss,
                         trainAccuracy: $0.trainAccuracy, testAccuracy: $0.testAccuracy)
        }
        var initial: [String: Tensor] = [:]
        var final: [(weight: Matrix, bias: Matrix)] = []
        for (i, (first, last)) in zip(layers, result.finalLayers).enumerated() {
            if case let .linear(weight, bias) = first {
                initial[TensorName.weight(i)] = .matrix(Matrix(weight))
                initial[TensorName.bias(i)] = .vector(bias)
            }
            if case let .linear(weight, bias) = last { final.append((Matrix(weight), Matrix([bias]))) }
        }
        return Trace(experiment: experiment.name, engine: "Reference (GSL, \(ReferenceEngine.blasLibrary))", epochs: epochs,
                     divergence: result.divergence.map { Divergence(epoch: $0.epoch, batch: $0.batch, loss: $0.loss) },
                     seconds: seconds, initialParameters: initial, finalParameters: final,
                     steps: result.steps.map(TraceStep.init(reference:)))
    }
}

extension TraceStep {
    init(reference step: ReferenceStep) {
        var tensors: [String: Tensor] = [:]
        for (name, value) in step.tensors {
            switch value {
            case let .scalar(x): tensors[name] = .scalar(x)
            case let .vector(v): tensors[name] = .vector(v)
            case let .matrix(rows): tensors[name] = .matrix(Matrix(rows))
            }
        }
        self.init(epoch: step.epoch, batch: step.batch, tensors: tensors)
    }
}

/// `model`'s layers as Reference layers with the given parameter values.
public func referenceLayers(_ model: ModelSpec, parameters: [(weight: Matrix, bias: Matrix)]) -> [ReferenceLayer] {
    var remaining = parameters[...]
    return model.layers.map { layer in
        switch layer {
        case .linear:
            let values = remaining.removeFirst()
            return .linear(weight: values.weight.rowArrays, bias: values.bias.elements)
        case let .activation(kind, parameters):
            return kind.reference(parameters)
        }
    }
}

/// `parameters` (weight and bias per linear layer) with `delta` added to element [0, 0] of the first weight:
/// the referee's initial parameters under `--plant-difference`, a disagreement the parity check must report.
public func plantedParameters(_ parameters: [(weight: Matrix, bias: Matrix)], _ delta: Double?) -> [(weight: Matrix, bias: Matrix)] {
    var parameters = parameters
    if let delta, !parameters.isEmpty { parameters[0].weight.elements[0] += delta }
    return parameters
}

/// The smallest positive δ with `w + δ ≠ w` (for `positive`; else the smallest negative one): what
/// `--plant-difference` needs at least to change the weight `w`. Found by bisection on the bit patterns of
/// positive doubles, over which `w + δ` is monotone.
public func smallestChange(of w: Double, positive: Bool) -> Double {
    var low: UInt64 = 0, high = Double.greatestFiniteMagnitude.bitPattern   // w + high changes w (or overflows)
    while high - low > 1 {
        let middle = low + (high - low) / 2
        let delta = Double(bitPattern: middle)
        if (positive ? w + delta : w - delta) != w { high = middle } else { low = middle }
    }
    return positive ? Double(bitPattern: high) : -Double(bitPattern: high)
}
