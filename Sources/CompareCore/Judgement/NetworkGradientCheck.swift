import Foundation
import Framework
import Reference

// `compare gradcheck`: the whole network's gradient at an experiment's initial parameters, on one batch, in
// every engine, with Framework's `GradientChecker` (Sources/Framework/GradientCheck.swift): every element
// against a central difference, and the Taylor certificate of every tensor. docs/gradcheck.md describes it.

/// The gradient of a whole network's loss, f(x, θ) = loss(network(x; θ), t), at round 0's initial parameters θ
/// on the first batch of epoch 1 (rows `order₁[0..<batchSize]` of the train set, `(batch, in)` inputs x and
/// `(batch, out)` targets t), checked in each engine, tensor by tensor: the input gradient
/// `layers[0].dInput` `(batch, in)` and every linear layer's `layers[i].dWeight` `(out, in)` and
/// `layers[i].dBias` `(1, out)`.
///
/// - Framework: gradients from its backward (`frameworkModules` in a `Sequential`, then the experiment's loss),
///   checked against Framework's own f.
/// - Reference: gradients from `ReferenceNetwork.backward` after `referenceLoss`, checked against the
///   referee's f (the same layers and loss on GSL).
/// - An outside engine: gradients from its trace's first step (`layers[i].dWeight`, `layers[i].dBias`, and
///   `layers[0].dInput` when it gives it), run on the round with one epoch and one recorded step; checked
///   against the referee's f, since the engine gives no function to evaluate.
///
/// Every engine is checked along the same directions: each starts from `Xoshiro256StarStar(seed: s,
/// stream: 4)`, s the round's seed (streams 1 to 3 are the round's data, parameters and shuffling). A tensor
/// passes when both checks do; the check passes when every tensor of every engine does.
public struct NetworkGradientCheck {
    /// One engine's check: what was checked against what, and the report.
    public struct EngineCheck {
        /// "framework", "reference", or the outside engine's name.
        public let name: String
        /// The engine in its own words ("Framework (…)", "numpy 2.1 float64").
        public let engine: String
        /// Which f the gradients are checked against.
        public let function: String
        /// Where the analytical gradients come from.
        public let gradients: String
        /// What else to know (a tensor it does not give, its own loss value on the batch).
        public let notes: [String]
        public let report: GradientReport
        public var passed: Bool { report.passed }
    }

    public let experiment: String
    public let round: Int
    public let seed: UInt64
    /// The batch's rows of the train set, in the order they are taken.
    public let rows: [Int]
    public let checker: GradientChecker
    public let engines: [EngineCheck]
    /// Every tensor of every engine passes.
    public var passed: Bool { !engines.isEmpty && engines.allSatisfy(\.passed) }

    /// The stream of the round's seed the directions are drawn from.
    public static let directionStream: UInt64 = 4

    /// The seconds `init` is expected to take, at most about, in a release build: the element check evaluates f
    /// twice per element of every checked tensor (E = P + batch·in elements for P parameters), each evaluation
    /// a forward pass over the batch and a copy of the parameters (∝ P·(batch + 3)), for each engine's f (Framework's,
    /// and the referee's once for Reference and once per outside engine). The constant, 1.2·10⁻⁸ s per unit
    /// per engine, is the slowest measured (2-1000-2 Tanh at batches 4, 64 and 512: 2.8, 27 and 358 s for
    /// two engines, docs/gradcheck.md); smaller ones come in below the estimate. The Taylor ladder's 17 to
    /// 34 evaluations per tensor are negligible beside it.
    public static func estimatedSeconds(_ experiment: Experiment, outsideEngines: Int) -> Double {
        let batch = Double(min(experiment.training.batchSize, experiment.data.trainCount))
        let parameters = Double(experiment.model.parameterCount)
        let elements = parameters + batch * Double(experiment.model.inputWidth)
        return 1.2e-8 * elements * parameters * (batch + 3) * Double(2 + outsideEngines)
    }

