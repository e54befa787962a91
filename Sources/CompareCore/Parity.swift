import Framework

/// How close the two engines' traces must be for parity, and how rounding noise is told from a real difference.
///
/// At every epoch, losses (train and test) agree when `|a − b| ≤ atol + rtol·max(|a|, |b|)` and accuracies
/// when `|a − b| ≤ accuracy`. Defaults: rtol = 10⁻¹¹, atol = 10⁻¹⁴, accuracy 0. Single operations agree to
/// ~10⁻¹⁵ and short runs to ~10⁻¹⁵ (EngineParityTests); rtol must stay well below the effect of a small
/// real difference: one weight of the seeds' network moved by 10⁻⁶ changes the losses by only ~7·10⁻¹⁰.
///
/// Why that is not the whole story: the engines compute the same sums in a different order, so one step
/// agrees to ~10⁻¹⁵, but training can amplify rounding differences exponentially (a chaotic trajectory):
/// in some default rounds the seeds' network (60 000 SGD steps) grows a 10⁻¹⁵ difference to 10⁻⁹ and
/// beyond after 200+ epochs. To tell that from a real disagreement, every round also trains a *shadow*:
/// Framework again from the same initial parameters nudged by one ulp (`nextUp`). Its difference from the
/// Framework run, running maximum up to epoch e, is the run's own sensitivity to rounding, `s(e)`. An epoch
/// whose losses are outside the tolerance still passes when the difference is at most
/// `amplification · s(e)` (relative; default amplification 1000): the engines then differ no more than
/// rounding alone makes one engine differ from itself. Accuracies are then not compared (a trajectory that
/// rounding has moved classifies some points differently), and the report says from which epoch the
/// trajectories separated. A real difference (a wrong convention, a weight off by 10⁻⁶) shows from the
/// first epochs, where `s(e)` is ~10⁻¹⁵, and fails.
public struct Tolerances: Codable, Equatable, Sendable {
    public var rtol: Double
    public var atol: Double
    public var accuracy: Double
    /// How many times the shadow's own difference the engines may differ by once outside rtol/atol.
    public var amplification: Double
    public init(rtol: Double = 1e-11, atol: Double = 1e-14, accuracy: Double = 0, amplification: Double = 1000) {
        self.rtol = rtol
        self.atol = atol
        self.accuracy = accuracy
        self.amplification = amplification
    }
}

/// The measured differences between the two engines in one round, and the verdict.
public struct Parity: Codable, Equatable, Sendable {
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
    /// Epochs compared (both engines' common epochs).
    public var epochsCompared: Int
    /// Largest relative loss difference between Framework and its one-ulp shadow (rounding sensitivity).
    public var maxShadowDifference: Double
    /// First epoch outside rtol/atol that passed only because the shadow separated as much (nil: none).
    public var separatedAt: Int?
    /// "none"; "both at epoch e, batch b" (parity, when the epochs before agree); or, a failure,
    /// "framework at epoch e, batch b; reference did not diverge" (or the other way round, or both at
    /// different steps). Epochs and batches are 1-based.
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
public typealias Trace = (epochs: [EpochMetrics], divergence: Divergence?)

/// Compares two engines' traces epoch by epoch; `shadow` is Framework's one-ulp shadow run (nil: no
/// allowance for amplified rounding, the plain tolerances only).
///
/// Divergence (a NaN or ±∞ batch loss stops a run): both engines diverging at the same epoch and batch is
/// parity, reported in `divergence` as "both at epoch e, batch b", when the epochs before agree; one engine
/// diverging alone, or both at different steps, fails.
public func compareTraces(framework f: Trace, reference r: Trace, shadow: Trace? = nil,
                          tolerances: Tolerances) -> Parity {
    var parity = Parity(maxTestLossDifference: 0, maxTrainLossDifference: 0, maxTestAccuracyDifference: 0,
                        maxTrainAccuracyDifference: 0, worstEpoch: 0, epochsCompared: min(f.epochs.count, r.epochs.count),
                        maxShadowDifference: 0, separatedAt: nil, divergence: "none", passed: true, reason: "")
    var reasons: [String] = []
    var sensitivity = 0.0
    for (index, (a, b)) in zip(f.epochs, r.epochs).enumerated() {
        if let shadow, index < shadow.epochs.count {
            let s = shadow.epochs[index]
            sensitivity = max(sensitivity, relativeDifference(a.trainLoss, s.trainLoss), relativeDifference(a.testLoss, s.testLoss))
        }
        parity.maxShadowDifference = sensitivity
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
        if max(testLoss, trainLoss) <= tolerances.amplification * sensitivity && (!lossesAgree || parity.separatedAt != nil) {
            if parity.separatedAt == nil { parity.separatedAt = a.epoch }
            continue
        }
        if !lossesAgree {
            reasons.append("epoch \(a.epoch): loss differs (train \(a.trainLoss) vs \(b.trainLoss), test \(a.testLoss) vs \(b.testLoss); "
                           + "rounding sensitivity so far \(sensitivity))")
        } else {
            reasons.append("epoch \(a.epoch): accuracy differs (train \(a.trainAccuracy) vs \(b.trainAccuracy), test \(a.testAccuracy) vs \(b.testAccuracy))")
        }
    }
    switch (f.divergence, r.divergence) {
    case (nil, nil):
        if f.epochs.count != r.epochs.count {
            reasons.append("framework ran \(f.epochs.count) epochs, reference \(r.epochs.count)")
        }
    case let (fd?, rd?) where fd.epoch == rd.epoch && fd.batch == rd.batch:
        parity.divergence = "both at epoch \(fd.epoch), batch \(fd.batch)"
    case let (fd, rd):
        // One engine alone, or both at different steps: a failure even where the trajectories had separated
        // by amplified rounding before (the allowance covers loss differences, not a run that stops).
        func describe(_ engine: Engine, _ d: Divergence?) -> String {
            d.map { "\(engine.rawValue) at epoch \($0.epoch), batch \($0.batch)" } ?? "\(engine.rawValue) did not diverge"
        }
        parity.divergence = "\(describe(.framework, fd)); \(describe(.reference, rd))"
        let what = fd != nil && rd != nil ? "both engines diverged, at different steps" : "only one engine diverged"
        reasons.append("\(what): \(parity.divergence)")
    }
    parity.passed = reasons.isEmpty
    parity.reason = reasons.joined(separator: "; ")
    return parity
}
