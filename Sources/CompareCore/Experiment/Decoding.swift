import Foundation
import Framework

// Experiment files: JSON → a validated `Experiment`, in three stages, each with its own errors, all reported
// as `ExperimentError(file:path:message:)`:
//   1. `JSONValue.parse` (JSON/JSONValue.swift): the text → a JSON tree.
//   2. here: the tree → typed values. Unknown keys, wrong JSON types, missing required keys, unknown type
//      names and explicit arrays of the wrong shape stop here.
//   3. `Experiment.check()` (Validation.swift): the typed values → consistent ones: widths that chain, sizes
//      within limits, finite numbers, hyperparameters in range. The same check runs again after command-line
//      overrides.

extension Experiment {
    /// Reads, parses and validates the experiment file at `url`. Errors name the file as `url.relativePath`.
    public static func load(contentsOf url: URL) throws -> Experiment {
        let file = url.isFileURL ? url.relativePath : url.absoluteString
        let data: Data
        do {
            data = try readFile(url, limit: maxFileBytes)
        } catch let error as FileReadError {
            throw ExperimentError(file: file, path: "", message: error.message)
        }
        return try decode(data, file: file)
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
        return try decode(json, file: file)
    }

    /// Reads and validates an experiment from a parsed tree (a fixture's inline experiment, say).
    public static func decode(_ json: JSONValue, file: String) throws -> Experiment {
        let experiment: Experiment
        do {
            experiment = try Experiment(json: JSONNode(json), defaultName: defaultName(forFile: file))
        } catch let problem as JSONProblem {
            throw ExperimentError(file: file, problem)
        }
        try experiment.validate(file: file)
        return experiment
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

private extension Experiment {
    /// Reads the typed fields from a parsed file, filling the defaults; does not check consistency.
    init(json root: JSONNode, defaultName: String) throws {
        guard case .object = root.value else {
            throw root.problem("expected a JSON object at the top level, got \(root.value.summary)")
        }
        let top = try root.members()
        try top.allowOnly(ExperimentKeys.top)

        let name = try top["name"]?.string() ?? defaultName
        let seed = try top["seed"].map(Self.seed(from:)) ?? Experiment.defaultSeed
        let data = try top["data"].map(DataSpec.init(node:))
            ?? .disk(train: DataSpec.defaultDiskSize, test: DataSpec.defaultDiskSize)
        let model = try ModelSpec(node: top.required("model", "missing: an experiment needs a model with layers"))
        let loss = try top["loss"].map(LossKind.init(node:)) ?? .mse
        let optimizer = try top["optimizer"].map(OptimizerSpec.init(node:)) ?? .sgd(SGDSpec())
        let training = try top["training"].map(TrainingSpec.init(node:)) ?? TrainingSpec()
        let trace = try top["trace"].map(TraceRequest.init(node:))
        self.init(name: name, seed: seed, data: data, model: model, loss: loss, optimizer: optimizer,
                  training: training, trace: trace)
    }

    private static func seed(from node: JSONNode) throws -> UInt64 {
        if case .number(_, let integer?) = node.value, integer >= 0 { return UInt64(integer) }
        throw node.problem("expected a non-negative integer below 2^63, got \(node.value.summary)")
    }
}

private extension TraceRequest {
    init(node: JSONNode) throws {
        let members = try node.members()
        try members.allowOnly(["steps", "epochParameters"], in: "trace")
        self.init(steps: try members["steps"]?.integer() ?? 0, epochParameters: try members["epochParameters"]?.bool() ?? false)
    }
}

private extension DataSpec {
    init(node: JSONNode) throws {
        let members = try node.members()
        let keys = members.keys
        guard !keys.isEmpty else {
            throw node.problem("expected one of \(ExperimentKeys.dataKindsText), got an empty object")
        }
        if let kind = ["disk", "xor"].first(where: { members[$0] != nil }) {
            if let other = keys.first(where: { $0 != kind }) {
                throw JSONProblem(node.child(other),
                                  "unexpected next to \"\(kind)\": data is exactly one of \(ExperimentKeys.dataKindsText)")
            }
            let spec = try members.required(kind, "")
            let kindMembers = try spec.members()
            if kind == "xor" {
                try kindMembers.allowOnly([], in: "xor data (always the same four points)")
                self = .xor
            } else {
                try kindMembers.allowOnly(["train", "test", "normalize"], in: "disk data")
                self = .disk(train: try kindMembers["train"]?.integer() ?? DataSpec.defaultDiskSize,
                             test: try kindMembers["test"]?.integer() ?? DataSpec.defaultDiskSize,
                             normalize: try kindMembers["normalize"]?.bool() ?? false)
            }
            return
        }
        for key in keys where key != "train" && key != "test" {
            throw JSONProblem(node.child(key), "unknown data kind \"\(key)\"; allowed: \(ExperimentKeys.dataKindsText)")
        }
        self = .explicit(
            train: try DataSetSpec(node: members.required("train", "missing: explicit data needs train and test")),
            test: try DataSetSpec(node: members.required("test", "missing: explicit data needs train and test")))
    }
}

private extension DataSetSpec {
    init(node: JSONNode) throws {
        let members = try node.members()
        try members.allowOnly(["inputs", "targets"], in: "a data set")
        self.init(inputs: try members.required("inputs", "missing: a data set needs inputs and targets").rows(),
                  targets: try members.required("targets", "missing: a data set needs inputs and targets").rows())
    }
}

private extension ModelSpec {
    init(node: JSONNode) throws {
        let members = try node.members()
        try members.allowOnly(["layers"], in: "the model")
        let layers = try members.required("layers", "missing: a model is a list of layers").array()
        self.init(layers: try layers.map(LayerSpec.init(node:)))
    }
}

private var layerTypeNames: String { (["linear"] + ActivationKind.all.map(\.type)).joined(separator: ", ") }

private extension LayerSpec {
    init(node: JSONNode) throws {
        let members = try node.members()
        let typeNode = try members.required("type", "missing; allowed: \(layerTypeNames)")
        let type = try typeNode.string()
        if type == "linear" {
            try members.allowOnly(ExperimentKeys.linear, in: "a linear layer")
            let inWidth = try members.required("in", "missing: a linear layer needs in and out").integer()
            let outWidth = try members.required("out", "missing: a linear layer needs in and out").integer()
            self = .linear(in: inWidth, out: outWidth,
                           initialization: try Initializer(layer: members, in: inWidth, out: outWidth))
            return
        }
        guard let kind = ActivationKind.named(type) else {
            throw typeNode.problem("unknown layer type \"\(type)\"; allowed: \(layerTypeNames)")
        }
        try members.allowOnly(["type"] + kind.parameters.map(\.name), in: "a \(type) layer")
        self = .activation(kind, parameters: try kind.parameters.map { try members[$0.name]?.number() ?? $0.default })
    }
}

private extension Initializer {
    /// From a linear layer's members: `init`, or `weight` and `bias`, or neither (`.default`). Explicit values
    /// are checked against `in` and `out` here (a `Matrix` needs rows of one length); their widths were
    /// checked against the limits first, so that no huge explicit array is looked at for nothing.
    init(layer members: JSONMembers, in inWidth: Int, out outWidth: Int) throws {
        let weight = members["weight"], bias = members["bias"], initNode = members["init"]
        if let initNode, weight != nil || bias != nil {
            throw initNode.problem("cannot be given together with weight and bias: give one or the other")
        }
        switch (weight, bias) {
        case (let weight?, let bias?):
            let path = members.node.path
            try Validation.checkWidth(inWidth, "\(path).in")
            try Validation.checkWidth(outWidth, "\(path).out")
            let rows = try weight.rows(), values = try bias.numbers()
            guard rows.count == outWidth else {
                throw JSONProblem(weight.path, "\(counted(rows.count, "row")), but out is \(outWidth)")
            }
            for (row, numbers) in rows.enumerated() {
                guard numbers.count == inWidth else {
                    throw JSONProblem(weight.element(row), "\(counted(numbers.count, "number")), but in is \(inWidth)")
                }
                for (column, value) in numbers.enumerated() {
                    try checkFinite(value, "\(weight.element(row))[\(column)]")
                }
            }
            guard values.count == outWidth else {
                throw JSONProblem(bias.path, "\(counted(values.count, "number")), but out is \(outWidth)")
            }
            for (index, value) in values.enumerated() { try checkFinite(value, bias.element(index)) }
            self = .explicit(weight: Matrix(rows), bias: Matrix([values]))
            return
        case (.some, nil):
            throw JSONProblem(members.node.child("bias"), "missing: weight and bias come together (both or neither)")
        case (nil, .some):
            throw JSONProblem(members.node.child("weight"), "missing: weight and bias come together (both or neither)")
        case (nil, nil):
            break
        }
        guard let initNode else {
            self = .default
            return
        }
        switch initNode.value {
        case .string("default"):
            self = .default
        case .string("xavier"):
            self = .xavier
        case .string(let other):
            throw initNode.problem("unknown initialization \"\(other)\"; \(InitializationName.expected)")
        case .object:
            let initMembers = try initNode.members()
            try initMembers.allowOnly(["uniform"], in: "an initialization")
            let boundsNode = try initMembers.required("uniform", "missing; \(InitializationName.expected)")
            let bounds = try boundsNode.numbers()
            guard bounds.count == 2 else {
                throw boundsNode.problem("expected two numbers [a, b], got \(bounds.count)")
            }
            try checkFinite(bounds[0], "\(boundsNode.path)[0]")
            try checkFinite(bounds[1], "\(boundsNode.path)[1]")
            guard bounds[0] < bounds[1] else {
                throw boundsNode.problem("needs a < b, got [\(formatNumber(bounds[0])), \(formatNumber(bounds[1]))]")
            }
            self = .uniform(bounds[0], bounds[1])
        default:
            throw initNode.problem("expected a string or an object (\(InitializationName.expected)), got \(initNode.value.summary)")
        }
    }
}

private extension LossKind {
    init(node: JSONNode) throws {
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
    init(node: JSONNode) throws {
        let members = try node.members()
        let allowed = OptimizerSpec.kinds.map { $0.type }.joined(separator: ", ")
        let typeNode = try members.required("type", "missing; allowed: \(allowed)")
        let type = try typeNode.string()
        guard let kind = OptimizerSpec.kinds.first(where: { $0.type == type }) else {
            throw typeNode.problem("unknown optimizer \"\(type)\"; allowed: \(allowed)")
        }
        func read<C: OptimizerConfiguration>(_: C.Type) throws -> C {
            try members.allowOnly(["type"] + C.hyperparameterNames, in: "an \(C.type) optimizer")
            var configuration = C()
            for field in C.hyperparameters {
                switch field {
                case let .number(name, path): if let value = try members[name]?.number() { configuration[keyPath: path] = value }
                case let .flag(name, path): if let value = try members[name]?.bool() { configuration[keyPath: path] = value }
                }
            }
            return configuration
        }
        self.init(try read(kind))
    }
}

private extension TrainingSpec {
    init(node: JSONNode) throws {
        let members = try node.members()
        try members.allowOnly(ExperimentKeys.training, in: "training")
        let defaults = TrainingSpec()
        var orders: [[Int]]? = nil
        if let node = members["orders"] {
            orders = try node.array().map { try $0.array().map { try $0.integer() } }
        }
        if orders != nil, let shuffle = members["shuffle"], case .bool(false) = shuffle.value {
            throw shuffle.problem("false contradicts orders, which give each epoch's order (leave shuffle out)")
        }
        self.init(epochs: try members["epochs"]?.integer() ?? defaults.epochs,
                  batchSize: try members["batchSize"]?.integer() ?? defaults.batchSize,
                  shuffle: try members["shuffle"]?.bool() ?? defaults.shuffle,
                  orders: orders)
    }
}

// MARK: - Reading files with a bound

/// A file that could not be read: the reason, in words for an error message.
public struct FileReadError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The bytes of the file at `url`, refusing more than `limit` of them without reading further (so that a device
/// or a pipe that never ends cannot exhaust memory). Errors say why: missing, a loop of symbolic links, a folder,
/// too large, unreadable (stat(2)'s own reason, so that a loop or a permission is not called missing).
public func readFile(_ url: URL, limit: Int) throws -> Data {
    var status = stat()
    guard stat(url.path, &status) == 0 else {
        switch errno {
        case ENOENT: throw FileReadError(message: "cannot read the file: it does not exist")
        case ELOOP: throw FileReadError(message: "cannot read the file: its symbolic links form a loop")
        default: throw FileReadError(message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
    }
    guard status.st_mode & S_IFMT != S_IFDIR else { throw FileReadError(message: "cannot read the file: it is a directory") }
    do {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            data.append(chunk)
            if data.count > limit { throw FileReadError(message: "the file is larger than the limit of \(limit) bytes") }
        }
        return data
    } catch let error as FileReadError {
        throw error
    } catch {
        throw FileReadError(message: "cannot read the file: \(error.localizedDescription)")
    }
}

/// counted(1, "row") → "1 row", counted(3, "row") → "3 rows".
public func counted(_ count: Int, _ noun: String) -> String {
    count == 1 ? "1 \(noun)" : "\(count) \(noun)s"
}

/// Throws unless `value` is finite (NaN fails).
func checkFinite(_ value: Double, _ path: @autoclosure () -> String) throws {
    guard value.isFinite else { throw JSONProblem(path(), "must be a finite number, got \(formatNumber(value))") }
}
