import Foundation
import Framework
import Reference

// Verification: the referee recomputes, from the engine's own state, every step and every epoch the engine
// gives, and the verdict rests on that (docs/verdict.md). One step or one epoch is too short for a chaotic run to
// amplify rounding much, so each comparison keeps a tolerance derived from that computation alone; nothing grows
// with the length of the run.

/// One kind of thing the referee recomputed, llm.c style: `OK steps n=60000 maxdiff=3.1e-16 ratio=0.21`.
public struct VerificationLine: Equatable, Sendable {
    /// "initial parameters", "steps", "evaluation", "epoch replay", "final parameters".
    public var name: String
    /// How many were recomputed (tensors' parameters, steps, epochs).
    public var count: Int
    /// The largest |engine − referee| of any element that agreed.
    public var maxDifference: Double
    /// The largest |engine − referee| / tolerance of any element that agreed (≤ 1).
    public var maxRatio: Double
}

/// The referee's evaluation of one set (train or test) from the engine's parameters of one epoch.
public struct SetEvaluation: Equatable, Sendable {
    /// The loss over the set (the experiment's loss, mean reduction), as the referee computes it.
    public var loss: Double
    /// How far a correct engine's loss may be from it: `StepBounds.tolerance` of the forward pass's and the
    /// loss's error bound (a few ulp times the magnitude of what is summed).
    public var lossTolerance: Double
    /// Rows the referee classifies correctly.
    public var correct: Int
    /// Rows whose decision is within rounding (the top two outputs, or one output and 0.5, within the sum of
    /// their tolerances): a correct engine may count them either way.
    public var ambiguous: Int
    public var rows: Int

    public init(loss: Double, lossTolerance: Double, correct: Int, ambiguous: Int, rows: Int) {
        self.loss = loss
        self.lossTolerance = lossTolerance
        self.correct = correct
        self.ambiguous = ambiguous
        self.rows = rows
    }

    /// Why `loss` and `accuracy` (an engine's report of this set) disagree with this evaluation, or nil.
    func problem(loss reported: Double, accuracy: Double, set: String) -> String? {
        let lossAgrees = reported == loss || (reported.isNaN && loss.isNaN)
            || (reported.isFinite && loss.isFinite && abs(reported - loss) <= lossTolerance)
        if !lossAgrees {
            return "\(set) loss \(reported), but the referee's evaluation of its own parameters gives \(loss) "
                + "(tolerance \(scientific(lossTolerance)))"
        }
        let count = accuracy * Double(rows)
        guard accuracy.isFinite, abs(count - Double(correct)) <= Double(ambiguous) + 1e-6 else {
            return "\(set) accuracy \(accuracy), but with its own parameters the referee counts \(correct) of \(rows) rows correct "
                + "(\(fraction(Double(correct) / Double(max(rows, 1)))); \(ambiguous) within rounding of the decision)"
        }
        return nil
    }

    /// |reported − loss| / tolerance (0 when equal).
    func ratio(_ reported: Double) -> Double {
        reported == loss ? 0 : lossTolerance > 0 ? abs(reported - loss) / lossTolerance : .infinity
    }
}

/// The referee's evaluation of an engine's parameters at one epoch.
public struct EpochEvaluation: Equatable, Sendable {
    public var epoch: Int
    public var train: SetEvaluation
    public var test: SetEvaluation

    public init(epoch: Int, train: SetEvaluation, test: SetEvaluation) {
        self.epoch = epoch
        self.train = train
        self.test = test
    }

    /// Why the engine's reported metrics of this epoch disagree with the referee's evaluation, or nil.
    public func problem(_ reported: EpochMetrics) -> String? {
        train.problem(loss: reported.trainLoss, accuracy: reported.trainAccuracy, set: "train")
            ?? test.problem(loss: reported.testLoss, accuracy: reported.testAccuracy, set: "test")
    }
}

/// What the referee recomputed of one engine's round from the engine's own state, and how it came out.
public struct Verification: Equatable, Sendable {
    public var engine: String
    /// One line per kind of thing recomputed, in the order they were.
    public var lines: [VerificationLine]
    /// The referee's evaluation of the engine's parameters at each epoch where they are known (merge judges the
    /// reported metrics against these again).
    public var evaluations: [EpochEvaluation]
    /// The last epoch through which the engine's training is verified from its start: every step replayed, or
    /// every epoch replayed from its parameters, and every evaluation recomputed (nil: not even epoch 0).
    public var verifiedThrough: Int?
    /// The first difference found, in computation order (nil: none).
    public var failure: LocateFinding?
    /// Why the training after `verifiedThrough` could not be verified, when it could not.
    public var gap: String?
    /// Differences that do not matter, and why ("an equivalent reformulation: …").
    public var remarks: [String]
    public var stepsReplayed: Int
    public var seconds: Double
    /// The largest growth of rounding measured over one epoch replayed from per-epoch parameters (0: none
    /// replayed).
    public var largestEpochGrowth: Double = 0
    /// When the engine's run diverged: whether the referee's replay from its own state diverged at the same
    /// step (nil: the run did not diverge).
    public var divergenceVerified: Bool? = nil
    /// The failure is as precise as `locate`'s: a step's tensor, the initial parameters or the schedule (not an
    /// epoch replayed from per-epoch parameters, nor an evaluation).
    public var failureLocated: Bool = false

