import Framework

// Parity: whether an engine's trace agrees with the referee's, epoch by epoch, within tolerances that follow
// from what is computed, with rounding amplified by a chaotic trajectory told apart from a real difference.

/// How close two engines' free-running traces must be, epoch by epoch, before the comparability horizon.
///
/// **Losses.** At every epoch before the horizon the train and test losses agree when
/// `|a − b| ≤ atol + rtol·max(|a|, |b|)`, both finite (a non-finite value never agrees with a finite one; NaN
/// agrees with NaN and ∞ with ∞ of the same sign). Where the bound comes from: a loss is the mean of n
/// non-negative terms (elements, or rows for cross-entropy), and both engines add them with a compensated
/// (Neumaier) sum, so the summation contributes at most about 2ε relative (ε = 2⁻⁵³ ≈ 1.1·10⁻¹⁶), whatever n
/// and whatever order; without it, a mean of 10⁶ equal terms differed by 1.5·10⁻¹¹ between the engines before
/// any update. The terms themselves differ by the forward pass's rounding: each output is a sum of k products
/// (k the fan-in) added in another order by each engine, |Δ| ≤ γ_k·Σ|xᵢwᵢ| with γ_k = kε/(1 − kε), per layer,
/// which for the networks in this project is measured at ≤ 10⁻¹⁵ relative on the losses (EngineParityTests, 45
/// whole runs). Default rtol = 10⁻¹¹ leaves a factor 10⁴ over that, and is 10× below the smallest real
/// difference the project promises to see: one weight of the seeds' network moved by 10⁻⁶ moves the losses by
/// more than 10⁻¹⁰ (EngineParityTests). atol = 10⁻¹⁴ covers losses near zero. **Accuracies** are counts of rows
/// whose argmax agrees: equal unless a row's top two outputs are within rounding of each other, so the default
/// tolerance is 0.
///
/// **The horizon.** Training can amplify a 10⁻¹⁶ difference exponentially (a chaotic trajectory): in some
/// default rounds the seeds' network (60 000 SGD steps) grows it past 10⁻⁹ after 200+ epochs. Free-running
/// curves then stop being evidence either way, so they are compared only up to the *comparability horizon*:
/// the first epoch where Framework's *shadow* (Framework again from initial parameters nudged up by one ulp)
/// differs from Framework by more than the tolerance divided by `horizonMargin` (losses) or in an accuracy.
/// Beyond the horizon a difference is reported, not judged, and nothing is excused: the verdict there rests on
/// the referee's replay of the engine's own steps and epochs (`Verification`, docs/verdict.md).
///
/// **Ranges.** Each tolerance has a range (`Tolerances.ranges`); `compare` refuses values outside it, because
/// such values could pass real differences (with rtol 3 any two positive losses agree, with accuracy
/// tolerance 1 any two accuracies do): rtol and atol at most 10⁻⁶, the accuracy tolerance at most 0.01 (one
/// point of the data). These assume float64 engines.
public struct Tolerances: Equatable, Sendable {
    public var rtol: Double
    public var atol: Double
    public var accuracy: Double

    public init(rtol: Double = 1e-11, atol: Double = 1e-14, accuracy: Double = 0) {
        self.rtol = rtol
        self.atol = atol
        self.accuracy = accuracy
    }

    /// The horizon is where the one-ulp shadow comes within this factor of the loss tolerance. Two engines
    /// differ by rounding at every step, the shadow by one ulp at the start only, so they part from each other
    /// somewhat earlier than the shadow parts from Framework; 1000 (three decades of growth, 4 to 40 epochs in
    /// the default rounds, docs/verdict.md) keeps a correct engine's free-running differences within rtol
    /// before the horizon in every round measured.
    public static let horizonMargin = 1000.0

    /// The accepted values of each tolerance, by its command-line flag.
    public static let ranges: [(flag: String, keyPath: KeyPath<Tolerances, Double>, range: ClosedRange<Double>)] = [
        ("--rtol", \.rtol, 0...1e-6), ("--atol", \.atol, 0...1e-6), ("--accuracy-tolerance", \.accuracy, 0...0.01),
    ]

