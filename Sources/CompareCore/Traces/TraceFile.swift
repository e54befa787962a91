import Foundation
import Framework

// Trace files, version 2 (and 1, read as before; docs/trace-format.md): reading, with every error naming the file, the JSON path and
// what was expected, and checked against the experiment the trace claims to be of; and writing.

/// A trace file that cannot be used: the file, the JSON path, what was expected.
public struct TraceError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var path: String
    public var message: String

    public init(file: String, path: String, message: String) {
        self.file = file
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)" }
}

extension Trace {
    public static let formatName = "minidl-trace"
    /// Written; version 1 (no per-epoch parameters) is read too.
    public static let version = 2
    /// The largest trace file read: 500 000 000 bytes (a trace with many steps of a wide network is large).
    public static let maxFileBytes = 500_000_000

    /// Reads the trace at `url` and checks it against `experiment`.
    public static func load(contentsOf url: URL, experiment: Experiment) throws -> Trace {
        let file = url.relativePath
        let data: Data
        do {
            data = try readFile(url, limit: maxFileBytes)
        } catch let error as FileReadError {
            throw TraceError(file: file, path: "", message: error.message)
        }
        return try decode(data, file: file, experiment: experiment)
    }

    /// Parses a trace (version 2 or 1, or a PyTorch fixture `*.torch.json`: `experiment`, `epochs`, `parameters`)
    /// and checks it against `experiment`: its name, the epochs (in order, 0…E, or 0…d − 1 before a
    /// divergence at epoch d; a trace whose first entry is epoch 1 is read, and judged as missing epoch 0),
    /// the divergence, and every tensor's name and shape.
    public static func decode(_ data: Data, file: String, experiment: Experiment) throws -> Trace {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch let error as JSONSyntaxError {
            throw TraceError(file: file, path: "", message: error.message(for: data))
        }
        do {
            return try TraceReader(experiment: experiment).read(JSONNode(json))
        } catch let problem as JSONProblem {
            throw TraceError(file: file, path: problem.path, message: problem.message)
        }
    }

    /// The trace as a version-2 file (per-epoch parameters in the epochs, when it has them).
    public var jsonValue: JSONValue {
        var members: [(String, JSONValue)] = [
            ("format", .string(Trace.formatName)), ("version", .integer(Trace.version)),
            ("experiment", .string(experiment)), ("engine", .string(engine)),
            ("epochs", .array(epochs.map { epoch in
                guard let tensors = checkpoints[epoch.epoch], case var .object(pairs) = epoch.jsonValue else { return epoch.jsonValue }
                pairs.append(("parameters", .object(TensorName.ordered(tensors.keys).map { ($0, tensors[$0]!.jsonValue) })))
                return .object(pairs)
            })),
            ("divergence", divergence.map(\.jsonValue) ?? .null),
        ]
        if let seconds { members.append(("seconds", .number(seconds))) }
        if let initialParameters {
            members.append(("initialParameters", .object(TensorName.ordered(initialParameters.keys).map { ($0, initialParameters[$0]!.jsonValue) })))
        }
        if let finalParameters {
            members.append(("parameters", .array(finalParameters.map {
                .object([("weight", .rows($0.weight.rowArrays)), ("bias", .numbers($0.bias.elements))])
            })))
        }
        if !steps.isEmpty {
            members.append(("steps", .array(steps.map { step in
                .object([("epoch", .integer(step.epoch)), ("batch", .integer(step.batch)),
                         ("tensors", .object(TensorName.ordered(step.tensors.keys).map { ($0, step.tensors[$0]!.jsonValue) }))])
            })))
        }
        return .object(members)
    }
}

extension EpochMetrics {
    var jsonValue: JSONValue {
        .object([("epoch", .integer(epoch)), ("trainLoss", .number(trainLoss)), ("testLoss", .number(testLoss)),
                 ("trainAccuracy", .number(trainAccuracy)), ("testAccuracy", .number(testAccuracy))])
    }

