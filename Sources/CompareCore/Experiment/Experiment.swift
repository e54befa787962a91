import Framework

// Experiment: the typed form of an experiment file, one run of every engine.
//
// The kinds of layer, loss and optimizer are declared once, in Kinds.swift; the JSON format is read in
// Decoding.swift, checked in Validation.swift and written back in Encoding.swift. Every default below is the
// one the decoder fills in when the file leaves the field out.

/// One run: the data, the network, the loss, the optimizer and the training schedule, trained identically
/// by every engine.
///
/// Build one with `Experiment.load(contentsOf:)` or `Experiment.decode(_:file:)`, which validate it; after
/// changing fields (command-line overrides of epochs, learning rate, batch size…) call `validate(file:)` again.
public struct Experiment: Equatable, Sendable {
    /// Shown in reports, and the stem of every output file (see `OutputName`). Default: the file name without
    /// ".experiment.json" or ".json".
    public var name: String
    /// Seeds the data, the initial parameters and the shuffling wherever the file does not give them
    /// explicitly. A non-negative integer below 2^63. Default 1.
    public var seed: UInt64
    /// Train and test sets. Default `.disk(train: 1000, test: 1000)`.
    public var data: DataSpec
    /// The network. Required in the file.
    public var model: ModelSpec
    /// Default `.mse`.
    public var loss: LossKind
    /// Default `.sgd(SGDSpec())`: plain SGD with lr 0.1.
    public var optimizer: OptimizerSpec
    /// Default 300 epochs, batch size 5, shuffled.
    public var training: TrainingSpec
    /// What engines should trace beyond the per-epoch metrics (the file's `"trace"`). Default: nothing.
    public var trace: TraceRequest?

    /// The seed used when the file gives none.
    public static let defaultSeed: UInt64 = 1

    public init(
        name: String,
        seed: UInt64 = Experiment.defaultSeed,
        data: DataSpec = .disk(train: DataSpec.defaultDiskSize, test: DataSpec.defaultDiskSize),
        model: ModelSpec,
        loss: LossKind = .mse,
        optimizer: OptimizerSpec = .sgd(SGDSpec()),
        training: TrainingSpec = TrainingSpec(),
        trace: TraceRequest? = nil
    ) {
        self.name = name
        self.seed = seed
        self.data = data
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.training = training
        self.trace = trace
    }
}

/// `"trace": {"steps": K, "epochParameters": true}`: the tensors of the first K optimizer steps, and the
/// parameters and optimizer state after every epoch (docs/trace-format.md).
public struct TraceRequest: Equatable, Sendable {
    /// Optimizer steps to record, counted across epochs, ≥ 0. Default 0.
    public var steps: Int
    /// Ask for every epoch's parameters and optimizer state (trace version 2), so that the referee can replay
    /// each epoch from the engine's own state (docs/verdict.md). Default false.
    public var epochParameters: Bool

    public init(steps: Int = 0, epochParameters: Bool = false) {
        self.steps = steps
        self.epochParameters = epochParameters
    }
}

// MARK: - Data

/// Where the train and test sets come from.
///
/// For `disk` and `xor` the inputs are 2 wide and the labels 0 or 1; the targets follow the model's output
/// width: one output gives a single 0/1 column, two outputs a one-hot pair (column 0 is 1 for label 0,
/// column 1 is 1 for label 1).
public enum DataSpec: Equatable, Sendable {
    /// Points drawn uniformly from the square [0, 1]², label 1 inside the disk of centre (0.5, 0.5) and
    /// radius 1/√(2π) (half the square's area), 0 outside. `train` and `test` count points; each defaults
    /// to 1000. With `normalize`, both sets' inputs are z-scored with the train set's per-feature mean and
    /// standard deviation (n − 1), as seeds/002 did; the labels are those of the raw points.
    case disk(train: Int, test: Int, normalize: Bool = false)
    /// The four points (0,0), (0,1), (1,0), (1,1) with labels 0, 1, 1, 0, used as both train and test set.
    case xor
    /// Sets given row by row in the file.
    case explicit(train: DataSetSpec, test: DataSetSpec)

    /// Points per set for `disk` when the file does not say: 1000.
    public static let defaultDiskSize = 1000

    /// Rows of the train set.
    public var trainCount: Int {
        switch self {
        case let .disk(train, _, _): return train
        case .xor: return 4
        case let .explicit(train, _): return train.inputs.count
        }
    }

    /// Rows of the test set.
    public var testCount: Int {
        switch self {
        case let .disk(_, test, _): return test
        case .xor: return 4
        case let .explicit(_, test): return test.inputs.count
        }
    }
}

/// A data set given explicitly: `inputs` is (rows, inputWidth), `targets` is (rows, outputWidth), row-major.
public struct DataSetSpec: Equatable, Sendable {
    /// (rows, inputWidth)
    public var inputs: [[Double]]
    /// (rows, outputWidth)
    public var targets: [[Double]]