    /// The failure's epoch (0 for the initial parameters), for the verdict's first failing epoch.
    public var failureEpoch: Int? {
        switch failure {
        case let .tensor(d)?: return d.epoch
        case let .schedule(epoch, _, _)?, let .evaluation(epoch, _)?: return epoch
        case .notFound?, nil: return nil
        }
    }

    /// The failure in one line.
    public var failureText: String? {
        switch failure {
        case let .tensor(d)?:
            let at = d.step == 0 ? "the initial parameters" : "epoch \(d.epoch), batch \(d.batch)"
            return "replayed from \(engine)'s own state, \(at): \(d.what) differs by \(scientific(d.maxDifference)) at \(d.index) "
                + "(\(engine) \(d.engineValue), referee \(d.refereeValue); tolerance \(scientific(d.tolerance)))"
        case let .schedule(_, _, message)?: return message
        case let .evaluation(_, message)?: return message
        case let .notFound(message)?: return message
        case nil: return nil
        }
    }
}

/// The growth of rounding over one epoch beyond which an epoch replayed from per-epoch parameters is not
/// evidence: its tolerance (the steps' own bounds times the growth) would then reach about 10⁻⁹ relative, the
/// order of the smallest real difference the project promises to see (docs/verdict.md).
public let maxEpochGrowth = 1e4

/// The margin on the measured one-epoch growth of rounding: it is measured along one direction (the one-ulp
/// nudge), and another direction may grow faster (docs/verdict.md).
let epochGrowthMargin = 10.0

/// Everything a verification needs.
struct VerifyInput {
    var round: MaterializedRound
    /// The engine's run as reported (its epochs are judged against the referee's evaluations).
    var engineRun: EngineRun
    /// `--plant-difference`, moving the referee's first weight.
    var plantedDifference: Double?
}

/// Verifies Framework by training it again with every step streamed to the referee (`FrameworkEngine.onStep`):
/// every step is replayed from Framework's own state and every epoch's evaluation is recomputed from its
/// parameters. Memory holds one step.
func verifyFramework(_ input: VerifyInput) throws -> Verification {
    let start = monotonicSeconds()
    var verifier = Verifier(input)
    verifier.checkInitial(input.round.initialParameters)
    if verifier.walk.found { return verifier.result(start) }
    verifier.evaluateEpoch(0)
    let experiment = input.round.experiment
    let steps = experiment.training.epochs * verifier.walk.batchesPerEpoch
    var engine = FrameworkEngine()
    engine.onStep = { step in verifier.consume(step) }
    let trace = try engine.train(input.round.with(traceSteps: steps))
    // Its diverging step (outputs and loss) was replayed with the others: the referee's loss was not finite there too.
    if trace.divergence != nil { verifier.divergenceVerified = !verifier.walk.found && verifier.walk.diverged }
    // The run must be the one judged: the same engine, deterministic.
    func bits(_ e: [EpochMetrics]) -> [UInt64] { e.flatMap { [UInt64($0.epoch), $0.trainLoss.bitPattern, $0.testLoss.bitPattern,
                                                             $0.trainAccuracy.bitPattern, $0.testAccuracy.bitPattern] } }
    func bits(_ d: Divergence?) -> [UInt64] { d.map { [UInt64($0.epoch), UInt64($0.batch), $0.loss.bitPattern] } ?? [] }
    if !verifier.walk.found && (bits(trace.epochs) != bits(input.engineRun.epochs) || bits(trace.divergence) != bits(input.engineRun.divergence)) {
        verifier.walk.record(.notFound("Framework trained again for the replay did not reproduce its own run (it is not deterministic)"))
    }
    return verifier.result(start)
}

