// A sequential network of reference layers: forward through all, backward in reverse.

/// A sequential stack of layers on GSL matrices (PyTorch `nn.Sequential` of `Linear` and activations).
///
/// `forward` maps `(batch, in) → (batch, out)` and caches what `backward` needs; `backward` takes
/// `dOutput (batch, out)`, returns `dInput (batch, in)` and accumulates (`+=`) every linear layer's
/// `dWeight (out, in)` and `dBias (out)` until `zeroGradients()`, like PyTorch's `.grad`.
public final class ReferenceNetwork {
    let modules: [Module]
    /// The linear layers, in declaration order (the parameters, explicitly listed).
    let linears: [Linear]
    /// The width the first linear layer expects, `nil` if there is none (activations take any width).
    let inputWidth: Int?
    /// The width the last linear layer produces, `nil` if there is none.
    let outputWidth: Int?
    private var lastOutputShape: (rows: Int, columns: Int)?
    /// While true, `forward` and `backward` keep every module's output and dInput for `ReferenceStep`.
    var recording = false
    private var outputs: [Matrix] = []
    private var dInputs: [Matrix] = []

    /// Builds the network; throws `ReferenceError` if a weight is empty or ragged, a bias does not have
    /// one value per output, or one linear layer's `out` differs from the next one's `in`.
    public init(layers: [ReferenceLayer]) throws {
        var modules: [Module] = []
        var linears: [Linear] = []
        for (index, layer) in layers.enumerated() {
            let location = "layers[\(index)] \(layer)"
            switch layer {
            case let .linear(weight, bias):
                let linear = try Linear(weight: weight, bias: bias, location)
                guard bias.count == linear.outFeatures else {
                    throw ReferenceError("bias has \(bias.count) values but weight has \(linear.outFeatures) rows (out); "
                                         + "expected one bias per output", at: location)
                }
                if let previous = linears.last, previous.outFeatures != linear.inFeatures {
                    throw ReferenceError("input width \(linear.inFeatures) does not match the previous linear "
                                         + "layer's output width \(previous.outFeatures)", at: location)
                }
                linears.append(linear)
                modules.append(linear)
            default: modules.append(Activation(layer))
            }
        }
        self.modules = modules
        self.linears = linears
        inputWidth = linears.first?.inFeatures
        outputWidth = linears.last?.outFeatures
    }

    // MARK: Matrices (used by the engine)

    /// `(batch, in) → (batch, out)` through every layer, caching for `backward`.
    func forward(_ input: Matrix) throws -> Matrix {
        if let width = inputWidth, input.columns != width {
            throw ReferenceError("input is \(input.shape) but the first linear layer expects \(width) features",
                                 at: "ReferenceNetwork.forward")
        }
        var x = input
        outputs.removeAll()
        for module in modules {
            x = try module.forward(x)
            if recording { outputs.append(x) }
        }
        lastOutputShape = (x.rows, x.columns)
        return x
    }

    /// `dOutput (batch, out) → dInput (batch, in)` through every layer in reverse; accumulates gradients.
    func backward(_ dOutput: Matrix) throws -> Matrix {
        guard let shape = lastOutputShape else {
            throw ReferenceError("backward called before forward", at: "ReferenceNetwork.backward")
        }
        guard dOutput.rows == shape.rows, dOutput.columns == shape.columns else {
            throw ReferenceError("dOutput is \(dOutput.shape) but the last forward produced (\(shape.rows), "
                                 + "\(shape.columns))", at: "ReferenceNetwork.backward")
        }
        var d = dOutput
        dInputs.removeAll()
        for module in modules.reversed() {
            d = try module.backward(d)
            if recording { dInputs.insert(d, at: 0) }
        }
        return d
    }

    /// Every parameter with its gradient, in declaration order: weight then bias of each linear layer.
    var parameters: [(value: Matrix, gradient: Matrix)] {
        linears.flatMap { [($0.weight, $0.dWeight), ($0.bias, $0.dBias)] }
    }

    // MARK: Recording steps (ReferenceStep)

    /// A step with the last forward's outputs, the loss and its gradient.
    func recordedForward(epoch: Int, batch: Int, loss: Double, dOutput: Matrix) -> ReferenceStep {
        var tensors: [String: ReferenceTensor] = ["loss": .scalar(loss), "loss.dInput": .matrix(dOutput.array)]
        for (i, output) in outputs.enumerated() { tensors["layers[\(i)].output"] = .matrix(output.array) }
        return ReferenceStep(epoch: epoch, batch: batch, tensors: tensors)
    }

    /// Adds the last backward's dInputs and the linear layers' gradients.
    func recordBackward(into step: inout ReferenceStep) {
        for (i, dInput) in dInputs.enumerated() { step.tensors["layers[\(i)].dInput"] = .matrix(dInput.array) }
        for (i, module) in modules.enumerated() {
            guard let linear = module as? Linear else { continue }
            step.tensors["layers[\(i)].dWeight"] = .matrix(linear.dWeight.array)
            step.tensors["layers[\(i)].dBias"] = .vector(linear.dBias.array[0])
        }
    }

    /// Adds the parameters after the update and the optimizer's state.
    func recordParameters(into step: inout ReferenceStep, optimizer: ReferenceOptimizerState) {
        var parameter = 0
        for (i, module) in modules.enumerated() {
            guard let linear = module as? Linear else { continue }
            step.tensors["layers[\(i)].weight"] = .matrix(linear.weight.array)
            step.tensors["layers[\(i)].bias"] = .vector(linear.bias.array[0])
            for (name, which) in [("weight", parameter), ("bias", parameter + 1)] {
                for (state, value) in optimizer.state(ofParameter: which) {
                    step.tensors["layers[\(i)].\(name).\(state)"] = name == "weight" ? .matrix(value.array) : .vector(value.array[0])
                }
            }
            parameter += 2
        }
    }

    // MARK: Swift arrays (the public API)

    /// `input (batch, in) → output (batch, out)`; caches what `backward` needs.
    public func forward(_ input: [[Double]]) throws -> [[Double]] {
        try forward(Matrix(input, name: "ReferenceNetwork.forward input")).array
    }

    /// `dOutput (batch, out) → dInput (batch, in)` for the last `forward`; accumulates (`+=`) gradients.
    public func backward(_ dOutput: [[Double]]) throws -> [[Double]] {
        try backward(Matrix(dOutput, name: "ReferenceNetwork.backward dOutput")).array
    }

    /// Sets every parameter gradient to zero (PyTorch `optimizer.zero_grad()` with zeros, not `None`).
    public func zeroGradients() {
        for linear in linears { linear.zeroGradients() }
    }

    /// The layers with their current parameter values.
    public var layers: [ReferenceLayer] { modules.map(\.layer) }

    /// One entry per linear layer, in order: `weight (out, in)` and `bias (out)` gradients.
    public var gradients: [(weight: [[Double]], bias: [Double])] {
        linears.map { ($0.dWeight.array, $0.dBias.array[0]) }
    }
}