    /// One epoch's entry, numbers possibly "NaN"/"Infinity" strings; `extraKeys` are allowed beside the metrics
    /// (and read by the caller).
    init(node: JSONNode, extraKeys: [String] = []) throws {
        let members = try node.members()
        try members.allowOnly(["epoch", "trainLoss", "testLoss", "trainAccuracy", "testAccuracy"] + extraKeys, in: "an epoch")
        func number(_ key: String) throws -> Double {
            try members.required(key, "missing: an epoch has epoch, trainLoss, testLoss, trainAccuracy, testAccuracy")
                .numberOrNonFinite()
        }
        let epoch = try members.required("epoch", "missing: an epoch has epoch, trainLoss, testLoss, trainAccuracy, testAccuracy").integer()
        self.init(epoch: epoch, trainLoss: try number("trainLoss"), testLoss: try number("testLoss"),
                  trainAccuracy: try number("trainAccuracy"), testAccuracy: try number("testAccuracy"))
        for key in ["trainAccuracy", "testAccuracy"] {
            let value = key == "trainAccuracy" ? trainAccuracy : testAccuracy
            guard value >= 0 && value <= 1 else {
                throw JSONProblem(node.child(key), "an accuracy is a fraction in [0, 1], got \(formatNumber(value))")
            }
        }
    }
}

extension Divergence {
    var jsonValue: JSONValue {
        .object([("epoch", .integer(epoch)), ("batch", .integer(batch)), ("loss", .number(loss))])
    }
}

extension Tensor {
    var jsonValue: JSONValue {
        switch self {
        case let .scalar(x): return .number(x)
        case let .vector(v): return .numbers(v)
        case let .matrix(m): return .rows(m.rowArrays)
        }
    }
}

extension TensorName {
    /// Names in computation order: every layer's output, the loss and its gradient, the layers' dInput and
    /// gradients from the last layer down, then the parameters and the optimizer state after the update.
    static func ordered<S: Sequence>(_ names: S) -> [String] where S.Element == String {
        func rank(_ name: String) -> (Int, Int, String) {
            let layer = TensorName.layer(of: name) ?? 0
            if name.hasSuffix(".output") { return (0, layer, name) }
            if name == TensorName.loss { return (1, 0, name) }
            if name == TensorName.lossDInput { return (2, 0, name) }
            if name.hasSuffix(".dInput") || name.hasSuffix(".dWeight") || name.hasSuffix(".dBias") {
                let part = name.hasSuffix(".dInput") ? 0 : name.hasSuffix(".dWeight") ? 1 : 2
                return (3, -layer * 3 + part, name)
            }
            return (4, layer, name)
        }
        return names.sorted { rank($0) < rank($1) }
    }
}

/// Reads a trace tree, checking it against the experiment.
private struct TraceReader {
    let experiment: Experiment
    static let keys = ["format", "version", "experiment", "engine", "epochs", "divergence", "seconds",
                       "initialParameters", "parameters", "steps"]

    func read(_ root: JSONNode) throws -> Trace {
        var version = 1
        guard case .object = root.value else {
            throw root.problem("expected a JSON object at the top level, got \(root.value.summary)")
        }
        let top = try root.members()
        try top.allowOnly(Self.keys)
        let engine: String
        if let format = top["format"] {
            guard try format.string() == Trace.formatName else {
                throw format.problem("expected \"\(Trace.formatName)\", got \(format.value.summary)")
            }
            let versionNode = try top.required("version", "missing: a trace says its version (2, or 1)")
            guard case let .number(_, v?) = versionNode.value, v == 1 || v == 2 else {
                throw versionNode.problem("expected the integer 2 or 1 (the versions this build reads), got \(versionNode.value.summary)")
            }
            version = Int(v)
            engine = try top.required("engine", "missing: a trace names its engine (free text)").string()
        } else if Set(top.keys).isSubset(of: ["experiment", "epochs", "parameters"]) {
            engine = "PyTorch"  // a PyTorch fixture, read as version 1
        } else {
            throw JSONProblem("format", "missing: a trace starts with \"format\": \"\(Trace.formatName)\", \"version\": 1")
        }
        let name = try top.required("experiment", "missing: the experiment's name").string()
        guard name == experiment.name else {
            throw JSONProblem("experiment", "\"\(name)\", but the experiment is named \"\(experiment.name)\"")
        }
        let divergence = try top["divergence"].flatMap { $0.isNull ? nil : try readDivergence($0) }
        let epochsNode = try top.required("epochs", "missing: the per-epoch evaluation")
        let epochs = try readEpochs(epochsNode, divergence: divergence, version: version)
        var checkpoints: [Int: [String: Tensor]] = [:]
        if version >= 2 {
            for (entry, metrics) in zip(try epochsNode.array(), epochs) {
                if let node = try entry.members()["parameters"] { checkpoints[metrics.epoch] = try readCheckpoint(node) }
            }
        }
        let seconds = try top["seconds"].map { node -> Double in
            let value = try node.number()
            guard value.isFinite && value >= 0 else { throw node.problem("must be a number of seconds ≥ 0, got \(formatNumber(value))") }
            return value
        }
        let initial = try top["initialParameters"].map { try readParameters($0) }
        let final = try top["parameters"].map { try readFinalParameters($0) }
        let steps = try top["steps"].map { try readSteps($0, divergence: divergence) } ?? []
        return Trace(experiment: name, engine: engine, epochs: epochs, divergence: divergence, seconds: seconds,
                     initialParameters: initial, finalParameters: final, steps: steps, checkpoints: checkpoints)
    }