/// Verifies an engine from its trace: its initial parameters, every step it gives (replayed from its own
/// state), every epoch whose parameters it gives (evaluation recomputed; training replayed from the previous
/// epoch's parameters), and its final parameters.
func verifyTrace(_ trace: Trace, _ input: VerifyInput) throws -> Verification {
    let start = monotonicSeconds()
    var verifier = Verifier(input)
    let experiment = input.round.experiment
    let walk = verifier.walk
    var checkpoints: [Int: Checkpoint] = [:]
    for (epoch, tensors) in trace.checkpoints {
        if let checkpoint = Checkpoint(tensors, walk: walk) { checkpoints[epoch] = checkpoint }
    }
    // The initial parameters: the trace's, or its epoch-0 checkpoint.
    let initial = trace.initialParameters.flatMap(walk.parameters(from:)) ?? checkpoints[0]?.parameters
    if let initial {
        verifier.checkInitial(initial)
        if verifier.walk.found { return verifier.result(start) }
        if let zero = checkpoints[0]?.parameters, let own = trace.initialParameters.flatMap(walk.parameters(from:)) {
            verifier.compareParameters(zero, own, what: "epoch 0's parameters", against: "its initialParameters", epoch: 0,
                                       line: "epoch 0 parameters")
            if verifier.walk.found { return verifier.result(start) }
        }
        verifier.evaluateEpoch(0)
    } else {
        verifier.walk.notes.append("the trace gives no initial parameters: the first step starts from the experiment's")
    }
    // The steps it gives, each replayed from its own state.
    for step in trace.steps where !verifier.walk.found { verifier.consume(step) }
    if verifier.walk.found { return verifier.result(start) }
    // The epochs it gives parameters for, beyond the steps.
    let last = input.engineRun.epochs.last?.epoch ?? 0
    var final = trace.finalParameters
    if let given = final, let lastCheckpoint = checkpoints[last] {
        verifier.compareParameters(given, lastCheckpoint.parameters, what: "the final parameters", against: "epoch \(last)'s parameters",
                                   epoch: last, line: "final parameters")
        if verifier.walk.found { return verifier.result(start) }
        final = nil
    }
    var epoch = (verifier.verifiedThrough ?? -1) + 1
    while epoch >= 1 && epoch <= last && !verifier.walk.found && verifier.gap == nil, let checkpoint = checkpoints[epoch] {
        // From the previous epoch's parameters, or from where the engine's own steps left the walk.
        let atEpochStart = verifier.walk.stepsWalked == (epoch - 1) * verifier.walk.batchesPerEpoch
        guard let previous = checkpoints[epoch - 1]
                ?? (atEpochStart ? Checkpoint(parameters: verifier.walk.parameters, states: verifier.walk.states) : nil) else { break }
        verifier.replayEpoch(epoch, from: previous, to: checkpoint)
        epoch += 1
    }
    if verifier.walk.found { return verifier.result(start) }
    // A divergence: the referee replays its epoch from the parameters before it, and must diverge at that batch.
    if let divergence = input.engineRun.divergence {
        verifier.divergenceVerified = false
        if verifier.verifiedThrough == divergence.epoch - 1, let previous = checkpoints[divergence.epoch - 1] {
            verifier.checkDivergence(divergence, from: previous)
        }
    }
    // What could not be replayed is still evaluated: every epoch's parameters, and the final ones.
    let through = verifier.verifiedThrough ?? -1
    for e in checkpoints.keys.sorted() where e > through && !verifier.walk.found {
        verifier.walk.parameters = checkpoints[e]!.parameters
        verifier.evaluateEpoch(e, trainingVerified: false)
    }
    if let final, last > through, checkpoints[last] == nil, input.engineRun.divergence == nil, !verifier.walk.found {
        verifier.walk.parameters = final
        verifier.evaluateEpoch(last, trainingVerified: false)
    }
    if verifier.gap == nil, through < last {
        verifier.gap = experiment.trace?.epochParameters == true || !checkpoints.isEmpty
            ? "the trace has no parameters for epoch \(through + 1)"
            : "the trace gives neither the steps nor the parameters of epoch \(through + 1) (an experiment asks for them with \"trace\": "
              + "{\"epochParameters\": true})"
    }
    return verifier.result(start)
}

/// An engine's parameters and optimizer state after an epoch.
struct Checkpoint {
    var parameters: [(weight: Matrix, bias: Matrix)]
    /// Per parameter (weight then bias of each linear layer), its named states; missing ones are zero.
    var states: [[String: Matrix]] = []

    init(parameters: [(weight: Matrix, bias: Matrix)], states: [[String: Matrix]]? = nil) {
        self.parameters = parameters
        self.states = states ?? Array(repeating: [:], count: 2 * parameters.count)
    }

    init?(_ tensors: [String: Tensor], walk: StepWalk) {
        guard let parameters = walk.parameters(from: tensors) else { return nil }
        self.init(parameters: parameters)
        StepWalk.adopt(tensors, linearIndices: walk.linearIndices, parameters: &self.parameters, states: &states)
    }
}

/// Drives a `StepWalk` over a whole run, evaluating each epoch from the engine's parameters.
struct Verifier {
    var walk: StepWalk
    let input: VerifyInput
    var lines: [String: VerificationLine] = [:]
    var order: [String] = []
    var evaluations: [EpochEvaluation] = []
    var verifiedThrough: Int?
    var gap: String?
    let reported: [Int: EpochMetrics]
    /// Steps of the epoch in progress that came with the engine's full state (parameters after the update).
    var fullStepsInEpoch = 0
    /// The finding came from an epoch replay.
    var epochReplayFailure = false
    var largestEpochGrowth = 0.0
    var divergenceVerified: Bool? = nil

    init(_ input: VerifyInput) {
        self.input = input
        let experiment = input.round.experiment
        let parity = Parity(engine: input.engineRun.name, referee: EngineName.reference, maxTestLossDifference: 0, maxTrainLossDifference: 0,
                            maxTestAccuracyDifference: 0, maxTrainAccuracyDifference: 0, worstEpoch: 0, epochsCompared: 0, horizon: nil,
                            maxDifferenceAfterHorizon: 0, maxShadowDifference: 0, firstFailingEpoch: experiment.training.epochs,
                            divergence: "none", status: .fail, reason: "", verification: nil)
        let referee = EngineRun(name: EngineName.reference, engine: "", seconds: nil, epochs: [], divergence: nil)
        walk = StepWalk(LocateInput(round: input.round, engine: FrameworkEngine(), engineRun: input.engineRun, refereeRun: referee,
                                    parity: parity, plantedDifference: input.plantedDifference, fingerprint: false))
        reported = Dictionary(input.engineRun.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { a, _ in a })
    }

