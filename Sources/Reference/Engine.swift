// The training loop: a run description in, a per-epoch trace out. Same schedule as the framework:
// epoch 0 evaluates before any update, each later epoch trains on mini-batches then evaluates.
import Foundation
#if canImport(Glibc)
#endif

/// A data set: `inputs (n, inWidth)` and `targets (n, outWidth)`, row `i` of each is example `i`.
public struct ReferenceData: Equatable {
    public var inputs: [[Double]]
    public var targets: [[Double]]
    public init(inputs: [[Double]], targets: [[Double]]) {
        self.inputs = inputs
        self.targets = targets
    }
    /// The number of examples, `n`.
    public var count: Int { inputs.count }
}

/// Everything one training run needs.
///
/// `batchOrder`, when given, holds one permutation of `0..<train.count` per epoch (`epochs` entries);
/// epoch `e` (1-based) visits the training rows in the order `batchOrder[e − 1]`. `nil` (the default)
/// means file order every epoch. `recordedSteps` asks for the tensors of the first K optimizer steps
/// (`ReferenceStep`).
public struct ReferenceRun {
    public var layers: [ReferenceLayer]
    public var loss: ReferenceLoss
    public var optimizer: ReferenceOptimizer
    public var train: ReferenceData
    public var test: ReferenceData
    public var epochs: Int
    public var batchSize: Int
    public var batchOrder: [[Int]]?
    public var recordedSteps: Int

    public init(layers: [ReferenceLayer], loss: ReferenceLoss, optimizer: ReferenceOptimizer,
                train: ReferenceData, test: ReferenceData, epochs: Int, batchSize: Int, batchOrder: [[Int]]? = nil,
                recordedSteps: Int = 0) {
        self.layers = layers
        self.loss = loss
        self.optimizer = optimizer
        self.train = train
        self.test = test
        self.epochs = epochs
        self.batchSize = batchSize
        self.batchOrder = batchOrder
        self.recordedSteps = recordedSteps
    }
}

/// The evaluation after epoch `epoch` (0 = before any update): loss and accuracy, each over a whole set
/// with one forward pass. Accuracy is a fraction in [0, 1].
public struct ReferenceEpoch: Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var testLoss: Double
    public var trainAccuracy: Double
    public var testAccuracy: Double
    public init(epoch: Int, trainLoss: Double, testLoss: Double, trainAccuracy: Double, testAccuracy: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.testLoss = testLoss
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
    }
}

/// Where training stopped: the first mini-batch whose loss was NaN or ±∞ (`batch` is 1-based).
public struct ReferenceDivergence: Equatable {
    public var epoch: Int
    public var batch: Int
    public var loss: Double
    public init(epoch: Int, batch: Int, loss: Double) {
        self.epoch = epoch
        self.batch = batch
        self.loss = loss
    }
}

/// A run's trace: `epochs` holds epochs `0...E` (`E = run.epochs`, or `divergence.epoch − 1` when the run
/// diverged), and `finalLayers` the parameters when training ended.
public struct ReferenceResult {
    public var epochs: [ReferenceEpoch]
    public var divergence: ReferenceDivergence?
    public var finalLayers: [ReferenceLayer]
    /// The first `run.recordedSteps` optimizer steps (fewer if the run ended sooner).
    public var steps: [ReferenceStep]
    public init(epochs: [ReferenceEpoch], divergence: ReferenceDivergence?, finalLayers: [ReferenceLayer],
                steps: [ReferenceStep] = []) {
        self.epochs = epochs
        self.divergence = divergence
        self.finalLayers = finalLayers
        self.steps = steps
    }
}

/// One optimizer step's tensors, by the names of the trace format (docs/trace-format.md), `i` the index in
/// `run.layers`: `layers[i].output`, `loss`, `loss.dInput`, `layers[i].dInput` (every layer), and for each linear
/// layer `layers[i].dWeight`, `layers[i].dBias` (this step's gradients), `layers[i].weight`, `layers[i].bias`
/// (after the update) and the optimizer's state after it: `layers[i].weight.momentum` (SGD with momentum),
/// `layers[i].weight.m`, `layers[i].weight.v` (Adam), and the same for `.bias`. A diverging step has its
/// outputs and its loss only.
public struct ReferenceStep {
    /// 1-based.
    public var epoch: Int
    public var batch: Int
    public var tensors: [String: ReferenceTensor]
}

