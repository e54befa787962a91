import Foundation
import Framework
import Reference

// Localisation (`compare locate`, and `run`/`check` on a failing round): where an engine's run first parts from
// the referee's, down to the step, the tensor and the element, and whether that operation itself is at fault.

/// The first place an engine's run of a round differs from the referee's, and why.
public struct Localisation: Equatable, Sendable {
    /// The engine located and the engine it is judged against.
    public var engine: String
    public var referee: String
    public var finding: LocateFinding
    /// Optimizer steps compared.
    public var stepsWalked: Int
    /// The largest |Δ| / tolerance of any element that agreed: how close the agreeing tensors came to their
    /// tolerances (0 when nothing was compared).
    public var closestApproach: Double = 0
    /// How the engine's tensors were obtained and what limited the walk, e.g. "the trace gives no optimizer
    /// state: each step starts from the referee's".
    public var notes: [String]
    /// Wall time of the localisation (steps, replays and the convention runs).
    public var seconds: Double
    /// The well-known convention the engine's run reproduces, when one was looked for.
    public var convention: ConventionFingerprint?
}

/// What a localisation found.
public enum LocateFinding: Equatable, Sendable {
    /// A tensor beyond its tolerance.
    case tensor(TensorDifference)
    /// The engine's steps do not follow the experiment's schedule (a batch skipped, or one too many).
    case schedule(epoch: Int, batch: Int, message: String)
    /// Every tensor of every step through `epoch` agrees: the difference is in the per-epoch evaluation.
    case evaluation(epoch: Int, message: String)
    /// Nothing differing was found in what could be compared.
    case notFound(String)
}

/// A tensor beyond its tolerance: where, by how much, and whether its own operation is at fault.
public struct TensorDifference: Equatable, Sendable {
    /// 1-based epoch and batch; 0 and 0 for the initial parameters.
    public var epoch: Int
    public var batch: Int
    /// The engine's optimizer step (1-based, counted across epochs); 0 for the initial parameters.
    public var step: Int
    /// The trace format's name, e.g. `layers[4].dInput`.
    public var tensor: String
    /// The tensor in words: "layers[4] (Tanh) backward dInput", "initial parameter layers[0].weight".
    public var what: String
    /// What computes it: "Tanh backward", "Linear(25 → 25) dWeight", "MSE gradient", "SGD momentum update".
    public var operation: String
    /// Where the largest difference is: "[2, 5]", "[3]", "" for a number.
    public var index: String
    public var maxDifference: Double
    public var engineValue: Double
    public var refereeValue: Double
    /// The tolerance at that element (`StepBounds.tolerance`).
    public var tolerance: Double
    /// The largest difference of any element of every tensor compared before this one.
    public var agreedBefore: Double
    public var tensorsBefore: Int
    public var cause: LocateCause
}

/// Local or propagated: the differing operation recomputed by the referee from the engine's own inputs.
public enum LocateCause: Equatable, Sendable {
    /// It still differs: the operation is at fault.
    case local(String)
    /// It then agrees: the difference came in through its inputs.
    case propagated(String)
    /// It cannot be told (the trace lacks the operation's inputs).
    case unknown(String)
}

/// Everything `locate` needs about one failing comparison.
public struct LocateInput {
    public var round: MaterializedRound
    /// Re-run for its steps (Framework in-process, an outside command), or a stored trace whose steps are used.
    public var engine: TrainingEngine
    /// Its epochs as judged, and the referee's.
    public var engineRun: EngineRun
    public var refereeRun: EngineRun
    public var parity: Parity
    public var plantedDifference: Double?
    /// The round's comparability horizon (`comparabilityHorizon`), for the convention fingerprint.
    public var horizon: Int?
    public var tolerances: Tolerances
    /// Also look for the convention that explains the difference.
    public var fingerprint: Bool

    public init(round: MaterializedRound, engine: TrainingEngine, engineRun: EngineRun, refereeRun: EngineRun, parity: Parity,
                plantedDifference: Double? = nil, horizon: Int? = nil, tolerances: Tolerances = Tolerances(),
                fingerprint: Bool = true) {
        self.round = round
        self.engine = engine
        self.engineRun = engineRun
        self.refereeRun = refereeRun
        self.parity = parity
        self.plantedDifference = plantedDifference
        self.horizon = horizon
        self.tolerances = tolerances
        self.fingerprint = fingerprint
    }
}

/// The most numbers an outside engine is asked to write into its steps (about 100 MB of JSON).
public let maxOutsideStepNumbers = 4_000_000

/// Epochs after the first failing one over which the convention variants are compared.
public let fingerprintEpochs = 10

/// The largest number of optimizer steps `locate` walks: enough for the first failing epoch of every suite
/// experiment (200 batches per epoch) many times over, and a bound on an outside engine's trace size.
public let maxLocateSteps = 20_000

