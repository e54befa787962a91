import Foundation
import Framework

// Conventions: the well-known ways an engine departs from PyTorch's conventions (a sum where PyTorch takes a
// mean, another momentum rule, a derivative written in the wrong variable, a trace shifted by one epoch…),
// and the fingerprint that names the one a disagreeing engine follows.
//
// Each variant is the referee's Framework run with one piece swapped through Framework's public protocols (a
// `Loss`, an `Optimizer` or a `Module` of its own, `Trainer.dropLast`, `BatchOrder`), or a transform of the
// plain Framework trace. Nothing inside Framework or Reference knows of them. The planted NumPy engine
// (Tests/CompareTests/Engines/planted_engine.py) plants every one of them, and ConventionTests check that each
// is recognised there.

/// A well-known convention an engine may follow instead of PyTorch's, as something the referee can compute:
/// `id` names it in reports, `summary` says in one line what it computes, `applies` says whether what it
/// changes is in the round (the loss, the optimizer and its hyperparameters, the layer, a smaller last batch,
/// a shuffled order, a second step), and `computation` is how its trace is made.
public struct Convention: Sendable {
    /// How a variant's trace is made.
    public enum Computation: Sendable {
        /// Framework trained on the round with its setup changed before training (`FrameworkEngine.adjust`).
        /// Throws when the setup is not the one the variant changes (e.g. an SGD variant on Adam).
        case setup(@Sendable (inout FrameworkSetup) throws -> Void)
        /// The plain Framework trace of the round (PyTorch's conventions), transformed.
        case transform(@Sendable (Trace) -> Trace)
    }

    /// Stable, e.g. "mse-sum".
    public let id: String
    /// One line: what the variant computes instead of PyTorch's convention.
    public let summary: String
    public let computation: Computation
    private let applicability: @Sendable (Experiment, MaterializedRound) -> Bool

    public init(id: String, summary: String, applies: @escaping @Sendable (Experiment, MaterializedRound) -> Bool,
                computation: Computation) {
        self.id = id
        self.summary = summary
        self.applicability = applies
        self.computation = computation
    }

    /// Whether what the variant changes is in `round` of `experiment` (a variant that does not apply is never
    /// tried, so it can never match).
    public func applies(to experiment: Experiment, round: MaterializedRound) -> Bool { applicability(experiment, round) }

    /// The variant's trace of `round`, trained from `initialParameters` (weight `(out, in)`, bias `(1, out)`
    /// per linear layer). A transform transforms `plain`, the plain Framework trace of the same round from the
    /// same parameters, trained here when nil. Throws when the variant cannot be built on this round.
    public func trace(of round: MaterializedRound, from initialParameters: [(weight: Matrix, bias: Matrix)],
                      plain: Trace? = nil) throws -> Trace {
        switch computation {
        case let .setup(adjust):
            return try FrameworkEngine(name: id, initialParameters: initialParameters, adjust: adjust).train(round)
        case let .transform(transform):
            return transform(try plain ?? FrameworkEngine(initialParameters: initialParameters).train(round))
        }
    }
}

