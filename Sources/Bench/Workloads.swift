import Framework

/// A training workload: an MLP on the 1000-point disk data set, MSE, plain SGD, a fixed batch size.
struct Workload {
    /// Short key used in the JSON and by scripts/bench_torch.py: `"seeds-b5"`, `"tanh256-b128"`.
    var key: String
    /// For the table: `"2-25-25-25-2 batch 5"`.
    var title: String
    /// Layer widths, input first: `[2, 25, 25, 25, 2]`.
    var widths: [Int]
    /// The activation after each hidden Linear (widths.count − 2 of them).
    var activations: [Activation]
    var batchSize: Int
    /// Framework's optimizer steps per timed repetition.
    var steps: Int
    /// PyTorch's optimizer steps per timed repetition (it is much slower on the small networks: fewer steps
    /// keep its repetitions near a second; throughput does not depend on the count).
    var pytorchSteps: Int

    enum Activation: String {
        case relu, tanh, sigmoid
    }

    /// The six workloads. Step counts give each repetition roughly a quarter of a second or more.
    static let all: [Workload] = [
        Workload(key: "seeds-b1", title: "2-25-25-25-2 batch 1", widths: [2, 25, 25, 25, 2],
                 activations: [.relu, .tanh, .sigmoid], batchSize: 1, steps: 200_000, pytorchSteps: 1_000),
        Workload(key: "seeds-b5", title: "2-25-25-25-2 batch 5", widths: [2, 25, 25, 25, 2],
                 activations: [.relu, .tanh, .sigmoid], batchSize: 5, steps: 100_000, pytorchSteps: 1_000),
        Workload(key: "seeds-b100", title: "2-25-25-25-2 batch 100", widths: [2, 25, 25, 25, 2],
                 activations: [.relu, .tanh, .sigmoid], batchSize: 100, steps: 10_000, pytorchSteps: 1_000),
        Workload(key: "seeds-b1000", title: "2-25-25-25-2 batch 1000", widths: [2, 25, 25, 25, 2],
                 activations: [.relu, .tanh, .sigmoid], batchSize: 1000, steps: 1_000, pytorchSteps: 400),
        Workload(key: "tanh256-b128", title: "2-256-256-256-2 tanh batch 128", widths: [2, 256, 256, 256, 2],
                 activations: [.tanh, .tanh, .tanh], batchSize: 128, steps: 400, pytorchSteps: 200),
        Workload(key: "tanh1024-b128", title: "2-1024-1024-1024-2 tanh batch 128", widths: [2, 1024, 1024, 1024, 2],
                 activations: [.tanh, .tanh, .tanh], batchSize: 128, steps: 40, pytorchSteps: 20),
    ]

    /// The learning rate of the SGD steps: small enough that no workload diverges (which would time NaNs).
    static let learningRate = 0.01

    /// The training data: 1000 points of `Dataset.disk`, one-hot targets, seed 1.
    static func data() -> Dataset {
        var g = Xoshiro256StarStar(seed: 1, stream: 1)
        return Dataset.disk(count: 1000, targetWidth: 2, generator: &g)
    }

    /// Steps per repetition at `scale`: Framework's and PyTorch's.
    func scaledSteps(_ scale: Double) -> Int { max(1, Int(Double(steps) * scale)) }
    func scaledPyTorchSteps(_ scale: Double) -> Int { max(2, Int(Double(pytorchSteps) * scale)) }

    /// The Framework model, PyTorch-default initialisation from seed 1, stream 2.
    func frameworkModel() -> Sequential {
        var g = Xoshiro256StarStar(seed: 1, stream: 2)
        var modules: [Module] = []
        for i in 0..<(widths.count - 1) {
            modules.append(Linear(widths[i], widths[i + 1], generator: &g))
            if i < activations.count {
                switch activations[i] {
                case .relu: modules.append(ReLU())
                case .tanh: modules.append(Tanh())
                case .sigmoid: modules.append(Sigmoid())
                }
            }
        }
        return try! Sequential(modules)
    }

    /// Consecutive batches over `count` samples in file order, the last of each pass smaller, as `Trainer`
    /// takes them; wraps around.
    struct Batches {
        let order: [Int]
        let batchSize: Int
        var position = 0