/// Finds where the engine's run first differs from the referee's (Reference), in computation order.
///
/// 1. The initial parameters: the engine's (`initialParameters` of its trace) against the referee's, each
///    element within one ulp; a difference is traced to whichever of the two is not the experiment's.
/// 2. The steps of the epochs up to the first failing one (at least epoch 1's first step, at most
///    `maxLocateSteps`), in the order the engine took them: Framework is re-run streaming one step at a time;
///    an outside command is re-run asking for them (`"trace": {"steps": K}`); a stored trace gives what it has.
///    For each step the referee replays it from the engine's own state (the parameters and optimizer state the
///    engine's previous step ended with, its step count, and the batch the experiment's orders give), and the
///    tensors are compared in computation order: every `layers[i].output`, `loss`, `loss.dInput`, every
///    `layers[i].dInput` from the last layer down with that layer's `dWeight` and `dBias`, then per linear
///    layer the optimizer's state and the parameters after the update. A tensor differs when an element is
///    outside `StepBounds.tolerance` of its error bound (a few ulp times the magnitude of what is summed,
///    carried through the step; StepBounds.swift). Replaying from the engine's state keeps the bounds those of
///    one step: nothing accumulates from step to step.
/// 3. At the first differing tensor, its one operation is recomputed by the referee from the engine's own
///    inputs (resynchronised): if it still differs beyond the bound of that operation alone, the fault is local
///    to it; if it then agrees, the difference came in through its inputs.
/// 4. When every step agrees, the difference is in the evaluation (or after the epochs walked).
///
/// Memory holds the current and previous step's tensors (an outside engine's trace file is read whole,
/// bounded by `maxLocateSteps`).
public func locate(_ input: LocateInput) throws -> Localisation {
    let start = monotonicSeconds()
    var walk = StepWalk(input)
    try walk.run()
    var result = Localisation(engine: input.engineRun.name, referee: input.refereeRun.name, finding: walk.finding,
                              stepsWalked: walk.stepsWalked, closestApproach: walk.closestApproach, notes: walk.notes, seconds: 0,
                              convention: nil)
    if case let .tensor(d) = walk.finding, d.step == 0 {
        result.notes.append("no convention of the catalogue changes the initial parameters, so none was looked for")
    } else if input.fingerprint {
        // The variants are run through the first failing epoch and `fingerprintEpochs` more: enough to tell them
        // apart (each changes the first steps it touches), at a bounded cost for long runs.
        let epochs = min(input.round.experiment.training.epochs, max(input.parity.firstFailingEpoch ?? 0, 1) + fingerprintEpochs)
        let trace = Trace(experiment: input.round.experiment.name, engine: input.engineRun.engine,
                          epochs: input.engineRun.epochs.filter { $0.epoch <= epochs },
                          divergence: input.engineRun.divergence.flatMap { $0.epoch <= epochs ? $0 : nil }, steps: walk.firstSteps)
        result.convention = try conventionFingerprint(engine: trace, round: input.round.with(epochs: epochs, traceSteps: nil),
                                                      refereeInitialParameters: walk.refereeInitial,
                                                      horizon: input.horizon, tolerances: input.tolerances)
        if epochs < input.round.experiment.training.epochs {
            result.notes.append("the conventions were compared over epochs 0 to \(epochs) (of \(input.round.experiment.training.epochs))")
        }
    }
    result.seconds = monotonicSeconds() - start
    return result
}

/// One localisation's walk over the steps (`locate`).
struct StepWalk {
    let input: LocateInput
    let experiment: Experiment
    let refereeInitial: [(weight: Matrix, bias: Matrix)]
    /// The model's linear layers' indices in `model.layers`.
    let linearIndices: [Int]
    let batchesPerEpoch: Int
    /// The epochs walked: through the first failing one (at least 1).
    let epochsToWalk: Int

    var finding: LocateFinding = .notFound("")
    var found = false
    var stepsWalked = 0
    var notes: [String] = []
    /// Differences that do not matter (`consume`: a dInput that differs while every update agrees).
    var remarks: [String] = []
    /// The engine's first steps, for the convention fingerprint.
    var firstSteps: [TraceStep] = []
    /// The largest difference so far, and how many tensors were compared.
    var agreed = 0.0
    var compared = 0
    var closestApproach = 0.0

    // The state the next step starts from.
    var parameters: [(weight: Matrix, bias: Matrix)]
    var states: [[String: Matrix]]
    var expected = (epoch: 1, batch: 1)
    /// Whether the engine's last step had a non-finite loss (its run stopped there).
    var diverged = false
    var orders: EpochOrders
    var order: [Int] = []

    static let fingerprintSteps = 8

    init(_ input: LocateInput) {
        self.input = input
        experiment = input.round.experiment
        refereeInitial = plantedParameters(input.round.initialParameters, input.plantedDifference)
        linearIndices = experiment.model.linearIndices
        let rows = input.round.train.count, size = experiment.training.batchSize
        batchesPerEpoch = ceilingDivision(rows, size)
        let failing = input.parity.firstFailingEpoch ?? input.engineRun.divergence?.epoch ?? experiment.training.epochs
        epochsToWalk = max(1, min(failing, experiment.training.epochs))
        parameters = refereeInitial
        states = Array(repeating: [:], count: 2 * linearIndices.count)
        orders = EpochOrders(input.round.order, count: rows, epochs: experiment.training.epochs)
    }

    var engineName: String { input.engineRun.name }