/// The catalogue of well-known conventions. μ momentum, τ dampening, λ weight decay, lr the learning rate,
/// t = 1, 2, … the optimizer step, b the momentum buffer, m and v Adam's moments, m̂ and v̂ their bias-corrected
/// values.
public enum Conventions {
    /// The 18 variants, in the order reports list them.
    public static let catalogue: [Convention] = [
        // MARK: Losses: another reduction than PyTorch's mean
        // With one output, rows are rows·columns: the variant is PyTorch's convention itself, so it does not apply.
        Convention(id: "mse-mean-over-rows", summary: "MSE Σ(p − t)²/rows, gradient 2(p − t)/rows (rows, not rows·columns)",
                   applies: { experiment, _ in experiment.loss == .mse && experiment.model.outputWidth > 1 },
                   computation: .setup { $0.loss = try Rereduced($0.loss, MSELoss.self, over: .rows) }),
        Convention(id: "mse-sum", summary: "MSE summed, Σ(p − t)², gradient 2(p − t)",
                   applies: { experiment, _ in experiment.loss == .mse },
                   computation: .setup { $0.loss = try Rereduced($0.loss, MSELoss.self, over: .one) }),
        Convention(id: "ce-sum", summary: "cross-entropy summed over the rows, gradient softmax − onehot (not /rows)",
                   applies: { experiment, _ in experiment.loss == .crossEntropy },
                   computation: .setup { $0.loss = try Rereduced($0.loss, CrossEntropyLoss.self, over: .one) }),

        // MARK: SGD
        Convention(id: "sgd-momentum-ema", summary: "momentum as a running mean: b₀ = 0, b = μb + (1 − μ)g at every step (dampening ignored)",
                   applies: { experiment, _ in sgdSpec(experiment).map { $0.momentum > 0 } ?? false },
                   computation: .setup { setup in
                       let o = try setupSGD(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["momentum"]) { _ in { p, g, s in
                           let g = weightDecayed(g, p, o.weightDecay)
                           s.0 = o.momentum * s.0 + (1 - o.momentum) * g                  // b ← μb + (1 − μ)g, b₀ = 0
                           p -= o.learningRate * (o.nesterov ? g + o.momentum * s.0 : s.0)
                       } }
                   }),
        Convention(id: "sgd-dampening-first-step", summary: "dampening on the first step too: b₁ = (1 − τ)g instead of g",
                   applies: { experiment, _ in sgdSpec(experiment).map { $0.momentum > 0 && $0.dampening > 0 } ?? false },
                   computation: .setup { setup in
                       let o = try setupSGD(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["momentum"]) { t in { p, g, s in
                           let g = weightDecayed(g, p, o.weightDecay)
                           s.0 = (t == 1 ? 0 : o.momentum * s.0) + (1 - o.dampening) * g  // b₁ = (1 − τ)g
                           p -= o.learningRate * (o.nesterov ? g + o.momentum * s.0 : s.0)
                       } }
                   }),
        Convention(id: "sgd-weight-decay-after-momentum",
                   summary: "weight decay outside the momentum: b from the raw gradient, then p −= lr·(b + λp)",
                   applies: { experiment, _ in sgdSpec(experiment).map { $0.momentum > 0 && $0.weightDecay > 0 } ?? false },
                   computation: .setup { setup in
                       let o = try setupSGD(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["momentum"]) { t in { p, g, s in
                           s.0 = t == 1 ? g : o.momentum * s.0 + (1 - o.dampening) * g   // b from ∇p, without λp
                           let d = o.nesterov ? g + o.momentum * s.0 : s.0
                           p -= o.learningRate * (d + o.weightDecay * p)                  // λp added after
                       } }
                   }),
        Convention(id: "nesterov-ignored", summary: "plain momentum although nesterov is true",
                   applies: { experiment, _ in sgdSpec(experiment)?.nesterov ?? false },
                   computation: .setup { setup in
                       let o = try setupSGD(setup)
                       setup.optimizer = try SGD(learningRate: o.learningRate, momentum: o.momentum, dampening: o.dampening,
                                                 nesterov: false, weightDecay: o.weightDecay)
                   }),

        // MARK: Adam
        Convention(id: "adam-eps-inside-sqrt", summary: "ε inside the square root: p −= lr·m̂/√(v̂ + ε)",
                   applies: { experiment, _ in adamSpec(experiment) != nil },
                   computation: .setup { setup in
                       let o = try setupAdam(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["m", "v"]) { t in
                           let c1 = 1 - pow(o.beta1, Double(t)), c2 = 1 - pow(o.beta2, Double(t))
                           return { p, g, s in
                               updateAdamMoments(&s, weightDecayed(g, p, o.weightDecay), o)
                               p -= o.learningRate * (s.0 / c1) / (s.1 / c2 + o.epsilon).squareRoot()
                           }
                       }
                   }),
        Convention(id: "adam-no-bias-correction", summary: "no bias correction: p −= lr·m/(√v + ε)",
                   applies: { experiment, _ in adamSpec(experiment) != nil },
                   computation: .setup { setup in
                       let o = try setupAdam(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["m", "v"]) { _ in { p, g, s in
                           updateAdamMoments(&s, weightDecayed(g, p, o.weightDecay), o)
                           p -= o.learningRate * s.0 / (s.1.squareRoot() + o.epsilon)
                       } }
                   }),
        Convention(id: "adamw-decoupled", summary: "AdamW's decoupled decay: g = ∇p (no λp), p ← p·(1 − lr·λ) before the Adam update",
                   applies: { experiment, _ in (adamSpec(experiment)?.weightDecay ?? 0) > 0 },
                   computation: .setup { setup in
                       let o = try setupAdam(setup)
                       setup.optimizer = ElementwiseOptimizer(states: ["m", "v"]) { t in
                           let stepSize = o.learningRate / (1 - pow(o.beta1, Double(t)))
                           let correction2 = (1 - pow(o.beta2, Double(t))).squareRoot()
                           return { p, g, s in
                               p *= 1 - o.learningRate * o.weightDecay                    // decoupled decay first
                               updateAdamMoments(&s, g, o)                                    // from ∇p alone
                               p -= stepSize * s.0 / (s.1.squareRoot() / correction2 + o.epsilon)
                           }
                       }
                   }),

        // MARK: The schedule
        Convention(id: "drop-last-batch", summary: "the last batch of each epoch skipped when smaller than batchSize",
                   applies: { experiment, round in
                       round.train.count > experiment.training.batchSize && round.train.count % experiment.training.batchSize != 0
                   },
                   computation: .setup { $0.trainer.dropLast = true }),
        Convention(id: "orders-ignored", summary: "file order every epoch, whatever training.orders says",
                   applies: { _, round in
                       if case .sequential = round.order { return false }
                       return round.orders.contains { $0 != Array(0..<round.train.count) }
                   },
                   computation: .setup { $0.trainer.order = .sequential }),
        Convention(id: "gradients-not-zeroed", summary: "gradients never zeroed: they accumulate across steps",
                   applies: { experiment, round in
                       let batches = ceilingDivision(round.train.count, experiment.training.batchSize)
                       return experiment.training.epochs * batches >= 2
                   },
                   computation: .setup { $0.modules = $0.modules.map(NeverZeroed.init) }),

        // MARK: Activations: the derivative written in the input instead of the output
        Convention(id: "sigmoid-derivative-from-input", summary: "Sigmoid backward dy·x(1 − x), x the sigmoid's input",
                   applies: { experiment, _ in experiment.model.layers.contains(.sigmoid) },
                   computation: .setup { setup in
                       setup.modules = setup.modules.map { $0 is Sigmoid ? BackwardFromInput($0) { dy, x in dy * (1 - x) * x } : $0 }
                   }),
        Convention(id: "tanh-derivative-from-input", summary: "Tanh backward dy·(1 − x²), x the tanh's input",
                   applies: { experiment, _ in experiment.model.layers.contains(.tanh) },
                   computation: .setup { setup in
                       setup.modules = setup.modules.map { $0 is Tanh ? BackwardFromInput($0) { dy, x in dy * (1 - x * x) } : $0 }
                   }),
        Convention(id: "leaky-relu-derivative-no-slope", summary: "LeakyReLU backward 0 (not slope·dy) where x ≤ 0",
                   applies: { experiment, _ in
                       experiment.model.layers.contains { $0.typeName == ActivationKind.leakyRelu.type }
                   },
                   computation: .setup { setup in
                       setup.modules = setup.modules.map { $0 is LeakyReLU ? BackwardFromInput($0) { dy, x in x > 0 ? dy : 0 } : $0 }
                   }),

        // MARK: The trace
        Convention(id: "trace-starts-at-epoch-1", summary: "no epoch 0: the evaluations after epochs 1 … E only",
                   applies: { _, _ in true },
                   computation: .transform { trace in
                       var shifted = trace
                       shifted.epochs.removeAll { $0.epoch == 0 }
                       return shifted
                   }),
        Convention(id: "metrics-before-update",
                   summary: "each epoch's evaluation taken before its updates: entry e holds the evaluation after epoch e − 1",
                   applies: { experiment, _ in experiment.training.epochs >= 1 },
                   computation: .transform { trace in
                       var late = trace
                       late.epochs = trace.epochs.indices.map { k in
                           var entry = trace.epochs[max(k - 1, 0)]
                           entry.epoch = trace.epochs[k].epoch
                           return entry
                       }
                       return late
                   }),
    ]
}

