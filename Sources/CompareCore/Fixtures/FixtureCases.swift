import Foundation
import Framework

/// The recorded fixture set: small cases that together cover every module, every loss, both optimizers
/// with their options, shuffling on and off, one and two outputs, batch size 1 and the whole set,
/// divergence, and the seeds' network. Replaying all of them takes seconds.
public let fixtureCases: [(name: String, covers: String, experiment: Experiment)] = {
    func linear(_ i: Int, _ o: Int, _ initialization: Initializer = .default) -> LayerSpec {
        .linear(in: i, out: o, initialization: initialization)
    }
    func make(_ name: String, _ layers: [LayerSpec], _ loss: LossKind, _ optimizer: OptimizerSpec, epochs: Int,
              batch: Int, shuffle: Bool, data: DataSpec = .disk(train: 60, test: 40), seed: UInt64) -> Experiment {
        Experiment(name: name, seed: seed, data: data, model: ModelSpec(layers: layers), loss: loss,
                   optimizer: optimizer, training: TrainingSpec(epochs: epochs, batchSize: batch, shuffle: shuffle))
    }
    let cases: [(String, String, Experiment)] = [
        ("linear-mse-sgd-one-output", "Linear alone, MSE, plain SGD, one output, batch 1, file order",
         make("linear-mse-sgd-one-output", [linear(2, 1)], .mse, .sgd(SGDSpec(lr: 0.1)), epochs: 3, batch: 1, shuffle: false, seed: 11)),
        ("relu-mae-sgd-momentum", "ReLU, MAE, SGD with momentum, batch 7 (smaller last batch), shuffled",
         make("relu-mae-sgd-momentum", [linear(2, 8), .relu, linear(8, 2)], .mae, .sgd(SGDSpec(lr: 0.05, momentum: 0.9)),
              epochs: 4, batch: 7, shuffle: true, seed: 12)),
        ("tanh-bce-nesterov-weight-decay", "Tanh, Sigmoid output, BCE, SGD Nesterov with weight decay, one output, the whole set as one batch",
         make("tanh-bce-nesterov-weight-decay", [linear(2, 6), .tanh, linear(6, 1), .sigmoid], .bce,
              .sgd(SGDSpec(lr: 0.5, momentum: 0.5, nesterov: true, weightDecay: 0.01)), epochs: 5, batch: 60, shuffle: true, seed: 13)),
        ("sigmoid-cross-entropy-adam", "Sigmoid, cross-entropy, Adam, batch 5, shuffled",
         make("sigmoid-cross-entropy-adam", [linear(2, 5), .sigmoid, linear(5, 2)], .crossEntropy, .adam(AdamSpec(lr: 0.01)),
              epochs: 4, batch: 5, shuffle: true, seed: 14)),
        ("leaky-relu-mse-adam-weight-decay-xavier", "LeakyReLU(0.1), Xavier init, Adam with weight decay and other betas, file order",
         make("leaky-relu-mse-adam-weight-decay-xavier", [linear(2, 6, .xavier), .leakyRelu(slope: 0.1), linear(6, 2, .xavier)], .mse,
              .adam(AdamSpec(lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.01)), epochs: 3, batch: 8, shuffle: false, seed: 15)),
        ("tanh-mse-momentum-dampening-uniform", "uniform(a, b) init, SGD with momentum and dampening",
         make("tanh-mse-momentum-dampening-uniform", [linear(2, 4, .uniform(-0.5, 0.5)), .tanh, linear(4, 2, .uniform(-0.5, 0.5))], .mse,
              .sgd(SGDSpec(lr: 0.1, momentum: 0.8, dampening: 0.3)), epochs: 3, batch: 10, shuffle: true, seed: 16)),
        ("seeds-network", "the original task's network (ReLU, Tanh, Sigmoid; MSE; SGD; batch 5) on 1000 + 1000 disk points, 3 epochs",
         make("seeds-network", [linear(2, 25), .relu, linear(25, 25), .tanh, linear(25, 25), .sigmoid, linear(25, 2)], .mse,
              .sgd(SGDSpec(lr: 0.1)), epochs: 3, batch: 5, shuffle: true, data: .disk(train: 1000, test: 1000), seed: 1)),
        ("gelu-mse-sgd-nesterov", "GELU (exact), MSE, SGD with Nesterov momentum, batch 6, shuffled",
         make("gelu-mse-sgd-nesterov", [linear(2, 6), .gelu, linear(6, 4), .gelu, linear(4, 2)], .mse,
              .sgd(SGDSpec(lr: 0.1, momentum: 0.9, nesterov: true)), epochs: 4, batch: 6, shuffle: true, seed: 19)),
        ("xor-hidden-layer", "XOR data, a Tanh hidden layer, Adam, the whole set as one batch",
         make("xor-hidden-layer", [linear(2, 8), .tanh, linear(8, 2)], .mse, .adam(AdamSpec(lr: 0.05)), epochs: 20, batch: 4,
              shuffle: false, data: .xor, seed: 17)),
        ("divergence", "SGD with lr 10⁶: the loss becomes infinite and the run stops with the epoch and batch",
         make("divergence", [linear(2, 8), .tanh, linear(8, 2)], .mse, .sgd(SGDSpec(lr: 1e6)), epochs: 5, batch: 1,
              shuffle: false, seed: 18)),
    ]
    return cases.map { (name: $0.0, covers: $0.1, experiment: $0.2) }
}()

