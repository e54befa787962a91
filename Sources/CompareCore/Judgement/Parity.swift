import Framework

// Parity: whether an engine's trace agrees with the referee's, epoch by epoch, within tolerances that follow
// from what is computed, with rounding amplified by a chaotic trajectory told apart from a real difference.

/// How close two engines' traces must be for parity, and how rounding noise is told from a real difference.
///
/// **Losses.** At every epoch the train and test losses agree when `|a − b| ≤ atol + rtol·max(|a|, |b|)`.
/// Where the bound comes from: a loss is the mean of n non-negative terms (elements, or rows for
/// cross-entropy), and both engines add them with a compensated (Neumaier) sum, so the summation contributes
/// at most about 2ε relative (ε = 2⁻⁵³ ≈ 1.1·10⁻¹⁶), whatever n and whatever order; without it, a mean of 10⁶
/// equal terms differed by 1.5·10⁻¹¹ between the engines before any update. The terms themselves differ by
/// the forward pass's rounding: each output is a sum of k products (k the fan-in) added in another order by
/// each engine, |Δ| ≤ γ_k·Σ|xᵢwᵢ| with γ_k = kε/(1 − kε), per layer, which for the networks in this project is
/// measured at ≤ 10⁻¹⁵ relative on the losses (EngineParityTests, 45 whole runs). Default rtol = 10⁻¹¹ leaves
/// a factor 10⁴ over that, and is 10× below the smallest real difference the project promises to see: one
/// weight of the seeds' network moved by 10⁻⁶ moves the losses by more than 10⁻¹⁰ (EngineParityTests).
/// atol = 10⁻¹⁴ covers losses near zero. **Accuracies** are counts of rows whose argmax agrees: equal unless a
/// row's top two outputs are within rounding of each other, so the default tolerance is 0.
///
/// **Amplified rounding.** Training can amplify a 10⁻¹⁶ difference exponentially (a chaotic trajectory): in
/// some default rounds the seeds' network (60 000 SGD steps) grows it past 10⁻⁹ after 200+ epochs. To tell
/// that from a real disagreement, each round also trains a *shadow*: Framework again from the same initial
/// parameters nudged by one ulp (`nextUp`). Its difference from the Framework run, running maximum up to
/// epoch e, is the run's own sensitivity to rounding, s(e). From epoch 1 on, an epoch whose losses are outside
/// the tolerance still passes when the difference is at most `amplification·s(e)` (relative; default 1000):
/// the engines then differ no more than rounding alone makes one engine differ from itself. Accuracies are
/// then not compared, and the report says from which epoch the trajectories separated. Never at epoch 0:
/// before any update nothing has been amplified, so epoch 0 is held to the plain tolerance. A real difference
/// (a wrong convention, a weight off by 10⁻⁶) shows from the first epochs, where s(e) is ~10⁻¹⁵, and fails.
///
/// **Ranges.** Each tolerance has a range (`Tolerances.ranges`); `compare` refuses values outside it, because
/// such values could pass real differences (with rtol 3 any two positive losses agree, with accuracy
/// tolerance 1 any two accuracies do): rtol and atol at most 10⁻⁶, the accuracy tolerance at most 0.01 (one
/// point of the data), the amplification at most 10⁶. These assume float64 engines.
public struct Tolerances: Equatable, Sendable {
    public var rtol: Double
    public var atol: Double
    public var accuracy: Double
    /// How many times the shadow's own difference the engines may differ by, from epoch 1 on, once outside
    /// rtol/atol (0: never).
    public var amplification: Double

    public init(rtol: Double = 1e-11, atol: Double = 1e-14, accuracy: Double = 0, amplification: Double = 1000) {
        self.rtol = rtol
        self.atol = atol
        self.accuracy = accuracy
        self.amplification = amplification
    }

    /// The accepted values of each tolerance, by its command-line flag.
    public static let ranges: [(flag: String, keyPath: KeyPath<Tolerances, Double>, range: ClosedRange<Double>)] = [
        ("--rtol", \.rtol, 0...1e-6), ("--atol", \.atol, 0...1e-6),
        ("--accuracy-tolerance", \.accuracy, 0...0.01), ("--amplification", \.amplification, 0...1e6),
    ]

    /// Why these tolerances are outside their ranges, or nil: "--rtol must be from 0 to 1e-06, got 3".
    public var rangeProblem: String? {
        for (flag, path, range) in Tolerances.ranges where !range.contains(self[keyPath: path]) {
            return "\(flag) must be from \(formatNumber(range.lowerBound)) to \(formatNumber(range.upperBound)) (wider values could pass "
                + "real differences), got \(formatNumber(self[keyPath: path]))"
        }
        return nil
    }
}

