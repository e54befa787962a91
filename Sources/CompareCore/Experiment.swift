// Experiment: the typed form of an experiment file, one run of both engines.
//
// The JSON format, its defaults and its validation live in ExperimentDecoding.swift; this file only holds
// the values. Every default below is the one the decoder fills in when the file leaves the field out.

/// One run: the data, the network, the loss, the optimizer and the training schedule, trained identically
/// by both engines.
///
/// Build one with `Experiment.load(contentsOf:)` or `Experiment.decode(_:file:)`, which validate it; after
/// changing fields (command-line overrides of epochs, learning rate, batch size…) call `validate(file:)` again.
public struct Experiment: Equatable, Sendable {
    /// Shown in reports. Default: the file name without ".experiment.json" or ".json".
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

    /// The seed used when the file gives none.
    public static let defaultSeed: UInt64 = 1

    public init(
        name: String,
        seed: UInt64 = Experiment.defaultSeed,
        data: DataSpec = .disk(train: DataSpec.defaultDiskSize, test: DataSpec.defaultDiskSize),
        model: ModelSpec,
        loss: LossKind = .mse,
        optimizer: OptimizerSpec = .sgd(SGDSpec()),
        training: TrainingSpec = TrainingSpec()
    ) {
        self.name = name
        self.seed = seed
        self.data = data
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.training = training
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
    /// to 1000.
    case disk(train: Int, test: Int)
    /// The four points (0,0), (0,1), (1,0), (1,1) with labels 0, 1, 1, 0, used as both train and test set.
    case xor
    /// Sets given row by row in the file.
    case explicit(train: DataSetSpec, test: DataSetSpec)

    /// Points per set for `disk` when the file does not say: 1000.
    public static let defaultDiskSize = 1000
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
        for layer in layers {
            if case .linear(let inWidth, _, _) = layer { return inWidth }
        }
        return 0
    }

    /// The `out` of the last linear layer: the width of one output row. 0 when there is no linear layer.
    public var outputWidth: Int {
        for layer in layers.reversed() {
            if case .linear(_, let outWidth, _) = layer { return outWidth }
        }
        return 0
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
}

/// One layer of the network.
public enum LayerSpec: Equatable, Sendable {
    /// y = x·Wᵀ + b with W of shape (out, in) and b of shape (out): (batch, in) → (batch, out).
    case linear(in: Int, out: Int, initialization: Initialization)
    /// max(0, x)
    case relu
    /// tanh(x)
    case tanh
    /// 1 / (1 + e^(−x))
    case sigmoid
    /// x for x ≥ 0, slope·x otherwise. `slope` defaults to 0.01, as in PyTorch's `LeakyReLU`.
    case leakyRelu(slope: Double)

    /// The leaky ReLU slope when the file gives none: 0.01.
    public static let defaultLeakySlope = 0.01

    /// The name used for `"type"` in the file.
    public var typeName: String {
        switch self {
        case .linear: return "linear"
        case .relu: return "relu"
        case .tanh: return "tanh"
        case .sigmoid: return "sigmoid"
        case .leakyRelu: return "leakyRelu"
        }
    }
}

/// How a linear layer's initial weight (out, in) and bias (out) are chosen. Default `.default`.
public enum Initialization: Equatable, Sendable {
    /// PyTorch's `nn.Linear`: weight and bias from U(−√k, √k) with k = 1/in.
    case `default`
    /// Glorot & Bengio (2010), uniform: weight from U(−a, a) with a = √(6 / (in + out)); bias zero.
    case xavier
    /// Weight and bias from U(a, b), a < b.
    case uniform(Double, Double)
    /// Given in the file: `weight` is (out, in), row-major; `bias` is (out).
    case explicit(weight: [[Double]], bias: [Double])
}

// MARK: - Loss, optimizer, schedule

/// The training loss, mean over the batch (and over outputs for the element-wise losses).
public enum LossKind: String, CaseIterable, Equatable, Sendable {
    /// mean (y − t)², PyTorch's `MSELoss`.
    case mse
    /// mean |y − t|, PyTorch's `L1Loss`.
    case mae
    /// mean −(t·log y + (1 − t)·log(1 − y)), PyTorch's `BCELoss`: needs outputs in (0, 1), so the model must
    /// end in a sigmoid, and targets in [0, 1].
    case bce
    /// PyTorch's `CrossEntropyLoss` on the raw outputs (logits) against the argmax of each target row;
    /// needs at least two outputs.
    case crossEntropy
}

/// The optimizer and its hyperparameters. Default `.sgd(SGDSpec())`.
public enum OptimizerSpec: Equatable, Sendable {
    case sgd(SGDSpec)
    case adam(AdamSpec)