    mutating func note(_ name: String, count: Int = 1, difference: Double, ratio: Double) {
        if lines[name] == nil { order.append(name); lines[name] = VerificationLine(name: name, count: 0, maxDifference: 0, maxRatio: 0) }
        lines[name]!.count += count
        lines[name]!.maxDifference = max(lines[name]!.maxDifference, difference)
        lines[name]!.maxRatio = max(lines[name]!.maxRatio, ratio)
    }

    /// The initial parameters against the experiment's (and the referee's, which differ by a planted difference).
    mutating func checkInitial(_ parameters: [(weight: Matrix, bias: Matrix)]) {
        let before = walk.agreed
        walk.compareInitialParameters(parameters)
        guard !walk.found else { return }
        walk.parameters = parameters
        note("initial parameters", count: parameters.count * 2, difference: max(walk.agreed, before), ratio: 0)
    }

    /// Two sets of parameters the engine gives for the same moment must be the same (within one ulp).
    mutating func compareParameters(_ a: [(weight: Matrix, bias: Matrix)], _ b: [(weight: Matrix, bias: Matrix)], what: String,
                                    against: String, epoch: Int, line: String) {
        for (k, i) in walk.linearIndices.enumerated() {
            for (name, x, y) in [(TensorName.weight(i), a[k].weight, b[k].weight), (TensorName.bias(i), a[k].bias, b[k].bias)] {
                if let (index, delta) = walk.largestInitialDifference(x, y) {
                    walk.record(.evaluation(epoch: epoch, message: "\(walk.engineName)'s \(what) are not \(against): \(name) differs by "
                                            + "\(scientific(delta)) at element \(index) (\(x.elements[index]) against \(y.elements[index]))"))
                    return
                }
            }
        }
        note(line, count: a.count * 2, difference: 0, ratio: 0)
    }

    /// One step of the engine's, replayed by the referee from the engine's state; at the end of an epoch, the
    /// epoch's evaluation from the engine's parameters.
    mutating func consume(_ step: TraceStep) {
        guard !walk.found else { return }
        let before = walk.stepsWalked
        walk.consume(step)
        guard !walk.found, walk.stepsWalked > before else { return }
        note("steps", difference: walk.agreed, ratio: walk.closestApproach)
        // A step verifies training only when it gives the engine's whole state after it.
        let full = walk.linearIndices.allSatisfy { i in
            step.tensors[TensorName.weight(i)] != nil && step.tensors[TensorName.bias(i)] != nil
                && input.round.experiment.optimizer.configuration.stateNames.allSatisfy { state in
                    step.tensors[TensorName.state(i, "weight", state)] != nil && step.tensors[TensorName.state(i, "bias", state)] != nil
                }
        }
        if full { fullStepsInEpoch += 1 }
        if step.batch == walk.batchesPerEpoch {
            if fullStepsInEpoch == walk.batchesPerEpoch && verifiedThrough == step.epoch - 1 {
                evaluateEpoch(step.epoch)
            }
            fullStepsInEpoch = 0
        }
    }

    /// Recomputes the evaluation of `epoch` from the walk's parameters (the engine's after that epoch) and judges
    /// the engine's reported metrics against it. `trainingVerified`: the parameters themselves are verified.
    mutating func evaluateEpoch(_ epoch: Int, trainingVerified: Bool = true) {
        guard let metrics = reported[epoch] else { return }
        do {
            // First without the forward pass's error bounds (the loss's own bound from exact outputs, no row
            // ambiguous): a tolerance no wider than the full one, and most epochs agree within it. Only an epoch
            // that does not is evaluated again with every bound, and judged by that.
            var evaluation = try evaluate(epoch: epoch, parameters: walk.parameters, forwardBounds: false)
            if evaluation.problem(metrics) != nil { evaluation = try evaluate(epoch: epoch, parameters: walk.parameters, forwardBounds: true) }
            evaluations.append(evaluation)
            if let problem = evaluation.problem(metrics) {
                walk.record(.evaluation(epoch: epoch, message: "epoch \(epoch): \(walk.engineName) reports \(problem)"))
                return
            }
            note("evaluation", difference: max(abs(metrics.trainLoss - evaluation.train.loss), abs(metrics.testLoss - evaluation.test.loss)),
                 ratio: max(evaluation.train.ratio(metrics.trainLoss), evaluation.test.ratio(metrics.testLoss)))
            if trainingVerified && (verifiedThrough ?? -1) == epoch - 1 { verifiedThrough = epoch }
        } catch {
            walk.record(.notFound("the referee could not evaluate \(walk.engineName)'s parameters of epoch \(epoch): \(error)"))
        }
    }

