import Framework

/// What a Framework run is made of: the model's modules (in `model.layers` order), the loss, the optimizer and
/// the trainer (epochs, batch size, order, `dropLast`). A convention variant (Conventions.swift) changes one of
/// them through Framework's public protocols before training; nothing inside Framework knows of variants.
public struct FrameworkSetup {
    public var modules: [Module]
    public var loss: Loss
    public var optimizer: Optimizer
    public var trainer: Trainer
}

/// Framework as an engine: the experiment's model, loss and optimizer built from the kinds' declarations
/// (Kinds.swift), trained by `Trainer.fit`.
///
/// `nudged` starts from the initial parameters moved up by one ulp each (`nextUp`): the *shadow*, which
/// measures how much rounding alone moves the trajectory. When the experiment asks for steps, the first K are
/// recorded through wrappers around the model's modules, the loss and the optimizer (`StepRecorder`), built on
/// Framework's public protocols: nothing inside Framework knows about traces.
public struct FrameworkEngine: TrainingEngine {
    public var name: String
    public var nudged: Bool
    /// Start from these parameters (weight `(out, in)`, bias `(1, out)` per linear layer) instead of the
    /// round's: the referee's, when a convention variant must start where the referee did.
    public var initialParameters: [(weight: Matrix, bias: Matrix)]?
    /// Changes the setup before training (a convention variant), or nil.
    public var adjust: ((inout FrameworkSetup) throws -> Void)?
    /// When set, each recorded step is handed here as soon as it is complete and not kept in the trace, so
    /// that memory holds one step's tensors (`compare locate`).
    public var onStep: ((TraceStep) -> Void)?

    public init(name: String = EngineName.framework, nudged: Bool = false, initialParameters: [(weight: Matrix, bias: Matrix)]? = nil,
                adjust: ((inout FrameworkSetup) throws -> Void)? = nil, onStep: ((TraceStep) -> Void)? = nil) {
        self.name = name
        self.nudged = nudged
        self.initialParameters = initialParameters
        self.adjust = adjust
        self.onStep = onStep
    }

    public func train(_ round: MaterializedRound) throws -> Trace {
        let experiment = round.experiment
        var parameters = initialParameters ?? round.initialParameters
        if nudged {
            for index in parameters.indices {
                parameters[index].weight.elements = parameters[index].weight.elements.map(\.nextUp)
                parameters[index].bias.elements = parameters[index].bias.elements.map(\.nextUp)
            }
        }
        var setup = FrameworkSetup(modules: frameworkModules(experiment.model, parameters: parameters),
                                   loss: experiment.loss.framework(), optimizer: try experiment.optimizer.configuration.framework(),
                                   trainer: Trainer(epochs: experiment.training.epochs, batchSize: experiment.training.batchSize,
                                                    order: round.order))
        try adjust?(&setup)
        let steps = experiment.trace?.steps ?? 0
        let recorder = steps > 0 ? StepRecorder(trainer: setup.trainer, rows: round.train.count, limit: steps, onStep: onStep) : nil
        let model = try Sequential(recorder.map { recorder in setup.modules.enumerated().map { recorder.wrap($1, index: $0) } } ?? setup.modules)
        if let recorder {
            setup.loss = recorder.wrap(setup.loss)
            setup.optimizer = recorder.wrap(setup.optimizer, model: model)
        }
        let start = monotonicSeconds()
        let trace = setup.trainer.fit(model, loss: setup.loss, optimizer: setup.optimizer, train: round.train, test: round.test)
        let seconds = monotonicSeconds() - start
        recorder?.finish()
        var initial: [String: Tensor] = [:]
        for (i, values) in zip(experiment.model.linearIndices, parameters) {
            initial[TensorName.weight(i)] = .matrix(values.weight)
            initial[TensorName.bias(i)] = .vector(values.bias.elements)
        }
        let final = model.parameters.map(\.value)
        return Trace(experiment: experiment.name, engine: "Framework (\(BuildInfo.current.frameworkLine))",
                     epochs: trace.epochs, divergence: trace.divergence, seconds: seconds, initialParameters: initial,
                     finalParameters: stride(from: 0, to: final.count - 1, by: 2).map { (final[$0], final[$0 + 1]) },
                     steps: recorder?.steps ?? [])
    }
}