    /// Why these tolerances are outside their ranges, or nil: "--rtol must be from 0 to 1e-06, got 3".
    public var rangeProblem: String? {
        for (flag, path, range) in Tolerances.ranges where !range.contains(self[keyPath: path]) {
            return "\(flag) must be from \(formatNumber(range.lowerBound)) to \(formatNumber(range.upperBound)) (wider values could pass "
                + "real differences), got \(formatNumber(self[keyPath: path]))"
        }
        return nil
    }

    /// Whether two values agree within rtol/atol (divided by `margin`): equal, both NaN, or both finite and
    /// within the bound. A non-finite value never agrees with a finite one.
    func agree(_ x: Double, _ y: Double, margin: Double = 1) -> Bool {
        if x == y || (x.isNaN && y.isNaN) { return true }
        guard x.isFinite && y.isFinite else { return false }
        return abs(x - y) <= (atol + rtol * max(abs(x), abs(y))) / margin
    }
}

/// A verdict: the engines agree in everything judged (pass), differ somewhere (fail), or agree in everything
/// that could be recomputed but part of the run could not be (unverified: past the horizon, without the
/// steps or per-epoch parameters to replay it).
public enum VerdictStatus: String, Equatable, Sendable {
    case pass, fail, unverified

    /// The worse of two: fail over unverified over pass.
    func worse(_ other: VerdictStatus) -> VerdictStatus {
        self == .fail || other == .fail ? .fail : self == .unverified || other == .unverified ? .unverified : .pass
    }
}

/// The measured differences between an engine and the referee in one round, and the verdict.
public struct Parity: Equatable, Sendable {
    /// The engine judged and the engine it is judged against.
    public var engine: String
    public var referee: String
    /// Largest relative difference `|a − b| / max(|a|, |b|)` of the test (validation) loss over the epochs
    /// before the horizon (the epochs judged free-running).
    public var maxTestLossDifference: Double
    /// Largest relative difference of the train loss over the same epochs.
    public var maxTrainLossDifference: Double
    /// Largest absolute difference of test accuracy (a fraction) over the same epochs.
    public var maxTestAccuracyDifference: Double
    /// Largest absolute difference of train accuracy over the same epochs.
    public var maxTrainAccuracyDifference: Double
    /// The epoch of the largest test-loss difference.
    public var worstEpoch: Int
    /// Epochs compared free-running (both traces have them, before the horizon).
    public var epochsCompared: Int
    /// The comparability horizon (`comparabilityHorizon`): the first epoch not judged free-running; nil when
    /// the shadow never left the tolerance (every epoch is judged free-running) or there is no shadow.
    public var horizon: Int?
    /// Largest relative loss difference from the horizon on: reported, not judged (0 when none).
    public var maxDifferenceAfterHorizon: Double
    /// Largest relative loss difference between Framework and its one-ulp shadow over the run.
    public var maxShadowDifference: Double
    /// The first epoch whose difference failed the rule (nil: none), for localisation.
    public var firstFailingEpoch: Int?
    /// "none"; "both at epoch e, batch b" (parity, when the epochs before agree); or, a failure,
    /// "<engine> at epoch e, batch b; <referee> did not diverge" (or the other way round, or both at different
    /// steps). Epochs and batches are 1-based.
    public var divergence: String
    public var status: VerdictStatus
    public var passed: Bool { status == .pass }
    /// Why it failed or is unverified, or "" when it passed.
    public var reason: String
    /// The referee's replay of the engine's own steps and epochs (against Reference only; nil when the
    /// comparison is against Framework, or nothing was replayed).
    public var verification: Verification?
    /// Epochs before the horizon where only the accuracies differ from the referee's free run, at epochs whose
    /// training and evaluation the replay verified: a row's decision tipped by rounding (e.g. a tie between two
    /// outputs), reported, not failed (`compareTraces`).
    public var accuracyTies: [Int] = []
}

/// Relative difference `|a − b| / max(|a|, |b|)` (0 when equal or both NaN; ∞ when only one is NaN).
func relativeDifference(_ a: Double, _ b: Double) -> Double {
    if a == b || (a.isNaN && b.isNaN) { return 0 }
    let d = abs(a - b) / max(abs(a), abs(b))
    return d.isNaN ? .infinity : d
}

