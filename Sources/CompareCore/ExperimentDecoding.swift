// Experiment files: JSON → a validated `Experiment`, and back.
//
// Three stages, each with its own errors, all reported as `ExperimentError(file:path:message:)`:
//   1. `JSONValue.parse`: the text → a JSON tree. A small strict RFC 8259 parser rather than JSONSerialization
//      or JSONDecoder, because on Linux Foundation `true` and `1` can come back as the same NSNumber, integers
//      and fractions are not kept apart, and a literal such as 1e999 fails the whole file with no location;
//      here booleans are their own case, each number keeps its exact integer value when it has one, and
//      1e999 becomes +infinity so that validation can name where it is. Syntax errors still carry
//      JSONSerialization's own wording, plus a line and column.
//   2. `Experiment(json:defaultName:)`: the tree → typed values. Unknown keys, wrong JSON types, missing
//      required keys and unknown type names stop here.
//   3. `Experiment.check()`: the typed values → consistent ones: widths that chain, sizes within limits,
//      finite numbers, hyperparameters in range. The same check runs again after command-line overrides.

import Foundation

// MARK: - Limits

extension Experiment {
    /// The widest layer accepted: 100 000 units.
    public static let maxLayerWidth = 100_000
    /// The most weights and biases accepted over the whole model: 50 000 000.
    public static let maxParameters = 50_000_000
    /// The most points accepted in one data set (disk train or test, an explicit train or test set).
    public static let maxDataPoints = 10_000_000
    /// The most epochs accepted: 1 000 000. Both engines hold every epoch's visiting order and metrics in
    /// memory, so a count like 10⁹ (a mistyped `--epochs`) would exhaust memory before the first step.
    public static let maxEpochs = 1_000_000
    /// The most sample visits accepted, epochs × train points: 100 000 000. Every epoch's visiting order is
    /// built before training starts (one `Int` per visit, in each engine), so this bounds that memory
    /// (about 800 MB per engine) as well as the run time.
    public static let maxSampleVisits = 100_000_000
    /// The largest experiment file read: 100 000 000 bytes. Parsed JSON takes several times its size in
    /// memory; a larger file (or an endless one such as /dev/zero) is refused before it is parsed.
    public static let maxFileBytes = 100_000_000
}

// MARK: - Public entry points

extension Experiment {
    /// Reads, parses and validates the experiment file at `url`. Errors name the file as `url.relativePath`.
    public static func load(contentsOf url: URL) throws -> Experiment {
        let file = url.isFileURL ? url.relativePath : url.absoluteString
        if url.isFileURL {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw ExperimentError(file: file, path: "", message: "cannot read the file: it does not exist")
            }
            guard !isDirectory.boolValue else {
                throw ExperimentError(file: file, path: "", message: "cannot read the file: it is a directory")
            }
        }
        let data: Data
        do {
            data = try readAtMost(maxFileBytes, from: url)
        } catch let error as FileTooLarge {
            throw ExperimentError(file: file, path: "", message: "the file is larger than the limit of \(error.limit) bytes")
        } catch {
            throw ExperimentError(file: file, path: "", message: "cannot read the file: \(error.localizedDescription)")
        }
        return try decode(data, file: file)
    }

    private struct FileTooLarge: Error { let limit: Int }

    /// The bytes of `url`, refusing more than `limit` of them without reading further (so that a device or
    /// a pipe that never ends cannot exhaust memory).
    private static func readAtMost(_ limit: Int, from url: URL) throws -> Data {
        guard url.isFileURL else { return try Data(contentsOf: url) }
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            data.append(chunk)
            if data.count > limit { throw FileTooLarge(limit: limit) }
        }
        return data
    }

    /// Parses and validates an experiment file's bytes. `file` names the file in errors, and its last path
    /// component without ".experiment.json" or ".json" is the default `name`.
    public static func decode(_ data: Data, file: String) throws -> Experiment {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch let error as JSONSyntaxError {
            throw ExperimentError(file: file, path: "", message: error.message(for: data))
        }
        let experiment: Experiment
        do {
            experiment = try Experiment(json: json, defaultName: defaultName(forFile: file))
        } catch let problem as Problem {
            throw ExperimentError(file: file, path: problem.path, message: problem.message)
        }
        try experiment.validate(file: file)
        return experiment
    }

    /// Checks that the experiment is consistent and within limits; throws the first problem found, with the
    /// JSON path of the offending field. `decode` runs it; run it again after changing fields.
    public func validate(file: String) throws {
        do {
            try check()
        } catch let problem as Problem {
            throw ExperimentError(file: file, path: problem.path, message: problem.message)
        }
    }

    /// The experiment as a JSON object, every field written out (defaults included): `[String: Any]` with
    /// `String`, `Int`, `Double`, `Bool`, `[Any]` and `[String: Any]` values.
    public func jsonObject() -> [String: Any] {
        jsonValue.foundationObject as? [String: Any] ?? [:]
    }

    /// The experiment as an experiment file: pretty-printed JSON with sorted keys, such that
    /// `decode(encoded(), file:) == self` for a valid experiment. Throws `EncodingError` if a number is not
    /// finite (JSON cannot hold it); `validate` first to get a located message instead.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(jsonValue)
    }

    /// "runs/torch-3.experiment.json" → "torch-3"; "a.json" → "a"; a name that would be empty → "experiment".
    static func defaultName(forFile file: String) -> String {
        var name = file.split(separator: "/").last.map(String.init) ?? ""
        for suffix in [".experiment.json", ".json"] where name.hasSuffix(suffix) {
            name.removeLast(suffix.count)
            break
        }
        return name.isEmpty ? "experiment" : name
    }
}