/// `model`'s layers as Framework modules, with the given initial parameters for its linear layers.
public func frameworkModules(_ model: ModelSpec, parameters: [(weight: Matrix, bias: Matrix)]) -> [Module] {
    var remaining = parameters[...]
    return model.layers.map { layer in
        switch layer {
        case .linear:
            let values = remaining.removeFirst()
            return Linear(weight: values.weight, bias: values.bias)
        case let .activation(kind, parameters):
            return kind.framework(parameters)
        }
    }
}

/// The outputs `(n, out)` of `model` with the given parameters for inputs `(n, in)`, through Framework (for
/// plots of any engine's final parameters).
/// The rows go through in chunks of `Trainer`'s evaluation size (2¹⁸ elements of the widest layer), so that a
/// wide model on a 200×200 grid needs memory for one chunk, as training's evaluation does.
public func predictions(_ model: ModelSpec, parameters: [(weight: Matrix, bias: Matrix)], inputs: Matrix) throws -> Matrix {
    let network = try Sequential(frameworkModules(model, parameters: parameters))
    let chunk = max(1, Trainer(epochs: 0, batchSize: 1).evaluationChunkElements / max(model.widths.max() ?? 1, 1))
    var output = Matrix(rows: inputs.rows, columns: model.outputWidth)
    var rows = Matrix.empty
    for start in stride(from: 0, to: inputs.rows, by: chunk) {
        let range = start..<min(start + chunk, inputs.rows)
        rows.gather(rows: range, of: inputs)
        let y = network.forward(rows)
        output.elements.replaceSubrange((start * y.columns)..<(range.upperBound * y.columns), with: y.elements)
    }
    return output
}

// MARK: - Recording the first steps

/// Collects the tensors of a Framework run's first K optimizer steps, in the trace format's names, from
/// wrappers around its modules (outputs, dInputs), its loss (value, gradient) and its optimizer (gradients
/// before the update, parameters and state after it).
final class StepRecorder {
    let limit: Int
    private(set) var steps: [TraceStep] = []
    private var current: [String: Tensor] = [:]
    /// Optimizer steps taken; the step being recorded is number `taken + 1`.
    private var taken = 0
    private let batchesPerEpoch: Int

    /// Where finished steps go instead of `steps`, when set.
    private let onStep: ((TraceStep) -> Void)?

    /// `trainer` numbers the steps: `batchSize` rows per batch of `rows` train rows, the last batch dropped
    /// when smaller and `dropLast` is set.
    init(trainer: Trainer, rows: Int, limit: Int, onStep: ((TraceStep) -> Void)? = nil) {
        self.limit = limit
        self.onStep = onStep
        batchesPerEpoch = trainer.dropLast ? max(rows / trainer.batchSize, 1) : ceilingDivision(rows, trainer.batchSize)
    }

    var recording: Bool { taken < limit }

    func record(_ name: String, _ tensor: @autoclosure () -> Tensor) {
        if recording { current[name] = tensor() }
    }

    /// Ends a step: it becomes the next `TraceStep`.
    func endStep() {
        guard recording else { return }
        let step = TraceStep(epoch: taken / batchesPerEpoch + 1, batch: taken % batchesPerEpoch + 1, tensors: current)
        if let onStep { onStep(step) } else { steps.append(step) }
        current = [:]
        taken += 1
    }

    /// After training: a step that diverged (outputs and loss, no update) is kept as the last one.
    func finish() {
        if recording && !current.isEmpty { endStep() }
        taken = limit
    }

