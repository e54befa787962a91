import Framework

// Stage 3 of reading an experiment (see Decoding.swift): typed values → consistent ones, within limits.

// MARK: - Limits

extension Experiment {
    /// The widest layer accepted: 100 000 units.
    public static let maxLayerWidth = 100_000
    /// The most weights and biases accepted over the whole model: 50 000 000.
    public static let maxParameters = 50_000_000
    /// The most points accepted in one data set (disk train or test, an explicit train or test set).
    public static let maxDataPoints = 10_000_000
    /// The most epochs accepted: 1 000 000. Every engine keeps every epoch's metrics, so a count like 10⁹ (a
    /// mistyped `--epochs`) would exhaust memory before the first step.
    public static let maxEpochs = 1_000_000
    /// The most sample visits accepted, epochs × train points: 100 000 000. Every epoch's visiting order is
    /// built before training starts (one `Int` per visit, for Reference), so this bounds that memory (about
    /// 800 MB) as well as the run time.
    public static let maxSampleVisits = 100_000_000
    /// The most optimizer steps a trace may ask for (`"trace": {"steps": K}`): 100 000.
    public static let maxTracedSteps = 100_000
    /// The largest experiment file read: 100 000 000 bytes. Parsed JSON takes several times its size in
    /// memory; a larger file (or an endless one such as /dev/zero) is refused before it is parsed.
    public static let maxFileBytes = 100_000_000
}

extension Experiment {
    /// Why `name` cannot name an experiment, or nil: it is empty, or holds a control character (a line break, an
    /// escape sequence), a line or paragraph separator, or a bidirectional override. The name reaches the
    /// terminal in every report, where a line break could forge a line ("Verdict: PASS") and an escape
    /// sequence could clear the screen; refused here, it cannot reach stdout from a file, a suite or a report.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        for scalar in name.unicodeScalars {
            let value = scalar.value
            let category = scalar.properties.generalCategory
            if category == .control || category == .lineSeparator || category == .paragraphSeparator
                || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value) {
                return "must not hold control characters (it holds U+\(String(format: "%04X", value))): it is printed in every report"
            }
        }
        return nil
    }

    /// Checks that the experiment is consistent and within limits; throws the first problem found, with the
    /// JSON path of the offending field. `decode` runs it; run it again after changing fields.
    public func validate(file: String) throws {
        do {
            try check()
        } catch let problem as JSONProblem {
            throw ExperimentError(file: file, problem)
        }
    }

    /// Throws the first `JSONProblem` found, in file order: seed, name, model, data, loss, optimizer, training.
    func check() throws {
        guard seed < 1 << 63 else { throw JSONProblem("seed", "must be below 2^63, got \(seed)") }
        if let problem = Experiment.nameProblem(name) { throw JSONProblem("name", problem) }
        try model.check()
        try checkData()
        if let problem = loss.modelProblem(model) { throw JSONProblem("loss.type", problem) }
        try optimizer.check()
        try training.check()
        try checkSampleVisits()
        try checkOrders()
        if let trace {
            guard trace.steps >= 0 && trace.steps <= Experiment.maxTracedSteps else {
                throw JSONProblem("trace.steps", "must be from 0 to \(Experiment.maxTracedSteps), got \(trace.steps)")
            }
        }
    }

    /// epochs × train points within `maxSampleVisits` (computed without overflow).
    private func checkSampleVisits() throws {
        let trainPoints = data.trainCount
        let (visits, overflow) = training.epochs.multipliedReportingOverflow(by: trainPoints)
        guard !overflow && visits <= Experiment.maxSampleVisits else {
            let product = overflow ? "more than \(Int.max)" : "\(visits)"
            throw JSONProblem("training.epochs", "\(training.epochs) epochs × \(trainPoints) train points = \(product) sample "
                              + "visits, more than the limit of \(Experiment.maxSampleVisits)")
        }
    }

    /// `orders`, when given: one permutation of 0..<n per epoch.
    private func checkOrders() throws {
        guard let orders = training.orders else { return }
        let n = data.trainCount
        guard orders.count == training.epochs else {
            throw JSONProblem("training.orders", "\(counted(orders.count, "order")), but training.epochs is \(training.epochs); "
                              + "expected one permutation of the train rows per epoch")
        }
        var seen = [Bool](repeating: false, count: n)
        for (e, order) in orders.enumerated() {
            guard order.count == n else {
                throw JSONProblem("training.orders[\(e)]", "\(counted(order.count, "index")), but the train set has \(n) rows; "
                                  + "expected a permutation of 0..<\(n)")
            }
            for k in seen.indices { seen[k] = false }
            for (k, index) in order.enumerated() {
                guard index >= 0 && index < n else {
                    throw JSONProblem("training.orders[\(e)][\(k)]", "\(index) is not a row of the train set (0..<\(n))")
                }
                guard !seen[index] else {
                    throw JSONProblem("training.orders[\(e)][\(k)]", "\(index) appears twice; expected a permutation of 0..<\(n)")
                }
                seen[index] = true
            }
        }
    }

    private func checkData() throws {
        switch data {
        case .disk(let train, let test, _):
            try checkPointCount(train, "data.disk.train")
            try checkPointCount(test, "data.disk.test")
            try checkTwoClassModel(kind: "disk")
        case .xor:
            try checkTwoClassModel(kind: "xor")
        case .explicit(let train, let test):
            let trainWidths = try train.check(path: "data.train", probabilities: loss.needsProbabilityTargets)
            let testWidths = try test.check(path: "data.test", probabilities: loss.needsProbabilityTargets)
            guard testWidths.inputs == trainWidths.inputs else {
                throw JSONProblem("data.test.inputs", "rows of \(counted(testWidths.inputs, "number")), "
                                  + "but the train inputs have \(trainWidths.inputs)")
            }
            guard testWidths.targets == trainWidths.targets else {
                throw JSONProblem("data.test.targets", "rows of \(counted(testWidths.targets, "number")), "
                                  + "but the train targets have \(trainWidths.targets)")
            }
            guard model.inputWidth == trainWidths.inputs else {
                throw JSONProblem("model.layers[0].in",
                                  "\(model.inputWidth), but the data inputs are \(trainWidths.inputs) wide")
            }
            guard model.outputWidth == trainWidths.targets else {
                throw JSONProblem("\(model.lastLinearPath).out",
                                  "\(model.outputWidth), but the data targets are \(trainWidths.targets) wide")
            }
        }
    }

    private func checkPointCount(_ count: Int, _ path: String) throws {
        guard count >= 1 else { throw JSONProblem(path, "must be a positive integer, got \(count)") }
        guard count <= Experiment.maxDataPoints else {
            throw JSONProblem(path, "\(count) points, more than the limit of \(Experiment.maxDataPoints)")
        }
    }

    /// disk and xor: 2-wide inputs, labels 0/1 as one 0/1 column or a one-hot pair.
    private func checkTwoClassModel(kind: String) throws {
        guard model.inputWidth == 2 else {
            throw JSONProblem("model.layers[0].in", "\(model.inputWidth), but \(kind) data is 2 wide")
        }
        guard model.outputWidth == 1 || model.outputWidth == 2 else {
            throw JSONProblem("\(model.lastLinearPath).out",
                              "\(model.outputWidth), but \(kind) data has two classes: use 1 output (a 0/1 column) "
                              + "or 2 (one-hot)")
        }
    }
}

