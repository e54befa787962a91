// Optimizers: PyTorch's SGD and Adam, one update per parameter per step, state kept per parameter.
import Foundation

/// An optimizer and its hyperparameters. Every value is given explicitly; PyTorch's defaults are noted.
///
/// - `sgd`: PyTorch `torch.optim.SGD` (defaults there: momentum 0, dampening 0, nesterov false,
///   weight decay 0; lr has no default). With `g = ∇p + wd·p`:
///   if `momentum ≠ 0`: `buf = g` on the first step, else `buf = μ·buf + (1 − dampening)·g`;
///   then `g = nesterov ? g + μ·buf : buf`; finally `p = p − lr·g`.
///   (This is PyTorch's convention `v = μv + g; p = p − lr·v`, not Sutskever's `v = μv − lr·g`.)
/// - `adam`: Adam (Kingma & Ba 2015, Algorithm 1) as in PyTorch `torch.optim.Adam` with L2 weight decay
///   added to the gradient (not AdamW), `amsgrad` off (PyTorch defaults: lr 1e−3, betas (0.9, 0.999),
///   eps 1e−8, weight decay 0). With `t = t + 1` and `g = ∇p + wd·p`:
///   `m = β1·m + (1 − β1)·g`, `v = β2·v + (1 − β2)·g²`, `stepSize = lr / (1 − β1^t)`,
///   `denom = √v / √(1 − β2^t) + eps`, `p = p − stepSize·m / denom`. Each line is evaluated in the order
///   PyTorch's single-tensor kernels use (`m.lerp_(g, 1 − β1)`, `v.mul_(β2).addcmul_(g, g)`,
///   `p.addcdiv_(m, denom)`); PyTorch's vectorised kernels may fuse multiply-adds, so agreement is to
///   rounding (~1e−16 per step), not bit for bit.
public enum ReferenceOptimizer: Equatable, Sendable {
    case sgd(lr: Double, momentum: Double, dampening: Double, nesterov: Bool, weightDecay: Double)
    case adam(lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double)

    /// Throws if a hyperparameter is out of range (messages name the value). The ranges are the project's,
    /// the same as Framework's (a test checks both on the same grid of values): SGD lr > 0, momentum in
    /// [0, 1), dampening in [0, 1], weight decay ≥ 0, Nesterov only with momentum > 0 and dampening 0; Adam lr
    /// > 0, β1 and β2 in [0, 1), eps > 0, weight decay ≥ 0; every value finite. (PyTorch itself accepts
    /// lr = 0, eps = 0 and any momentum ≥ 0; these are stricter, so that no run divides by zero or keeps
    /// growing a momentum buffer.)
    func validate() throws {
        func require(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw ReferenceError(message(), at: "\(self)") }
        }
        switch self {
        case let .sgd(lr, momentum, dampening, nesterov, weightDecay):
            try require(lr > 0 && lr.isFinite, "invalid learning rate lr = \(lr); expected a finite value > 0")
            try require(momentum >= 0 && momentum < 1, "invalid momentum = \(momentum); expected 0 ≤ momentum < 1")
            try require(dampening >= 0 && dampening <= 1, "invalid dampening = \(dampening); expected 0 ≤ dampening ≤ 1")
            try require(weightDecay >= 0 && weightDecay.isFinite, "invalid weightDecay = \(weightDecay); expected a finite value ≥ 0")
            try require(!nesterov || (momentum > 0 && dampening == 0),
                        "nesterov momentum requires momentum > 0 and dampening = 0, got momentum = \(momentum), "
                        + "dampening = \(dampening)")
        case let .adam(lr, beta1, beta2, eps, weightDecay):
            try require(lr > 0 && lr.isFinite, "invalid learning rate lr = \(lr); expected a finite value > 0")
            try require(beta1 >= 0 && beta1 < 1, "invalid beta1 = \(beta1); expected 0 ≤ beta1 < 1")
            try require(beta2 >= 0 && beta2 < 1, "invalid beta2 = \(beta2); expected 0 ≤ beta2 < 1")
            try require(eps > 0 && eps.isFinite, "invalid eps = \(eps); expected a finite value > 0")
            try require(weightDecay >= 0 && weightDecay.isFinite, "invalid weightDecay = \(weightDecay); expected a finite value ≥ 0")
        }
    }
}