// MARK: - Stage 2: JSON tree → typed values

/// A problem found at a JSON path; the public entry points add the file name.
private struct Problem: Error {
    var path: String
    var message: String

    init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }
}

private enum Keys {
    static let top = ["name", "seed", "data", "model", "loss", "optimizer", "training"]
    static let layerTypes = ["linear", "relu", "tanh", "sigmoid", "leakyRelu"]
    static let linear = ["type", "in", "out", "init", "weight", "bias"]
    static let leakyRelu = ["type", "slope"]
    static let activation = ["type"]
    static let sgd = ["type", "lr", "momentum", "dampening", "nesterov", "weightDecay"]
    static let adam = ["type", "lr", "beta1", "beta2", "eps", "weightDecay"]
    static let optimizerTypes = ["sgd", "adam"]
    static let training = ["epochs", "batchSize", "shuffle"]
    static let dataKinds = "disk, xor, or train and test (explicit data)"
}

private extension Experiment {
    /// Reads the typed fields from a parsed file, filling the defaults; does not check consistency.
    init(json: JSONValue, defaultName: String) throws {
        let root = Node(json, path: "")
        guard case .object = json else {
            throw Problem("", "expected a JSON object at the top level, got \(json.summary)")
        }
        let top = try root.members()
        try top.allowOnly(Keys.top)

        let name = try top["name"]?.string() ?? defaultName
        let seed = try top["seed"].map(Self.seed(from:)) ?? Experiment.defaultSeed
        let data = try top["data"].map(DataSpec.init(node:))
            ?? .disk(train: DataSpec.defaultDiskSize, test: DataSpec.defaultDiskSize)
        let model = try ModelSpec(node: top.required("model", "missing: an experiment needs a model with layers"))
        let loss = try top["loss"].map(LossKind.init(node:)) ?? .mse
        let optimizer = try top["optimizer"].map(OptimizerSpec.init(node:)) ?? .sgd(SGDSpec())
        let training = try top["training"].map(TrainingSpec.init(node:)) ?? TrainingSpec()
        self.init(name: name, seed: seed, data: data, model: model, loss: loss, optimizer: optimizer,
                  training: training)
    }

    private static func seed(from node: Node) throws -> UInt64 {
        if case .number(_, let integer?) = node.value, integer >= 0 { return UInt64(integer) }
        throw node.problem("expected a non-negative integer below 2^63, got \(node.value.summary)")
    }
}

private extension DataSpec {
    init(node: Node) throws {
        let members = try node.members()
        let keys = members.keys
        guard !keys.isEmpty else {
            throw node.problem("expected one of \(Keys.dataKinds), got an empty object")
        }
        if let kind = ["disk", "xor"].first(where: { members[$0] != nil }) {
            if let other = keys.first(where: { $0 != kind }) {
                throw Problem(node.child(other),
                              "unexpected next to \"\(kind)\": data is exactly one of \(Keys.dataKinds)")
            }
            let spec = try members.required(kind, "")
            let kindMembers = try spec.members()
            if kind == "xor" {
                try kindMembers.allowOnly([], in: "xor data (always the same four points)")
                self = .xor
            } else {
                try kindMembers.allowOnly(["train", "test"], in: "disk data")
                self = .disk(train: try kindMembers["train"]?.integer() ?? DataSpec.defaultDiskSize,
                             test: try kindMembers["test"]?.integer() ?? DataSpec.defaultDiskSize)
            }
            return
        }
        for key in keys where key != "train" && key != "test" {
            throw Problem(node.child(key), "unknown data kind \"\(key)\"; allowed: \(Keys.dataKinds)")
        }
        self = .explicit(
            train: try DataSetSpec(node: members.required("train", "missing: explicit data needs train and test")),
            test: try DataSetSpec(node: members.required("test", "missing: explicit data needs train and test")))
    }
}

private extension DataSetSpec {
    init(node: Node) throws {
        let members = try node.members()
        try members.allowOnly(["inputs", "targets"], in: "a data set")
        self.init(inputs: try members.required("inputs", "missing: a data set needs inputs and targets").rows(),
                  targets: try members.required("targets", "missing: a data set needs inputs and targets").rows())
    }
}

private extension ModelSpec {
    init(node: Node) throws {
        let members = try node.members()
        try members.allowOnly(["layers"], in: "the model")
        let layers = try members.required("layers", "missing: a model is a list of layers").array()
        self.init(layers: try layers.map(LayerSpec.init(node:)))
    }
}