// MARK: - The fingerprint

/// How close an engine's trace is to one variant's.
public struct ConventionCandidate: Equatable, Sendable {
    /// The variant's `Convention.id`.
    public var id: String
    /// The largest of the relative loss differences over the epochs and the steps' normalised difference
    /// (see `conventionFingerprint`); ∞ when an epoch or a step is on one side only.
    public var maxDifference: Double
    /// Whether the engine reproduces the variant (the rule of `conventionFingerprint`).
    public var matched: Bool

    public init(id: String, maxDifference: Double, matched: Bool) {
        self.id = id
        self.maxDifference = maxDifference
        self.matched = matched
    }
}

/// Which well-known convention, if any, explains an engine's difference from the referee.
public struct ConventionFingerprint: Equatable, Sendable {
    /// The matched candidate with the smallest `maxDifference`; nil: no known convention matches.
    public var best: ConventionCandidate?
    /// Every applicable variant tried, in catalogue order.
    public var candidates: [ConventionCandidate]
    /// The ids of the variants that do not apply to the round (or cannot be built on it), in catalogue order.
    public var skipped: [String]

    public init(best: ConventionCandidate?, candidates: [ConventionCandidate], skipped: [String]) {
        self.best = best
        self.candidates = candidates
        self.skipped = skipped
    }
}