    func wrap(_ module: Module, index: Int) -> Module { RecordedModule(module, index: index, recorder: self) }
    func wrap(_ loss: Loss) -> Loss { RecordedLoss(loss, recorder: self) }
    func wrap(_ optimizer: Optimizer, model: Sequential) -> Optimizer {
        RecordedOptimizer(optimizer, recorder: self, layers: model.modules.enumerated().flatMap { index, module in
            module.parameters.map { (index, $0.name) }
        })
    }
}

/// A module whose output and dInput are recorded while its recorder is. While recording, the first module's
/// dInput is computed too (`backward` instead of `accumulateGradients`), so the trace has every layer's.
private final class RecordedModule: Module {
    let inner: Module
    let index: Int
    let recorder: StepRecorder

    init(_ inner: Module, index: Int, recorder: StepRecorder) {
        self.inner = inner
        self.index = index
        self.recorder = recorder
    }

    var inputWidth: Int? { inner.inputWidth }
    func outputWidth(forInputWidth width: Int) -> Int { inner.outputWidth(forInputWidth: width) }
    var description: String { inner.description }
    var parameters: [Parameter] { inner.parameters }
    func zeroGradients() { inner.zeroGradients() }

    func forward(_ input: Matrix) -> Matrix {
        let y = inner.forward(input)
        recorder.record(TensorName.output(index), .matrix(y))
        return y
    }

    func backward(_ dOutput: Matrix) -> Matrix {
        let dX = inner.backward(dOutput)
        recorder.record(TensorName.dInput(index), .matrix(dX))
        return dX
    }

    func accumulateGradients(_ dOutput: Matrix) {
        if recorder.recording { _ = backward(dOutput) } else { inner.accumulateGradients(dOutput) }
    }
}

private struct RecordedLoss: Loss, @unchecked Sendable {
    let inner: Loss
    let recorder: StepRecorder

    init(_ inner: Loss, recorder: StepRecorder) {
        self.inner = inner
        self.recorder = recorder
    }

    var description: String { inner.description }
    func value(predictions: Matrix, targets: Matrix) -> Double { inner.value(predictions: predictions, targets: targets) }
    func gradient(predictions: Matrix, targets: Matrix) -> Matrix { inner.gradient(predictions: predictions, targets: targets) }
    func accumulate(predictions: Matrix, targets: Matrix, into total: inout LossTotal) {
        inner.accumulate(predictions: predictions, targets: targets, into: &total)
    }

    func valueAndGradient(predictions: Matrix, targets: Matrix, into gradient: inout Matrix) -> Double {
        let value = inner.valueAndGradient(predictions: predictions, targets: targets, into: &gradient)
        recorder.record(TensorName.loss, .scalar(value))
        if value.isFinite { recorder.record(TensorName.lossDInput, .matrix(gradient)) }
        return value
    }
}

private final class RecordedOptimizer: Optimizer {
    let inner: Optimizer
    let recorder: StepRecorder
    /// For each parameter, in order: its layer's index in the model and "weight" or "bias".
    let layers: [(index: Int, parameter: String)]

    init(_ inner: Optimizer, recorder: StepRecorder, layers: [(Int, String)]) {
        self.inner = inner
        self.recorder = recorder
        self.layers = layers.map { (index: $0.0, parameter: $0.1) }
    }

    func step(_ parameters: [Parameter]) {
        for (p, (index, name)) in zip(parameters, layers) {
            recorder.record("layers[\(index)].d\(name == "weight" ? "Weight" : "Bias")", tensor(p.gradient, name))
        }
        inner.step(parameters)
        for (k, (p, (index, name))) in zip(parameters, layers).enumerated() {
            recorder.record("layers[\(index)].\(name)", tensor(p.value, name))
            for (state, value) in inner.state(ofParameter: k) {
                recorder.record(TensorName.state(index, name, state), tensor(value, name))
            }
        }
        recorder.endStep()
    }

    func state(ofParameter index: Int) -> [(name: String, value: Matrix)] { inner.state(ofParameter: index) }

    private func tensor(_ m: Matrix, _ parameter: String) -> Tensor { parameter == "weight" ? .matrix(m) : .vector(m.elements) }
}