    mutating func run() throws {
        var steps = min(epochsToWalk * batchesPerEpoch, maxLocateSteps)
        if input.engine is CommandEngine {
            // An outside engine writes its steps into one file, read whole: bounded by the numbers it holds.
            let model = experiment.model
            let perStep = 2 * min(experiment.training.batchSize, input.round.train.count) * (model.widths.reduce(0, +) + model.layers.count * model.widths.max()!)
                + 6 * model.parameterCount
            steps = max(1, min(steps, maxOutsideStepNumbers / max(perStep, 1)))
        }
        if steps < epochsToWalk * batchesPerEpoch {
            notes.append("the walk stops after \(steps) steps (of \(epochsToWalk * batchesPerEpoch) through epoch \(epochsToWalk))")
        }
        let epochs = min(experiment.training.epochs, ceilingDivision(steps, batchesPerEpoch))
        let walkRound = input.round.with(epochs: epochs, traceSteps: steps)

        // The engine's trace with its steps, but for Framework, which streams them below.
        var framework = input.engine as? FrameworkEngine
        let trace: Trace?
        if framework != nil {
            trace = nil
        } else if let command = input.engine as? CommandEngine {
            trace = try command.train(walkRound)
        } else {
            trace = try input.engine.train(input.round)
            if trace!.steps.isEmpty { notes.append("the trace has no steps (an experiment asks for them with \"trace\": {\"steps\": K})") }
        }

        // 1. The initial parameters.
        let engineInitial: [(weight: Matrix, bias: Matrix)]?
        if let framework {
            engineInitial = framework.initialParameters ?? input.round.initialParameters
        } else {
            engineInitial = trace?.initialParameters.flatMap(parameters(from:))
            if engineInitial == nil { notes.append("the trace gives no initialParameters: the first step starts from the referee's") }
        }
        if let engineInitial {
            compareInitialParameters(engineInitial)
            if found { return }
            parameters = engineInitial
        }

        // 2. The steps.
        var given = 0
        if framework != nil {
            var walk = self
            framework!.onStep = { step in
                given += 1
                if !walk.found { walk.consume(step) }
            }
            _ = try framework!.train(walkRound)
            self = walk
        } else {
            for step in trace!.steps where !found {
                given += 1
                consume(step)
            }
        }
        if found { return }
        // Fewer steps than asked for, without diverging: the engine skipped the batch it was expected to take next.
        let asked = framework != nil || input.engine is CommandEngine ? steps : min(steps, experiment.trace?.steps ?? 0)
        if given > 0 && stepsWalked < asked && !diverged {
            let rows = batchRows(epoch: expected.epoch, batch: expected.batch).count
            record(.schedule(epoch: expected.epoch, batch: expected.batch,
                             message: "\(engineName)'s steps end after \(counted(stepsWalked, "step")) (of \(asked) asked for), without "
                             + "diverging: it took no step for epoch \(expected.epoch), batch \(expected.batch) (\(counted(rows, "row")))"))
            return
        }

        // 3. Nothing differs in the steps.
        let failing = input.parity.firstFailingEpoch
        if given == 0 {
            finding = .notFound("\(engineName) gives no steps, so only its epochs can be compared: "
                                + (input.parity.reason.isEmpty ? "they agree" : input.parity.reason))
        } else if let failing, failing <= epochsToWalk, stepsWalked >= min(steps, given), stepsWalked >= failing * batchesPerEpoch {
            let walked = "every tensor of the \(counted(stepsWalked, "step")) through epoch \(max(failing, 1)) agrees within its tolerance "
                + "(largest difference \(formatNumber(agreed)))"
            finding = .evaluation(epoch: failing, message: "\(walked), but the evaluation of epoch \(failing) differs: "
                                  + "the difference is in how \(engineName) evaluates or reports its epochs (\(input.parity.reason))")
        } else {
            finding = .notFound("every tensor of the \(counted(stepsWalked, "step")) walked agrees within its tolerance; "
                                + "the difference lies later than the steps \(engineName) gave"
                                + (failing.map { " (the first failing epoch is \($0))" } ?? ""))
        }
    }

    // MARK: Initial parameters

    /// A trace's `initialParameters` as weight and bias per linear layer, or nil when one is missing.
    func parameters(from tensors: [String: Tensor]) -> [(weight: Matrix, bias: Matrix)]? {
        var result: [(weight: Matrix, bias: Matrix)] = []
        for i in linearIndices {
            guard let weight = matrix(tensors[TensorName.weight(i)]), let bias = row(tensors[TensorName.bias(i)]) else { return nil }
            result.append((weight, bias))
        }
        return result
    }

    /// Compares the engine's initial parameters with the referee's, element by element within one ulp, and
    /// traces a difference to whichever of the two is not the experiment's.
    mutating func compareInitialParameters(_ engine: [(weight: Matrix, bias: Matrix)]) {
        let experimentValues = input.round.initialParameters
        for (k, i) in linearIndices.enumerated() {
            for (name, e, r, x) in [(TensorName.weight(i), engine[k].weight, refereeInitial[k].weight, experimentValues[k].weight),
                                    (TensorName.bias(i), engine[k].bias, refereeInitial[k].bias, experimentValues[k].bias)] {
                guard let (index, delta) = largestInitialDifference(e, r) else {
                    compared += 1
                    continue
                }
                let tensor: Tensor = name.hasSuffix(".bias") ? .vector(r.elements) : .matrix(r)
                let engineOff = largestInitialDifference(e, x) != nil, refereeOff = largestInitialDifference(r, x) != nil
                let cause: LocateCause
                switch (engineOff, refereeOff) {
                case (false, true):
                    let planted = input.plantedDifference.map { " (--plant-difference \(formatNumber($0)) adds to it)" } ?? ""
                    cause = .local("the initial parameters: the \(input.refereeRun.name)'s \(name) is not the experiment's\(planted)")
                case (true, false):
                    cause = .local("the initial parameters: \(engineName)'s \(name) is not the experiment's (it did not start from the "
                                   + "weights the experiment gives)")
                default:
                    cause = .local("the initial parameters: neither engine's \(name) is the experiment's")
                }
                record(.tensor(TensorDifference(epoch: 0, batch: 0, step: 0, tensor: name, what: "initial parameter \(name)",
                                                operation: "initial parameters",
                                                index: tensor.index(index), maxDifference: delta, engineValue: e.elements[index],
                                                refereeValue: r.elements[index],
                                                tolerance: max(abs(e.elements[index]), abs(r.elements[index])).ulp,
                                                agreedBefore: agreed, tensorsBefore: compared, cause: cause)))
                return
            }
        }
    }