    public init(inputs: [[Double]], targets: [[Double]]) {
        self.inputs = inputs
        self.targets = targets
    }
}

// MARK: - Model

/// The network: layers applied in order. It must start with a linear layer; activations keep the width.
public struct ModelSpec: Equatable, Sendable {
    public var layers: [LayerSpec]

    public init(layers: [LayerSpec]) {
        self.layers = layers
    }

    /// The `in` of the first linear layer: the width of one input row. 0 when there is no linear layer.
    public var inputWidth: Int {
        for case .linear(let inWidth, _, _) in layers { return inWidth }
        return 0
    }

    /// The `out` of the last linear layer: the width of one output row. 0 when there is no linear layer.
    public var outputWidth: Int {
        for case .linear(_, let outWidth, _) in layers.reversed() { return outWidth }
        return 0
    }

    /// The widths a row has through the network: the input width, then the `out` of every linear layer.
    public var widths: [Int] {
        [inputWidth] + layers.compactMap { if case let .linear(_, out, _) = $0 { return out } else { return nil } }
    }

    /// Weights and biases over all linear layers: Σ (in·out + out). Saturates at `Int.max`.
    public var parameterCount: Int {
        var total = 0
        for case .linear(let inWidth, let outWidth, _) in layers {
            let (product, overflow1) = inWidth.multipliedReportingOverflow(by: outWidth)
            let (layerTotal, overflow2) = product.addingReportingOverflow(outWidth)
            let (sum, overflow3) = total.addingReportingOverflow(layerTotal)
            if overflow1 || overflow2 || overflow3 { return Int.max }
            total = sum
        }
        return total
    }

    /// The index in `layers` of each linear layer, in order.
    public var linearIndices: [Int] {
        layers.indices.filter { if case .linear = layers[$0] { return true } else { return false } }
    }
}

/// One layer of the network: a linear layer, or one of the activations of `ActivationKind.all`.
public enum LayerSpec: Equatable, Sendable {
    /// y = x·Wᵀ + b with W of shape (out, in) and b of shape (out): (batch, in) → (batch, out); the initial
    /// values are Framework's `Initializer` (default PyTorch's U(±1/√in)).
    case linear(in: Int, out: Int, initialization: Initializer)
    /// An elementwise activation with its parameters, in the order its kind declares them.
    case activation(ActivationKind, parameters: [Double])

    public static var relu: LayerSpec { .activation(.relu, parameters: []) }
    public static var tanh: LayerSpec { .activation(.tanh, parameters: []) }
    public static var sigmoid: LayerSpec { .activation(.sigmoid, parameters: []) }
    public static var gelu: LayerSpec { .activation(.gelu, parameters: []) }
    public static func leakyRelu(slope: Double) -> LayerSpec { .activation(.leakyRelu, parameters: [slope]) }

    /// The name used for `"type"` in the file.
    public var typeName: String {
        switch self {
        case .linear: return "linear"
        case let .activation(kind, _): return kind.type
        }
    }
}

// MARK: - Schedule

/// The schedule: how many passes, how many rows per step, and in which order the rows are visited.
public struct TrainingSpec: Equatable, Sendable {
    /// Passes over the train set, from 1 to `Experiment.maxEpochs`, and epochs × train points at most
    /// `Experiment.maxSampleVisits`. Default 300.
    public var epochs: Int
    /// Rows per optimizer step, ≥ 1; the last batch of an epoch may be smaller. Default 5.
    public var batchSize: Int
    /// Reshuffle the train rows before every epoch (from the experiment's seed); false takes them in
    /// order. Default true. Ignored when `orders` is given.
    public var shuffle: Bool
    /// The visiting order of every epoch, given: `epochs` permutations of the 0-based train-row indices;
    /// epoch e visits `orders[e − 1]`. With it the file needs no generator (what `compare export` writes).
    public var orders: [[Int]]?

    public init(epochs: Int = 300, batchSize: Int = 5, shuffle: Bool = true, orders: [[Int]]? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.orders = orders
    }
}

// MARK: - Errors

/// A problem with an experiment, naming the file, the JSON path of the offending value
/// (`model.layers[2].in`, empty for the file as a whole) and what was expected.
public struct ExperimentError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var path: String
    public var message: String

    public init(file: String, path: String, message: String) {
        self.file = file
        self.path = path
        self.message = message
    }

    init(file: String, _ problem: JSONProblem) {
        self.init(file: file, path: problem.path, message: problem.message)
    }

    /// "file: path: message", e.g. "bad.json: model.layers[2].in: 30, but the previous layer gives 25";
    /// "file: message" when the path is empty.
    public var description: String {
        path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)"
    }
}