private extension LayerSpec {
    init(node: Node) throws {
        let members = try node.members()
        let typeNode = try members.required("type", "missing; allowed: \(Keys.layerTypes.joined(separator: ", "))")
        let type = try typeNode.string()
        switch type {
        case "linear":
            try members.allowOnly(Keys.linear, in: "a linear layer")
            let inWidth = try members.required("in", "missing: a linear layer needs in and out").integer()
            let outWidth = try members.required("out", "missing: a linear layer needs in and out").integer()
            self = .linear(in: inWidth, out: outWidth, initialization: try Initialization(layer: members))
        case "relu":
            try members.allowOnly(Keys.activation, in: "a relu layer")
            self = .relu
        case "tanh":
            try members.allowOnly(Keys.activation, in: "a tanh layer")
            self = .tanh
        case "sigmoid":
            try members.allowOnly(Keys.activation, in: "a sigmoid layer")
            self = .sigmoid
        case "leakyRelu":
            try members.allowOnly(Keys.leakyRelu, in: "a leakyRelu layer")
            self = .leakyRelu(slope: try members["slope"]?.number() ?? LayerSpec.defaultLeakySlope)
        default:
            throw typeNode.problem(
                "unknown layer type \"\(type)\"; allowed: \(Keys.layerTypes.joined(separator: ", "))")
        }
    }
}

private extension Initialization {
    /// From a linear layer's members: `init`, or `weight` and `bias`, or neither (`.default`).
    init(layer members: Members) throws {
        let weight = members["weight"], bias = members["bias"], initNode = members["init"]
        if let initNode, weight != nil || bias != nil {
            throw initNode.problem("cannot be given together with weight and bias: give one or the other")
        }
        switch (weight, bias) {
        case (let weight?, let bias?):
            self = .explicit(weight: try weight.rows(), bias: try bias.numbers())
            return
        case (.some, nil):
            throw Problem(members.node.child("bias"), "missing: weight and bias come together (both or neither)")
        case (nil, .some):
            throw Problem(members.node.child("weight"), "missing: weight and bias come together (both or neither)")
        case (nil, nil):
            break
        }
        guard let initNode else {
            self = .default
            return
        }
        let expected = "allowed: \"default\", \"xavier\", {\"uniform\": [a, b]}"
        switch initNode.value {
        case .string("default"):
            self = .default
        case .string("xavier"):
            self = .xavier
        case .string(let other):
            throw initNode.problem("unknown initialization \"\(other)\"; \(expected)")
        case .object:
            let initMembers = try initNode.members()
            try initMembers.allowOnly(["uniform"], in: "an initialization")
            let bounds = try initMembers.required("uniform", "missing; \(expected)").numbers()
            guard bounds.count == 2 else {
                throw Problem(initNode.child("uniform"), "expected two numbers [a, b], got \(bounds.count)")
            }
            self = .uniform(bounds[0], bounds[1])
        default:
            throw initNode.problem("expected a string or an object (\(expected)), got \(initNode.value.summary)")
        }
    }
}

private extension LossKind {
    init(node: Node) throws {
        let members = try node.members()
        let allowed = LossKind.allCases.map(\.rawValue).joined(separator: ", ")
        let typeNode = try members.required("type", "missing; allowed: \(allowed)")
        let type = try typeNode.string()
        guard let kind = LossKind(rawValue: type) else {
            throw typeNode.problem("unknown loss \"\(type)\"; allowed: \(allowed)")
        }
        try members.allowOnly(["type"], in: "the loss")
        self = kind
    }
}

private extension OptimizerSpec {
    init(node: Node) throws {
        let members = try node.members()
        let allowed = Keys.optimizerTypes.joined(separator: ", ")
        let typeNode = try members.required("type", "missing; allowed: \(allowed)")
        switch try typeNode.string() {
        case "sgd":
            try members.allowOnly(Keys.sgd, in: "an sgd optimizer")
            let defaults = SGDSpec()
            self = .sgd(SGDSpec(
                lr: try members["lr"]?.number() ?? defaults.lr,
                momentum: try members["momentum"]?.number() ?? defaults.momentum,
                dampening: try members["dampening"]?.number() ?? defaults.dampening,
                nesterov: try members["nesterov"]?.bool() ?? defaults.nesterov,
                weightDecay: try members["weightDecay"]?.number() ?? defaults.weightDecay))
        case "adam":
            try members.allowOnly(Keys.adam, in: "an adam optimizer")
            let defaults = AdamSpec()
            self = .adam(AdamSpec(
                lr: try members["lr"]?.number() ?? defaults.lr,
                beta1: try members["beta1"]?.number() ?? defaults.beta1,
                beta2: try members["beta2"]?.number() ?? defaults.beta2,
                eps: try members["eps"]?.number() ?? defaults.eps,
                weightDecay: try members["weightDecay"]?.number() ?? defaults.weightDecay))
        case let other:
            throw typeNode.problem("unknown optimizer \"\(other)\"; allowed: \(allowed)")
        }
    }
}

private extension TrainingSpec {
    init(node: Node) throws {
        let members = try node.members()
        try members.allowOnly(Keys.training, in: "training")
        let defaults = TrainingSpec()
        self.init(epochs: try members["epochs"]?.integer() ?? defaults.epochs,
                  batchSize: try members["batchSize"]?.integer() ?? defaults.batchSize,
                  shuffle: try members["shuffle"]?.bool() ?? defaults.shuffle)
    }
}

