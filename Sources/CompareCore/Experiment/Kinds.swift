import Foundation
import Framework
import Reference

// Every kind of layer, loss and optimizer an experiment file can name, each declared once, here. Decoding,
// encoding, validation, the configuration line of reports, both engines' builders and the fuzz dictionary
// are derived from these tables; adding an activation, a loss or an optimizer is one entry here beside its
// implementation in Framework and in Reference (README, "Adding a module").

// MARK: - Activations

/// An elementwise activation the format knows: its `"type"`, its parameters with their defaults, how reports
/// name it, and the module each engine builds for it.
public struct ActivationKind: Sendable, Hashable, CustomStringConvertible {
    /// The name used for `"type"` in the file, e.g. "leakyRelu".
    public let type: String
    /// Its parameters, in order, each with the default a file may leave out.
    public let parameters: [(name: String, default: Double)]
    /// How reports write it, given its parameter values: "Tanh", "LeakyReLU(0.01)".
    let label: @Sendable ([Double]) -> String
    /// Framework's module.
    let framework: @Sendable ([Double]) -> Module
    /// Reference's layer.
    let reference: @Sendable ([Double]) -> ReferenceLayer

    /// How rounding moves it (Judgement/StepBounds.swift), given its parameter values.
    let errorModel: @Sendable ([Double]) -> ActivationErrorModel

    public static let relu = ActivationKind(type: "relu", parameters: [], label: { _ in "ReLU" },
                                            framework: { _ in ReLU() }, reference: { _ in .relu },
                                            errorModel: { _ in .piecewiseLinear(below: 0, above: 1) })
    /// Error model: 1-Lipschitz; f′ = 1 − tanh² moves by ≤ 4/(3√3)·e_x from x, or by 2|y|·e_y ≤ 2·e_y from the
    /// output, so 2; libm's tanh within 4 ulp.
    public static let tanh = ActivationKind(type: "tanh", parameters: [], label: { _ in "Tanh" },
                                            framework: { _ in Tanh() }, reference: { _ in .tanh },
                                            errorModel: { _ in .smooth(lipschitz: 1, derivativeLipschitz: 2, ulps: 4) { 1 - Foundation.tanh($0) * Foundation.tanh($0) } })
    /// Error model: ¼-Lipschitz; f′ = σ(1 − σ) moves by ≤ 0.0963·e_x from x, or |1 − 2y|·e_y ≤ e_y ≤ ¼·e_x from
    /// the output, so ¼; exp, one addition and one division: 6 ulp.
    public static let sigmoid = ActivationKind(type: "sigmoid", parameters: [], label: { _ in "Sigmoid" },
                                               framework: { _ in Sigmoid() }, reference: { _ in .sigmoid },
                                               errorModel: { _ in .smooth(lipschitz: 0.25, derivativeLipschitz: 0.25, ulps: 6) { x in
                                                   let s = 1 / (1 + exp(-x)); return s * (1 - s) } })
    /// `slope` defaults to 0.01, PyTorch's `negative_slope`.
    public static let leakyRelu = ActivationKind(type: "leakyRelu", parameters: [("slope", 0.01)],
                                                 label: { "LeakyReLU(\(formatNumber($0[0])))" },
                                                 framework: { LeakyReLU(slope: $0[0]) }, reference: { .leakyRelu(slope: $0[0]) },
                                                 errorModel: { .piecewiseLinear(below: $0[0], above: 1) })
    /// Exact GELU, `x·Φ(x)` (PyTorch's `nn.GELU()`). Error model: f′ = Φ + xφ ≤ 1.129, |f″| = φ·|2 − x²| ≤ 0.798;
    /// erf, exp and four operations: 8 ulp, and 2 ulp of |x| absolute (1 + erf cancels for large negative x).
    public static let gelu = ActivationKind(type: "gelu", parameters: [], label: { _ in "GELU" },
                                            framework: { _ in GELU() }, reference: { _ in .gelu },
                                            errorModel: { _ in .smooth(lipschitz: 1.13, derivativeLipschitz: 0.8, ulps: 8, absoluteUlps: 2) { x in
                                                0.5 * (1 + erf(x * 0.5.squareRoot())) + x * exp(-x * x / 2) / (2 * Double.pi).squareRoot() } })