/// An optimizer with its per-parameter state (momentum buffers, or Adam's `m`, `v` and step count).
///
/// `step(network)` updates every parameter of `network` (weight then bias of each linear layer, in
/// order) from the gradients accumulated by `backward`. The state is created on the first step and
/// belongs to that network's parameter shapes; stepping a network of other shapes throws.
public final class ReferenceOptimizerState {
    public let optimizer: ReferenceOptimizer
    /// Steps taken so far (Adam's `t`).
    public private(set) var stepCount = 0
    /// SGD: the momentum buffer of each parameter (`nil` until its first step). Adam: `m`.
    private var firstMoments: [Matrix] = []
    /// Adam: `v`.
    private var secondMoments: [Matrix] = []
    /// One scratch matrix per parameter for `g = ∇p + wd·p`.
    private var scratch: [Matrix] = []

    public init(_ optimizer: ReferenceOptimizer) { self.optimizer = optimizer }

    /// The state after `stepCount` steps, for parameters of the shapes of `parameters`: `states[k]` holds
    /// parameter k's named state as a step left it ("momentum"; "m" and "v"), each of the parameter's shape;
    /// a state left out starts at zero. Throws on invalid hyperparameters, a negative step count, or a state
    /// of the wrong shape (`ReferenceReplay`).
    init(_ optimizer: ReferenceOptimizer, restoring stepCount: Int, states: [[String: Matrix]],
         for parameters: [(value: Matrix, gradient: Matrix)]) throws {
        self.optimizer = optimizer
        try optimizer.validate()
        guard stepCount >= 0 else { throw ReferenceError("step count \(stepCount); expected ≥ 0", at: "\(optimizer) state") }
        try prepareState(for: parameters)
        let names = { () -> (first: String, second: String?) in
            if case .adam = optimizer { return ("m", "v") } else { return ("momentum", nil) }
        }()
        for (index, state) in states.enumerated() where index < parameters.count {
            for (name, value) in state {
                let target: Matrix
                if name == names.first { target = firstMoments[index] }
                else if name == names.second { target = secondMoments[index] }
                else { throw ReferenceError("unknown state \"\(name)\"", at: "\(optimizer) state of parameter \(index)") }
                try BLAS.copy(value, into: target, "\(optimizer) state \(name) of parameter \(index)")
            }
        }
        self.stepCount = stepCount
    }

    /// Applies one update to every parameter of `network`; throws on invalid hyperparameters, on a
    /// network whose parameter shapes differ from the first step's, or on a GSL failure.
    public func step(_ network: ReferenceNetwork) throws {
        try step(network.parameters)
    }