    /// The default bound on `estimatedSeconds` before `compare gradcheck` refuses: 10 minutes.
    public static let defaultTimeLimit = 600.0

    /// Checks Framework, Reference and each of `outside` on round `round` (`MaterializedRound(experiment,
    /// round: 0)` for `compare gradcheck`). Throws `EngineError` when an outside engine cannot run or its trace
    /// lacks a gradient, and `ReferenceError` when the referee cannot evaluate the network.
    public init(_ round: MaterializedRound, outside: [TrainingEngine] = [], checker: GradientChecker = GradientChecker()) throws {
        let experiment = round.experiment
        let order = EpochOrders(round.order, count: round.train.count, epochs: experiment.training.epochs)
        var firstEpoch = order
        let rows = Array(firstEpoch.next().prefix(experiment.training.batchSize))
        let x = round.train.inputs.gatheringRows(rows), t = round.train.targets.gatheringRows(rows)
        let problem = NetworkProblem(model: experiment.model, loss: experiment.loss, parameters: round.initialParameters, input: x, targets: t)
        func directions() -> Xoshiro256StarStar { Xoshiro256StarStar(seed: round.seed, stream: Self.directionStream) }

        var checks: [EngineCheck] = []
        var generator = directions()
        checks.append(EngineCheck(
            name: EngineName.framework, engine: "Framework (\(BuildInfo.current.frameworkLine))",
            function: "f = Framework's \(experiment.loss) loss of the network on the batch",
            gradients: "Framework's backward", notes: [],
            report: checker.check(EngineName.framework, try problem.tensors(gradients: problem.frameworkGradients()),
                                  generator: &generator, problem.frameworkLoss)))

        let referee = try problem.refereeGradients()
        generator = directions()
        checks.append(EngineCheck(
            name: EngineName.reference, engine: "Reference (GSL, \(ReferenceEngine.blasLibrary))",
            function: "f = the referee's \(experiment.loss) loss of the network on the batch",
            gradients: "ReferenceNetwork.backward", notes: [],
            report: checker.check(EngineName.reference, try problem.tensors(gradients: referee),
                                  generator: &generator, problem.refereeLoss)))

        for engine in outside {
            func failure(_ message: String) -> EngineError {
                EngineError(engine: engine.name, experiment: experiment.name, round: round.round, message: message)
            }
            let trace = try engine.train(round.with(epochs: 1, traceSteps: 1))
            guard let step = trace.steps.first else {
                throw failure("its trace has no steps, but gradcheck reads the first step's gradients (it was asked for "
                              + "\"trace\": {\"steps\": 1}; docs/trace-format.md, \"Steps\")")
            }
            guard step.epoch == 1 && step.batch == 1 else {
                throw failure("its trace's first step is epoch \(step.epoch), batch \(step.batch); expected epoch 1, batch 1")
            }
            var gradients = NetworkGradients(dInput: nil, parameters: [])
            var notes: [String] = []
            for (i, values) in zip(experiment.model.linearIndices, round.initialParameters) {
                gradients.parameters.append((try problem.given(step, TensorName.dWeight(i), shape: values.weight.shape, failure),
                                             try problem.given(step, TensorName.dBias(i), shape: values.bias.shape, failure)))
            }
            if step.tensors[TensorName.dInput(0)] != nil {
                gradients.dInput = try problem.given(step, TensorName.dInput(0), shape: x.shape, failure)
            } else {
                notes.append("its trace has no \(TensorName.dInput(0)): the input gradient is not checked")
            }
            if case let .scalar(loss)? = step.tensors[TensorName.loss] {
                notes.append("its loss on the batch: \(loss); the referee's: \(problem.refereeLoss(problem.values))")
            }
            generator = directions()
            checks.append(EngineCheck(
                name: engine.name, engine: trace.engine,
                function: "f = the referee's (Reference's) \(experiment.loss) loss of the network on the batch",
                gradients: "its trace's first step (epoch 1, batch 1)", notes: notes,
                report: checker.check(engine.name, try problem.tensors(gradients: gradients), generator: &generator, problem.refereeLoss)))
        }
        self.experiment = experiment.name
        self.round = round.round
        self.seed = round.seed
        self.rows = rows
        self.checker = checker
        self.engines = checks
    }
}