/// A recorded value: a number (the loss), a flat array (a bias, its gradient and state), or rows.
public enum ReferenceTensor: Equatable {
    case scalar(Double)
    case vector([Double])
    case matrix([[Double]])
}

/// Trains a `ReferenceRun` on GSL BLAS and reports which BLAS library is in use.
public enum ReferenceEngine {
    /// Elements of the widest layer per evaluation chunk: 2¹⁸ (2 MiB of doubles).
    public static let evaluationChunkElements = 1 << 18

    /// Trains `run` and returns the per-epoch trace.
    ///
    /// Epoch 0 evaluates before any update. For each epoch `e = 1...epochs`, the training rows are taken in
    /// the order `batchOrder?[e − 1] ?? 0..<n` and cut into consecutive mini-batches of `batchSize` rows
    /// (the last may be smaller), numbered from 1. Per mini-batch: zero gradients, forward, loss; a NaN or
    /// ±∞ loss is recorded as the divergence and training stops (no evaluation of epoch `e`); otherwise
    /// backward of the loss gradient and one optimizer step. After each epoch the train and test sets are
    /// each evaluated in chunks of `evaluationChunkElements / widest layer` rows (loss over the whole set, and
    /// accuracy: argmax of output row = argmax of target row for ≥ 2 outputs, first maximum on ties, a NaN
    /// counting as the maximum as `torch.argmax`; `(output ≥ 0.5) = (target ≥ 0.5)` for 1 output).
    ///
    /// Throws `ReferenceError` for an invalid run (shapes that do not chain, data widths that do not match
    /// the network, empty or ragged data, `batchSize < 1`, `epochs < 0`, a `batchOrder` of the wrong size or
    /// not a permutation, invalid hyperparameters) and for any GSL failure; it never traps on user input.
    public static func train(_ run: ReferenceRun) throws -> ReferenceResult {
        let network = try ReferenceNetwork(layers: run.layers)
        try run.optimizer.validate()
        let (trainX, trainY) = try matrices(run.train, "train", network)
        let (testX, testY) = try matrices(run.test, "test", network)
        try validateSchedule(run)
        let optimizer = ReferenceOptimizerState(run.optimizer)

        // Evaluation in chunks of rows, so that memory is bounded by a chunk times the widest layer: the loss's
        // terms go into one compensated sum and the correct rows are counted, as one pass would give them.
        let widest = ([network.inputWidth ?? 1, network.outputWidth ?? 1] + network.linears.flatMap { [$0.inFeatures, $0.outFeatures] }).max()!
        let chunkRows = max(1, evaluationChunkElements / widest)
        func evaluate(_ x: Matrix, _ y: Matrix) throws -> (loss: Double, accuracy: Double) {
            var sum = NeumaierSum()
            var terms = 0, correct = 0
            for start in stride(from: 0, to: x.rows, by: chunkRows) {
                let rows = start..<min(start + chunkRows, x.rows)
                let (inputs, targets) = rows.count == x.rows ? (x, y)
                    : (try x.gatherRows(rows, "evaluation inputs"), try y.gatherRows(rows, "evaluation targets"))
                let output = try network.forward(inputs)
                terms += try accumulateLoss(run.loss, predictions: output, targets: targets, into: &sum).terms
                correct += correctCount(output, targets)
            }
            return (sum.value / Double(terms), Double(correct) / Double(x.rows))
        }
        func evaluate(_ epoch: Int) throws -> ReferenceEpoch {
            let train = try evaluate(trainX, trainY), test = try evaluate(testX, testY)
            return ReferenceEpoch(epoch: epoch, trainLoss: train.loss, testLoss: test.loss,
                                  trainAccuracy: train.accuracy, testAccuracy: test.accuracy)
        }

        var trace = [try evaluate(0)]
        var steps: [ReferenceStep] = []
        let n = trainX.rows
        for epoch in stride(from: 1, through: run.epochs, by: 1) {
            let order = run.batchOrder?[epoch - 1] ?? Array(0..<n)
            for (index, start) in stride(from: 0, to: n, by: run.batchSize).enumerated() {
                let rows = order[start..<min(start + run.batchSize, n)]
                let x = try trainX.gatherRows(rows, "epoch \(epoch), batch \(index + 1) inputs")
                let y = try trainY.gatherRows(rows, "epoch \(epoch), batch \(index + 1) targets")
                let (loss, step) = try trainingStep(network, run.loss, optimizer, x, y, epoch: epoch, batch: index + 1,
                                                    recording: steps.count < run.recordedSteps)
                if let step { steps.append(step) }
                guard loss.isFinite else {
                    return ReferenceResult(epochs: trace,
                                           divergence: ReferenceDivergence(epoch: epoch, batch: index + 1, loss: loss),
                                           finalLayers: network.layers, steps: steps)
                }
            }
            trace.append(try evaluate(epoch))
        }
        return ReferenceResult(epochs: trace, divergence: nil, finalLayers: network.layers, steps: steps)
    }