// MARK: - Stage 3: consistency and limits

private extension Experiment {
    /// Throws the first `Problem` found, in file order: seed, name, model, data, loss, optimizer, training.
    func check() throws {
        guard seed < 1 << 63 else { throw Problem("seed", "must be below 2^63, got \(seed)") }
        guard !name.isEmpty else { throw Problem("name", "must not be empty") }
        try model.check()
        try checkData()
        try checkLoss()
        try optimizer.check()
        try training.check()
        try checkSampleVisits()
    }

    /// epochs × train points within `maxSampleVisits` (computed without overflow).
    private func checkSampleVisits() throws {
        let trainPoints: Int
        switch data {
        case .disk(let train, _): trainPoints = train
        case .xor: trainPoints = 4
        case .explicit(let train, _): trainPoints = train.inputs.count
        }
        let (visits, overflow) = training.epochs.multipliedReportingOverflow(by: trainPoints)
        guard !overflow && visits <= Experiment.maxSampleVisits else {
            let product = overflow ? "more than \(Int.max)" : "\(visits)"
            throw Problem("training.epochs", "\(training.epochs) epochs × \(trainPoints) train points = \(product) sample "
                              + "visits, more than the limit of \(Experiment.maxSampleVisits)")
        }
    }

    private func checkData() throws {
        switch data {
        case .disk(let train, let test):
            try checkPointCount(train, "data.disk.train")
            try checkPointCount(test, "data.disk.test")
            try checkTwoClassModel(kind: "disk")
        case .xor:
            try checkTwoClassModel(kind: "xor")
        case .explicit(let train, let test):
            let trainWidths = try train.check(path: "data.train", bce: loss == .bce)
            let testWidths = try test.check(path: "data.test", bce: loss == .bce)
            guard testWidths.inputs == trainWidths.inputs else {
                throw Problem("data.test.inputs", "rows of \(counted(testWidths.inputs, "number")), "
                                  + "but the train inputs have \(trainWidths.inputs)")
            }
            guard testWidths.targets == trainWidths.targets else {
                throw Problem("data.test.targets", "rows of \(counted(testWidths.targets, "number")), "
                                  + "but the train targets have \(trainWidths.targets)")
            }
            guard model.inputWidth == trainWidths.inputs else {
                throw Problem("model.layers[0].in",
                              "\(model.inputWidth), but the data inputs are \(trainWidths.inputs) wide")
            }
            guard model.outputWidth == trainWidths.targets else {
                throw Problem("\(model.lastLinearPath).out",
                              "\(model.outputWidth), but the data targets are \(trainWidths.targets) wide")
            }
        }
    }

    private func checkPointCount(_ count: Int, _ path: String) throws {
        guard count >= 1 else { throw Problem(path, "must be a positive integer, got \(count)") }
        guard count <= Experiment.maxDataPoints else {
            throw Problem(path, "\(count) points, more than the limit of \(Experiment.maxDataPoints)")
        }
    }

    /// disk and xor: 2-wide inputs, labels 0/1 as one 0/1 column or a one-hot pair.
    private func checkTwoClassModel(kind: String) throws {
        guard model.inputWidth == 2 else {
            throw Problem("model.layers[0].in", "\(model.inputWidth), but \(kind) data is 2 wide")
        }
        guard model.outputWidth == 1 || model.outputWidth == 2 else {
            throw Problem("\(model.lastLinearPath).out",
                          "\(model.outputWidth), but \(kind) data has two classes: use 1 output (a 0/1 column) "
                              + "or 2 (one-hot)")
        }
    }

    private func checkLoss() throws {
        switch loss {
        case .bce:
            guard let last = model.layers.last, last == .sigmoid else {
                let lastName = model.layers.last?.typeName ?? "nothing"
                throw Problem("loss.type", "bce needs probabilities: the last layer must be sigmoid, but "
                                  + "model.layers[\(model.layers.count - 1)] is \(lastName)")
            }
        case .crossEntropy:
            guard model.outputWidth >= 2 else {
                throw Problem("loss.type",
                              "crossEntropy needs at least two outputs, but the model gives \(model.outputWidth)")
            }
        case .mse, .mae:
            break
        }
    }
}

private extension ModelSpec {
    /// "model.layers[k]" for the last linear layer (the one whose `out` is the output width).
    var lastLinearPath: String {
        let index = layers.lastIndex { if case .linear = $0 { return true } else { return false } } ?? 0
        return "model.layers[\(index)]"
    }