/// The analytical gradients of one engine: ∂f/∂x `(batch, in)` when known, and per linear layer ∂f/∂W
/// `(out, in)` and ∂f/∂b `(1, out)`.
struct NetworkGradients {
    var dInput: Matrix?
    var parameters: [(weight: Matrix, bias: Matrix)]
}

/// The function every engine is checked against, in both engines, with its tensors laid out as
/// `[x, W₀, b₀, W₁, b₁, …]`: the batch input, then weight and bias of each linear layer in order.
struct NetworkProblem {
    let model: ModelSpec
    let loss: LossKind
    let parameters: [(weight: Matrix, bias: Matrix)]
    let input: Matrix
    let targets: Matrix

    /// The values at the checked point, `[x, W₀, b₀, …]`.
    var values: [Matrix] { [input] + parameters.flatMap { [$0.weight, $0.bias] } }

    /// `values` back as per-layer parameters.
    func parameters(from values: [Matrix]) -> [(weight: Matrix, bias: Matrix)] {
        stride(from: 1, to: values.count, by: 2).map { (values[$0], values[$0 + 1]) }
    }

    /// "Linear(2 → 25)", "ReLU", … for each layer.
    var layerLabels: [String] { frameworkModules(model, parameters: parameters).map(\.description) }

    /// The checked tensors with `gradients`, named as in the trace format (`layers[0].dInput`,
    /// `layers[i].dWeight`, `layers[i].dBias`); without a `dInput`, the input is left out.
    func tensors(gradients: NetworkGradients) throws -> [CheckedTensor] {
        let labels = layerLabels
        var tensors: [CheckedTensor] = []
        if let dInput = gradients.dInput {
            tensors.append(CheckedTensor(module: labels[0], name: TensorName.dInput(0), value: input, gradient: dInput))
        }
        for ((i, values), g) in zip(zip(model.linearIndices, parameters), gradients.parameters) {
            tensors.append(CheckedTensor(module: labels[i], name: TensorName.dWeight(i), value: values.weight, gradient: g.weight))
            tensors.append(CheckedTensor(module: labels[i], name: TensorName.dBias(i), value: values.bias, gradient: g.bias))
        }
        return tensors
    }

    // MARK: Framework

    /// Framework's f at `values`.
    func frameworkLoss(_ values: [Matrix]) -> Double {
        guard let network = try? Sequential(frameworkModules(model, parameters: parameters(from: values))) else { return .nan }
        return loss.framework().value(predictions: network.forward(values[0]), targets: targets)
    }

    /// Framework's backward at the checked point.
    func frameworkGradients() throws -> NetworkGradients {
        let network = try Sequential(frameworkModules(model, parameters: parameters))
        network.zeroGradients()
        let output = network.forward(input)
        var dInput = Matrix.empty
        dInput.copy(from: network.backward(loss.framework().gradient(predictions: output, targets: targets)))
        let p = network.parameters.map(\.gradient)
        return NetworkGradients(dInput: dInput, parameters: stride(from: 0, to: p.count, by: 2).map { (p[$0], p[$0 + 1]) })
    }

    // MARK: The referee

    /// The referee's f at `values` (NaN if it cannot be evaluated; the shapes are those of the checked point,
    /// which `refereeGradients` has evaluated, so that does not happen).
    func refereeLoss(_ values: [Matrix]) -> Double {
        guard let network = try? ReferenceNetwork(layers: referenceLayers(model, parameters: parameters(from: values))),
              let output = try? network.forward(values[0].rowArrays),
              let value = try? referenceLoss(loss.reference, predictions: output, targets: targets.rowArrays).value else { return .nan }
        return value
    }