    /// One mini-batch: zero gradients, forward, loss; then, when the loss is finite, backward and one optimizer
    /// step. Returns the batch loss and, when `recording`, the step's tensors (a diverging step has its outputs
    /// and loss only). `train` and `ReferenceReplay.step` both take their steps here.
    static func trainingStep(_ network: ReferenceNetwork, _ loss: ReferenceLoss, _ optimizer: ReferenceOptimizerState,
                             _ x: Matrix, _ y: Matrix, epoch: Int, batch: Int, recording: Bool) throws -> (loss: Double, step: ReferenceStep?) {
        network.recording = recording
        defer { network.recording = false }
        network.zeroGradients()
        let output = try network.forward(x)
        let (value, dOutput) = try lossAndGradient(loss, predictions: output, targets: y)
        var step = recording ? network.recordedForward(epoch: epoch, batch: batch, loss: value, dOutput: dOutput) : nil
        guard value.isFinite else { return (value, step) }
        _ = try network.backward(dOutput)
        if step != nil { network.recordBackward(into: &step!) }
        try optimizer.step(network)
        if step != nil { network.recordParameters(into: &step!, optimizer: optimizer) }
        return (value, step)
    }

    /// The library that serves `cblas_dgemm` in this process, e.g. "GSL CBLAS (libgslcblas.so.0)" or
    /// "OpenBLAS (libopenblas.so.0, core Haswell)".
    ///
    /// `dlsym(RTLD_DEFAULT, "cblas_dgemm")` gives the definition the dynamic linker binds `gsl_blas_dgemm`'s
    /// call to (the first in global load order); the file mapped at that address is what `dladdr` would
    /// report as `dli_fname`. (`dladdr` itself is a GNU extension that Swift's Glibc module hides, so the
    /// address is looked up in `/proc/self/maps`.) If that file exports `openblas_get_corename`, it is
    /// OpenBLAS, and the kernel set it chose at load time is appended (0.3.21 picks "Prescott" on some
    /// AVX-512 CPUs; the environment variable `OPENBLAS_CORETYPE` overrides that).
    public static var blasLibrary: String {
        guard let symbol = dlsym(nil, "cblas_dgemm") else { return "unknown (cblas_dgemm not found)" }
        guard let path = mappedFile(containing: UInt(bitPattern: symbol)) else { return "unknown (address not mapped)" }
        // Prefer the name the dynamic linker loaded it by (e.g. libopenblas.so.0, not libopenblasp-r0.3.21.so).
        let sonames = ["libopenblas.so.0", "libgslcblas.so.0", "libblas.so.3", "libcblas.so.3"]
        let file = sonames.first { soname in
            guard let handle = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD) else { return false }
            defer { dlclose(handle) }
            return dlsym(handle, "cblas_dgemm") == symbol
        } ?? URL(fileURLWithPath: path).lastPathComponent
        // Ask that very library (not the global scope) whether it is OpenBLAS.
        if let handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD) {
            defer { dlclose(handle) }
            if let function = dlsym(handle, "openblas_get_corename") {
                typealias CoreName = @convention(c) () -> UnsafeMutablePointer<CChar>?
                let core = unsafeBitCast(function, to: CoreName.self)().map { ", core \(String(cString: $0))" } ?? ""
                return "OpenBLAS (\(file)\(core))"
            }
        }
        if file.contains("gslcblas") { return "GSL CBLAS (\(file))" }
        return "unknown (\(file))"
    }

    /// The path of the file mapped at `address` in this process, read from `/proc/self/maps`
    /// (lines `start-end perms offset dev inode path`).
    private static func mappedFile(containing address: UInt) -> String? {
        // Read to EOF: /proc files report size 0, and FileManager.contents(atPath:) stops after one read.
        guard let file = FileHandle(forReadingAtPath: "/proc/self/maps") else { return nil }
        defer { try? file.close() }
        guard let data = try? file.readToEnd() else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            let bounds = fields.first?.split(separator: "-") ?? []
            guard fields.count == 6, bounds.count == 2,
                  let low = UInt(bounds[0], radix: 16), let high = UInt(bounds[1], radix: 16),
                  address >= low && address < high else { continue }
            return fields[5].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    // MARK: Validation

    /// The data set as matrices, checked against each other and against the network's widths.
    private static func matrices(_ data: ReferenceData, _ name: String, _ network: ReferenceNetwork) throws
        -> (inputs: Matrix, targets: Matrix) {
        let x = try Matrix(data.inputs, name: "\(name).inputs")
        let y = try Matrix(data.targets, name: "\(name).targets")
        guard x.rows == y.rows else {
            throw ReferenceError("\(x.rows) input rows but \(y.rows) target rows; expected one target per input",
                                 at: name)
        }
        if let width = network.inputWidth, x.columns != width {
            throw ReferenceError("inputs have \(x.columns) features but the first linear layer expects \(width)",
                                 at: "\(name).inputs")
        }
        let outWidth = network.outputWidth ?? x.columns
        guard y.columns == outWidth else {
            throw ReferenceError("targets have \(y.columns) values per row but the network outputs \(outWidth)",
                                 at: "\(name).targets")
        }
        return (x, y)
    }

    /// Checks `epochs`, `batchSize` and `batchOrder`.
    private static func validateSchedule(_ run: ReferenceRun) throws {
        guard run.epochs >= 0 else { throw ReferenceError("epochs = \(run.epochs); expected ≥ 0", at: "run.epochs") }
        guard run.batchSize >= 1 else {
            throw ReferenceError("batchSize = \(run.batchSize); expected ≥ 1", at: "run.batchSize")
        }
        guard let orders = run.batchOrder else { return }
        guard orders.count == run.epochs else {
            throw ReferenceError("\(orders.count) orders for \(run.epochs) epochs; expected one per epoch",
                                 at: "run.batchOrder")
        }
        let n = run.train.count
        for (e, order) in orders.enumerated() {
            var seen = [Bool](repeating: false, count: n)
            guard order.count == n else {
                throw ReferenceError("has \(order.count) indices; expected a permutation of 0..<\(n)",
                                     at: "run.batchOrder[\(e)]")
            }
            for (k, i) in order.enumerated() {
                guard i >= 0 && i < n && !seen[i] else {
                    let why = (i >= 0 && i < n) ? "repeats \(i)" : "\(i) is outside 0..<\(n)"
                    throw ReferenceError("entry \(k): \(why); expected a permutation of 0..<\(n)",
                                         at: "run.batchOrder[\(e)]")
                }
                seen[i] = true
            }
        }
    }
}

/// How many rows are classified correctly: for `width ≥ 2`, argmax(output row) = argmax(target row)
/// (first maximum on ties, a NaN counting as the maximum); for `width = 1`, `(output ≥ 0.5) = (target ≥ 0.5)`.
/// Both are `(batch, width)`.
func correctCount(_ outputs: Matrix, _ targets: Matrix) -> Int {
    let width = outputs.columns
    var correct = 0
    for r in 0..<outputs.rows {
        let o = outputs.data + r * width, t = targets.data + r * width
        if width == 1 {
            if (o[0] >= 0.5) == (t[0] >= 0.5) { correct += 1 }
        } else if argmax(o, width) == argmax(t, width) {
            correct += 1
        }
    }
    return correct
}
