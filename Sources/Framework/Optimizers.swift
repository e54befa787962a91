import RealModule

/// Thrown for an optimizer hyperparameter out of its range; the message names the value.
public struct HyperparameterError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

/// Updates parameters from their accumulated gradients.
///
/// An optimizer keeps per-parameter state (momentum buffers, moments) by position in the list it is given,
/// so pass the same parameters in the same order at every step (`model.parameters`).
public protocol Optimizer: AnyObject {
    /// One update of every parameter from its `gradient`. Gradients are read, not zeroed.
    func step(_ parameters: [Parameter])
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as PyTorch's
/// `torch.optim.SGD`:
///
///     g ← ∇p + λ·p                                  (weight decay λ)
///     if μ ≠ 0:  b ← g on the first step, else b ← μ·b + (1 − τ)·g   (dampening τ)
///                g ← g + μ·b if nesterov, else b
///     p ← p − lr·g
///
/// Defaults: momentum μ = 0, dampening τ = 0, nesterov false, weight decay λ = 0. Ranges: lr > 0,
/// 0 ≤ μ < 1, 0 ≤ τ ≤ 1, λ ≥ 0; Nesterov needs μ > 0 and τ = 0 (PyTorch's rule).
public final class SGD: Optimizer {
    public let learningRate: Double
    public let momentum: Double
    public let dampening: Double
    public let nesterov: Bool
    public let weightDecay: Double
    private var buffers: [Matrix?] = []

    public init(learningRate: Double, momentum: Double = 0, dampening: Double = 0,
                nesterov: Bool = false, weightDecay: Double = 0) throws {
        guard learningRate.isFinite, learningRate > 0 else {
            throw HyperparameterError(description: "SGD: learning rate must be a finite number > 0, got \(learningRate)")
        }
        guard momentum.isFinite, momentum >= 0, momentum < 1 else {
            throw HyperparameterError(description: "SGD: momentum must be in [0, 1), got \(momentum)")
        }
        guard dampening.isFinite, dampening >= 0, dampening <= 1 else {
            throw HyperparameterError(description: "SGD: dampening must be in [0, 1], got \(dampening)")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw HyperparameterError(description: "SGD: weight decay must be a finite number ≥ 0, got \(weightDecay)")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw HyperparameterError(description:
                "SGD: nesterov needs momentum > 0 and dampening 0, got momentum \(momentum), dampening \(dampening)")
        }
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        if buffers.isEmpty { buffers = Array(repeating: nil, count: parameters.count) }
        precondition(buffers.count == parameters.count, "SGD: \(parameters.count) parameters, state for \(buffers.count)")
        for (index, parameter) in parameters.enumerated() {
            var g = parameter.gradient
            if weightDecay != 0 {
                for k in g.elements.indices { g.elements[k] += weightDecay * parameter.value.elements[k] }
            }
            if momentum != 0 {
                if var buffer = buffers[index] {
                    buffers[index] = nil  // keep the buffer uniquely referenced while it is updated
                    for k in buffer.elements.indices {
                        buffer.elements[k] = momentum * buffer.elements[k] + (1 - dampening) * g.elements[k]
                    }
                    buffers[index] = buffer
                } else {
                    buffers[index] = g
                }
                let buffer = buffers[index]!
                if nesterov {
                    for k in g.elements.indices { g.elements[k] += momentum * buffer.elements[k] }
                } else {
                    g = buffer
                }
            }
            for k in g.elements.indices { parameter.value.elements[k] -= learningRate * g.elements[k] }
        }
    }
}

/// Adam (Kingma & Ba 2015, with bias correction), as PyTorch's `torch.optim.Adam` (amsgrad off):
///
///     t ← t + 1;  g ← ∇p + λ·p
///     m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
///     p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// Defaults: lr = 0.001, β1 = 0.9, β2 = 0.999, ε = 10⁻⁸, weight decay λ = 0. Ranges: lr > 0,
/// 0 ≤ β1, β2 < 1, ε > 0, λ ≥ 0.
public final class Adam: Optimizer {
    public let learningRate: Double
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public let weightDecay: Double
    /// Steps taken so far (t).
    public private(set) var stepCount = 0
    private var firstMoments: [Matrix] = []
    private var secondMoments: [Matrix] = []

    public init(learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0) throws {
        guard learningRate.isFinite, learningRate > 0 else {
            throw HyperparameterError(description: "Adam: learning rate must be a finite number > 0, got \(learningRate)")
        }
        for (name, beta) in [("beta1", beta1), ("beta2", beta2)] where !(beta >= 0 && beta < 1) {
            throw HyperparameterError(description: "Adam: \(name) must be in [0, 1), got \(beta)")
        }
        guard epsilon.isFinite, epsilon > 0 else {
            throw HyperparameterError(description: "Adam: eps must be a finite number > 0, got \(epsilon)")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw HyperparameterError(description: "Adam: weight decay must be a finite number ≥ 0, got \(weightDecay)")
        }
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
        for (index, parameter) in parameters.enumerated() {
            for k in parameter.value.elements.indices {
                var g = parameter.gradient.elements[k]
                if weightDecay != 0 { g += weightDecay * parameter.value.elements[k] }
                let m = beta1 * firstMoments[index].elements[k] + (1 - beta1) * g
                let v = beta2 * secondMoments[index].elements[k] + (1 - beta2) * g * g
                firstMoments[index].elements[k] = m
                secondMoments[index].elements[k] = v
                parameter.value.elements[k] -= stepSize * m / (v.squareRoot() / correction2 + epsilon)
            }
        }
    }
}