/// Steps compared at most: the engine's first min(K, 8).
private let fingerprintSteps = 8
/// The steps' threshold, relative to the largest |value| of each tensor in the variant.
private let fingerprintStepTolerance = 1e-9

/// Runs the referee (Framework, from `refereeInitialParameters`) once per applicable variant of
/// `Conventions.catalogue` on `round` and measures how close `engine`'s trace is to each.
///
/// **Matching.** A variant matches when
/// 1. its epochs and `engine`'s pass `compareTraces(engine, with: variant, horizon:, tolerances:)`: the
///    free-running rule of a PASS verdict (`Tolerances`: losses within rtol/atol, accuracies within their
///    tolerance, before the comparability horizon), and
/// 2. when `engine` has steps (K of them), its first min(K, 8) agree with the variant's, recorded by running it
///    with `round.with(traceSteps: min(K, 8))`: the same (epoch, batch) sequence, and every tensor name present
///    in both steps within 10⁻⁹ × (the largest |value| of that tensor in the variant, or 10⁻³⁰⁰) elementwise.
///    Why 10⁻⁹: two engines computing the same thing in float64 differ by rounding alone, which over at most
///    8 free-running steps is ≤ ~10⁻¹³ relative to a tensor's scale (each step's sums of k products differ by
///    ≤ kε; measured ≤ 1.4·10⁻¹⁵, epochs included, for every planted variant in ConventionTests); every
///    catalogued convention changes what it touches by orders of magnitude more: a factor of rows or columns,
///    a missing λp or (1 − τ), a skipped batch, another order. The smallest is adam-eps-inside-sqrt, which
///    moves Adam's step by about ε/(2v̂) relative (4·10⁻⁴ in ConventionTests; it shrinks as the gradients
///    grow). So 10⁻⁹ leaves a factor 10⁴ on both sides.
///
/// `maxDifference` is the largest of the relative loss differences (`|a − b| / max(|a|, |b|)`, train and test,
/// over the epochs; ∞ when an epoch is on one side only) and the steps' normalised difference (∞ when the
/// step sequences differ or a tensor's size does). `best` is the matched candidate with the smallest
/// `maxDifference`.
///
/// The two trace transforms transform the plain Framework trace from `refereeInitialParameters`, trained
/// once. A variant that does not apply, or cannot be built on this round, is in `skipped` and never matches.
/// Throws only when the plain Framework run does.
public func conventionFingerprint(engine: Trace, round: MaterializedRound, refereeInitialParameters: [(weight: Matrix, bias: Matrix)],
                                  horizon: Int?, tolerances: Tolerances) throws -> ConventionFingerprint {
    let stepCount = min(engine.steps.count, fingerprintSteps)
    let replay = round.with(traceSteps: stepCount)
    let engineSteps = Array(engine.steps.prefix(stepCount))
    let plain = try FrameworkEngine(initialParameters: refereeInitialParameters).train(replay)
    var fingerprint = ConventionFingerprint(best: nil, candidates: [], skipped: [])
    for convention in Conventions.catalogue {
        guard convention.applies(to: round.experiment, round: round),
              let variant = try? convention.trace(of: replay, from: refereeInitialParameters, plain: plain) else {
            fingerprint.skipped.append(convention.id)
            continue
        }
        let parity = compareTraces((engine.epochs, engine.divergence), with: (variant.epochs, variant.divergence),
                                   horizon: horizon, tolerances: tolerances, engineName: "engine", refereeName: convention.id)
        let steps = stepCount > 0 ? normalisedStepDifference(engineSteps, variant.steps) : 0
        fingerprint.candidates.append(ConventionCandidate(
            id: convention.id, maxDifference: max(epochLossDifference(engine.epochs, variant.epochs), steps),
            matched: parity.passed && steps <= fingerprintStepTolerance))
    }
    fingerprint.best = fingerprint.candidates.filter(\.matched).min { $0.maxDifference < $1.maxDifference }
    return fingerprint
}