    func check() throws {
        guard let first = layers.first else {
            throw Problem("model.layers", "must not be empty: a model needs at least one linear layer")
        }
        guard case .linear = first else {
            throw Problem("model.layers[0].type", "the model must start with a linear layer, got \(first.typeName)")
        }
        // Sizes first, before any array is looked at.
        var previousOut: Int?
        for (index, layer) in layers.enumerated() {
            let path = "model.layers[\(index)]"
            switch layer {
            case .linear(let inWidth, let outWidth, _):
                try Self.checkWidth(inWidth, "\(path).in")
                try Self.checkWidth(outWidth, "\(path).out")
                if let previousOut, inWidth != previousOut {
                    throw Problem("\(path).in", "\(inWidth), but the previous layer gives \(previousOut)")
                }
                previousOut = outWidth
            case .leakyRelu(let slope):
                try checkFinite(slope, "\(path).slope")
            case .relu, .tanh, .sigmoid:
                break
            }
        }
        guard parameterCount <= Experiment.maxParameters else {
            throw Problem("model.layers",
                          "\(parameterCount) parameters in total, more than the limit of \(Experiment.maxParameters)")
        }
        for (index, layer) in layers.enumerated() {
            guard case .linear(let inWidth, let outWidth, let initialization) = layer else { continue }
            try initialization.check(path: "model.layers[\(index)]", in: inWidth, out: outWidth)
        }
    }

    private static func checkWidth(_ width: Int, _ path: String) throws {
        guard width >= 1 else { throw Problem(path, "must be a positive integer, got \(width)") }
        guard width <= Experiment.maxLayerWidth else {
            throw Problem(path, "\(width) units, more than the limit of \(Experiment.maxLayerWidth) per layer")
        }
    }
}

private extension Initialization {
    /// `path` is the layer's, "model.layers[i]".
    func check(path: String, in inWidth: Int, out outWidth: Int) throws {
        switch self {
        case .default, .xavier:
            break
        case .uniform(let low, let high):
            try checkFinite(low, "\(path).init.uniform[0]")
            try checkFinite(high, "\(path).init.uniform[1]")
            guard low < high else {
                throw Problem("\(path).init.uniform", "needs a < b, got [\(format(low)), \(format(high))]")
            }
        case .explicit(let weight, let bias):
            guard weight.count == outWidth else {
                throw Problem("\(path).weight", "\(counted(weight.count, "row")), but out is \(outWidth)")
            }
            for (row, values) in weight.enumerated() {
                guard values.count == inWidth else {
                    throw Problem("\(path).weight[\(row)]", "\(counted(values.count, "number")), but in is \(inWidth)")
                }
                for (column, value) in values.enumerated() {
                    try checkFinite(value, "\(path).weight[\(row)][\(column)]")
                }
            }
            guard bias.count == outWidth else {
                throw Problem("\(path).bias", "\(counted(bias.count, "number")), but out is \(outWidth)")
            }
            for (index, value) in bias.enumerated() {
                try checkFinite(value, "\(path).bias[\(index)]")
            }
        }
    }
}

private extension DataSetSpec {
    /// Checks counts, raggedness and values; returns the input and target widths.
    func check(path: String, bce: Bool) throws -> (inputs: Int, targets: Int) {
        guard !inputs.isEmpty else { throw Problem("\(path).inputs", "must not be empty") }
        guard inputs.count <= Experiment.maxDataPoints else {
            throw Problem("\(path).inputs", "\(inputs.count) rows, more than the limit of \(Experiment.maxDataPoints)")
        }
        guard targets.count == inputs.count else {
            throw Problem("\(path).targets", "\(counted(targets.count, "row")), but inputs has \(inputs.count)")
        }
        let inputWidth = try Self.checkMatrix(inputs, "\(path).inputs", probabilities: false)
        let targetWidth = try Self.checkMatrix(targets, "\(path).targets", probabilities: bce)
        return (inputWidth, targetWidth)
    }

    /// Every row as wide as row 0 (and not empty), every value finite, and in [0, 1] if `probabilities`.
    private static func checkMatrix(_ rows: [[Double]], _ path: String, probabilities: Bool) throws -> Int {
        let width = rows[0].count
        guard width > 0 else { throw Problem("\(path)[0]", "must not be empty") }
        for (row, values) in rows.enumerated() {
            guard values.count == width else {
                throw Problem("\(path)[\(row)]", "\(counted(values.count, "number")), but row 0 has \(width)")
            }
            for (column, value) in values.enumerated() {
                try checkFinite(value, "\(path)[\(row)][\(column)]")
                if probabilities && !(0...1).contains(value) {
                    throw Problem("\(path)[\(row)][\(column)]", "bce needs targets in [0, 1], got \(format(value))")
                }
            }
        }
        return width
    }
}

private extension OptimizerSpec {
    func check() throws {
        switch self {
        case .sgd(let spec):
            try checkPositive(spec.lr, "optimizer.lr")
            try checkRange(spec.momentum, "optimizer.momentum", "[0, 1)") { $0 >= 0 && $0 < 1 }
            try checkRange(spec.dampening, "optimizer.dampening", "[0, 1]") { $0 >= 0 && $0 <= 1 }
            try checkNonNegative(spec.weightDecay, "optimizer.weightDecay")
            if spec.nesterov && (spec.momentum <= 0 || spec.dampening != 0) {
                throw Problem("optimizer.nesterov", "nesterov needs momentum > 0 and dampening 0 (PyTorch's rule), "
                                  + "got momentum \(format(spec.momentum)), dampening \(format(spec.dampening))")
            }
        case .adam(let spec):
            try checkPositive(spec.lr, "optimizer.lr")
            try checkRange(spec.beta1, "optimizer.beta1", "[0, 1)") { $0 >= 0 && $0 < 1 }
            try checkRange(spec.beta2, "optimizer.beta2", "[0, 1)") { $0 >= 0 && $0 < 1 }
            try checkPositive(spec.eps, "optimizer.eps")
            try checkNonNegative(spec.weightDecay, "optimizer.weightDecay")
        }
    }
}