enum Validation {
    static func checkWidth(_ width: Int, _ path: String) throws {
        guard width >= 1 else { throw JSONProblem(path, "must be a positive integer, got \(width)") }
        guard width <= Experiment.maxLayerWidth else {
            throw JSONProblem(path, "\(width) units, more than the limit of \(Experiment.maxLayerWidth) per layer")
        }
    }
}

private extension ModelSpec {
    /// "model.layers[k]" for the last linear layer (the one whose `out` is the output width).
    var lastLinearPath: String { "model.layers[\(linearIndices.last ?? 0)]" }

    func check() throws {
        guard let first = layers.first else {
            throw JSONProblem("model.layers", "must not be empty: a model needs at least one linear layer")
        }
        guard case .linear = first else {
            throw JSONProblem("model.layers[0].type", "the model must start with a linear layer, got \(first.typeName)")
        }
        // Sizes first, before any array is looked at.
        var previousOut: Int?
        for (index, layer) in layers.enumerated() {
            let path = "model.layers[\(index)]"
            switch layer {
            case .linear(let inWidth, let outWidth, _):
                try Validation.checkWidth(inWidth, "\(path).in")
                try Validation.checkWidth(outWidth, "\(path).out")
                if let previousOut, inWidth != previousOut {
                    throw JSONProblem("\(path).in", "\(inWidth), but the previous layer gives \(previousOut)")
                }
                previousOut = outWidth
            case let .activation(kind, parameters):
                guard parameters.count == kind.parameters.count else {
                    throw JSONProblem(path, "\(kind.type) takes \(counted(kind.parameters.count, "parameter")), got \(parameters.count)")
                }
                for (field, value) in zip(kind.parameters, parameters) { try checkFinite(value, "\(path).\(field.name)") }
            }
        }
        guard parameterCount <= Experiment.maxParameters else {
            throw JSONProblem("model.layers",
                              "\(parameterCount) parameters in total, more than the limit of \(Experiment.maxParameters)")
        }
        for (index, layer) in layers.enumerated() {
            guard case .linear(let inWidth, let outWidth, let initialization) = layer else { continue }
            try initialization.check(path: "model.layers[\(index)]", in: inWidth, out: outWidth)
        }
    }
}