    /// The name used for `"type"` in the file.
    public var typeName: String {
        switch self {
        case .sgd: return "sgd"
        case .adam: return "adam"
        }
    }

    /// The learning rate of whichever optimizer this is; setting it keeps the other hyperparameters.
    public var lr: Double {
        get {
            switch self {
            case .sgd(let spec): return spec.lr
            case .adam(let spec): return spec.lr
            }
        }
        set {
            switch self {
            case .sgd(var spec): spec.lr = newValue; self = .sgd(spec)
            case .adam(var spec): spec.lr = newValue; self = .adam(spec)
            }
        }
    }
}

/// Stochastic gradient descent with PyTorch's conventions (`torch.optim.SGD`):
/// g ← g + weightDecay·p; v ← momentum·v + (1 − dampening)·g (v = g on the first step);
/// g ← g + momentum·v if nesterov, else g ← v; p ← p − lr·g.
public struct SGDSpec: Equatable, Sendable {
    /// Learning rate, > 0. Default 0.1.
    public var lr: Double
    /// In [0, 1). Default 0 (no momentum).
    public var momentum: Double
    /// In [0, 1]. Default 0.
    public var dampening: Double
    /// Nesterov momentum; needs momentum > 0 and dampening 0, as in PyTorch. Default false.
    public var nesterov: Bool
    /// L2 penalty added to the gradient, ≥ 0. Default 0.
    public var weightDecay: Double

    public init(lr: Double = 0.1, momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false,
                weightDecay: Double = 0) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }
}

/// Adam (Kingma & Ba 2015) as in `torch.optim.Adam`, with bias correction; `weightDecay` is the L2 penalty
/// added to the gradient (not AdamW's decoupled decay).
public struct AdamSpec: Equatable, Sendable {
    /// Learning rate, > 0. Default 0.001.
    public var lr: Double
    /// Decay of the first-moment estimate, in [0, 1). Default 0.9.
    public var beta1: Double
    /// Decay of the second-moment estimate, in [0, 1). Default 0.999.
    public var beta2: Double
    /// Added to √v̂ in the denominator, > 0. Default 1e-8.
    public var eps: Double
    /// L2 penalty added to the gradient, ≥ 0. Default 0.
    public var weightDecay: Double

    public init(lr: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }
}

/// The schedule: how many passes, how many rows per step, and whether the rows are reshuffled.
public struct TrainingSpec: Equatable, Sendable {
    /// Passes over the train set, from 1 to `Experiment.maxEpochs`, and epochs × train points at most
    /// `Experiment.maxSampleVisits`. Default 300.
    public var epochs: Int
    /// Rows per optimizer step, ≥ 1; the last batch of an epoch may be smaller. Default 5.
    public var batchSize: Int
    /// Reshuffle the train rows before every epoch (from the experiment's seed); false takes them in
    /// order. Default true.
    public var shuffle: Bool

    public init(epochs: Int = 300, batchSize: Int = 5, shuffle: Bool = true) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.shuffle = shuffle
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

    /// "file: path: message", e.g. "bad.json: model.layers[2].in: 30, but the previous layer gives 25";
    /// "file: message" when the path is empty.
    public var description: String {
        path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)"
    }
}