    /// The referee's evaluation of both sets with `parameters`.
    func evaluate(epoch: Int, parameters: [(weight: Matrix, bias: Matrix)], forwardBounds: Bool) throws -> EpochEvaluation {
        EpochEvaluation(epoch: epoch, train: try evaluateSet(input.round.train, parameters, forwardBounds: forwardBounds),
                        test: try evaluateSet(input.round.test, parameters, forwardBounds: forwardBounds))
    }

    /// The referee's loss and correct rows on `set`, with the loss's tolerance and the rows within rounding of
    /// their decision, in chunks of rows (memory: a chunk times the widest layer).
    /// Without `forwardBounds` the outputs are taken as exact (a tolerance no wider than the full one).
    func evaluateSet(_ set: Dataset, _ parameters: [(weight: Matrix, bias: Matrix)], forwardBounds: Bool) throws -> SetEvaluation {
        let experiment = input.round.experiment, model = experiment.model
        let layers = referenceLayers(model, parameters: parameters)
        let chunk = max(1, Trainer(epochs: 0, batchSize: 1).evaluationChunkElements / max(model.widths.max() ?? 1, 1))
        var weighted = NeumaierSum(), bound = 0.0
        var correct = 0, ambiguous = 0, chunks = 0
        var rows = Matrix.empty, targets = Matrix.empty
        for start in stride(from: 0, to: set.inputs.rows, by: chunk) {
            let range = start..<min(start + chunk, set.inputs.rows)
            rows.gather(rows: range, of: set.inputs)
            targets.gather(rows: range, of: set.targets)
            var x = rows, ex = StepBounds.zeros(like: rows)
            for (i, layer) in model.layers.enumerated() {
                let y = Matrix(try ReferenceReplay.forward(layers[i], input: x.rowArrays))
                if forwardBounds {
                    let k = model.linearIndices.firstIndex(of: i)
                    ex = StepChecks.forwardBound(layer, input: x, inputBound: ex, output: y,
                                                 parameters: k.map { parameters[$0] } ?? (Matrix.empty, Matrix.empty))
                }
                x = y
            }
            let value = try referenceLoss(experiment.loss.reference, predictions: x.rowArrays, targets: targets.rowArrays).value
            if !forwardBounds { ex = StepBounds.zeros(like: x) }
            let lossBound = experiment.loss.errorBounds(x, ex, targets).value
            let share = Double(range.count) / Double(set.inputs.rows)
            weighted += value * share
            bound += lossBound * share
            chunks += 1
            for r in 0..<x.rows {
                let decision = rowDecision(x, ex, r)
                if decision.ambiguous { ambiguous += 1 }
                if decision.predicted == ReferenceReplay.predictedClass(targets.elements[(r * targets.columns)..<((r + 1) * targets.columns)]) {
                    correct += 1
                }
            }
        }
        let loss = weighted.value
        // The chunks' shares are added in one more sum of `chunks` terms.
        bound += StepBounds.gamma(chunks + 1) * abs(loss)
        return SetEvaluation(loss: loss, lossTolerance: StepBounds.tolerance(bound), correct: correct, ambiguous: ambiguous,
                             rows: set.inputs.rows)
    }

    /// Row r's predicted class (the referee's rule, `ReferenceReplay.predictedClass`), and whether rounding
    /// could change it.
    func rowDecision(_ y: Matrix, _ bound: Matrix, _ r: Int) -> (predicted: Int, ambiguous: Bool) {
        let width = y.columns
        let values = y.elements[(r * width)..<(r * width + width)], bounds = bound.elements[(r * width)..<(r * width + width)]
        let top = ReferenceReplay.predictedClass(values)
        if width == 1 {
            let v = values.first!
            return (top, v.isFinite && abs(v - 0.5) <= StepBounds.tolerance(bounds.first!))
        }
        guard values[values.startIndex + top].isFinite else { return (top, false) }
        let topValue = values[values.startIndex + top], topTolerance = StepBounds.tolerance(bounds[bounds.startIndex + top])
        for k in 0..<width where k != top {
            let v = values[values.startIndex + k]
            if v.isFinite && v >= topValue - topTolerance - StepBounds.tolerance(bounds[bounds.startIndex + k]) { return (top, true) }
        }
        return (top, false)
    }

    // MARK: Epochs from per-epoch parameters