/// A trace as the parity check sees it.
public typealias EpochTrace = (epochs: [EpochMetrics], divergence: Divergence?)

/// The comparability horizon (`Tolerances`): the first epoch ≥ 1 where the shadow's train or test loss is
/// outside `tolerances` / `Tolerances.horizonMargin` of Framework's, or an accuracy differs, or only one of
/// them has the epoch; nil when that never happens. And the largest relative loss difference between them.
public func comparabilityHorizon(framework: EpochTrace, shadow: EpochTrace, tolerances: Tolerances) -> (horizon: Int?, shadowDifference: Double) {
    let nudged = Dictionary(shadow.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { first, _ in first })
    var horizon: Int? = nil, largest = 0.0
    for a in framework.epochs where a.epoch >= 1 {
        guard let s = nudged[a.epoch] else {
            if horizon == nil { horizon = a.epoch }
            continue
        }
        largest = max(largest, relativeDifference(a.trainLoss, s.trainLoss), relativeDifference(a.testLoss, s.testLoss))
        let apart = !tolerances.agree(a.trainLoss, s.trainLoss, margin: Tolerances.horizonMargin)
            || !tolerances.agree(a.testLoss, s.testLoss, margin: Tolerances.horizonMargin)
            || a.trainAccuracy != s.trainAccuracy || a.testAccuracy != s.testAccuracy
        if apart && horizon == nil { horizon = a.epoch }
    }
    if horizon == nil, let last = framework.epochs.last?.epoch, shadow.epochs.count != framework.epochs.count {
        horizon = min(last + 1, (shadow.epochs.last?.epoch ?? 0) + 1)
    }
    return (horizon, largest)
}