    /// The largest elementwise difference beyond one ulp, with its index, or nil.
    func largestInitialDifference(_ a: Matrix, _ b: Matrix) -> (Int, Double)? {
        var worst: (Int, Double)? = nil
        for k in a.elements.indices where k < b.elements.count {
            let d = abs(a.elements[k] - b.elements[k])
            if d > max(abs(a.elements[k]), abs(b.elements[k])).ulp || (d.isNaN && !(a.elements[k].isNaN && b.elements[k].isNaN)) {
                if worst == nil || d > worst!.1 || d.isNaN { worst = (k, d.isNaN ? .infinity : d) }
            }
        }
        return worst
    }

    mutating func record(_ finding: LocateFinding) {
        self.finding = finding
        found = true
    }

    // MARK: Steps

    /// Compares one step of the engine's with the referee's replay of it.
    mutating func consume(_ step: TraceStep) {
        if firstSteps.count < StepWalk.fingerprintSteps { firstSteps.append(step) }
        // The schedule: the engine's step must be the next batch the experiment gives.
        if (step.epoch, step.batch) != expected {
            let rows = batchRows(epoch: expected.epoch, batch: expected.batch).count
            record(.schedule(epoch: expected.epoch, batch: expected.batch,
                             message: "\(engineName)'s step \(stepsWalked + 1) is epoch \(step.epoch), batch \(step.batch), but the experiment's "
                             + "next batch is epoch \(expected.epoch), batch \(expected.batch) (\(counted(rows, "row"))): "
                             + "\(engineName) skipped it or took the batches in another schedule"))
            return
        }
        if case let .scalar(loss)? = step.tensors[TensorName.loss], !loss.isFinite { diverged = true }
        let rows = batchRows(epoch: step.epoch, batch: step.batch)
        let x = input.round.train.inputs.gatheringRows(rows), y = input.round.train.targets.gatheringRows(rows)
        stepsWalked += 1
        let stepCount = stepsWalked - 1
        let replay: TraceStep
        do {
            let layers = referenceLayers(experiment.model, parameters: parameters)
            let snapshot = ReferenceOptimizerSnapshot(stepCount: stepCount, states: states.map { $0.mapValues(\.rowArrays) })
            replay = TraceStep(reference: try ReferenceReplay.step(
                layers: layers, loss: experiment.loss.reference, optimizer: experiment.optimizer.configuration.reference,
                state: snapshot, inputs: x.rowArrays, targets: y.rowArrays, epoch: step.epoch, batch: step.batch))
        } catch {
            record(.notFound("the referee could not replay epoch \(step.epoch), batch \(step.batch) from \(engineName)'s state: \(error)"))
            return
        }
        let checks = StepChecks(experiment: experiment, parameters: parameters, states: states, stepCount: stepCount + 1,
                                x: x, targets: y, referee: replay)
        // A dInput (or the loss's) that differs while every other tensor agrees is an equivalent reformulation
        // (e.g. the loss's 1/N moved into Linear's backward): the updates are the same. It is kept aside, and
        // becomes the finding (the first difference in computation order) only if something else differs too.
        var deferred: TensorDifference? = nil
        for check in checks.list {
            guard let engineValue = step.tensors[check.name] else { continue }
            if var d = compare(engineValue, check) {
                d.epoch = step.epoch
                d.batch = step.batch
                d.step = stepsWalked
                let gradientOnly = check.name == TensorName.lossDInput || check.name.hasSuffix(".dInput")
                if gradientOnly && d.maxDifference.isFinite && !diverged {
                    if deferred == nil { deferred = d }
                    continue
                }
                let first = deferred ?? d
                var found = first
                found.cause = resynchronise(first.tensor, engine: step, x: x, targets: y, stepCount: stepCount + 1)
                record(.tensor(found))
                return
            }
        }
        if let deferred, remarks.isEmpty {
            let ratios = ratiosOfDifference(step, deferred.tensor, replay: replay)
            remarks.append("an equivalent reformulation: from epoch \(deferred.epoch), batch \(deferred.batch) on, \(engineName)'s "
                           + "\(deferred.tensor) differs from the referee's (by \(scientific(deferred.maxDifference))\(ratios)), but every "
                           + "output, gradient, parameter and state agrees, so its training is PyTorch's (e.g. the loss's scaling "
                           + "moved into Linear's backward)")
        }
        // The next step starts where the engine's ended (the referee's replay where the engine gives no tensor).
        StepWalk.adopt(replay.tensors, linearIndices: linearIndices, parameters: &parameters, states: &states)
        StepWalk.adopt(step.tensors, linearIndices: linearIndices, parameters: &parameters, states: &states)
        if stepsWalked == 1 {
            let missing = checks.list.map(\.name).filter { step.tensors[$0] == nil }
            if !missing.isEmpty {
                notes.append("\(engineName)'s steps leave out \(missing.count) of \(checks.list.count) tensors (e.g. \(missing.prefix(3).joined(separator: ", "))): "
                             + "those are not compared, and the referee's own values stand in for them where a step starts")
            }
        }
        expected = step.batch < batchesPerEpoch ? (step.epoch, step.batch + 1) : (step.epoch + 1, 1)
    }

