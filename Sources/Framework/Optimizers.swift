import RealModule

/// An optimizer hyperparameter out of its range. `field` is the hyperparameter's name in an experiment file
/// (`"lr"`, `"momentum"`, …), so a caller can say where it came from; the description names the value.
public struct HyperparameterError: Error, CustomStringConvertible, Equatable {
    /// "SGD" or "Adam".
    public let optimizer: String
    /// The experiment file's name for it: lr, momentum, dampening, nesterov, weightDecay, beta1, beta2, eps.
    public let field: String
    /// What is required, e.g. "must be a finite number > 0".
    public let requirement: String
    /// What was given, e.g. [("lr", 0)]; for nesterov, momentum and dampening.
    public let given: [Given]

    public struct Given: Equatable, Sendable {
        public let name: String
        public let value: Double
    }

    init(_ optimizer: String, _ field: String, _ requirement: String, _ given: [(String, Double)]) {
        self.optimizer = optimizer
        self.field = field
        self.requirement = requirement
        self.given = given.map { Given(name: $0.0, value: $0.1) }
    }

    /// "got 0.1", or "got momentum 0.0, dampening 0.1" when several values are involved, each number
    /// written by `format`.
    public func got(_ format: (Double) -> String) -> String {
        given.count == 1 ? "got \(format(given[0].value))" : "got " + given.map { "\($0.name) \(format($0.value))" }.joined(separator: ", ")
    }

    /// e.g. "SGD: learning rate must be a finite number > 0, got 0.0".
    public var description: String {
        let words = ["lr": "learning rate", "weightDecay": "weight decay"][field] ?? field
        return "\(optimizer): \(words) \(requirement), \(got { "\($0)" })"
    }
}

/// Updates parameters from their accumulated gradients.
///
/// An optimizer keeps per-parameter state (momentum buffers, moments) by position in the list it is given,
/// so pass the same parameters in the same order at every step (`model.parameters`).
public protocol Optimizer: AnyObject {
    /// One update of every parameter from its `gradient`. Gradients are read, not zeroed.
    func step(_ parameters: [Parameter])
    /// The state kept for parameter `index` after the last step, by name: SGD's `"momentum"` buffer b,
    /// Adam's `"m"` and `"v"`; shapes as the parameter's. Default: none.
    func state(ofParameter index: Int) -> [(name: String, value: Matrix)]
}

extension Optimizer {
    public func state(ofParameter index: Int) -> [(name: String, value: Matrix)] { [] }
}

/// Checks shared by the optimizers' initialisers; each throws a `HyperparameterError` naming the field.
private func require(_ ok: Bool, _ optimizer: String, _ field: String, _ requirement: String, _ value: Double) throws {
    if !ok { throw HyperparameterError(optimizer, field, requirement, [(field, value)]) }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as PyTorch's
/// `torch.optim.SGD`:
///
///     g ← ∇p + λ·p                                  (weight decay λ)
///     if μ ≠ 0:  b ← g on the first step, else b ← μ·b + (1 − τ)·g   (dampening τ)
///                g ← g + μ·b if nesterov, else b
///     p ← p − lr·g
///
/// (PyTorch's convention `v = μv + g; p = p − lr·v`, not Sutskever's `v = μv − lr·g`.) Defaults: momentum
/// μ = 0, dampening τ = 0, nesterov false, weight decay λ = 0. Ranges: lr > 0, 0 ≤ μ < 1, 0 ≤ τ ≤ 1,
/// λ ≥ 0, all finite; Nesterov needs μ > 0 and τ = 0 (PyTorch's rule).
public final class SGD: Optimizer {
    public let learningRate: Double
    public let momentum: Double
    public let dampening: Double
    public let nesterov: Bool
    public let weightDecay: Double
    /// The momentum buffers b, one per parameter; empty until the first step with momentum.
    @exclusivity(unchecked) private var buffers: [Matrix] = []

    public init(learningRate: Double, momentum: Double = 0, dampening: Double = 0,
                nesterov: Bool = false, weightDecay: Double = 0) throws {
        try require(learningRate.isFinite && learningRate > 0, "SGD", "lr", "must be a finite number > 0", learningRate)
        try require(momentum >= 0 && momentum < 1, "SGD", "momentum", "must be in [0, 1)", momentum)
        try require(dampening >= 0 && dampening <= 1, "SGD", "dampening", "must be in [0, 1]", dampening)
        try require(weightDecay.isFinite && weightDecay >= 0, "SGD", "weightDecay", "must be a finite number ≥ 0", weightDecay)
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw HyperparameterError("SGD", "nesterov", "needs momentum > 0 and dampening 0",
                                      [("momentum", momentum), ("dampening", dampening)])
        }
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        let firstStep = buffers.isEmpty
        if momentum != 0 && firstStep {
            buffers = parameters.map { Matrix(rows: $0.value.rows, columns: $0.value.columns) }
        }
        precondition(momentum == 0 || buffers.count == parameters.count,
                     "SGD: \(parameters.count) parameters, state for \(buffers.count)")
        let lr = learningRate, mu = momentum, tau = dampening, lambda = weightDecay, nesterov = nesterov
        for (index, parameter) in parameters.enumerated() {
            precondition(parameter.gradient.shape == parameter.value.shape,
                         "SGD: \(parameter.name) is \(parameter.value.shape), its gradient \(parameter.gradient.shape)")
            parameter.gradient.elements.withUnsafeBufferPointer { grad in
                parameter.value.elements.withUnsafeMutableBufferPointer { value in
                    guard let p = value.baseAddress, let g = grad.baseAddress else { return }
                    if mu == 0 {
                        // p ← p − lr·(∇p + λ·p), a lane at a time (each lane computes exactly what a scalar loop would).
                        if lambda == 0 {
                            mapLanes(value.count, g, UnsafePointer(p), p) { (g: Lane, p: Lane) in p - lr * g }
                        } else {
                            mapLanes(value.count, g, UnsafePointer(p), p) { (g: Lane, p: Lane) in p - lr * (g + lambda * p) }
                        }
                        return
                    }
                    buffers[index].elements.withUnsafeMutableBufferPointer { buffer in
                        for k in 0..<value.count {
                            var g = grad[k]
                            if lambda != 0 { g += lambda * value[k] }                 // g ← ∇p + λ·p
                            let b = firstStep ? g : mu * buffer[k] + (1 - tau) * g      // b ← μ·b + (1 − τ)·g
                            buffer[k] = b
                            if nesterov { g += mu * b } else { g = b }                  // g ← g + μ·b, or b
                            value[k] -= lr * g                                          // p ← p − lr·g
                        }
                    }
                }
            }
        }
    }

    public func state(ofParameter index: Int) -> [(name: String, value: Matrix)] {
        index < buffers.count ? [("momentum", buffers[index])] : []
    }
}