/// The largest relative difference of the train and test losses over the epochs; ∞ when the two traces do not
/// have the same epochs.
private func epochLossDifference(_ a: [EpochMetrics], _ b: [EpochMetrics]) -> Double {
    guard a.map(\.epoch) == b.map(\.epoch) else { return .infinity }
    return zip(a, b).reduce(0) { max($0, relativeDifference($1.0.trainLoss, $1.1.trainLoss), relativeDifference($1.0.testLoss, $1.1.testLoss)) }
}

/// The largest elementwise difference between `engine`'s and `variant`'s steps over every tensor name both
/// have, each divided by the largest finite |value| of that tensor in `variant` (or 10⁻³⁰⁰); ∞ when the
/// (epoch, batch) sequences or a tensor's sizes differ, or one side alone is NaN.
private func normalisedStepDifference(_ engine: [TraceStep], _ variant: [TraceStep]) -> Double {
    guard engine.map({ [$0.epoch, $0.batch] }) == variant.map({ [$0.epoch, $0.batch] }) else { return .infinity }
    var worst = 0.0
    for (a, b) in zip(engine, variant) {
        for (name, expected) in b.tensors {
            guard let actual = a.tensors[name]?.values else { continue }
            let values = expected.values
            guard actual.count == values.count else { return .infinity }
            let scale = values.reduce(1e-300) { $1.isFinite ? max($0, abs($1)) : $0 }
            for (x, y) in zip(actual, values) where x != y && !(x.isNaN && y.isNaN) {
                let d = abs(x - y) / scale
                worst = max(worst, d.isNaN ? .infinity : d)
            }
        }
    }
    return worst
}