private extension Initializer {
    /// `path` is the layer's, "model.layers[i]". (A file's explicit values were checked as they were read;
    /// this covers experiments built in code.)
    func check(path: String, in inWidth: Int, out outWidth: Int) throws {
        switch self {
        case .default, .xavier:
            break
        case .uniform(let low, let high):
            try checkFinite(low, "\(path).init.uniform[0]")
            try checkFinite(high, "\(path).init.uniform[1]")
            guard low < high else {
                throw JSONProblem("\(path).init.uniform", "needs a < b, got [\(formatNumber(low)), \(formatNumber(high))]")
            }
        case .explicit(let weight, let bias):
            guard weight.rows == outWidth && weight.columns == inWidth else {
                throw JSONProblem("\(path).weight", "\(weight.rows)×\(weight.columns), but the layer is \(outWidth)×\(inWidth) (out × in)")
            }
            guard bias.rows == 1 && bias.columns == outWidth else {
                throw JSONProblem("\(path).bias", "\(counted(bias.elements.count, "number")), but out is \(outWidth)")
            }
            for (k, value) in weight.elements.enumerated() {
                try checkFinite(value, "\(path).weight[\(k / inWidth)][\(k % inWidth)]")
            }
            for (k, value) in bias.elements.enumerated() { try checkFinite(value, "\(path).bias[\(k)]") }
        }
    }
}

private extension DataSetSpec {
    /// Checks counts, raggedness and values; returns the input and target widths.
    func check(path: String, probabilities: Bool) throws -> (inputs: Int, targets: Int) {
        guard !inputs.isEmpty else { throw JSONProblem("\(path).inputs", "must not be empty") }
        guard inputs.count <= Experiment.maxDataPoints else {
            throw JSONProblem("\(path).inputs", "\(inputs.count) rows, more than the limit of \(Experiment.maxDataPoints)")
        }
        guard targets.count == inputs.count else {
            throw JSONProblem("\(path).targets", "\(counted(targets.count, "row")), but inputs has \(inputs.count)")
        }
        let inputWidth = try Self.checkMatrix(inputs, "\(path).inputs", probabilities: false)
        let targetWidth = try Self.checkMatrix(targets, "\(path).targets", probabilities: probabilities)
        return (inputWidth, targetWidth)
    }

    /// Every row as wide as row 0 (and not empty), every value finite, and in [0, 1] if `probabilities`.
    private static func checkMatrix(_ rows: [[Double]], _ path: String, probabilities: Bool) throws -> Int {
        let width = rows[0].count
        guard width > 0 else { throw JSONProblem("\(path)[0]", "must not be empty") }
        for (row, values) in rows.enumerated() {
            guard values.count == width else {
                throw JSONProblem("\(path)[\(row)]", "\(counted(values.count, "number")), but row 0 has \(width)")
            }
            for (column, value) in values.enumerated() {
                try checkFinite(value, "\(path)[\(row)][\(column)]")
                if probabilities && !(0...1).contains(value) {
                    throw JSONProblem("\(path)[\(row)][\(column)]", "bce needs targets in [0, 1], got \(formatNumber(value))")
                }
            }
        }
        return width
    }
}

private extension OptimizerSpec {
    /// The ranges are Framework's: building its optimizer throws a `HyperparameterError` naming the field.
    func check() throws {
        do {
            _ = try configuration.framework()
        } catch let error as HyperparameterError {
            throw JSONProblem("optimizer.\(error.field)", "\(error.requirement), \(error.got(formatNumber))")
        }
    }
}

private extension TrainingSpec {
    func check() throws {
        guard epochs >= 1 else { throw JSONProblem("training.epochs", "must be at least 1, got \(epochs)") }
        guard epochs <= Experiment.maxEpochs else {
            throw JSONProblem("training.epochs", "\(epochs) epochs, more than the limit of \(Experiment.maxEpochs)")
        }
        guard batchSize >= 1 else { throw JSONProblem("training.batchSize", "must be at least 1, got \(batchSize)") }
    }
}
