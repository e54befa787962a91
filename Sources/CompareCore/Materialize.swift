import Foundation
import Framework

/// The concrete inputs of one round of an experiment, the same for both engines: data, the initial
/// values of every linear layer, and the visiting order of every epoch.
///
/// Round r uses seed `s = experiment.seed + r`. Independent streams of `Xoshiro256StarStar(seed: s, stream:)`:
/// 1 for the data (train set first, then test), 2 for the initial parameters (layer by layer, weight then
/// bias), 3 for the shuffling seed. Explicit data or weights in the file draw nothing.
public struct MaterializedRound {
    public let experiment: Experiment
    public let seed: UInt64
    public let train: Dataset
    public let test: Dataset
    /// For each linear layer in order: weight `(out, in)` and bias `(1, out)`.
    public let initialParameters: [(weight: Matrix, bias: Matrix)]
    /// The order given to Framework's trainer (it draws its own permutations from the seed).
    public let order: BatchOrder
    /// The same orders written out, one permutation per epoch, for Reference.
    public let orders: [[Int]]

    public init(_ experiment: Experiment, round: Int) {
        self.experiment = experiment
        let seed = experiment.seed &+ UInt64(round)
        self.seed = seed
        let outputWidth = experiment.model.outputWidth
        switch experiment.data {
        case let .disk(trainCount, testCount):
            var generator = Xoshiro256StarStar(seed: seed, stream: 1)
            train = Dataset.disk(count: trainCount, targetWidth: outputWidth, generator: &generator)
            test = Dataset.disk(count: testCount, targetWidth: outputWidth, generator: &generator)
        case .xor:
            train = Dataset.xor(targetWidth: outputWidth)
            test = train
        case let .explicit(trainSet, testSet):
            train = Dataset(inputs: Matrix(trainSet.inputs), targets: Matrix(trainSet.targets))
            test = Dataset(inputs: Matrix(testSet.inputs), targets: Matrix(testSet.targets))
        }
        var initGenerator = Xoshiro256StarStar(seed: seed, stream: 2)
        var parameters: [(weight: Matrix, bias: Matrix)] = []
        for layer in experiment.model.layers {
            guard case let .linear(inWidth, outWidth, initialization) = layer else { continue }
            let initializer: Initializer
            switch initialization {
            case .default: initializer = .default
            case .xavier: initializer = .xavier
            case let .uniform(a, b): initializer = .uniform(a, b)
            case let .explicit(weight, bias):
                initializer = .explicit(weight: Matrix(weight), bias: Matrix([bias]))
            }
            let values = initializer.values(inWidth: inWidth, outWidth: outWidth, generator: &initGenerator)
            parameters.append(values)
        }
        initialParameters = parameters
        if experiment.training.shuffle {
            var shuffleSeeds = Xoshiro256StarStar(seed: seed, stream: 3)
            order = .shuffled(seed: shuffleSeeds.next())
        } else {
            order = .sequential
        }
        orders = order.orders(count: train.count, epochs: experiment.training.epochs)
    }
}