    /// The referee's backward at the checked point.
    func refereeGradients() throws -> NetworkGradients {
        let network = try ReferenceNetwork(layers: referenceLayers(model, parameters: parameters))
        network.zeroGradients()
        let output = try network.forward(input.rowArrays)
        let dOutput = try referenceLoss(loss.reference, predictions: output, targets: targets.rowArrays).gradient
        let dInput = try network.backward(dOutput)
        return NetworkGradients(dInput: Matrix(dInput),
                                parameters: network.gradients.map { (Matrix($0.weight), Matrix(rows: 1, columns: $0.bias.count, elements: $0.bias)) })
    }

    // MARK: An outside engine's trace

    /// The tensor `name` of `step` as a `shape` matrix (a bias may be a flat list), or a failure naming what
    /// is wrong with it.
    func given(_ step: TraceStep, _ name: String, shape: (rows: Int, columns: Int),
               _ failure: (String) -> EngineError) throws -> Matrix {
        guard let tensor = step.tensors[name] else {
            throw failure("its trace's first step has no \(name), the gradient gradcheck checks (docs/trace-format.md, \"Steps\")")
        }
        let values = tensor.values
        guard values.count == shape.rows * shape.columns, tensor.shape == shape || (shape.rows == 1 && tensor.shape.rows == 1) else {
            throw failure("its trace's \(name) is \(tensor.shapeDescription); expected \(shape.rows)×\(shape.columns)")
        }
        return Matrix(rows: shape.rows, columns: shape.columns, elements: values)
    }
}

// MARK: - Reports

extension NetworkGradientCheck {
    /// The text report: a header naming the experiment, the batch and the two checks, then per engine what
    /// was checked against what and one row per tensor (≤ 120 columns), with the full orders and the worst
    /// element of every failing tensor, and the verdict.
    public func textReport(file: String) -> String {
        let t = checker.taylor
        var lines: [String] = []
        let shown = rows.prefix(8).map(String.init).joined(separator: ", ") + (rows.count > 8 ? ", …" : "")
        lines += Self.wrap("compare gradcheck: \(file), experiment \"\(experiment)\", round \(round) (seed \(seed)): initial parameters, "
                           + "epoch 1 batch 1 = train rows \(shown) (\(rows.count) rows)", indent: "  ")
        lines += Self.wrap("Elements: central differences with h = \(formatNumber(checker.step)); an element passes when "
                           + "|a − n| ≤ \(formatNumber(checker.atol)) + \(formatNumber(checker.rtol))·max(|a|, |n|).", indent: "  ")
        lines += Self.wrap("Taylor: r(h) = |f(x + h·v) − f(x) − h·⟨g, v⟩ + q·h²| along a random v, h = \(formatNumber(t.initialStep))·s·2⁻ᵏ, "
                           + "k = 0…\(t.halvings): order 2 passes, order 1 fails (docs/gradcheck.md).", indent: "  ")
        for engine in engines {
            lines.append("")
            lines += Self.wrap("\(engine.name): \(engine.engine)", indent: "  ")
            lines += Self.wrap("  \(engine.function)", indent: "    ")
            lines += Self.wrap("  gradients from \(engine.gradients)", indent: "    ")
            for note in engine.notes { lines += Self.wrap("  note: \(note)", indent: "    ") }
            lines.append("  " + Self.row("", "tensor", "shape", "maxrel", "bad", "orders (clean)", "Taylor"))
            for tensor in engine.report.tensors {
                lines.append("  " + Self.row(tensor.passed ? "OK" : "FAIL", tensor.tensor, "\(tensor.shape.rows)×\(tensor.shape.columns)",
                                             Self.short(tensor.maxRelativeError), "\(tensor.mismatches.count)",
                                             Self.ordersSummary(tensor.taylor), Self.verdict(tensor.taylor)))
                if !tensor.passed {
                    lines += Self.wrap("       orders: \(tensor.taylor.ordersDescription)", indent: "         ")
                    lines += Self.wrap("       \(tensor.taylor)", indent: "         ")
                    if let worst = tensor.mismatches.max(by: { $0.relativeError < $1.relativeError }) {
                        lines += Self.wrap("       worst of \(tensor.mismatches.count) elements beyond tolerance: \(worst)", indent: "         ")
                    }
                }
            }
            let failing = engine.report.tensors.filter { !$0.passed }.count
            let onKinks = engine.report.tensors.filter { if case .kinkAtPoint = $0.taylor.verdict { return true } else { return false } }.count
            lines.append("  \(engine.name): " + (!engine.passed ? "FAIL, \(failing) of \(engine.report.tensors.count) tensors fail"
                : onKinks == 0 ? "PASS, every tensor order 2 and within tolerance"
                : "PASS, every tensor within tolerance; \(onKinks) on a kink of f, where only the elements can be checked"))
        }
        lines.append("")
        let failed = engines.filter { !$0.passed }.map(\.name)
        lines.append("Verdict: " + (passed ? "PASS (every tensor of every engine)" : "FAIL (\(failed.joined(separator: ", ")))"))
        return lines.joined(separator: "\n")
    }