    /// Replays `epoch` by the referee from the engine's parameters and state after the previous epoch, and
    /// compares the result with the engine's parameters and state after this one, element by element within
    /// `max(1, margin·G)·T`: T = Σₖ tolerance(bₖ), bₖ the error bound of step k's update (`StepChecks`, exact
    /// inputs): what two correct engines may differ by if nothing were amplified; G the epoch's measured growth:
    /// the same epoch replayed from parameters moved by T, how far apart the two end over max T. (Moving by T
    /// rather than one ulp keeps an exact zero exact: a parameter no rounding touches is not pushed across a
    /// kink.) An epoch whose growth exceeds `maxEpochGrowth` cannot be verified this way (`gap`).
    mutating func replayEpoch(_ epoch: Int, from start: Checkpoint, to end: Checkpoint) {
        let experiment = input.round.experiment
        let stepsBefore = (epoch - 1) * walk.batchesPerEpoch
        let batches = (1...walk.batchesPerEpoch).map { walk.batchRows(epoch: epoch, batch: $0) }
        do {
            guard let main = try replay(epoch, batches, from: start, stepsBefore: stepsBefore, bounds: true) else {
                gap = "the referee's replay of epoch \(epoch) from \(walk.engineName)'s parameters diverges, and \(walk.engineName)'s did not"
                return
            }
            // The epoch again from parameters moved by the whole epoch's allowance T (each element by its own):
            // how far that carries to the epoch's end, over T, is the epoch's growth of rounding.
            var nudged = start
            var nudge = 0.0
            for (k, i) in walk.linearIndices.enumerated() {
                for (name, isBias) in [(TensorName.weight(i), false), (TensorName.bias(i), true)] {
                    guard let t = main.tolerance[name] else { continue }
                    nudge = max(nudge, t.elements.max() ?? 0)
                    if isBias {
                        for e in t.elements.indices { nudged.parameters[k].bias.elements[e] += t.elements[e] }
                    } else {
                        for e in t.elements.indices { nudged.parameters[k].weight.elements[e] += t.elements[e] }
                    }
                }
            }
            guard let shadow = try replay(epoch, batches, from: nudged, stepsBefore: stepsBefore, bounds: false) else {
                gap = "epoch \(epoch) diverges when replayed from parameters moved by its rounding allowance: rounding decides it"
                return
            }
            var apart = 0.0
            for (a, b) in zip(main.end.parameters, shadow.end.parameters) {
                for (x, y) in zip(a.weight.elements + a.bias.elements, b.weight.elements + b.bias.elements) { apart = max(apart, elementDifference(x, y)) }
            }
            let growth = nudge > 0 ? apart / nudge : apart > 0 ? .infinity : 0
            guard growth <= maxEpochGrowth else {
                gap = "epoch \(epoch) amplifies rounding \(scientific(growth))-fold, too much to verify it from per-epoch parameters "
                    + "(give its steps: \"trace\": {\"steps\": K})"
                return
            }
            largestEpochGrowth = max(largestEpochGrowth, growth)
            let factor = max(1, epochGrowthMargin * growth)
            var worstRatio = 0.0, largest = 0.0
            for (k, i) in walk.linearIndices.enumerated() {
                var pairs: [(String, Matrix, Matrix)] = [
                    (TensorName.weight(i), end.parameters[k].weight, main.end.parameters[k].weight),
                    (TensorName.bias(i), end.parameters[k].bias, main.end.parameters[k].bias),
                ]
                for state in experiment.optimizer.configuration.stateNames {
                    for (p, name) in [(2 * k, "weight"), (2 * k + 1, "bias")] {
                        guard let given = end.states[p][state], let replayed = main.end.states[p][state] else { continue }
                        pairs.append((TensorName.state(i, name, state), given, replayed))
                    }
                }
                for (name, given, replayed) in pairs {
                    guard let tolerance = main.tolerance[name], given.elements.count == replayed.elements.count else { continue }
                    for e in given.elements.indices {
                        let delta = elementDifference(given.elements[e], replayed.elements[e]), bound = factor * tolerance.elements[e]
                        if delta != 0 && !(delta <= bound) {
                            let shape: Tensor = name.contains(".bias") ? .vector(replayed.elements) : .matrix(replayed)
                            epochReplayFailure = true
                            walk.record(.tensor(TensorDifference(
                                epoch: epoch, batch: walk.batchesPerEpoch, step: stepsBefore + walk.batchesPerEpoch, tensor: name,
                                what: "\(StepChecks.describe(name, model: experiment.model, experiment: experiment)) at the end of epoch \(epoch)",
                                operation: "epoch \(epoch) replayed from \(walk.engineName)'s parameters after epoch \(epoch - 1)",
                                index: shape.index(e), maxDifference: delta, engineValue: given.elements[e], refereeValue: replayed.elements[e],
                                tolerance: bound, agreedBefore: walk.agreed, tensorsBefore: walk.compared,
                                cause: .unknown("the trace has no steps of epoch \(epoch): the difference is somewhere in its "
                                                + "\(counted(walk.batchesPerEpoch, "step")) (\"trace\": {\"steps\": K} gives them)"))))
                            return
                        }
                        largest = max(largest, delta)
                        if delta != 0 { worstRatio = max(worstRatio, delta / bound) }
                    }
                }
            }
            note("epoch replay", difference: largest, ratio: worstRatio)
            walk.parameters = end.parameters
            walk.states = end.states
            evaluateEpoch(epoch)
        } catch {
            walk.record(.notFound("the referee could not replay epoch \(epoch) from \(walk.engineName)'s parameters: \(error)"))
        }
    }