/// Adam (Kingma & Ba 2015, with bias correction), as PyTorch's `torch.optim.Adam` (amsgrad off):
///
///     t ← t + 1;  g ← ∇p + λ·p
///     m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
///     p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// Weight decay λ is the L2 penalty added to the gradient (Adam's, not AdamW's decoupled decay). Defaults:
/// lr = 0.001, β1 = 0.9, β2 = 0.999, ε = 10⁻⁸, λ = 0. Ranges: lr > 0, 0 ≤ β1, β2 < 1, ε > 0, λ ≥ 0, all
/// finite.
public final class Adam: Optimizer {
    public let learningRate: Double
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public let weightDecay: Double
    /// Steps taken so far (t).
    public private(set) var stepCount = 0
    /// m and v, one per parameter; empty until the first step.
    @exclusivity(unchecked) private var firstMoments: [Matrix] = []
    @exclusivity(unchecked) private var secondMoments: [Matrix] = []

    public init(learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0) throws {
        try require(learningRate.isFinite && learningRate > 0, "Adam", "lr", "must be a finite number > 0", learningRate)
        try require(beta1 >= 0 && beta1 < 1, "Adam", "beta1", "must be in [0, 1)", beta1)
        try require(beta2 >= 0 && beta2 < 1, "Adam", "beta2", "must be in [0, 1)", beta2)
        try require(epsilon.isFinite && epsilon > 0, "Adam", "eps", "must be a finite number > 0", epsilon)
        try require(weightDecay.isFinite && weightDecay >= 0, "Adam", "weightDecay", "must be a finite number ≥ 0", weightDecay)
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        if firstMoments.isEmpty {
            firstMoments = parameters.map { Matrix(rows: $0.value.rows, columns: $0.value.columns) }
            secondMoments = firstMoments
        }
        precondition(firstMoments.count == parameters.count, "Adam: \(parameters.count) parameters, state for \(firstMoments.count)")
        stepCount += 1
        let t = Double(stepCount)
        let stepSize = learningRate / (1 - Double.pow(beta1, t))
        let correction2 = (1 - Double.pow(beta2, t)).squareRoot()
        let beta1 = beta1, beta2 = beta2, epsilon = epsilon, lambda = weightDecay
        for (index, parameter) in parameters.enumerated() {
            precondition(parameter.gradient.shape == parameter.value.shape,
                         "Adam: \(parameter.name) is \(parameter.value.shape), its gradient \(parameter.gradient.shape)")
            parameter.gradient.elements.withUnsafeBufferPointer { grad in
                parameter.value.elements.withUnsafeMutableBufferPointer { value in
                    firstMoments[index].elements.withUnsafeMutableBufferPointer { first in
                        secondMoments[index].elements.withUnsafeMutableBufferPointer { second in
                            for k in 0..<value.count {
                                var g = grad[k]
                                if lambda != 0 { g += lambda * value[k] }              // g ← ∇p + λ·p
                                let m = beta1 * first[k] + (1 - beta1) * g             // m ← β1·m + (1 − β1)·g
                                let v = beta2 * second[k] + (1 - beta2) * g * g        // v ← β2·v + (1 − β2)·g²
                                first[k] = m
                                second[k] = v
                                value[k] -= stepSize * m / (v.squareRoot() / correction2 + epsilon)
                            }
                        }
                    }
                }
            }
        }
    }

    public func state(ofParameter index: Int) -> [(name: String, value: Matrix)] {
        index < firstMoments.count ? [("m", firstMoments[index]), ("v", secondMoments[index])] : []
    }
}