    /// Takes from a step's (or an epoch's) `tensors` each linear layer's weight, bias and optimizer states that
    /// they hold (a bias and its states as one row); what they do not hold is left as it was.
    static func adopt(_ tensors: [String: Tensor], linearIndices: [Int], parameters: inout [(weight: Matrix, bias: Matrix)],
                      states: inout [[String: Matrix]]) {
        for (k, i) in linearIndices.enumerated() {
            if let weight = matrix(tensors[TensorName.weight(i)]) { parameters[k].weight = weight }
            if let bias = row(tensors[TensorName.bias(i)]) { parameters[k].bias = bias }
            for (p, name) in [(2 * k, "weight"), (2 * k + 1, "bias")] {
                for state in TensorName.states {
                    if let value = tensors[TensorName.state(i, name, state)] { states[p][state] = name == "weight" ? matrix(value) : row(value) }
                }
            }
        }
    }

    /// " (a factor 5 throughout)" when the engine's tensor is the referee's times one factor, else "".
    func ratiosOfDifference(_ step: TraceStep, _ name: String, replay: TraceStep) -> String {
        guard let e = step.tensors[name]?.values, let r = replay.tensors[name]?.values, e.count == r.count else { return "" }
        var factor: Double? = nil
        for (a, b) in zip(e, r) where b != 0 && a.isFinite && b.isFinite {
            let f = a / b
            if let known = factor, abs(f - known) > 1e-9 * abs(known) { return "" }
            if factor == nil { factor = f }
        }
        return factor.map { " (a factor \(formatNumber($0)) throughout)" } ?? ""
    }

    /// The train rows of a batch, from the round's orders.
    mutating func batchRows(epoch: Int, batch: Int) -> ArraySlice<Int> {
        while order.isEmpty || currentEpoch < epoch {
            order = orders.next()
            currentEpoch += 1
        }
        let size = experiment.training.batchSize
        let start = min((batch - 1) * size, order.count)
        return order[start..<min(start + size, order.count)]
    }
    var currentEpoch = 0

    /// The difference when `engine` is beyond its tolerance somewhere, else nil (and the running maximum grows).
    mutating func compare(_ engine: Tensor, _ check: StepChecks.Check) -> TensorDifference? {
        let e = engine.values, r = check.referee.values
        guard engine.shape == check.referee.shape else {
            let problem = "\(engineName)'s \(check.name) is \(engine.shapeDescription), the referee's \(check.referee.shapeDescription)"
            return TensorDifference(epoch: 0, batch: 0, step: 0, tensor: check.name, what: check.what, operation: check.operation, index: problem,
                                    maxDifference: .infinity, engineValue: .nan, refereeValue: .nan, tolerance: 0,
                                    agreedBefore: agreed, tensorsBefore: compared, cause: .unknown(problem))
        }
        var worst: (index: Int, delta: Double)? = nil, largest = 0.0, ratio = 0.0
        for k in e.indices {
            let delta = elementDifference(e[k], r[k]), tolerance = StepBounds.tolerance(check.bound.elements[k])
            largest = max(largest, delta)
            if delta != 0 && !(delta <= tolerance) {
                if worst == nil || delta > worst!.delta { worst = (k, delta) }
            } else if delta != 0 {
                ratio = max(ratio, delta / tolerance)
            }
        }
        guard let worst else {
            agreed = max(agreed, largest)
            closestApproach = max(closestApproach, ratio)
            compared += 1
            return nil
        }
        return TensorDifference(epoch: 0, batch: 0, step: 0, tensor: check.name, what: check.what, operation: check.operation,
                                index: check.referee.index(worst.index), maxDifference: worst.delta, engineValue: e[worst.index],
                                refereeValue: r[worst.index], tolerance: StepBounds.tolerance(check.bound.elements[worst.index]),
                                agreedBefore: agreed, tensorsBefore: compared, cause: .unknown(""))
    }

    // MARK: Local or propagated