    private var epochsText: String {
        "the experiment has \(experiment.training.epochs) epochs plus epoch 0 (\(experiment.training.epochs + 1) entries)"
    }

    func readDivergence(_ node: JSONNode) throws -> Divergence {
        let members = try node.members()
        try members.allowOnly(["epoch", "batch", "loss"], in: "divergence")
        let epoch = try members.required("epoch", "missing: where the loss became NaN/∞, {\"epoch\": e, \"batch\": b}").integer()
        let batch = try members.required("batch", "missing: where the loss became NaN/∞, {\"epoch\": e, \"batch\": b}").integer()
        guard epoch >= 1 && epoch <= experiment.training.epochs else {
            throw JSONProblem(node.child("epoch"), "must be from 1 to \(experiment.training.epochs) (1-based), got \(epoch)")
        }
        let batches = batchesPerEpoch
        guard batch >= 1 && batch <= batches else {
            throw JSONProblem(node.child("batch"), "must be from 1 to \(batches) (1-based; \(batches) batches per epoch), got \(batch)")
        }
        let loss = try members["loss"]?.numberOrNonFinite() ?? .nan
        guard !loss.isFinite else {
            throw JSONProblem(node.child("loss"), "\(formatNumber(loss)) is finite, but a divergence is where the loss became NaN or ±∞ "
                              + "(give \"NaN\", \"Infinity\" or \"-Infinity\", or leave it out)")
        }
        return Divergence(epoch: epoch, batch: batch, loss: loss)
    }

    var batchesPerEpoch: Int { ceilingDivision(experiment.data.trainCount, experiment.training.batchSize) }

    func readEpochs(_ node: JSONNode, divergence: Divergence?, version: Int) throws -> [EpochMetrics] {
        let entries = try node.array()
        let last = divergence.map { $0.epoch - 1 } ?? experiment.training.epochs
        let expected = last + 1
        guard !entries.isEmpty else { throw node.problem("empty, but \(epochsText)") }
        guard entries.count <= expected else {
            let why = divergence.map { "the run diverged at epoch \($0.epoch), so it has epochs 0…\($0.epoch - 1) (\(expected) entries)" } ?? epochsText
            throw node.problem("\(entries.count) entries, but \(why)")
        }
        let epochs = try entries.map { try EpochMetrics(node: $0, extraKeys: version >= 2 ? ["parameters"] : []) }
        let first = epochs[0].epoch
        guard first == 0 || first == 1 else {
            throw JSONProblem(entries[0].child("epoch"), "the first entry must be epoch 0 (the evaluation before any update), got \(first)")
        }
        for (k, e) in epochs.enumerated() where e.epoch != first + k {
            throw JSONProblem(entries[k].child("epoch"), "\(e.epoch), but the entries must be consecutive epochs: expected \(first + k)")
        }
        guard epochs.last!.epoch == last else {
            let why = divergence.map { "the run diverged at epoch \($0.epoch), so it ends at epoch \($0.epoch - 1)" }
                ?? "\(epochsText); the last entry must be epoch \(last) (or the trace must say where it diverged)"
            throw node.problem("\(entries.count) entries, ending at epoch \(epochs.last!.epoch), but \(why)")
        }
        return epochs
    }

    /// What each layer index of the model is: its input and output widths and, for linear layers, (out, in).
    var layerShapes: [(input: Int, output: Int, linear: Bool)] {
        var width = experiment.model.inputWidth
        return experiment.model.layers.map { layer in
            switch layer {
            case let .linear(i, o, _):
                defer { width = o }
                return (i, o, true)
            case .activation:
                return (width, width, false)
            }
        }
    }

