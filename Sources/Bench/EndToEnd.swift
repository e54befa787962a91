// End-to-end rows: training plus per-epoch evaluation, as `compare` times it, on the same experiment (same
// data, initial parameters and batch order) in Framework (`FrameworkEngine`, its trace's `seconds`) and in
// PyTorch (the example engine examples/engines/torch_engine.py through `CommandEngine`, its trace's `seconds`:
// the engine's own timing of training plus evaluation, without its start-up, its import of torch or the
// reading of the experiment file). Framework's and PyTorch's runs alternate, repetition by repetition.
import CompareCore
import Framework

/// One end-to-end comparison and the speed goal it is judged on.
struct EndToEndCase {
    /// "seeds-b5", "seeds-b1000", "tanh1024-b128".
    var key: String
    var title: String
    var experiment: Experiment
    /// PyTorch's seconds ÷ Framework's seconds the project aims at.
    var goal: Double

    /// The three cases at `scale` (fewer epochs).
    static func all(scale: Double) -> [EndToEndCase] {
        func epochs(_ full: Int) -> Int { max(1, Int((Double(full) * scale).rounded())) }
        var seeds = Suite.default.experiments[0].experiment
        seeds.training.epochs = epochs(seeds.training.epochs)
        var seeds1000 = seeds
        seeds1000.name += "-b1000"
        seeds1000.training.batchSize = 1000
        func linear(_ i: Int, _ o: Int) -> LayerSpec { .linear(in: i, out: o, initialization: .default) }
        let wide = Experiment(name: "tanh1024-b128", seed: 1, data: .disk(train: 1000, test: 1000),
                              model: ModelSpec(layers: [linear(2, 1024), .tanh, linear(1024, 1024), .tanh,
                                                        linear(1024, 1024), .tanh, linear(1024, 2)]),
                              loss: .mse, optimizer: .sgd(SGDSpec(lr: 0.01)),
                              training: TrainingSpec(epochs: epochs(5), batchSize: 128, shuffle: true))
        let describe = { (e: Experiment) in
            "\(e.training.epochs) epoch\(e.training.epochs == 1 ? "" : "s"), \(e.data.trainCount)+\(e.data.testCount) disk points"
        }
        return [
            EndToEndCase(key: "seeds-b5", title: "seeds' network 2-25-25-25-2, batch 5, \(describe(seeds))",
                         experiment: seeds, goal: 100),
            EndToEndCase(key: "seeds-b1000", title: "seeds' network 2-25-25-25-2, batch 1000, \(describe(seeds1000))",
                         experiment: seeds1000, goal: 3),
            EndToEndCase(key: "tanh1024-b128", title: "2-1024-1024-1024-2 tanh, batch 128, MSE, SGD lr 0.01, \(describe(wide))",
                         experiment: wide, goal: 1.2),
        ]
    }
}

struct EndToEndResult {
    var test: EndToEndCase
    /// Seconds of each repetition (trace `seconds`).
    var framework: [Double]
    var pytorch: [Double]
    /// The last epoch's test loss of each engine's last run (a check that both trained the same thing).
    var frameworkTestLoss: Double
    var pytorchTestLoss: Double
    var pytorchEngine: String

    /// PyTorch's median seconds ÷ Framework's.
    var ratio: Double { median(pytorch) / median(framework) }
    var meetsGoal: Bool { ratio >= test.goal }
}

struct EndToEndFailure: Error, CustomStringConvertible {
    var description: String
}

func endToEnd(_ test: EndToEndCase, torchEngine: CommandEngine, repetitions: Int) throws -> EndToEndResult {
    try test.experiment.validate(file: "bench's \(test.key) experiment")
    let round = MaterializedRound(test.experiment, round: 0)
    let framework = FrameworkEngine()
    var frameworkSeconds: [Double] = [], pytorchSeconds: [Double] = []
    var frameworkLoss = Double.nan, pytorchLoss = Double.nan, engine = ""
    for _ in 0..<repetitions {
        let ours = try framework.train(round)
        let theirs = try torchEngine.train(round)
        for trace in [ours, theirs] {
            if let divergence = trace.divergence {
                throw EndToEndFailure(description: "\(test.key): \(trace.engine) \(divergence)")
            }
        }
        guard let a = ours.seconds, let b = theirs.seconds else {
            throw EndToEndFailure(description: "\(test.key): a trace without seconds")
        }
        frameworkSeconds.append(a)
        pytorchSeconds.append(b)
        frameworkLoss = ours.epochs.last?.testLoss ?? .nan
        pytorchLoss = theirs.epochs.last?.testLoss ?? .nan
        engine = theirs.engine
    }
    return EndToEndResult(test: test, framework: frameworkSeconds, pytorch: pytorchSeconds,
                          frameworkTestLoss: frameworkLoss, pytorchTestLoss: pytorchLoss, pytorchEngine: engine)
}