    /// One update of each `(value, gradient)` pair, in order (the state is per position).
    func step(_ parameters: [(value: Matrix, gradient: Matrix)]) throws {
        if stepCount == 0 { try optimizer.validate() }  // hyperparameters are immutable: check once
        if scratch.isEmpty || stepCount == 0 { try prepareState(for: parameters) } else { try checkShapes(parameters) }
        stepCount += 1
        for (index, (p, grad)) in parameters.enumerated() {
            // Built only when an error is thrown (describing the enum goes through reflection).
            func location() -> String { "\(optimizer) step \(stepCount), parameter \(index) \(p.shape)" }
            switch optimizer {
            case let .sgd(lr, momentum, dampening, nesterov, weightDecay):
                let g = scratch[index]
                try BLAS.copy(grad, into: g, location())                             // g = ∇p
                if weightDecay != 0 { try BLAS.axpy(weightDecay, p, g, location()) } //   + wd·p
                var update = g
                if momentum != 0 {
                    let buf = firstMoments[index]
                    if stepCount == 1 {
                        try BLAS.copy(g, into: buf, location())                      // buf = g (first step)
                    } else {
                        BLAS.scale(momentum, buf)                                    // buf = μ·buf
                        try BLAS.axpy(1 - dampening, g, buf, location())             //     + (1 − dampening)·g
                    }
                    if nesterov { try BLAS.axpy(momentum, buf, g, location()) }      // g = g + μ·buf
                    else { update = buf }                                            // g = buf
                }
                try BLAS.axpy(-lr, update, p, location())                            // p = p − lr·g

            case let .adam(lr, beta1, beta2, eps, weightDecay):
                let g = scratch[index]
                try BLAS.copy(grad, into: g, location())                             // g = ∇p
                if weightDecay != 0 { try BLAS.axpy(weightDecay, p, g, location()) } //   + wd·p
                let t = Double(stepCount)
                let stepSize = lr / (1 - pow(beta1, t))
                let biasCorrection2Sqrt = (1 - pow(beta2, t)).squareRoot()
                let (ps, gs, ms, vs) = (p.data, g.data, firstMoments[index].data, secondMoments[index].data)
                let weight = 1 - beta1
                for i in 0..<p.count {
                    // m = β1·m + (1 − β1)·g, computed as PyTorch's m.lerp_(g, 1 − β1)
                    ms[i] = weight < 0.5 ? ms[i] + weight * (gs[i] - ms[i])
                                         : gs[i] - (gs[i] - ms[i]) * (1 - weight)
                    // v = β2·v + (1 − β2)·g², as v.mul_(β2).addcmul_(g, g, value: 1 − β2)
                    vs[i] = vs[i] * beta2 + (1 - beta2) * gs[i] * gs[i]
                    // denom = √v / √(1 − β2^t) + eps;  p = p − stepSize·m/denom,
                    // as p.addcdiv_(m, denom, value: −stepSize) evaluates it: p + (−stepSize·m)/denom
                    let denom = vs[i].squareRoot() / biasCorrection2Sqrt + eps
                    ps[i] = ps[i] + -stepSize * ms[i] / denom
                }
            }
        }
    }

    /// The state kept for parameter `index` (weight then bias of each linear layer) after the last step: SGD's
    /// `"momentum"` buffer (with momentum), Adam's `"m"` and `"v"`.
    func state(ofParameter index: Int) -> [(String, Matrix)] {
        guard stepCount > 0, index < firstMoments.count else { return [] }
        switch optimizer {
        case let .sgd(_, momentum, _, _, _): return momentum != 0 ? [("momentum", firstMoments[index])] : []
        case .adam: return [("m", firstMoments[index]), ("v", secondMoments[index])]
        }
    }

    /// Creates zeroed state for parameters of these shapes.
    private func prepareState(for parameters: [(value: Matrix, gradient: Matrix)]) throws {
        func zeros(_ index: Int, _ p: Matrix, _ name: String) throws -> Matrix {
            try Matrix(rows: p.rows, columns: p.columns, "\(optimizer) \(name) of parameter \(index)")
        }
        scratch = try parameters.enumerated().map { try zeros($0, $1.value, "scratch") }
        firstMoments = try parameters.enumerated().map { try zeros($0, $1.value, "first moment") }
        if case .adam = optimizer {
            secondMoments = try parameters.enumerated().map { try zeros($0, $1.value, "second moment") }
        }
    }

    /// Checks that the parameters still have the shapes the state was created for.
    private func checkShapes(_ parameters: [(value: Matrix, gradient: Matrix)]) throws {
        let same = scratch.count == parameters.count
            && zip(scratch, parameters).allSatisfy { $0.rows == $1.value.rows && $0.columns == $1.value.columns }
        guard same else {
            throw ReferenceError("the network's parameter shapes \(parameters.map(\.value.shape)) differ from those "
                                 + "this optimizer state was created for \(scratch.map(\.shape))",
                                 at: "\(optimizer) step \(stepCount + 1)")
        }
    }
}