    /// Every activation, in the order error messages list them.
    public static let all: [ActivationKind] = [relu, tanh, sigmoid, leakyRelu, gelu]

    public static func named(_ type: String) -> ActivationKind? { all.first { $0.type == type } }

    public static func == (a: ActivationKind, b: ActivationKind) -> Bool { a.type == b.type }
    public func hash(into hasher: inout Hasher) { hasher.combine(type) }
    public var description: String { type }
}

// MARK: - Losses

/// A loss the format knows: its `"type"`, what it asks of the model and the targets, and each engine's loss.
public struct LossKind: Sendable, Hashable, CustomStringConvertible {
    /// The name used for `"type"` in the file.
    public let rawValue: String
    /// Targets must be probabilities in [0, 1].
    let needsProbabilityTargets: Bool
    /// Why `model` cannot be trained with this loss, or nil.
    let modelProblem: @Sendable (ModelSpec) -> String?
    let framework: @Sendable () -> Loss
    let reference: ReferenceLoss
    /// The error bounds of its value and gradient (Judgement/StepBounds.swift): predictions, their bounds,
    /// targets.
    let errorBounds: @Sendable (Matrix, Matrix, Matrix) -> (value: Double, gradient: Matrix)

    /// mean (y − t)², PyTorch's `MSELoss`.
    public static let mse = LossKind(rawValue: "mse", needsProbabilityTargets: false, modelProblem: { _ in nil },
                                     framework: { MSELoss() }, reference: .mse, errorBounds: { StepBounds.mse(p: $0, ep: $1, t: $2) })
    /// mean |y − t|, PyTorch's `L1Loss`.
    public static let mae = LossKind(rawValue: "mae", needsProbabilityTargets: false, modelProblem: { _ in nil },
                                     framework: { MAELoss() }, reference: .mae, errorBounds: { StepBounds.mae(p: $0, ep: $1, t: $2) })
    /// mean −(t·log y + (1 − t)·log(1 − y)), PyTorch's `BCELoss`: needs outputs in (0, 1), so the model must end
    /// in a sigmoid, and targets in [0, 1].
    public static let bce = LossKind(rawValue: "bce", needsProbabilityTargets: true, modelProblem: { model in
        guard let last = model.layers.last, last == .sigmoid else {
            return "bce needs probabilities: the last layer must be sigmoid, but model.layers[\(model.layers.count - 1)] is "
                + (model.layers.last?.typeName ?? "nothing")
        }
        return nil
    }, framework: { BCELoss() }, reference: .bce, errorBounds: { StepBounds.bce(p: $0, ep: $1, t: $2) })
    /// PyTorch's `CrossEntropyLoss` on the raw outputs (logits) against the argmax of each target row; needs at
    /// least two outputs.
    public static let crossEntropy = LossKind(rawValue: "crossEntropy", needsProbabilityTargets: false, modelProblem: { model in
        model.outputWidth >= 2 ? nil : "crossEntropy needs at least two outputs, but the model gives \(model.outputWidth)"
    }, framework: { CrossEntropyLoss() }, reference: .crossEntropy, errorBounds: { StepBounds.crossEntropy(p: $0, ep: $1, t: $2) })

    public static let allCases: [LossKind] = [mse, mae, bce, crossEntropy]

    public init?(rawValue: String) {
        guard let kind = LossKind.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = kind
    }

    private init(rawValue: String, needsProbabilityTargets: Bool, modelProblem: @escaping @Sendable (ModelSpec) -> String?,
                 framework: @escaping @Sendable () -> Loss, reference: ReferenceLoss,
                 errorBounds: @escaping @Sendable (Matrix, Matrix, Matrix) -> (value: Double, gradient: Matrix)) {
        self.rawValue = rawValue
        self.errorBounds = errorBounds
        self.needsProbabilityTargets = needsProbabilityTargets
        self.modelProblem = modelProblem
        self.framework = framework
        self.reference = reference
    }