    /// Recomputes the operation behind `name` with the referee from the engine's own inputs and compares it with
    /// the engine's value under the bound of that operation alone (exact inputs).
    func resynchronise(_ name: String, engine step: TraceStep, x: Matrix, targets: Matrix, stepCount: Int) -> LocateCause {
        let model = experiment.model
        let last = model.layers.count - 1
        func given(_ tensorName: String) -> Matrix? { matrix(step.tensors[tensorName]) }
        func layerInput(_ i: Int) -> (Matrix, String)? {
            i == 0 ? (x, batchName) : given(TensorName.output(i - 1)).map { ($0, TensorName.output(i - 1)) }
        }
        func dOutput(_ i: Int) -> (Matrix, String)? {
            let source = i == last ? TensorName.lossDInput : TensorName.dInput(i + 1)
            return given(source).map { ($0, source) }
        }
        func missing(_ what: String) -> LocateCause {
            .unknown("\(engineName)'s trace lacks \(what), an input of this operation, so it cannot be recomputed from \(engineName)'s own inputs")
        }
        let layer = TensorName.layer(of: name)
        let batchName = "the batch"
        let references = referenceLayers(model, parameters: parameters)
        do {
            let recomputed: Matrix, bound: Matrix, inputs: [String], operation: String
            if name == TensorName.loss || name == TensorName.lossDInput {
                guard let p = given(TensorName.output(last)) else { return missing(TensorName.output(last)) }
                let (value, gradient) = try referenceLoss(experiment.loss.reference, predictions: p.rowArrays, targets: targets.rowArrays)
                let bounds = experiment.loss.errorBounds(p, StepBounds.zeros(like: p), targets)
                if name == TensorName.loss {
                    (recomputed, bound) = (Matrix(rows: 1, columns: 1, elements: [value]), Matrix(rows: 1, columns: 1, elements: [bounds.value]))
                } else {
                    (recomputed, bound) = (Matrix(gradient), bounds.gradient)
                }
                inputs = [TensorName.output(last)]
                operation = StepChecks.lossOperation(experiment, gradient: name == TensorName.lossDInput)
            } else if let i = layer, name == TensorName.output(i) {
                guard let (input, source) = layerInput(i) else { return missing(TensorName.output(i - 1)) }
                recomputed = Matrix(try ReferenceReplay.forward(references[i], input: input.rowArrays))
                bound = StepChecks.forwardBound(model.layers[i], input: input, inputBound: StepBounds.zeros(like: input),
                                                output: recomputed, parameters: parameters[linearIndices.firstIndex(of: i) ?? 0])
                inputs = [source]
                operation = StepChecks.label(model.layers[i]) + " forward"
            } else if let i = layer, name == TensorName.dInput(i) || name == TensorName.dWeight(i) || name == TensorName.dBias(i) {
                guard let (input, source) = layerInput(i) else { return missing(TensorName.output(i - 1)) }
                guard let (dy, dySource) = dOutput(i) else { return missing(i == last ? TensorName.lossDInput : TensorName.dInput(i + 1)) }
                let result = try ReferenceReplay.backward(references[i], input: input.rowArrays, dOutput: dy.rowArrays)
                let bounds = StepChecks.backwardBounds(model.layers[i], input: input, inputBound: StepBounds.zeros(like: input),
                                                       dOutput: dy, dOutputBound: StepBounds.zeros(like: dy),
                                                       parameters: parameters[linearIndices.firstIndex(of: i) ?? 0])
                if name == TensorName.dInput(i) {
                    (recomputed, bound) = (Matrix(result.dInput), bounds.dInput)
                } else if name == TensorName.dWeight(i) {
                    (recomputed, bound) = (Matrix(result.dWeight ?? []), bounds.dWeight ?? Matrix.empty)
                } else {
                    (recomputed, bound) = (Matrix([result.dBias ?? []]), bounds.dBias ?? Matrix.empty)
                }
                inputs = [source, dySource]
                operation = StepChecks.operation(of: name, model: model, experiment: experiment)
            } else if let i = layer, let k = linearIndices.firstIndex(of: i) {
                // The update: the parameter after it, or one of its states.
                let isBias = name.hasPrefix(TensorName.bias(i))
                let p = 2 * k + (isBias ? 1 : 0)
                let gradientName = isBias ? TensorName.dBias(i) : TensorName.dWeight(i)
                guard let gradient = given(gradientName).map({ isBias ? Matrix(rows: 1, columns: $0.elements.count, elements: $0.elements) : $0 })
                else { return missing(gradientName) }
                let start = isBias ? parameters[k].bias : parameters[k].weight
                let result = try ReferenceReplay.update(experiment.optimizer.configuration.reference, parameter: start.rowArrays,
                                                        gradient: gradient.rowArrays, state: states[p].mapValues(\.rowArrays),
                                                        stepCount: stepCount - 1)
                let after = result.state.mapValues { Matrix($0) }
                let bounds = experiment.optimizer.configuration.updateBounds(UpdateBoundsInput(
                    parameter: start, gradient: gradient, gradientBound: StepBounds.zeros(like: gradient), previousState: states[p],
                    stepCount: stepCount, state: after, updated: Matrix(result.parameter)))
                if let state = TensorName.states.first(where: { name.hasSuffix(".\($0)") }) {
                    guard let value = after[state], let b = bounds.state[state] else { return .unknown("the referee keeps no \(state) state") }
                    (recomputed, bound) = (value, b)
                } else {
                    (recomputed, bound) = (Matrix(result.parameter), bounds.parameter)
                }
                inputs = [gradientName, "the state the step started from"]
                operation = StepChecks.operation(of: name, model: model, experiment: experiment)
            } else {
                return .unknown("no operation of the model computes \(name)")
            }
            guard let engineValue = step.tensors[name] else { return .unknown("") }
            let e = engineValue.values, r = recomputed.elements
            var worst = 0.0, exceeds = false
            for k in e.indices where k < r.count {
                let delta = elementDifference(e[k], r[k])
                worst = max(worst, delta)
                if delta != 0 && !(delta <= StepBounds.tolerance(bound.elements[k])) { exceeds = true }
            }
            let own = inputs.filter { $0 != batchName }
            let from = "recomputed by the referee from " + (own.isEmpty ? "the batch training.orders gives"
                : "\(engineName)'s own \(own.joined(separator: " and "))" + (own.count < inputs.count ? " and the batch training.orders gives" : ""))
            if exceeds {
                let batchCaveat = own.count < inputs.count
                    ? " (or \(engineName)'s batch is not the one training.orders gives: the trace does not hold the batch's rows)" : ""
                return .local("\(operation)\(batchCaveat): \(from), it still differs by \(scientific(worst))")
            }
            return .propagated("\(from), \(operation) agrees (largest difference \(scientific(worst))): the difference came in "
                               + "through \(inputs.joined(separator: " and ")), whose own differences stayed within their tolerances")
        } catch {
            return .unknown("the referee could not recompute \(name) from \(engineName)'s inputs: \(error)")
        }
    }
}

