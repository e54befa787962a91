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
    /// The momentum buffers b, one per parameter; empty until the first step with momentum.
    private var buffers: [[Double]] = []

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
        let firstStep = buffers.isEmpty
        if momentum != 0 && firstStep { buffers = Array(repeating: [], count: parameters.count) }
        precondition(momentum == 0 || buffers.count == parameters.count,
                     "SGD: \(parameters.count) parameters, state for \(buffers.count)")
        let lr = learningRate, mu = momentum, tau = dampening, lambda = weightDecay, nesterov = nesterov
        for index in parameters.indices {
            let parameter = parameters[index]
            let initialize = mu != 0 && firstStep
            parameter.gradient.elements.withUnsafeBufferPointer { grad in
                parameter.value.elements.withUnsafeMutableBufferPointer { value in
                    let count = value.count
                    precondition(grad.count == count, "SGD: \(parameter.name) has \(count) values, its gradient \(grad.count)")
                    if mu == 0 {
                        // p ← p − lr·(∇p + λ·p), a lane at a time (each lane computes exactly what a scalar loop would).
                        let v = value.baseAddress!, g = grad.baseAddress!
                        if lambda == 0 {
                            mapLanes(count, g, UnsafePointer(v), v, SGDStep(learningRate: lr))
                        } else {
                            mapLanes(count, g, UnsafePointer(v), v, SGDStepWithDecay(learningRate: lr, weightDecay: lambda))
                        }
                        return
                    }
                    if buffers[index].isEmpty { buffers[index] = Array(repeating: 0, count: count) }
                    buffers[index].withUnsafeMutableBufferPointer { buffer in
                        for k in 0..<count {
                            var g = grad[k]
                            if lambda != 0 { g += lambda * value[k] }
                            let b = initialize ? g : mu * buffer[k] + (1 - tau) * g
                            buffer[k] = b
                            if nesterov { g += mu * b } else { g = b }
                            value[k] -= lr * g
                        }
                    }
                }
            }
        }
    }
}

/// `p − lr·g` for a lane of gradients g and values p.
struct SGDStep: LanePairFunction {
    let learningRate: Double
    @inline(__always) func callAsFunction(_ g: Lane, _ p: Lane) -> Lane { p - learningRate * g }
}

/// `p − lr·(g + λ·p)`.
struct SGDStepWithDecay: LanePairFunction {
    let learningRate: Double, weightDecay: Double
    @inline(__always) func callAsFunction(_ g: Lane, _ p: Lane) -> Lane { p - learningRate * (g + weightDecay * p) }
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
    /// m and v, one array per parameter; empty until the first step.
    private var firstMoments: [[Double]] = []
    private var secondMoments: [[Double]] = []

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
            firstMoments = parameters.map { Array(repeating: 0, count: $0.value.elements.count) }
            secondMoments = firstMoments
        }
        precondition(firstMoments.count == parameters.count, "Adam: \(parameters.count) parameters, state for \(firstMoments.count)")
        stepCount += 1
        let t = Double(stepCount)
        let stepSize = learningRate / (1 - Double.pow(beta1, t))
        let correction2 = (1 - Double.pow(beta2, t)).squareRoot()
        let beta1 = beta1, beta2 = beta2, epsilon = epsilon, lambda = weightDecay
        for index in parameters.indices {
            let parameter = parameters[index]
            precondition(parameter.gradient.shape == parameter.value.shape,
                         "Adam: \(parameter.name) is \(parameter.value.shape), its gradient \(parameter.gradient.shape)")
            let count = parameter.value.elements.count
            parameter.gradient.elements.withUnsafeBufferPointer { grad in
                parameter.value.elements.withUnsafeMutableBufferPointer { value in
                    firstMoments[index].withUnsafeMutableBufferPointer { first in
                        secondMoments[index].withUnsafeMutableBufferPointer { second in
                            for k in 0..<count {
                                var g = grad[k]
                                if lambda != 0 { g += lambda * value[k] }
                                let m = beta1 * first[k] + (1 - beta1) * g
                                let v = beta2 * second[k] + (1 - beta2) * g * g
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
}
