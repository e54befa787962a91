// Replay: one training step, or one operation, recomputed by the referee from a state someone else gives
// (another engine's parameters, optimizer state and tensors). `compare locate` walks an engine's steps with it.

/// The optimizer's state before a step: how many steps were taken (Adam's t), and for each parameter (weight
/// then bias of each linear layer, in order) its named state as the last step left it: SGD's `"momentum"`
/// buffer, Adam's `"m"` and `"v"`, each in the parameter's shape (a bias as one row). A state left out is zero.
public struct ReferenceOptimizerSnapshot: Equatable, Sendable {
    public var stepCount: Int
    public var states: [[String: [[Double]]]]

    public init(stepCount: Int, states: [[String: [[Double]]]] = []) {
        self.stepCount = stepCount
        self.states = states
    }
}

/// The referee's single steps and single operations, each from given inputs.
public enum ReferenceReplay {
    /// One optimizer step from the given state, exactly as `ReferenceEngine.train` takes it: zero gradients,
    /// forward of `inputs (batch, in)`, the loss against `targets (batch, out)`, backward, one update. `layers`
    /// hold the parameters the step starts from. Returns every tensor of the step (`ReferenceStep`, the names of
    /// docs/trace-format.md), numbered `epoch`, `batch`; a step whose loss is not finite has its outputs and
    /// loss only. Throws `ReferenceError` for shapes that do not fit and invalid hyperparameters or states.
    public static func step(layers: [ReferenceLayer], loss: ReferenceLoss, optimizer: ReferenceOptimizer,
                            state: ReferenceOptimizerSnapshot, inputs: [[Double]], targets: [[Double]],
                            epoch: Int, batch: Int) throws -> ReferenceStep {
        let network = try ReferenceNetwork(layers: layers)
        let x = try Matrix(inputs, name: "replay inputs"), y = try Matrix(targets, name: "replay targets")
        let states = try state.states.enumerated().map { index, named in
            try named.mapValues { try Matrix($0, name: "replay state of parameter \(index)") }
        }
        let optimizerState = try ReferenceOptimizerState(optimizer, restoring: state.stepCount, states: states,
                                                         for: network.parameters)
        return try ReferenceEngine.trainingStep(network, loss, optimizerState, x, y, epoch: epoch, batch: batch,
                                                recording: true).step!
    }

    /// The class one row of outputs (or targets) stands for, by the referee's rule (`correctCount`): the first
    /// maximum, a NaN counting as the maximum (as `torch.argmax`); for a single column, 1 when ≥ 0.5.
    public static func predictedClass(_ row: ArraySlice<Double>) -> Int {
        if row.count == 1 { return row.first! >= 0.5 ? 1 : 0 }
        return row.withUnsafeBufferPointer { argmax($0.baseAddress!, $0.count) }
    }

    /// One layer's forward: `input (batch, in) → (batch, out)`.
    public static func forward(_ layer: ReferenceLayer, input: [[Double]]) throws -> [[Double]] {
        try ReferenceNetwork(layers: [layer]).forward(input)
    }

    /// One layer's backward from the given forward input: `dOutput (batch, out) → dInput (batch, in)`, and for
    /// a linear layer its gradients `dWeight (out, in)`, `dBias (out)` (from zero).
    public static func backward(_ layer: ReferenceLayer, input: [[Double]], dOutput: [[Double]]) throws
        -> (dInput: [[Double]], dWeight: [[Double]]?, dBias: [Double]?) {
        let network = try ReferenceNetwork(layers: [layer])
        _ = try network.forward(input)
        let dInput = try network.backward(dOutput)
        let gradients = network.gradients.first
        return (dInput, gradients?.weight, gradients?.bias)
    }

    /// One optimizer update of one parameter `(rows, columns)` (a bias as one row) from its `gradient`, with the
    /// state the previous step left (`stepCount` steps taken). Returns the parameter after the update and its
    /// state (`ReferenceOptimizerSnapshot`'s names).
    public static func update(_ optimizer: ReferenceOptimizer, parameter: [[Double]], gradient: [[Double]],
                              state: [String: [[Double]]], stepCount: Int) throws
        -> (parameter: [[Double]], state: [String: [[Double]]]) {
        let p = try Matrix(parameter, name: "update parameter"), g = try Matrix(gradient, name: "update gradient")
        guard p.rows == g.rows, p.columns == g.columns else {
            throw ReferenceError("parameter is \(p.shape) but its gradient \(g.shape)", at: "ReferenceReplay.update")
        }
        let restored = try state.mapValues { try Matrix($0, name: "update state") }
        let optimizerState = try ReferenceOptimizerState(optimizer, restoring: stepCount, states: [restored], for: [(p, g)])
        try optimizerState.step([(p, g)])
        var after: [String: [[Double]]] = [:]
        for (name, value) in optimizerState.state(ofParameter: 0) { after[name] = value.array }
        return (p.array, after)
    }
}