/// |a − b|, 0 when both are NaN, ∞ when only one is.
func elementDifference(_ a: Double, _ b: Double) -> Double {
    if a == b || (a.isNaN && b.isNaN) { return 0 }
    let d = abs(a - b)
    return d.isNaN ? .infinity : d
}

private func matrix(_ tensor: Tensor?) -> Matrix? {
    switch tensor {
    case let .matrix(m)?: return m
    case let .vector(v)?: return Matrix(rows: 1, columns: v.count, elements: v)
    case let .scalar(x)?: return Matrix(rows: 1, columns: 1, elements: [x])
    case nil: return nil
    }
}

/// A bias-shaped tensor as one row.
private func row(_ tensor: Tensor?) -> Matrix? {
    guard let m = matrix(tensor) else { return nil }
    return Matrix(rows: 1, columns: m.elements.count, elements: m.elements)
}

// MARK: - The checks of one step

/// The tensors of one step in computation order, each with the referee's value, its error bound and the
/// operation that computes it.
struct StepChecks {
    struct Check {
        let name: String
        let referee: Tensor
        let bound: Matrix
        /// The words are made only for a tensor that differs (they cost more than the comparison).
        let experiment: Experiment
        var operation: String { StepChecks.operation(of: name, model: experiment.model, experiment: experiment) }
        /// The tensor in words (`StepChecks.describe`).
        var what: String { StepChecks.describe(name, model: experiment.model, experiment: experiment) }
    }
    var list: [Check] = []

    /// `parameters` and `states` are what the step started from; `stepCount` counts this step.
    init(experiment: Experiment, parameters: [(weight: Matrix, bias: Matrix)], states: [[String: Matrix]], stepCount: Int,
         x: Matrix, targets: Matrix, referee: TraceStep) {
        let model = experiment.model
        let linearIndices = model.linearIndices
        func value(_ name: String) -> Matrix? { matrix(referee.tensors[name]) }
        func add(_ name: String, _ bound: Matrix) {
            guard let tensor = referee.tensors[name] else { return }
            list.append(Check(name: name, referee: tensor, bound: bound, experiment: experiment))
        }
        // Forward.
        var inputs: [Matrix] = [], inputBounds: [Matrix] = []
        var current = x, currentBound = StepBounds.zeros(like: x)
        for (i, layer) in model.layers.enumerated() {
            guard let output = value(TensorName.output(i)) else { return }
            inputs.append(current)
            inputBounds.append(currentBound)
            let k = linearIndices.firstIndex(of: i)
            let bound = StepChecks.forwardBound(layer, input: current, inputBound: currentBound, output: output,
                                                parameters: k.map { parameters[$0] } ?? (Matrix.empty, Matrix.empty))
            add(TensorName.output(i), bound)
            (current, currentBound) = (output, bound)
        }
        // The loss.
        let lossBounds = experiment.loss.errorBounds(current, currentBound, targets)
        add(TensorName.loss, Matrix(rows: 1, columns: 1, elements: [lossBounds.value]))
        guard var dy = value(TensorName.lossDInput) else { return }
        add(TensorName.lossDInput, lossBounds.gradient)
        var dyBound = lossBounds.gradient
        // Backward.
        var gradientBounds: [Int: (weight: Matrix, bias: Matrix)] = [:]
        for i in model.layers.indices.reversed() {
            let k = linearIndices.firstIndex(of: i)
            let bounds = StepChecks.backwardBounds(model.layers[i], input: inputs[i], inputBound: inputBounds[i], dOutput: dy,
                                                   dOutputBound: dyBound, parameters: k.map { parameters[$0] } ?? (Matrix.empty, Matrix.empty))
            add(TensorName.dInput(i), bounds.dInput)
            if let dWeight = bounds.dWeight, let dBias = bounds.dBias {
                add(TensorName.dWeight(i), dWeight)
                add(TensorName.dBias(i), dBias)
                gradientBounds[i] = (dWeight, dBias)
            }
            guard let next = value(TensorName.dInput(i)) else { break }
            (dy, dyBound) = (next, bounds.dInput)
        }
        // The update, per linear layer: the weight's state and value, then the bias's.
        for (k, i) in linearIndices.enumerated() {
            guard let gradients = gradientBounds[i] else { continue }
            for (p, name, start, gradientName, gradientBound) in [
                (2 * k, "weight", parameters[k].weight, TensorName.dWeight(i), gradients.weight),
                (2 * k + 1, "bias", parameters[k].bias, TensorName.dBias(i), gradients.bias),
            ] {
                guard let gradient = value(gradientName), let updated = value(name == "weight" ? TensorName.weight(i) : TensorName.bias(i)) else { continue }
                var after: [String: Matrix] = [:]
                for state in TensorName.states { after[state] = value(TensorName.state(i, name, state)) }
                let bounds = experiment.optimizer.configuration.updateBounds(UpdateBoundsInput(
                    parameter: start, gradient: row(gradient, like: start), gradientBound: gradientBound, previousState: states[p],
                    stepCount: stepCount, state: after, updated: updated))
                for state in TensorName.states {
                    if let bound = bounds.state[state] { add(TensorName.state(i, name, state), bound) }
                }
                add(name == "weight" ? TensorName.weight(i) : TensorName.bias(i), bounds.parameter)
            }
        }
    }