private extension TrainingSpec {
    func check() throws {
        guard epochs >= 1 else { throw Problem("training.epochs", "must be at least 1, got \(epochs)") }
        guard epochs <= Experiment.maxEpochs else {
            throw Problem("training.epochs", "\(epochs) epochs, more than the limit of \(Experiment.maxEpochs)")
        }
        guard batchSize >= 1 else { throw Problem("training.batchSize", "must be at least 1, got \(batchSize)") }
    }
}

// Each check is written so that NaN fails it.
private func checkFinite(_ value: Double, _ path: @autoclosure () -> String) throws {
    guard value.isFinite else { throw Problem(path(), "must be a finite number, got \(format(value))") }
}

private func checkPositive(_ value: Double, _ path: String) throws {
    guard value.isFinite && value > 0 else { throw Problem(path, "must be a finite number > 0, got \(format(value))") }
}

private func checkNonNegative(_ value: Double, _ path: String) throws {
    guard value.isFinite && value >= 0 else {
        throw Problem(path, "must be a finite number >= 0, got \(format(value))")
    }
}

private func checkRange(_ value: Double, _ path: String, _ range: String, _ accepts: (Double) -> Bool) throws {
    guard accepts(value) else { throw Problem(path, "must be in \(range), got \(format(value))") }
}

/// counted(1, "row") → "1 row", counted(3, "row") → "3 rows".
private func counted(_ count: Int, _ noun: String) -> String {
    count == 1 ? "1 \(noun)" : "\(count) \(noun)s"
}

/// 2.0 → "2", 0.1 → "0.1", 2^63 → "9223372036854775808", .infinity → "inf": numbers as a user would write them.
private func format(_ value: Double) -> String {
    if value.rounded() == value, abs(value) < 1e21 { return String(format: "%.0f", value) }
    return "\(value)"
}

// MARK: - Typed values → JSON tree

private extension Experiment {
    var jsonValue: JSONValue {
        .object([
            ("name", .string(name)),
            ("seed", .number(Double(seed), integer: Int64(exactly: seed))),
            ("data", data.jsonValue),
            ("model", .object([("layers", .array(model.layers.map(\.jsonValue)))])),
            ("loss", .object([("type", .string(loss.rawValue))])),
            ("optimizer", optimizer.jsonValue),
            ("training", .object([
                ("epochs", .integer(training.epochs)),
                ("batchSize", .integer(training.batchSize)),
                ("shuffle", .bool(training.shuffle)),
            ])),
        ])
    }
}

private extension DataSpec {
    var jsonValue: JSONValue {
        switch self {
        case .disk(let train, let test):
            return .object([("disk", .object([("train", .integer(train)), ("test", .integer(test))]))])
        case .xor:
            return .object([("xor", .object([]))])
        case .explicit(let train, let test):
            return .object([("train", train.jsonValue), ("test", test.jsonValue)])
        }
    }
}

private extension DataSetSpec {
    var jsonValue: JSONValue {
        .object([("inputs", .rows(inputs)), ("targets", .rows(targets))])
    }
}

private extension LayerSpec {
    var jsonValue: JSONValue {
        switch self {
        case .linear(let inWidth, let outWidth, let initialization):
            var members: [(String, JSONValue)] = [
                ("type", .string("linear")), ("in", .integer(inWidth)), ("out", .integer(outWidth)),
            ]
            switch initialization {
            case .default: members.append(("init", .string("default")))
            case .xavier: members.append(("init", .string("xavier")))
            case .uniform(let low, let high):
                members.append(("init", .object([("uniform", .numbers([low, high]))])))
            case .explicit(let weight, let bias):
                members.append(("weight", .rows(weight)))
                members.append(("bias", .numbers(bias)))
            }
            return .object(members)
        case .relu, .tanh, .sigmoid:
            return .object([("type", .string(typeName))])
        case .leakyRelu(let slope):
            return .object([("type", .string(typeName)), ("slope", .number(slope))])
        }
    }
}

private extension OptimizerSpec {
    var jsonValue: JSONValue {
        switch self {
        case .sgd(let spec):
            return .object([
                ("type", .string(typeName)), ("lr", .number(spec.lr)), ("momentum", .number(spec.momentum)),
                ("dampening", .number(spec.dampening)), ("nesterov", .bool(spec.nesterov)),
                ("weightDecay", .number(spec.weightDecay)),
            ])
        case .adam(let spec):
            return .object([
                ("type", .string(typeName)), ("lr", .number(spec.lr)), ("beta1", .number(spec.beta1)),
                ("beta2", .number(spec.beta2)), ("eps", .number(spec.eps)),
                ("weightDecay", .number(spec.weightDecay)),
            ])
        }
    }
}

// MARK: - Reading the tree with paths

/// A JSON value and where it sits in the file: "" for the top level, "model.layers[2].in" below it.
private struct Node {
    let value: JSONValue
    let path: String