    /// Replays the diverging epoch from the engine's parameters before it: the referee's loss must first be
    /// non-finite at the engine's diverging batch.
    mutating func checkDivergence(_ divergence: Divergence, from start: Checkpoint) {
        let batches = (1...walk.batchesPerEpoch).map { walk.batchRows(epoch: divergence.epoch, batch: $0) }
        let stepsBefore = (divergence.epoch - 1) * walk.batchesPerEpoch
        do {
            let at = try replayStopping(divergence.epoch, Array(batches.prefix(divergence.batch)), from: start, stepsBefore: stepsBefore,
                                        bounds: false).divergedAt
            if at == divergence.batch {
                divergenceVerified = true
            } else {
                gap = "\(walk.engineName) diverged at epoch \(divergence.epoch), batch \(divergence.batch), but the referee's replay of that epoch from "
                    + (at.map { "its parameters diverges at batch \($0)" } ?? "its parameters does not diverge by that batch")
            }
        } catch {
            gap = "the referee could not replay epoch \(divergence.epoch) from \(walk.engineName)'s parameters: \(error)"
        }
    }

    /// The referee's epoch from `start`: where it ends and, with `bounds`, the accumulated tolerance of each
    /// parameter and state (Σ over the steps of `StepBounds.tolerance` of its update's bound); nil when a
    /// step's loss is not finite.
    func replay(_ epoch: Int, _ batches: [ArraySlice<Int>], from start: Checkpoint, stepsBefore: Int, bounds: Bool) throws
        -> (end: Checkpoint, tolerance: [String: Matrix])? {
        let result = try replayStopping(epoch, batches, from: start, stepsBefore: stepsBefore, bounds: bounds)
        return result.divergedAt == nil ? (result.end, result.tolerance) : nil
    }

    /// The same, stopping at the first batch whose loss is not finite, and saying which (1-based).
    func replayStopping(_ epoch: Int, _ batches: [ArraySlice<Int>], from start: Checkpoint, stepsBefore: Int, bounds: Bool) throws
        -> (end: Checkpoint, tolerance: [String: Matrix], divergedAt: Int?) {
        let experiment = input.round.experiment
        var state = start
        var tolerance: [String: Matrix] = [:]
        for (index, rows) in batches.enumerated() {
            let batch = index + 1
            let x = input.round.train.inputs.gatheringRows(rows), y = input.round.train.targets.gatheringRows(rows)
            let stepCount = stepsBefore + batch - 1
            let snapshot = ReferenceOptimizerSnapshot(stepCount: stepCount, states: state.states.map { $0.mapValues(\.rowArrays) })
            let step = TraceStep(reference: try ReferenceReplay.step(
                layers: referenceLayers(experiment.model, parameters: state.parameters), loss: experiment.loss.reference,
                optimizer: experiment.optimizer.configuration.reference, state: snapshot, inputs: x.rowArrays, targets: y.rowArrays,
                epoch: epoch, batch: batch))
            if case let .scalar(loss)? = step.tensors[TensorName.loss], !loss.isFinite { return (state, tolerance, batch) }
            if bounds {
                let checks = StepChecks(experiment: experiment, parameters: state.parameters, states: state.states, stepCount: stepCount + 1,
                                        x: x, targets: y, referee: step)
                // The parameters and states after the update.
                for check in checks.list {
                    guard check.name.hasSuffix(".weight") || check.name.hasSuffix(".bias")
                            || TensorName.states.contains(where: { check.name.hasSuffix(".\($0)") }) else { continue }
                    var sum = tolerance[check.name] ?? StepBounds.zeros(like: check.bound)
                    for e in sum.elements.indices { sum.elements[e] += StepBounds.tolerance(check.bound.elements[e]) }
                    tolerance[check.name] = sum
                }
            }
            StepWalk.adopt(step.tensors, linearIndices: walk.linearIndices, parameters: &state.parameters, states: &state.states)
        }
        return (state, tolerance, nil)
    }

    func result(_ start: Double) -> Verification {
        var remarks = walk.remarks
        remarks += walk.notes
        var located = false
        if walk.found, !epochReplayFailure {
            switch walk.finding {
            case .tensor, .schedule: located = true
            default: break
            }
        }
        return Verification(engine: walk.engineName, lines: order.map { lines[$0]! }, evaluations: evaluations,
                            verifiedThrough: verifiedThrough, failure: walk.found ? walk.finding : nil, gap: gap, remarks: remarks,
                            stepsReplayed: walk.stepsWalked, seconds: monotonicSeconds() - start, largestEpochGrowth: largestEpochGrowth,
                            divergenceVerified: divergenceVerified, failureLocated: located)
    }
}

extension Verification {
    /// llm.c's test lines, one per kind of thing recomputed: "OK steps n=60000 maxdiff=3.1e-16 ratio=0.21".
    public var textLines: [String] {
        lines.map { "OK \($0.name) n=\($0.count) maxdiff=\(scientific($0.maxDifference)) ratio=\(String(format: "%.2f", $0.maxRatio))"
            + ($0.name == "epoch replay" ? " growth=\(String(format: "%.3g", largestEpochGrowth))" : "") }
            + (failureText.map { ["DIFFERS \($0)"] } ?? [])
            + (gap.map { ["UNVERIFIED after epoch \(verifiedThrough ?? -1): \($0)"] } ?? [])
    }
}

// MARK: - JSON (the report's `engines[name].verification`)