/// How `compare record` chooses what to (re)write.
public enum RecordMode: String, CaseIterable, Sendable {
    /// Only cases without a fixture file.
    case missing
    /// Cases whose fixture no longer matches Framework's run (or cannot be loaded).
    case failed
    /// Every case.
    case all
}

/// Records fixtures from Framework into `directory` and returns one line per case saying what happened.
/// Each file is written atomically; values that changed beyond the fixture's tolerance are listed.
public func recordFixtures(mode: RecordMode, directory: URL, command: String, only: Set<String>? = nil) throws -> [String] {
    try makeDirectory(directory)
    var lines: [String] = []
    let tolerances = Fixture.Tolerances(rtol: 1e-10, atol: 1e-14, accuracy: 0)
    for fixtureCase in fixtureCases where only?.contains(fixtureCase.name) ?? true {
        let url = directory.appendingPathComponent("\(fixtureCase.name).fixture.json")
        let exists = FileManager.default.fileExists(atPath: url.path)
        let previous = exists ? try? Fixture.load(contentsOf: url).fixture : nil
        let trace = try FrameworkEngine().train(MaterializedRound(fixtureCase.experiment, round: 0))
        let changes = previous?.compare(trace, engine: EngineName.framework) ?? []
        switch mode {
        case .missing where exists:
            lines.append("\(fixtureCase.name): kept (exists)")
            continue
        case .failed where previous != nil && changes.isEmpty:
            lines.append("\(fixtureCase.name): kept (still matches)")
            continue
        default: break
        }
        let fixture = Fixture(
            name: fixtureCase.name, covers: fixtureCase.covers, experiment: fixtureCase.experiment, round: 0,
            epochs: trace.epochs, divergence: trace.divergence,
            parameters: Fixture.summaries(trace.finalParameters ?? []), tolerances: tolerances,
            provenance: .init(recordedBy: "Framework", swift: swiftVersion, blas: "not used (recorded from Framework)",
                              date: isoDate(), command: command))
        try writeAtomically(Data(fixture.jsonValue.text().utf8), to: url)
        if previous == nil {
            lines.append("\(fixtureCase.name): " + (exists ? "re-recorded (the old file could not be loaded)" : "created"))
        } else if changes.isEmpty {
            lines.append("\(fixtureCase.name): re-recorded, no expected value changed beyond its tolerance")
        } else {
            lines.append("\(fixtureCase.name): re-recorded, \(changes.count) value(s) changed beyond tolerance:")
            lines.append(contentsOf: changes.prefix(5).map { "    \($0.metric)\($0.epoch.map { " epoch \($0)" } ?? ""): \($0.expected) → \($0.actual)" })
        }
    }
    return lines
}

/// The compiler that built this binary, e.g. "Swift 6.3".
public let swiftVersion: String = {
    #if swift(>=6.3)
    return "Swift 6.3 or later"
    #elseif swift(>=6.0)
    return "Swift 6.x"
    #else
    return "Swift 5.x"
    #endif
}()