    init(_ value: JSONValue, path: String) {
        self.value = value
        self.path = path
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func element(_ index: Int) -> String { "\(path)[\(index)]" }
    func problem(_ message: String) -> Problem { Problem(path, message) }

    /// The members of an object; a key given twice is an error.
    func members() throws -> Members {
        guard case .object(let pairs) = value else { throw problem("expected an object, got \(value.summary)") }
        var values: [String: JSONValue] = [:]
        for (key, member) in pairs {
            guard values.updateValue(member, forKey: key) == nil else {
                throw Problem(child(key), "given twice")
            }
        }
        return Members(node: self, keys: pairs.map(\.0), values: values)
    }

    func array() throws -> [Node] {
        guard case .array(let elements) = value else { throw problem("expected an array, got \(value.summary)") }
        return elements.enumerated().map { Node($1, path: element($0)) }
    }

    /// Any JSON number, including ±infinity from literals such as 1e999 (validation rejects those later).
    func number() throws -> Double {
        guard case .number(let number, _) = value else { throw problem("expected a number, got \(value.summary)") }
        return number
    }

    /// A JSON number with an integral value that fits `Int` (2 and 2.0 and 2e0 alike).
    func integer() throws -> Int {
        guard case .number(let number, let exact) = value else {
            throw problem("expected an integer, got \(value.summary)")
        }
        if let exact { return Int(exact) }
        guard number.isFinite, number.rounded() == number else {
            throw problem("expected an integer, got \(format(number))")
        }
        guard let integer = Int(exactly: number) else {
            throw problem("expected an integer, got \(format(number)), out of range")
        }
        return integer
    }

    func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw problem("expected true or false, got \(value.summary)") }
        return flag
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw problem("expected a string, got \(value.summary)") }
        return text
    }

    /// An array of numbers: (count).
    func numbers() throws -> [Double] {
        guard case .array(let elements) = value else {
            throw problem("expected an array of numbers, got \(value.summary)")
        }
        return try elements.enumerated().map { index, element in
            guard case .number(let number, _) = element else {
                throw Problem(self.element(index), "expected a number, got \(element.summary)")
            }
            return number
        }
    }

    /// An array of arrays of numbers: (rows, columns), not checked for raggedness here.
    func rows() throws -> [[Double]] {
        guard case .array(let elements) = value else {
            throw problem("expected an array of rows (arrays of numbers), got \(value.summary)")
        }
        return try elements.enumerated().map { try Node($1, path: element($0)).numbers() }
    }
}

/// An object's members, in file order for messages and by key for lookup.
private struct Members {
    let node: Node
    let keys: [String]
    let values: [String: JSONValue]

    subscript(key: String) -> Node? {
        values[key].map { Node($0, path: node.child(key)) }
    }

    /// The member `key`, or a problem at its path saying `missing` (what was expected).
    func required(_ key: String, _ missing: String) throws -> Node {
        guard let member = self[key] else { throw Problem(node.child(key), missing) }
        return member
    }

    /// Every key must be one of `allowed`; the first other key is an error naming it and listing `allowed`.
    func allowOnly(_ allowed: [String], in context: String? = nil) throws {
        for key in keys where !allowed.contains(key) {
            let place = context.map { " in \($0)" } ?? ""
            let list = allowed.isEmpty ? "none" : allowed.joined(separator: ", ")
            var message = "unknown key \"\(key)\"\(place); allowed: \(list)"
            if let guess = closestKey(to: key, in: allowed) { message += " (did you mean \"\(guess)\"?)" }
            throw Problem(node.child(key), message)
        }
    }
}

/// The allowed key within edit distance 2 of a misspelt one (case ignored), if there is exactly one best.
private func closestKey(to key: String, in allowed: [String]) -> String? {
    let scored = allowed.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2,
          scored.filter({ $0.1 == best.1 }).count == 1 else { return nil }
    return best.0
}

/// Levenshtein distance.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

// MARK: - Stage 1: the JSON tree and its parser

/// A parsed JSON value. Booleans and numbers are distinct; a number keeps its exact integer value when its
/// literal has neither fraction nor exponent and fits `Int64`.
private indirect enum JSONValue: Encodable {
    case null
    case bool(Bool)
    case number(Double, integer: Int64?)
    case string(String)
    case array([JSONValue])
    /// Members in file order (duplicates kept, so that they can be reported).
    case object([(String, JSONValue)])

    static func number(_ value: Double) -> JSONValue { .number(value, integer: nil) }
    static func integer(_ value: Int) -> JSONValue { .number(Double(value), integer: Int64(value)) }
    static func numbers(_ values: [Double]) -> JSONValue { .array(values.map { .number($0) }) }
    static func rows(_ rows: [[Double]]) -> JSONValue { .array(rows.map { .numbers($0) }) }

    /// "an array", "a string (\"0.1\")", "true", "null": what was found, for messages.
    var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number, let integer): return integer.map { String($0) } ?? format(number)
        case .string(let text):
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            return "a string (\"\(shown)\")"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The Foundation form, as JSONSerialization would give it: Int for exact integers, else Double.
    var foundationObject: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let flag): return flag
        case .number(let number, let integer): return integer.map { Int($0) as Any } ?? number
        case .string(let text): return text
        case .array(let elements): return elements.map(\.foundationObject)
        case .object(let members):
            return Dictionary(members.map { ($0.0, $0.1.foundationObject) }, uniquingKeysWith: { _, last in last })
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number, let integer):
            if let integer { try container.encode(integer) } else { try container.encode(number) }
        case .string(let text): try container.encode(text)
        case .array(let elements): try container.encode(elements)
        case .object(let members):
            try container.encode(Dictionary(members, uniquingKeysWith: { _, last in last }))
        }
    }

    /// Parses one JSON document (RFC 8259; a UTF-8 byte-order mark is skipped).
    static func parse(_ data: Data) throws -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data))
        return try parser.parseDocument()
    }
}

