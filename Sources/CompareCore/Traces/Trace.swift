import Framework

// The one trace type: what any engine did with one round of one experiment (Framework, Reference, an outside
// command, a stored file). The judge reads only this; docs/trace-format.md is its file form.

/// What one engine did in one round: the per-epoch evaluation, where it diverged, how long it took and,
/// when asked for, the tensors of its first optimizer steps.
public struct Trace: Sendable {
    /// The experiment's name.
    public var experiment: String
    /// The engine, in free text: "Framework (MINIDL_AVX512, release)", "numpy 2.4.6 float64".
    public var engine: String
    /// Epochs 0…E (fewer when it diverged); epoch 0 is the evaluation before any update.
    public var epochs: [EpochMetrics]
    /// Where a batch loss became NaN or ±∞ (1-based epoch and batch), or nil.
    public var divergence: Divergence?
    /// Wall time of training plus evaluation, when known.
    public var seconds: Double?
    /// The parameters before any update, by tensor name (`layers[i].weight`, `layers[i].bias`), when given.
    public var initialParameters: [String: Tensor]?
    /// The parameters after training, weight `(out, in)` and bias `(1, out)` per linear layer, when given.
    public var finalParameters: [(weight: Matrix, bias: Matrix)]?
    /// The first K optimizer steps' tensors, when the experiment asked for them (`"trace": {"steps": K}`).
    public var steps: [TraceStep]
    /// Per epoch (0…E), the parameters and optimizer state after its last update (epoch 0: the initial
    /// parameters), by tensor name (`layers[i].weight`, `layers[i].bias`, `layers[i].weight.m`, …), when the
    /// experiment asked for them (`"trace": {"epochParameters": true}`, trace version 2).
    public var checkpoints: [Int: [String: Tensor]]

    public init(experiment: String, engine: String, epochs: [EpochMetrics], divergence: Divergence?, seconds: Double? = nil,
                initialParameters: [String: Tensor]? = nil, finalParameters: [(weight: Matrix, bias: Matrix)]? = nil,
                steps: [TraceStep] = [], checkpoints: [Int: [String: Tensor]] = [:]) {
        self.experiment = experiment
        self.engine = engine
        self.epochs = epochs
        self.divergence = divergence
        self.seconds = seconds
        self.initialParameters = initialParameters
        self.finalParameters = finalParameters
        self.steps = steps
        self.checkpoints = checkpoints
    }
}

/// One optimizer step's tensors, by name (docs/trace-format.md): `layers[i].output`, `loss`, `loss.dInput`,
/// `layers[i].dInput`, `layers[i].dWeight`, `layers[i].dBias`, `layers[i].weight`, `layers[i].bias`, and the
/// optimizer's state `layers[i].weight.momentum`, `.m`, `.v` (and the same for `.bias`).
public struct TraceStep: Sendable, Equatable {
    /// 1-based, as in `Divergence`.
    public var epoch: Int
    public var batch: Int
    public var tensors: [String: Tensor]

    public init(epoch: Int, batch: Int, tensors: [String: Tensor] = [:]) {
        self.epoch = epoch
        self.batch = batch
        self.tensors = tensors
    }
}

/// A traced value: the loss (a number), a bias or its gradient (a flat array), or a matrix of rows.
public enum Tensor: Sendable, Equatable {
    case scalar(Double)
    case vector([Double])
    case matrix(Matrix)

    /// The values in row-major order.
    public var values: [Double] {
        switch self {
        case let .scalar(x): return [x]
        case let .vector(v): return v
        case let .matrix(m): return m.elements
        }
    }

    /// "a number", "25 values", "25×24".
    public var shapeDescription: String {
        switch self {
        case .scalar: return "a number"
        case let .vector(v): return "\(v.count) values"
        case let .matrix(m): return "\(m.rows)×\(m.columns)"
        }
    }

    /// (rows, columns): a scalar is (1, 1), a vector (1, n).
    public var shape: (rows: Int, columns: Int) {
        switch self {
        case .scalar: return (1, 1)
        case let .vector(v): return (1, v.count)
        case let .matrix(m): return m.shape
        }
    }

    /// Element `k` in row-major order, for reports: "[2, 5]" for a matrix, "[5]" for a vector, "" for a number.
    public func index(_ k: Int) -> String {
        switch self {
        case .scalar: return ""
        case .vector: return "[\(k)]"
        case let .matrix(m): return "[\(k / max(m.columns, 1)), \(k % max(m.columns, 1))]"
        }
    }
}

/// The tensor names of the trace format, in one place.
public enum TensorName {
    public static func output(_ i: Int) -> String { "layers[\(i)].output" }
    public static func dInput(_ i: Int) -> String { "layers[\(i)].dInput" }
    public static func dWeight(_ i: Int) -> String { "layers[\(i)].dWeight" }
    public static func dBias(_ i: Int) -> String { "layers[\(i)].dBias" }
    public static func weight(_ i: Int) -> String { "layers[\(i)].weight" }
    public static func bias(_ i: Int) -> String { "layers[\(i)].bias" }
    /// The optimizer state `state` ("momentum", "m", "v") of parameter `parameter` ("weight", "bias") of layer i.
    public static func state(_ i: Int, _ parameter: String, _ state: String) -> String { "layers[\(i)].\(parameter).\(state)" }
    public static let loss = "loss"
    public static let lossDInput = "loss.dInput"
    /// The optimizer states the format names.
    public static let states = ["momentum", "m", "v"]

    /// The layer index in a name `layers[i]…`, or nil.
    public static func layer(of name: String) -> Int? {
        guard name.hasPrefix("layers["), let close = name.firstIndex(of: "]") else { return nil }
        return Int(name[name.index(name.startIndex, offsetBy: 7)..<close])
    }
}