    public static func == (a: LossKind, b: LossKind) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
    public var description: String { rawValue }
}

// MARK: - Optimizers

/// One hyperparameter of an optimizer: its name in the file and where it lives in the configuration.
public enum Hyperparameter<Configuration>: Sendable {
    case number(String, WritableKeyPath<Configuration, Double> & Sendable)
    case flag(String, WritableKeyPath<Configuration, Bool> & Sendable)

    var name: String {
        switch self {
        case let .number(name, _), let .flag(name, _): return name
        }
    }
}

/// An optimizer the format knows, as the values of its hyperparameters. A conforming type is the whole
/// declaration: its `init()` holds the defaults, `hyperparameters` the file's names for its fields (read and
/// written generically), and the two builders give each engine's optimizer. The ranges are Framework's: its
/// initialiser throws a `HyperparameterError` naming the field, which validation reports at `optimizer.<field>`.
public protocol OptimizerConfiguration: Sendable, Hashable {
    /// The name used for `"type"` in the file.
    static var type: String { get }
    /// How reports name it: "SGD", "Adam".
    static var label: String { get }
    /// The hyperparameters in file order; every one has a default in `init()`.
    static var hyperparameters: [Hyperparameter<Self>] { get }
    /// The defaults.
    init()
    /// The learning rate (what `--lr` overrides).
    var lr: Double { get set }
    /// Framework's optimizer; throws `HyperparameterError` for a value out of range.
    func framework() throws -> Optimizer
    /// Reference's optimizer.
    var reference: ReferenceOptimizer { get }
    /// The error bounds of one update (Judgement/StepBounds.swift): of each state it keeps and of the
    /// parameter after it.
    func updateBounds(_ update: UpdateBoundsInput) -> UpdateBounds
    /// The states it keeps per parameter, by their trace names (`TensorName.states`).
    var stateNames: [String] { get }
}

/// Stochastic gradient descent with PyTorch's conventions (`torch.optim.SGD`; Framework's `SGD` documents the
/// update): defaults lr 0.1, no momentum, no dampening, no Nesterov, no weight decay.
public struct SGDSpec: OptimizerConfiguration {
    public var lr: Double
    public var momentum: Double
    public var dampening: Double
    public var nesterov: Bool
    public var weightDecay: Double

    public init(lr: Double = 0.1, momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false,
                weightDecay: Double = 0) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public init() { self.init(lr: 0.1) }
    public static let type = "sgd"
    public static let label = "SGD"
    public static let hyperparameters: [Hyperparameter<SGDSpec>] = [
        .number("lr", \.lr), .number("momentum", \.momentum), .number("dampening", \.dampening),
        .flag("nesterov", \.nesterov), .number("weightDecay", \.weightDecay),
    ]

    public func framework() throws -> Optimizer {
        try SGD(learningRate: lr, momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: weightDecay)
    }

    public var reference: ReferenceOptimizer {
        .sgd(lr: lr, momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: weightDecay)
    }

    /// The momentum buffer, when there is momentum.
    public var stateNames: [String] { momentum != 0 ? ["momentum"] : [] }
}

/// Adam (Kingma & Ba 2015) as `torch.optim.Adam`, with bias correction and L2 weight decay added to the
/// gradient (Framework's `Adam` documents the update): defaults lr 0.001, β (0.9, 0.999), ε 1e-8, no decay.
public struct AdamSpec: OptimizerConfiguration {
    public var lr: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double

    public init(lr: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }

    public init() { self.init(lr: 0.001) }
    public static let type = "adam"
    public static let label = "Adam"
    public static let hyperparameters: [Hyperparameter<AdamSpec>] = [
        .number("lr", \.lr), .number("beta1", \.beta1), .number("beta2", \.beta2), .number("eps", \.eps),
        .number("weightDecay", \.weightDecay),
    ]