    /// The expected shape of `name` for a batch of `rows`, or why the name is not one this model has.
    func expectedShape(_ name: String, rows: Int?) -> Result<(rows: Int, columns: Int, kind: String), JSONProblem> {
        let shapes = layerShapes
        if name == TensorName.loss { return .success((1, 1, "scalar")) }
        if name == TensorName.lossDInput {
            return .success((rows ?? -1, experiment.model.outputWidth, "matrix"))
        }
        guard let i = TensorName.layer(of: name), i >= 0, i < shapes.count else {
            return .failure(JSONProblem("", "not a tensor of this model; names are layers[i].output, loss, loss.dInput, layers[i].dInput, "
                                        + "layers[i].dWeight, layers[i].dBias, layers[i].weight, layers[i].bias and the optimizer state "
                                        + "layers[i].weight.momentum, .m, .v, with i from 0 to \(shapes.count - 1)"))
        }
        let suffix = String(name.dropFirst("layers[\(i)]".count))
        let shape = shapes[i]
        switch suffix {
        case ".output": return .success((rows ?? -1, shape.output, "matrix"))
        case ".dInput": return .success((rows ?? -1, shape.input, "matrix"))
        default: break
        }
        guard shape.linear else {
            return .failure(JSONProblem("", "layer \(i) is \(experiment.model.layers[i].typeName), which has no parameters"))
        }
        let parameter = suffix.hasPrefix(".weight") || suffix == ".dWeight" ? "weight" : "bias"
        let valid = [".weight", ".bias", ".dWeight", ".dBias"] + TensorName.states.flatMap { [".weight.\($0)", ".bias.\($0)"] }
        guard valid.contains(suffix) else {
            return .failure(JSONProblem("", "not a tensor name of the trace format (docs/trace-format.md)"))
        }
        return .success(parameter == "weight" ? (shape.output, shape.input, "matrix") : (1, shape.output, "vector"))
    }

    func readTensor(_ node: JSONNode, name: String, rows: Int?) throws -> Tensor {
        let expected: (rows: Int, columns: Int, kind: String)
        switch expectedShape(name, rows: rows) {
        case let .success(shape): expected = shape
        case let .failure(problem): throw JSONProblem(node.path, problem.message)
        }
        let layerText = TensorName.layer(of: name).map { "layer \($0) is " } ?? ""
        switch expected.kind {
        case "scalar":
            return .scalar(try node.numberOrNonFinite())
        case "vector":
            let values = try node.numbers(nonFinite: true)
            guard values.count == expected.columns else {
                throw node.problem("\(values.count) values, but \(layerText.isEmpty ? "it needs" : layerText + "\(expected.columns) wide, so it needs") \(expected.columns)")
            }
            return .vector(values)
        default:
            let matrix = try node.rows(nonFinite: true)
            let width = matrix.first?.count ?? 0
            if let ragged = matrix.firstIndex(where: { $0.count != width }) {
                throw JSONProblem(node.element(ragged), "\(counted(matrix[ragged].count, "number")), but row 0 has \(width)")
            }
            let wantRows = expected.rows >= 0 ? expected.rows : matrix.count
            guard matrix.count == wantRows && width == expected.columns else {
                let what = name.hasSuffix("eight") || name.contains(".weight.") ? "\(layerText)\(expected.rows)×\(expected.columns)"
                    : "the batch is \(wantRows) rows of \(expected.columns)"
                throw node.problem("\(matrix.count)×\(width), but \(what)")
            }
            return .matrix(Matrix(matrix))
        }
    }

    func readParameters(_ node: JSONNode) throws -> [String: Tensor] {
        let members = try node.members()
        var result: [String: Tensor] = [:]
        for key in members.keys {
            guard key.hasSuffix(".weight") || key.hasSuffix(".bias"), TensorName.layer(of: key) != nil else {
                throw JSONProblem(node.child(key), "expected layers[i].weight or layers[i].bias")
            }
            result[key] = try readTensor(members[key]!, name: key, rows: nil)
        }
        return result
    }