// MARK: - The variants' pieces, built on Framework's public protocols

/// The reason a variant cannot be built on a setup (the fingerprint then skips it).
private struct NotApplicable: Error {
    let message: String
}

private func sgdSpec(_ experiment: Experiment) -> SGDSpec? { experiment.optimizer.as(SGDSpec.self) }
private func adamSpec(_ experiment: Experiment) -> AdamSpec? { experiment.optimizer.as(AdamSpec.self) }

private func setupSGD(_ setup: FrameworkSetup) throws -> SGD {
    guard let o = setup.optimizer as? SGD else { throw NotApplicable(message: "the optimizer is not SGD") }
    return o
}

private func setupAdam(_ setup: FrameworkSetup) throws -> Adam {
    guard let o = setup.optimizer as? Adam else { throw NotApplicable(message: "the optimizer is not Adam") }
    return o
}

/// g = ∇p + λp (PyTorch's L2 weight decay folded into the gradient); ∇p itself when λ = 0.
private func weightDecayed(_ g: Double, _ p: Double, _ lambda: Double) -> Double { lambda != 0 ? g + lambda * p : g }

/// Adam's moments, s = (m, v): m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g².
private func updateAdamMoments(_ s: inout (Double, Double), _ g: Double, _ o: Adam) {
    s.0 = o.beta1 * s.0 + (1 - o.beta1) * g
    s.1 = o.beta2 * s.1 + (1 - o.beta2) * g * g
}

/// A Framework loss with another reduction than its mean: the sum of its terms (elements for MSE, rows for
/// cross-entropy) divided by the rows (`.rows`) or not at all (`.one`), and its gradient likewise. Value and
/// gradient are the inner loss's times (its term count) / divisor; over a set taken in chunks the sums are
/// added and the divisor counted once per row (`.rows`) or once in all (`.one`).
private struct Rereduced: Loss {
    enum Divisor { case rows, one }
    let inner: Loss
    /// MSE's terms are the elements; cross-entropy's the rows.
    let termsAreElements: Bool
    let divisor: Divisor

    /// `loss`, which must be a `Kind`, rereduced.
    init<Kind: Loss>(_ loss: Loss, _: Kind.Type, over divisor: Divisor) throws {
        guard loss is Kind else { throw NotApplicable(message: "the loss is \(loss), not \(Kind.self)") }
        inner = loss
        termsAreElements = loss is any ElementwiseLoss
        self.divisor = divisor
    }

    var description: String { "\(inner) (\(divisor == .rows ? "over the rows" : "summed"))" }

    /// (the inner loss's term count) / divisor for a batch `p` `(rows, columns)`.
    private func factor(_ p: Matrix) -> Double {
        Double(termsAreElements ? p.rows * p.columns : p.rows) / Double(divisor == .rows ? p.rows : 1)
    }

    func value(predictions p: Matrix, targets t: Matrix) -> Double { inner.value(predictions: p, targets: t) * factor(p) }

    func gradient(predictions p: Matrix, targets t: Matrix) -> Matrix {
        var g = Matrix.empty
        _ = valueAndGradient(predictions: p, targets: t, into: &g)
        return g
    }

    func valueAndGradient(predictions p: Matrix, targets t: Matrix, into g: inout Matrix) -> Double {
        let value = inner.valueAndGradient(predictions: p, targets: t, into: &g), scale = factor(p)
        for k in g.elements.indices { g.elements[k] *= scale }
        return value * scale
    }

    func accumulate(predictions p: Matrix, targets t: Matrix, into total: inout LossTotal) {
        var chunk = LossTotal()
        inner.accumulate(predictions: p, targets: t, into: &chunk)
        total.add(sum: chunk.mean * Double(chunk.terms), terms: divisor == .rows ? p.rows : (total.terms == 0 ? 1 : 0))
    }
}