/// Where and why the text is not JSON.
private struct JSONSyntaxError: Error {
    var offset: Int
    var line: Int
    var column: Int
    var reason: String

    /// "not valid JSON: <what JSONSerialization says> (line L, column C: <our reason>)", or just our reason
    /// where JSONSerialization is more lenient (it accepts a trailing comma, for one).
    func message(for data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let description = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                return "not valid JSON: \(description) (line \(line), column \(column): \(reason))"
            }
        }
        return "not valid JSON: \(reason) (line \(line), column \(column))"
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var index = 0
    /// Deeper documents are refused rather than risking the stack.
    static let maxDepth = 512

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected \(currentByte) after the JSON value") }
        return value
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) levels deep") }
        guard index < bytes.count else { throw error("unexpected end of file, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected \(currentByte), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        index += 1  // {
        var members: [(String, JSONValue)] = []
        skipWhitespace()
        if peek(is: "}") { index += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard peek(is: "\"") else { throw error("unexpected \(currentByte), expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard peek(is: ":") else { throw error("unexpected \(currentByte), expected ':' after a key") }
            index += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            if peek(is: ",") { index += 1; continue }
            if peek(is: "}") { index += 1; return .object(members) }
            throw error("unexpected \(currentByte), expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek(is: "]") { index += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if peek(is: ",") { index += 1; continue }
            if peek(is: "]") { index += 1; return .array(elements) }
            throw error("unexpected \(currentByte), expected ',' or ']' in an array")
        }
    }

    private mutating func parseString() throws -> String {
        index += 1  // "
        var utf8: [UInt8] = []
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    throw error("a string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek(is: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("a \\u escape is half of a surrogate pair")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("a \\u escape is half of a surrogate pair")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else {
                        throw error("a \\u escape is half of a surrogate pair")
                    }
                    UTF8.encode(unicode) { utf8.append($0) }
                default:
                    index -= 1
                    throw error("unknown escape \\\(Character(Unicode.Scalar(escape)))")
                }
            case 0..<0x20:
                throw error("control character U+\(String(byte, radix: 16, uppercase: true)) in a string")
            default:
                utf8.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = hexValue(bytes[index]) else {
                throw error("a \\u escape needs four hexadecimal digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; out-of-range literals become ±infinity or 0.
    private mutating func parseNumber() throws -> JSONValue {
        let start = index
        if peek(is: "-") { index += 1 }
        guard isDigit else { throw error("unexpected \(currentByte), expected a digit") }
        if peek(is: "0") {
            index += 1
            if isDigit { throw error("a number has a leading zero") }
        } else {
            while isDigit { index += 1 }
        }
        var isIntegerLiteral = true
        if peek(is: ".") {
            isIntegerLiteral = false
            index += 1
            guard isDigit else { throw error("unexpected \(currentByte), expected a digit after '.'") }
            while isDigit { index += 1 }
        }
        if peek(is: "e") || peek(is: "E") {
            isIntegerLiteral = false
            index += 1
            if peek(is: "+") || peek(is: "-") { index += 1 }
            guard isDigit else { throw error("unexpected \(currentByte), expected a digit in the exponent") }
            while isDigit { index += 1 }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let number = Double(text) else { throw error("cannot read the number \(text)") }
        return .number(number, integer: isIntegerLiteral ? Int64(text) : nil)
    }

    private mutating func expectLiteral(_ literal: String) throws {
        for expected in literal.utf8 {
            guard index < bytes.count, bytes[index] == expected else {
                throw error("unexpected \(currentByte), expected \(literal)")
            }
            index += 1
        }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek(is character: Unicode.Scalar) -> Bool {
        index < bytes.count && bytes[index] == UInt8(ascii: character)
    }

    private var isDigit: Bool {
        index < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
    }

    private func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// "end of file", "'x'", or "byte 0xC3" for what sits at the current position.
    private var currentByte: String {
        guard index < bytes.count else { return "end of file" }
        let byte = bytes[index]
        return (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'"
            : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    /// A syntax error at the current position; lines and columns count from 1, columns in bytes.
    private func error(_ reason: String) -> JSONSyntaxError {
        let end = min(index, bytes.count)
        var line = 1, lineStart = 0
        for position in 0..<end where bytes[position] == 0x0A {
            line += 1
            lineStart = position + 1
        }
        return JSONSyntaxError(offset: end, line: line, column: end - lineStart + 1, reason: reason)
    }
}