    /// An epoch's `parameters` (version 2): every linear layer's weight and bias, and optimizer states of the
    /// experiment's optimizer only (SGD's momentum buffer when it has momentum; Adam's m and v).
    func readCheckpoint(_ node: JSONNode) throws -> [String: Tensor] {
        let members = try node.members()
        var result: [String: Tensor] = [:]
        for key in members.keys {
            let state = TensorName.states.first { key.hasSuffix(".weight.\($0)") || key.hasSuffix(".bias.\($0)") }
            guard key.hasSuffix(".weight") || key.hasSuffix(".bias") || state != nil, TensorName.layer(of: key) != nil else {
                throw JSONProblem(node.child(key), "expected layers[i].weight, layers[i].bias or their optimizer state (.\(TensorName.states.joined(separator: ", .")))")
            }
            try checkState(key, node.child(key))
            result[key] = try readTensor(members[key]!, name: key, rows: nil)
        }
        for i in experiment.model.linearIndices {
            for name in [TensorName.weight(i), TensorName.bias(i)] where result[name] == nil {
                throw node.problem("missing \(name): an epoch's parameters hold every linear layer's weight and bias")
            }
        }
        return result
    }

    /// Throws when `name` is an optimizer state (`.momentum`, `.m`, `.v`) that the experiment's optimizer does
    /// not keep: Adam's m on an SGD run, or a momentum buffer without momentum.
    func checkState(_ name: String, _ path: String) throws {
        let states = experiment.optimizer.configuration.stateNames
        guard let state = TensorName.states.first(where: { name.hasSuffix(".weight.\($0)") || name.hasSuffix(".bias.\($0)") }),
              !states.contains(state) else { return }
        throw JSONProblem(path, "the experiment's optimizer keeps no \"\(state)\" state"
                          + (states.isEmpty ? " (it keeps none)" : " (it keeps \(states.joined(separator: ", ")))"))
    }

    func readFinalParameters(_ node: JSONNode) throws -> [(weight: Matrix, bias: Matrix)] {
        let entries = try node.array()
        let linear = experiment.model.linearIndices
        guard entries.count == linear.count else {
            throw node.problem("\(entries.count) entries, but the model has \(counted(linear.count, "linear layer"))")
        }
        return try zip(entries, linear).map { entry, i in
            let members = try entry.members()
            try members.allowOnly(["weight", "bias"], in: "a layer's parameters")
            guard case let .matrix(w) = try readTensor(try members.required("weight", "missing"), name: TensorName.weight(i), rows: nil),
                  case let .vector(b) = try readTensor(try members.required("bias", "missing"), name: TensorName.bias(i), rows: nil) else {
                throw entry.problem("expected a weight matrix and a bias array")
            }
            return (w, Matrix([b]))
        }
    }

    func readSteps(_ node: JSONNode, divergence: Divergence?) throws -> [TraceStep] {
        let entries = try node.array()
        let asked = experiment.trace?.steps ?? 0
        guard entries.count <= asked else {
            throw node.problem("\(entries.count) steps, but the experiment asks for " + (asked == 0 ? "none" : "the first \(asked)")
                               + " (\"trace\": {\"steps\": K}; docs/trace-format.md)")
        }
        let n = experiment.data.trainCount, batchSize = experiment.training.batchSize, perEpoch = batchesPerEpoch
        var previous = (0, 0)
        return try entries.map { entry in
            let members = try entry.members()
            try members.allowOnly(["epoch", "batch", "tensors"], in: "a step")
            let epoch = try members.required("epoch", "missing: a step has epoch, batch and tensors").integer()
            let batch = try members.required("batch", "missing: a step has epoch, batch and tensors").integer()
            guard epoch >= 1 && epoch <= experiment.training.epochs && batch >= 1 && batch <= perEpoch else {
                throw entry.problem("epoch \(epoch), batch \(batch), but epochs are 1…\(experiment.training.epochs) and batches "
                                    + "1…\(perEpoch) (1-based)")
            }
            guard (epoch, batch) > previous else {
                throw entry.problem("epoch \(epoch), batch \(batch) comes after epoch \(previous.0), batch \(previous.1): "
                                    + "steps are in the order the run takes them")
            }
            previous = (epoch, batch)
            if let divergence, (epoch, batch) > (divergence.epoch, divergence.batch) {
                throw entry.problem("after the divergence at epoch \(divergence.epoch), batch \(divergence.batch)")
            }
            let rows = min(batchSize, n - (batch - 1) * batchSize)
            let tensorsNode = try members.required("tensors", "missing: a step has epoch, batch and tensors")
            let tensorMembers = try tensorsNode.members()
            var tensors: [String: Tensor] = [:]
            for name in tensorMembers.keys {
                try checkState(name, tensorsNode.child(name))
                tensors[name] = try readTensor(tensorMembers[name]!, name: name, rows: rows)
            }
            return TraceStep(epoch: epoch, batch: batch, tensors: tensors)
        }
    }
}