    public func framework() throws -> Optimizer {
        try Adam(learningRate: lr, beta1: beta1, beta2: beta2, epsilon: eps, weightDecay: weightDecay)
    }

    public var reference: ReferenceOptimizer {
        .adam(lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
    }

    /// The first and second moments.
    public var stateNames: [String] { ["m", "v"] }
}

/// The experiment's optimizer: any `OptimizerConfiguration`. Default `.sgd(SGDSpec())`.
public struct OptimizerSpec: Equatable, Sendable {
    /// Every optimizer the format knows.
    public static let kinds: [any OptimizerConfiguration.Type] = [SGDSpec.self, AdamSpec.self]

    public var configuration: any OptimizerConfiguration

    public init(_ configuration: any OptimizerConfiguration) {
        self.configuration = configuration
    }

    public static func sgd(_ spec: SGDSpec) -> OptimizerSpec { OptimizerSpec(spec) }
    public static func adam(_ spec: AdamSpec) -> OptimizerSpec { OptimizerSpec(spec) }

    /// The name used for `"type"` in the file.
    public var typeName: String { type(of: configuration).type }

    /// The learning rate of whichever optimizer this is; setting it keeps the other hyperparameters.
    public var lr: Double {
        get { configuration.lr }
        set { configuration.lr = newValue }
    }

    /// The configuration as `C`, if it is one.
    public func `as`<C: OptimizerConfiguration>(_: C.Type) -> C? { configuration as? C }

    public static func == (a: OptimizerSpec, b: OptimizerSpec) -> Bool {
        AnyHashable(a.configuration) == AnyHashable(b.configuration)
    }

    /// "SGD(lr 0.1, momentum 0.9)": the label and every hyperparameter that differs from its default.
    public var label: String {
        func describe<C: OptimizerConfiguration>(_ c: C) -> String {
            let defaults = C()
            var parts = ["lr \(formatNumber(c.lr))"]
            for field in C.hyperparameters where field.name != "lr" {
                switch field {
                case let .number(name, path) where c[keyPath: path] != defaults[keyPath: path]:
                    parts.append("\(name) \(formatNumber(c[keyPath: path]))")
                case let .flag(name, path) where c[keyPath: path] != defaults[keyPath: path]:
                    parts.append(c[keyPath: path] ? name : "no \(name)")
                default: break
                }
            }
            return "\(C.label)(\(parts.joined(separator: ", ")))"
        }
        return describe(configuration)
    }
}

// MARK: - Initialisations

/// The `"init"` names of Framework's `Initializer` (its explicit values are the `weight`/`bias` keys instead).
enum InitializationName {
    static let expected = "allowed: \"default\", \"xavier\", {\"uniform\": [a, b]}"
}

// MARK: - What the format's names derive

/// Every name the format knows (keys and type names), for the fuzzer's dictionary (`FuzzExperiment
/// --print-dictionary`).
public var experimentFormatWords: [String] {
    var words = ExperimentKeys.top + ExperimentKeys.linear + ExperimentKeys.training + ExperimentKeys.dataKinds
        + ["inputs", "targets", "layers", "steps", "epochParameters", "uniform", "default", "xavier", "type", "normalize"]
    words += ActivationKind.all.flatMap { [$0.type] + $0.parameters.map(\.name) }
    words += LossKind.allCases.map(\.rawValue)
    words += OptimizerSpec.kinds.flatMap { [$0.type] + $0.hyperparameterNames }
    var seen = Set<String>()
    return words.filter { seen.insert($0).inserted }
}

extension OptimizerConfiguration {
    static var hyperparameterNames: [String] { hyperparameters.map(\.name) }
}

/// The keys of the format's objects.
enum ExperimentKeys {
    static let top = ["name", "seed", "data", "model", "loss", "optimizer", "training", "trace"]
    static let linear = ["type", "in", "out", "init", "weight", "bias"]
    static let training = ["epochs", "batchSize", "shuffle", "orders"]
    static let dataKinds = ["disk", "xor", "train", "test"]
    static let dataKindsText = "disk, xor, or train and test (explicit data)"
}