/// The measured differences between an engine and the referee in one round, and the verdict.
public struct Parity: Equatable, Sendable {
    /// The engine judged and the engine it is judged against.
    public var engine: String
    public var referee: String
    /// Largest relative difference `|a − b| / max(|a|, |b|)` of the test (validation) loss over the epochs.
    public var maxTestLossDifference: Double
    /// Largest relative difference of the train loss over the epochs.
    public var maxTrainLossDifference: Double
    /// Largest absolute difference of test accuracy (a fraction) over the epochs.
    public var maxTestAccuracyDifference: Double
    /// Largest absolute difference of train accuracy over the epochs.
    public var maxTrainAccuracyDifference: Double
    /// The epoch of the largest test-loss difference.
    public var worstEpoch: Int
    /// Epochs compared (both traces have them).
    public var epochsCompared: Int
    /// Largest relative loss difference between Framework and its one-ulp shadow (rounding sensitivity).
    public var maxShadowDifference: Double
    /// First epoch outside rtol/atol that passed only because the shadow separated as much (nil: none).
    public var separatedAt: Int?
    /// The first epoch whose difference failed the rule (nil: none), for localisation.
    public var firstFailingEpoch: Int?
    /// "none"; "both at epoch e, batch b" (parity, when the epochs before agree); or, a failure,
    /// "<engine> at epoch e, batch b; <referee> did not diverge" (or the other way round, or both at different
    /// steps). Epochs and batches are 1-based.
    public var divergence: String
    public var passed: Bool
    /// Why it failed, or "" when it passed.
    public var reason: String
}

/// Relative difference `|a − b| / max(|a|, |b|)` (0 when equal or both NaN; ∞ when only one is NaN).
func relativeDifference(_ a: Double, _ b: Double) -> Double {
    if a == b || (a.isNaN && b.isNaN) { return 0 }
    let d = abs(a - b) / max(abs(a), abs(b))
    return d.isNaN ? .infinity : d
}

/// A trace as the parity check sees it.
public typealias EpochTrace = (epochs: [EpochMetrics], divergence: Divergence?)

/// The run's own sensitivity to rounding, s(e): the running maximum, up to each epoch, of the relative loss
/// difference between Framework and its one-ulp shadow (never between the shadow and another engine, whose
/// difference from it would include that engine's real differences).
public func roundingSensitivity(framework: EpochTrace, shadow: EpochTrace) -> [Int: Double] {
    let nudged = Dictionary(shadow.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { first, _ in first })
    var result: [Int: Double] = [:], running = 0.0
    for a in framework.epochs {
        if let s = nudged[a.epoch] {
            running = max(running, relativeDifference(a.trainLoss, s.trainLoss), relativeDifference(a.testLoss, s.testLoss))
        }
        result[a.epoch] = running
    }
    return result
}

/// `compareTraces` where `engine` is Framework itself and `shadow` its one-ulp shadow (nil: no allowance for
/// amplified rounding, the plain tolerances only).
public func compareTraces(_ engine: EpochTrace, with referee: EpochTrace, shadow: EpochTrace? = nil,
                          tolerances: Tolerances, engineName: String = EngineName.framework,
                          refereeName: String = EngineName.reference) -> Parity {
    compareTraces(engine, with: referee, sensitivity: shadow.map { roundingSensitivity(framework: engine, shadow: $0) },
                  tolerances: tolerances, engineName: engineName, refereeName: refereeName)
}