/// Compares an engine's free-running trace with the referee's, epoch by epoch (matched by epoch number), up
/// to `horizon` (nil: every epoch). See `Tolerances` for the rule.
///
/// An epoch the referee has and the engine lacks is a failure ("the trace has no epoch 0"), as is one the
/// engine has and the referee lacks. Divergence (a NaN or ±∞ batch loss stops a run): both diverging at the
/// same epoch and batch is parity, reported as "both at epoch e, batch b", when the epochs before agree; one
/// diverging alone, or both at different steps, fails, before the horizon. After it, a different divergence
/// is reported, and judged by the replay.
///
/// `verifiedThrough`: the epochs through which the replay verified the engine's training and evaluation from
/// its own parameters (`Verification`). There an accuracy that differs while the losses agree is a decision
/// tipped by rounding (the replay checked the engine's count against its own parameters), recorded in
/// `accuracyTies`, not failed.
public func compareTraces(_ engine: EpochTrace, with referee: EpochTrace, horizon: Int?, tolerances: Tolerances,
                          engineName: String, refereeName: String, verifiedThrough: Int? = nil) -> Parity {
    let byEpoch = Dictionary(engine.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { first, _ in first })
    var parity = Parity(engine: engineName, referee: refereeName, maxTestLossDifference: 0, maxTrainLossDifference: 0,
                        maxTestAccuracyDifference: 0, maxTrainAccuracyDifference: 0, worstEpoch: 0, epochsCompared: 0,
                        horizon: horizon, maxDifferenceAfterHorizon: 0, maxShadowDifference: 0, firstFailingEpoch: nil,
                        divergence: "none", status: .pass, reason: "", verification: nil)
    var reasons: [String] = []
    func fail(_ epoch: Int, _ reason: String) {
        if parity.firstFailingEpoch == nil { parity.firstFailingEpoch = epoch }
        reasons.append(reason)
    }
    func judged(_ epoch: Int) -> Bool { horizon.map { epoch < $0 } ?? true }
    for b in referee.epochs {
        guard let a = byEpoch[b.epoch] else {
            // The referee's epochs that the engine's trace lacks (the engine may have stopped early by diverging).
            if engine.divergence == nil || b.epoch < (engine.divergence?.epoch ?? 0), reasons.isEmpty {
                fail(b.epoch, b.epoch == 0 ? "the \(engineName) trace has no epoch 0 (the evaluation before any update)"
                                          : "the \(engineName) trace has no epoch \(b.epoch)")
            }
            continue
        }
        let testLoss = relativeDifference(a.testLoss, b.testLoss), trainLoss = relativeDifference(a.trainLoss, b.trainLoss)
        guard judged(a.epoch) else {
            parity.maxDifferenceAfterHorizon = max(parity.maxDifferenceAfterHorizon, testLoss, trainLoss)
            continue
        }
        parity.epochsCompared += 1
        if testLoss > parity.maxTestLossDifference { parity.maxTestLossDifference = testLoss; parity.worstEpoch = a.epoch }
        parity.maxTrainLossDifference = max(parity.maxTrainLossDifference, trainLoss)
        let testAccuracy = abs(a.testAccuracy - b.testAccuracy), trainAccuracy = abs(a.trainAccuracy - b.trainAccuracy)
        parity.maxTestAccuracyDifference = max(parity.maxTestAccuracyDifference, testAccuracy)
        parity.maxTrainAccuracyDifference = max(parity.maxTrainAccuracyDifference, trainAccuracy)
        guard reasons.isEmpty else { continue }
        if !(tolerances.agree(a.trainLoss, b.trainLoss) && tolerances.agree(a.testLoss, b.testLoss)) {
            fail(a.epoch, "epoch \(a.epoch): loss differs (train \(a.trainLoss) vs \(b.trainLoss), test \(a.testLoss) vs \(b.testLoss))")
        } else if !(testAccuracy <= tolerances.accuracy && trainAccuracy <= tolerances.accuracy) {
            if a.epoch <= (verifiedThrough ?? -1) {
                parity.accuracyTies.append(a.epoch)
            } else {
                fail(a.epoch, "epoch \(a.epoch): accuracy differs (train \(a.trainAccuracy) vs \(b.trainAccuracy), "
                     + "test \(a.testAccuracy) vs \(b.testAccuracy))")
            }
        }
    }
    switch (engine.divergence, referee.divergence) {
    case (nil, nil):
        let extra = engine.epochs.map(\.epoch).filter { e in !referee.epochs.contains { $0.epoch == e } }
        if let first = extra.first, reasons.isEmpty {
            fail(first, "the \(engineName) trace has epochs the \(refereeName) does not (from epoch \(first))")
        }
    case let (fd?, rd?) where fd.epoch == rd.epoch && fd.batch == rd.batch:
        parity.divergence = "both at epoch \(fd.epoch), batch \(fd.batch)"
    case let (fd, rd):
        func describe(_ name: String, _ d: Divergence?) -> String {
            d.map { "\(name) at epoch \($0.epoch), batch \($0.batch)" } ?? "\(name) did not diverge"
        }
        parity.divergence = "\(describe(engineName, fd)); \(describe(refereeName, rd))"
        let epoch = min(fd?.epoch ?? Int.max, rd?.epoch ?? Int.max)
        if judged(epoch) {
            let what = fd != nil && rd != nil ? "both engines diverged, at different steps" : "only one engine diverged"
            fail(epoch, "\(what): \(parity.divergence)")
        }
    }
    parity.status = reasons.isEmpty ? .pass : .fail
    parity.reason = reasons.joined(separator: "; ")
    return parity
}

/// `compareTraces` where `engine` is Framework itself and `shadow` its one-ulp shadow, which sets the horizon
/// (nil: no shadow, every epoch is judged free-running).
public func compareTraces(_ engine: EpochTrace, with referee: EpochTrace, shadow: EpochTrace? = nil, tolerances: Tolerances,
                          engineName: String = EngineName.framework, refereeName: String = EngineName.reference) -> Parity {
    let horizon = shadow.map { comparabilityHorizon(framework: engine, shadow: $0, tolerances: tolerances) }
    var parity = compareTraces(engine, with: referee, horizon: horizon?.horizon, tolerances: tolerances, engineName: engineName,
                               refereeName: refereeName)
    parity.maxShadowDifference = horizon?.shadowDifference ?? 0
    return parity
}