/// An optimizer written one element at a time, for the variants of SGD and Adam: at step t = 1, 2, …,
/// `rule(t)` gives the update of one element p of a parameter from its gradient g and its state s, two numbers
/// that start at 0 (SGD's momentum buffer b in s.0; Adam's m and v), traced as `states` ("momentum"; "m", "v").
/// `rule(t)` is called once per step, so that it can compute the step's constants (Adam's bias corrections).
private final class ElementwiseOptimizer: Optimizer {
    typealias Update = (_ p: inout Double, _ g: Double, _ s: inout (Double, Double)) -> Void
    let states: [String]
    let rule: (_ t: Int) -> Update
    private var t = 0
    /// Per parameter, per element.
    private var values: [[(Double, Double)]] = []
    private var shapes: [(rows: Int, columns: Int)] = []

    init(states: [String], rule: @escaping (_ t: Int) -> Update) {
        self.states = states
        self.rule = rule
    }

    func step(_ parameters: [Parameter]) {
        if values.isEmpty {
            values = parameters.map { Array(repeating: (0, 0), count: $0.value.elements.count) }
            shapes = parameters.map(\.value.shape)
        }
        precondition(values.count == parameters.count, "\(parameters.count) parameters, state for \(values.count)")
        t += 1
        let update = rule(t)
        for (index, parameter) in parameters.enumerated() {
            var p = parameter.value.elements
            let g = parameter.gradient.elements
            for k in p.indices { update(&p[k], g[k], &values[index][k]) }
            parameter.value.elements = p
        }
    }

    func state(ofParameter index: Int) -> [(name: String, value: Matrix)] {
        guard index < values.count else { return [] }
        let (rows, columns) = shapes[index]
        let columnsOfState = [values[index].map(\.0), values[index].map(\.1)]
        return states.enumerated().map { ($1, Matrix(rows: rows, columns: columns, elements: columnsOfState[$0])) }
    }
}

/// `inner` whose gradients are never zeroed: `zeroGradients()` does nothing, so they accumulate across steps
/// (Sequential calls each module's `zeroGradients`).
private final class NeverZeroed: Module {
    let inner: Module

    init(_ inner: Module) { self.inner = inner }

    var inputWidth: Int? { inner.inputWidth }
    func outputWidth(forInputWidth width: Int) -> Int { inner.outputWidth(forInputWidth: width) }
    var description: String { inner.description }
    var parameters: [Parameter] { inner.parameters }
    func zeroGradients() {}
    func forward(_ input: Matrix) -> Matrix { inner.forward(input) }
    func backward(_ dOutput: Matrix) -> Matrix { inner.backward(dOutput) }
    func accumulateGradients(_ dOutput: Matrix) { inner.accumulateGradients(dOutput) }
}

/// An elementwise activation `inner` whose backward is `dX = derivative(dY, x)` elementwise, x being the
/// input of the last forward (a copy kept here): `(batch, width) → (batch, width)`.
private final class BackwardFromInput: Module {
    let inner: Module
    let derivative: (_ dY: Double, _ x: Double) -> Double
    private var input = Matrix.empty
    private var dInput = Matrix.empty

    init(_ inner: Module, derivative: @escaping (_ dY: Double, _ x: Double) -> Double) {
        self.inner = inner
        self.derivative = derivative
    }

    var inputWidth: Int? { inner.inputWidth }
    func outputWidth(forInputWidth width: Int) -> Int { inner.outputWidth(forInputWidth: width) }
    var description: String { "\(inner) (derivative from its input)" }

    func forward(_ x: Matrix) -> Matrix {
        input.copy(from: x)
        return inner.forward(x)
    }

    func backward(_ dY: Matrix) -> Matrix {
        precondition(dY.shape == input.shape, "\(self): dOutput \(dY.shape) after a forward of \(input.shape)")
        dInput.reshape(rows: dY.rows, columns: dY.columns)
        for k in dInput.elements.indices { dInput.elements[k] = derivative(dY.elements[k], input.elements[k]) }
        return dInput
    }
}