    /// `m` in the shape of `like` (a bias's gradient comes as a flat tensor).
    private func row(_ m: Matrix, like: Matrix) -> Matrix { Matrix(rows: like.rows, columns: like.columns, elements: m.elements) }

    static func forwardBound(_ layer: LayerSpec, input: Matrix, inputBound: Matrix, output: Matrix,
                             parameters: (weight: Matrix, bias: Matrix)) -> Matrix {
        switch layer {
        case .linear: return StepBounds.linearForward(x: input, ex: inputBound, weight: parameters.weight, bias: parameters.bias)
        case let .activation(kind, values): return StepBounds.activationForward(kind.errorModel(values), x: input, ex: inputBound, y: output)
        }
    }

    static func backwardBounds(_ layer: LayerSpec, input: Matrix, inputBound: Matrix, dOutput: Matrix, dOutputBound: Matrix,
                               parameters: (weight: Matrix, bias: Matrix)) -> (dInput: Matrix, dWeight: Matrix?, dBias: Matrix?) {
        switch layer {
        case .linear:
            let b = StepBounds.linearBackward(x: input, ex: inputBound, weight: parameters.weight, dy: dOutput, edy: dOutputBound)
            return (b.dInput, b.dWeight, b.dBias)
        case let .activation(kind, values):
            return (StepBounds.activationBackward(kind.errorModel(values), x: input, ex: inputBound, dy: dOutput, edy: dOutputBound), nil, nil)
        }
    }

    /// "Linear(2 → 25)", "Tanh", "LeakyReLU(0.01)".
    static func label(_ layer: LayerSpec) -> String {
        switch layer {
        case let .linear(inWidth, outWidth, _): return "Linear(\(inWidth) → \(outWidth))"
        case let .activation(kind, values): return kind.label(values)
        }
    }

    /// "MSE loss", "MSE gradient".
    static func lossOperation(_ experiment: Experiment, gradient: Bool) -> String {
        "\(experiment.loss.framework().description) \(gradient ? "gradient" : "loss")"
    }

    /// The tensor `name` in words: "layers[4] (Tanh) backward dInput", "layers[0] (Linear(2 → 25)) weight after
    /// the update", "loss.dInput (MSE gradient)".
    static func describe(_ name: String, model: ModelSpec, experiment: Experiment) -> String {
        if name == TensorName.loss { return "loss (\(lossOperation(experiment, gradient: false)))" }
        if name == TensorName.lossDInput { return "loss.dInput (\(lossOperation(experiment, gradient: true)))" }
        guard let i = TensorName.layer(of: name), i < model.layers.count else { return name }
        let prefix = "layers[\(i)] (\(label(model.layers[i])))"
        switch name {
        case TensorName.output(i): return "\(prefix) forward output"
        case TensorName.dInput(i): return "\(prefix) backward dInput"
        case TensorName.dWeight(i): return "\(prefix) dWeight"
        case TensorName.dBias(i): return "\(prefix) dBias"
        case TensorName.weight(i): return "\(prefix) weight after the update"
        case TensorName.bias(i): return "\(prefix) bias after the update"
        default: return "\(prefix) \(name.dropFirst("layers[\(i)].".count)) after the update"
        }
    }

    /// What computes the tensor `name`: "Tanh forward", "Tanh backward", "Linear(25 → 25) dWeight",
    /// "SGD momentum update", "Adam update".
    static func operation(of name: String, model: ModelSpec, experiment: Experiment) -> String {
        if name == TensorName.loss { return lossOperation(experiment, gradient: false) }
        if name == TensorName.lossDInput { return lossOperation(experiment, gradient: true) }
        guard let i = TensorName.layer(of: name), i < model.layers.count else { return name }
        let layer = label(model.layers[i])
        let optimizer = type(of: experiment.optimizer.configuration).label
        switch name {
        case TensorName.output(i): return "\(layer) forward"
        case TensorName.dInput(i): return "\(layer) backward"
        case TensorName.dWeight(i): return "\(layer) dWeight"
        case TensorName.dBias(i): return "\(layer) dBias"
        case TensorName.weight(i), TensorName.bias(i): return "\(optimizer) update"
        default:
            let state = TensorName.states.first { name.hasSuffix(".\($0)") } ?? "state"
            return "\(optimizer) \(state) update"
        }
    }
}