/// Compares an engine's trace with the referee's, epoch by epoch (matched by epoch number); `sensitivity` is
/// the run's rounding sensitivity per epoch (`roundingSensitivity`; nil: no allowance for amplified rounding,
/// the plain tolerances only). See `Tolerances` for the rule.
///
/// An epoch the referee has and the engine lacks is a failure ("the trace has no epoch 0"). Divergence (a NaN
/// or ±∞ batch loss stops a run): both diverging at the same epoch and batch is parity, reported as "both at
/// epoch e, batch b", when the epochs before agree; one diverging alone, or both at different steps, fails.
public func compareTraces(_ engine: EpochTrace, with referee: EpochTrace, sensitivity: [Int: Double]?,
                          tolerances: Tolerances, engineName: String, refereeName: String) -> Parity {
    let byEpoch = Dictionary(engine.epochs.map { ($0.epoch, $0) }, uniquingKeysWith: { first, _ in first })
    var parity = Parity(engine: engineName, referee: refereeName, maxTestLossDifference: 0, maxTrainLossDifference: 0,
                        maxTestAccuracyDifference: 0, maxTrainAccuracyDifference: 0, worstEpoch: 0, epochsCompared: 0,
                        maxShadowDifference: 0, separatedAt: nil, firstFailingEpoch: nil, divergence: "none", passed: true, reason: "")
    var reasons: [String] = []
    var sensitivityHere = 0.0
    func fail(_ epoch: Int, _ reason: String) {
        if parity.firstFailingEpoch == nil { parity.firstFailingEpoch = epoch }
        reasons.append(reason)
    }
    for b in referee.epochs {
        if let s = sensitivity?[b.epoch] { sensitivityHere = max(sensitivityHere, s) }
        parity.maxShadowDifference = sensitivityHere
        let sensitivity = sensitivityHere
        guard let a = byEpoch[b.epoch] else {
            // The referee's epochs that the engine's trace lacks (the engine may have stopped early by diverging).
            if engine.divergence == nil || b.epoch < (engine.divergence?.epoch ?? 0), reasons.isEmpty {
                fail(b.epoch, b.epoch == 0 ? "the \(engineName) trace has no epoch 0 (the evaluation before any update)"
                                          : "the \(engineName) trace has no epoch \(b.epoch)")
            }
            continue
        }
        parity.epochsCompared += 1
        let testLoss = relativeDifference(a.testLoss, b.testLoss), trainLoss = relativeDifference(a.trainLoss, b.trainLoss)
        if testLoss > parity.maxTestLossDifference { parity.maxTestLossDifference = testLoss; parity.worstEpoch = a.epoch }
        parity.maxTrainLossDifference = max(parity.maxTrainLossDifference, trainLoss)
        let testAccuracy = abs(a.testAccuracy - b.testAccuracy), trainAccuracy = abs(a.trainAccuracy - b.trainAccuracy)
        parity.maxTestAccuracyDifference = max(parity.maxTestAccuracyDifference, testAccuracy)
        parity.maxTrainAccuracyDifference = max(parity.maxTrainAccuracyDifference, trainAccuracy)
        guard reasons.isEmpty else { continue }

        func withinTolerance(_ x: Double, _ y: Double) -> Bool {
            x == y || (x.isNaN && y.isNaN) || abs(x - y) <= tolerances.atol + tolerances.rtol * max(abs(x), abs(y))
        }
        let lossesAgree = withinTolerance(a.trainLoss, b.trainLoss) && withinTolerance(a.testLoss, b.testLoss)
        let accuraciesAgree = testAccuracy <= tolerances.accuracy && trainAccuracy <= tolerances.accuracy
        if lossesAgree && (accuraciesAgree || parity.separatedAt != nil) { continue }
        if a.epoch > 0 && max(testLoss, trainLoss) <= tolerances.amplification * sensitivity
            && (!lossesAgree || parity.separatedAt != nil) {
            if parity.separatedAt == nil { parity.separatedAt = a.epoch }
            continue
        }
        if !lossesAgree {
            fail(a.epoch, "epoch \(a.epoch): loss differs (train \(a.trainLoss) vs \(b.trainLoss), test \(a.testLoss) vs \(b.testLoss); "
                 + "rounding sensitivity so far \(sensitivity))")
        } else {
            fail(a.epoch, "epoch \(a.epoch): accuracy differs (train \(a.trainAccuracy) vs \(b.trainAccuracy), "
                 + "test \(a.testAccuracy) vs \(b.testAccuracy))")
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
        // One engine alone, or both at different steps: a failure even where the trajectories had separated
        // by amplified rounding before (the allowance covers loss differences, not a run that stops).
        func describe(_ name: String, _ d: Divergence?) -> String {
            d.map { "\(name) at epoch \($0.epoch), batch \($0.batch)" } ?? "\(name) did not diverge"
        }
        parity.divergence = "\(describe(engineName, fd)); \(describe(refereeName, rd))"
        let what = fd != nil && rd != nil ? "both engines diverged, at different steps" : "only one engine diverged"
        fail(min(fd?.epoch ?? Int.max, rd?.epoch ?? Int.max), "\(what): \(parity.divergence)")
    }
    parity.passed = reasons.isEmpty
    parity.reason = reasons.joined(separator: "; ")
    return parity
}