    static func row(_ status: String, _ tensor: String, _ shape: String, _ maxrel: String, _ bad: String, _ orders: String,
                    _ verdict: String) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        return pad(status, 5) + pad(tensor, 19) + pad(shape, 8) + pad(maxrel, 8) + pad(bad, 4) + pad(orders, 17) + verdict
    }

    /// The first and the last clean order, and how many halvings are clean: "1.29 … 2.00 (13)".
    static func ordersSummary(_ c: TaylorCertificate) -> String {
        let clean = c.cleanOrders.map { formatFixed($0, 2) }
        guard let first = clean.first, let last = clean.last else { return "none clean" }
        return (clean.count == 1 ? first : "\(first) … \(last)") + " (\(clean.count))"
    }

    /// The verdict in at most 52 characters.
    static func verdict(_ c: TaylorCertificate) -> String {
        switch c.verdict {
        case let .secondOrder(floor?): return "order 2 to the rounding floor at h = \(short(floor))"
        case .secondOrder(nil): return "order 2 to h = \(short(c.steps.last ?? 0)) (floor not reached)"
        case let .kinkCrossed(above, _): return "kink crossed above h = \(short(above)), order 2 below"
        case let .firstOrder(order, below):
            return c.ladder.firstOrderRange.contains(order) ? "ORDER 1: gradient wrong (from h = \(short(below)))"
                : "ORDER \(formatFixed(order, 2)): wrong (from h = \(short(below)))"
        case .flat: return "flat: gradient 0 and f constant along v (agree)"
        case .kinkAtPoint: return "on a kink: no gradient here, elements only"
        case .inconclusive: return "INCONCLUSIVE: rounding before 2 clean halvings"
        }
    }

    static func short(_ x: Double) -> String { x.isFinite ? String(format: "%.1e", x) : "\(x)" }

    /// `text` in lines of at most `width` columns, broken at spaces, every line after the first starting with
    /// `indent` (a word longer than a line stays whole).
    static func wrap(_ text: String, indent: String, width: Int = 120) -> [String] {
        let lead = String(text.prefix { $0 == " " })
        var lines: [String] = [], current = lead, empty = true
        for word in text.dropFirst(lead.count).split(separator: " ") {
            if !empty && current.count + 1 + word.count > width {
                lines.append(current)
                current = indent + word
            } else {
                current += (empty ? "" : " ") + word
            }
            empty = false
        }
        lines.append(current)
        return lines
    }

    /// The whole check as JSON (docs/gradcheck.md, "JSON"): the point checked, the checker's settings, and per
    /// engine and tensor both checks with every step, remainder, floor and order of the ladder.
    public func jsonValue(file: String) -> JSONValue {
        let t = checker.taylor
        return jsonObject { o in
            o["format"] = .string("minidl-gradcheck")
            o["version"] = .integer(1)
            o["file"] = .string(file)
            o["experiment"] = .string(experiment)
            o["round"] = .integer(round)
            o["seed"] = .number(Double(seed), integer: Int64(exactly: seed))
            o["batch"] = jsonObject { b in
                b["epoch"] = .integer(1)
                b["batch"] = .integer(1)
                b["rows"] = .array(rows.map { .integer($0) })
            }
            o["checker"] = jsonObject { c in
                c["step"] = .number(checker.step)
                c["rtol"] = .number(checker.rtol)
                c["atol"] = .number(checker.atol)
                c["taylor"] = jsonObject { l in
                    l["initialStep"] = .number(t.initialStep)
                    l["halvings"] = .integer(t.halvings)
                    l["roundingFactor"] = .number(t.roundingFactor)
                    l["cleanMargin"] = .number(t.cleanMargin)
                    l["secondOrderTolerance"] = .number(t.secondOrderTolerance)
                    l["directionStream"] = .integer(Int(Self.directionStream))
                }
            }
            o["passed"] = .bool(passed)
            o["engines"] = .array(engines.map { engine in
                jsonObject { e in
                    e["name"] = .string(engine.name)
                    e["engine"] = .string(engine.engine)
                    e["function"] = .string(engine.function)
                    e["gradients"] = .string(engine.gradients)
                    e["notes"] = .array(engine.notes.map { .string($0) })
                    e["passed"] = .bool(engine.passed)
                    e["tensors"] = .array(engine.report.tensors.map { tensor in
                        jsonObject { j in
                            j["tensor"] = .string(tensor.tensor)
                            j["module"] = .string(tensor.module)
                            j["shape"] = .array([.integer(tensor.shape.rows), .integer(tensor.shape.columns)])
                            j["passed"] = .bool(tensor.passed)
                            j["elements"] = jsonObject { el in
                                el["count"] = .integer(tensor.count)
                                el["maxRelativeError"] = .number(tensor.maxRelativeError)
                                el["beyondTolerance"] = .integer(tensor.mismatches.count)
                                el["mismatches"] = .array(tensor.mismatches.prefix(10).map { m in
                                    jsonObject { mm in
                                        mm["index"] = .array([.integer(m.row), .integer(m.column)])
                                        mm["analytical"] = .number(m.analytical)
                                        mm["numerical"] = .number(m.numerical)
                                        mm["relativeError"] = .number(m.relativeError)
                                    }
                                })
                            }
                            let c = tensor.taylor
                            j["taylor"] = jsonObject { tj in
                                tj["verdict"] = .string(Self.verdictName(c.verdict))
                                tj["passed"] = .bool(c.passed)
                                tj["text"] = .string(c.description)
                                tj["scale"] = .number(c.scale)
                                tj["curvature"] = .number(c.curvature)
                                tj["steps"] = .numbers(c.steps)
                                tj["remainders"] = .numbers(c.remainders)
                                tj["naturalRemainders"] = .numbers(c.naturalRemainders)
                                tj["floors"] = .numbers(c.floors)
                                tj["orders"] = .numbers(c.orders)
                                tj["clean"] = .array(c.clean.map { .bool($0) })
                            }
                        }
                    })
                }
            })
        }
    }

    static func verdictName(_ verdict: TaylorVerdict) -> String {
        switch verdict {
        case .secondOrder: return "secondOrder"
        case .kinkCrossed: return "kinkCrossed"
        case .firstOrder: return "firstOrder"
        case .flat: return "flat"
        case .kinkAtPoint: return "kinkAtPoint"
        case .inconclusive: return "inconclusive"
        }
    }
}