extension Verification {
    /// The numbers of one epoch's evaluation in the JSON, in order.
    static let evaluationColumns = ["epoch", "trainLoss", "trainLossTolerance", "trainCorrect", "trainAmbiguous", "trainRows",
                                    "testLoss", "testLossTolerance", "testCorrect", "testAmbiguous", "testRows"]

    var jsonValue: JSONValue {
        jsonObject { o in
            o["verifiedThrough"] = verifiedThrough.map { .integer($0) } ?? .null
            o["stepsReplayed"] = .integer(stepsReplayed)
            o["failure"] = failureText.map { text in
                .object([("epoch", failureEpoch.map { .integer($0) } ?? .null), ("text", .string(text))])
            } ?? .null
            o["gap"] = gap.map { .string($0) } ?? .null
            o["remarks"] = .array(remarks.map { .string($0) })
            o["seconds"] = .number(seconds)
            o["largestEpochGrowth"] = .number(largestEpochGrowth)
            o["divergenceVerified"] = divergenceVerified.map { .bool($0) } ?? .null
            o["checks"] = .array(lines.map { line in
                .object([("name", .string(line.name)), ("count", .integer(line.count)), ("maxDifference", .number(line.maxDifference)),
                         ("maxRatio", .number(line.maxRatio))])
            })
            // One row of numbers per epoch (a report holds one per epoch, engine and round): `evaluationColumns`.
            o["evaluationColumns"] = .array(Verification.evaluationColumns.map { .string($0) })
            o["evaluations"] = .array(evaluations.map { e in
                .array([.integer(e.epoch), .number(e.train.loss), .number(e.train.lossTolerance), .integer(e.train.correct),
                        .integer(e.train.ambiguous), .integer(e.train.rows), .number(e.test.loss), .number(e.test.lossTolerance),
                        .integer(e.test.correct), .integer(e.test.ambiguous), .integer(e.test.rows)])
            })
        }
    }

    /// Read back from a report: the failure becomes its text (`LocateFinding.evaluation` at its epoch).
    init(node: JSONNode, engine: String) throws {
        let m = try node.members()
        let through = try m.required("verifiedThrough", "missing")
        let failureNode = try m.required("failure", "missing")
        var failure: LocateFinding? = nil
        if !failureNode.isNull {
            let f = try failureNode.members()
            let epoch = try f.required("epoch", "missing")
            failure = .evaluation(epoch: epoch.isNull ? 0 : try epoch.integer(), message: try f.required("text", "missing").string())
        }
        let gapNode = try m.required("gap", "missing")
        let lines = try m.required("checks", "missing").array().map { entry -> VerificationLine in
            let l = try entry.members()
            return VerificationLine(name: try l.required("name", "missing").string(), count: try l.required("count", "missing").integer(),
                                    maxDifference: try l.required("maxDifference", "missing").numberOrNonFinite(),
                                    maxRatio: try l.required("maxRatio", "missing").numberOrNonFinite())
        }
        let columns = try m.required("evaluationColumns", "missing").array().map { try $0.string() }
        guard columns == Verification.evaluationColumns else {
            throw JSONProblem(node.child("evaluationColumns"), "expected \(Verification.evaluationColumns.joined(separator: ", "))")
        }
        let evaluations = try m.required("evaluations", "missing").array().map { entry -> EpochEvaluation in
            let v = try entry.array()
            guard v.count == columns.count else { throw entry.problem("\(v.count) values, but an evaluation has \(columns.count)") }
            func set(_ at: Int) throws -> SetEvaluation {
                SetEvaluation(loss: try v[at].numberOrNonFinite(), lossTolerance: try v[at + 1].numberOrNonFinite(),
                              correct: try v[at + 2].integer(), ambiguous: try v[at + 3].integer(), rows: try v[at + 4].integer())
            }
            return EpochEvaluation(epoch: try v[0].integer(), train: try set(1), test: try set(6))
        }
        // merge cannot replay (it has no parameters), but a verification evaluates every epoch it verifies: a
        // claim without those evaluations (a shard report edited to say "verified") is refused, and the ones given
        // are judged again against the engine's metrics.
        let verifiedThrough = through.isNull ? nil : try through.integer()
        if let verifiedThrough {
            let evaluated = Set(evaluations.map(\.epoch))
            if let missing = (0...max(verifiedThrough, 0)).first(where: { !evaluated.contains($0) }) {
                throw JSONProblem(node.child("verifiedThrough"), "epoch \(verifiedThrough), but there is no evaluation of epoch \(missing): "
                                  + "the referee evaluates every epoch it verifies")
            }
        }
        self.init(engine: engine, lines: lines, evaluations: evaluations, verifiedThrough: verifiedThrough,
                  failure: failure, gap: gapNode.isNull ? nil : try gapNode.string(),
                  remarks: try m.required("remarks", "missing").array().map { try $0.string() },
                  stepsReplayed: try m.required("stepsReplayed", "missing").integer(),
                  seconds: try m.required("seconds", "missing").numberOrNonFinite(),
                  largestEpochGrowth: try m.required("largestEpochGrowth", "missing").numberOrNonFinite(),
                  divergenceVerified: try m.required("divergenceVerified", "missing").isNull ? nil
                      : try m.required("divergenceVerified", "missing").bool())
    }
}