        mutating func next() -> ArraySlice<Int> {
            let end = min(position + batchSize, order.count)
            defer { position = end == order.count ? 0 : end }
            return order[position..<end]
        }
    }
}

/// One timed measurement of a training loop.
struct Throughput {
    /// Samples per second of each repetition (wall clock).
    var repetitions: [Double]
    /// Samples per CPU second of each repetition (the thread's CPU time).
    var cpuRepetitions: [Double] = []
    /// Heap allocations per optimizer step during the timed repetitions (after the warm-up).
    var allocationsPerStep: Double
    /// The loss of the last step (a check that training ran on finite numbers).
    var lastLoss: Double

    var median: Double { repetitions.sorted()[repetitions.count / 2] }
    var best: Double { repetitions.max()! }
    /// Samples per CPU second, median; nil when the CPU time was not measured (Reference).
    var cpuMedian: Double? { cpuRepetitions.isEmpty ? nil : cpuRepetitions.sorted()[cpuRepetitions.count / 2] }
}

/// Framework's training step: exactly the loop `Trainer.fit` runs for each batch (gather into kept buffers,
/// zero, forward, `valueAndGradient`, `accumulateGradients`, `SGD.step`), without its per-epoch evaluation.
/// The model and the position in the data are kept across repetitions, so that they can alternate with
/// PyTorch's: `warmUp()` once, then `repetition()` as many times as wanted.
final class FrameworkTrainingLoop {
    let workload: Workload
    let data: Dataset
    let steps: Int
    private let model: Sequential
    private let parameters: [Parameter]
    private let loss = MSELoss()
    private let sgd = try! SGD(learningRate: Workload.learningRate)
    private var batches: Workload.Batches
    private var inputs = Matrix.empty, targets = Matrix.empty, dLoss = Matrix.empty
    private(set) var lastLoss = 0.0
    /// Heap allocations and steps of the timed repetitions.
    private(set) var allocations = 0, timedSteps = 0

    init(_ workload: Workload, data: Dataset, scale: Double) {
        self.workload = workload
        self.data = data
        steps = workload.scaledSteps(scale)
        model = workload.frameworkModel()
        parameters = model.parameters
        batches = Workload.Batches(order: Array(0..<data.count), batchSize: workload.batchSize)
    }

    private func run(_ steps: Int) -> Int {
        var samples = 0
        for _ in 0..<steps {
            let rows = batches.next()
            inputs.gather(rows: rows, of: data.inputs)
            targets.gather(rows: rows, of: data.targets)
            model.zeroGradients()
            lastLoss = loss.valueAndGradient(predictions: model.forward(inputs), targets: targets, into: &dLoss)
            precondition(lastLoss.isFinite, "\(workload.key): loss \(lastLoss)")
            model.accumulateGradients(dLoss)
            sgd.step(parameters)
            samples += rows.count
        }
        return samples
    }

    /// Untimed steps: first-step allocations, caches, page faults.
    func warmUp() { _ = run(max(2, steps / 10)) }

    /// One timed repetition of `steps` steps.
    func repetition() -> Sample {
        let before = allocationCount
        let start = now(), cpuStart = threadCPUTime()
        let samples = run(steps)
        let seconds = now() - start, cpuSeconds = threadCPUTime() - cpuStart
        allocations += allocationCount - before
        timedSteps += steps
        return Sample(samples: samples, wall: seconds, cpu: cpuSeconds)
    }

    var allocationsPerStep: Double { Double(allocations) / Double(max(timedSteps, 1)) }
}

/// One timed repetition: samples trained, wall seconds, CPU seconds.
struct Sample {
    var samples: Int
    var wall: Double
    var cpu: Double
}

extension Throughput {
    /// Samples/s of each repetition, wall and CPU.
    init(_ samples: [Sample], allocationsPerStep: Double, lastLoss: Double) {
        self.init(repetitions: samples.map { Double($0.samples) / $0.wall },
                  cpuRepetitions: samples.map { Double($0.samples) / max($0.cpu, 1e-9) },
                  allocationsPerStep: allocationsPerStep, lastLoss: lastLoss)
    }
}
