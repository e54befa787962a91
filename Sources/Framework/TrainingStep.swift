/// One step of mini-batch training (gather a batch, forward, loss, backward) on buffers allocated once and
/// reused: once a step has run, further steps with batches no larger allocate nothing on the heap.
///
/// It computes what `model.zeroGradients()`, `model.forward`, `loss.value`, `loss.gradient` and
/// `model.backward` compute, with the same kernels, so the results are those of the module API (the training
/// test checks this). What it saves: the `Matrix` each module call returns, the copies a module keeps for
/// its backward, the dispatch through `Module`, the zeroing pass (gradients are written, not added to
/// zeros), and the input gradient of the first layer, which nothing uses. It reads and writes the parameters
/// (values and gradients) but not the modules' own caches, so a module's `backward` still refers to that
/// module's last `forward`. `Trainer.fit` runs its batches through a `TrainingStep` whenever `init` accepts
/// the model and loss.
///
/// Accepted: a `Linear`, `ReLU`, `LeakyReLU`, `Tanh`, `Sigmoid`, or a `Sequential` (nested or not) of
/// them in which no `Linear` appears twice, whose first module is a `Linear`; and one of the built-in losses
/// (`MSELoss`, `MAELoss`, `BCELoss`, `CrossEntropyLoss`). The buffers hold the largest batch seen so far:
/// activations of every module `(batch, width)`, the batch's targets, two gradient buffers and the product
/// kernel's packing buffers.
public final class TrainingStep {
    private enum Stage {
        case linear(Linear)
        case activation(ActivationKernel)
    }

    private let stages: [Stage]
    /// `widths[i]` is the input width of stage i; `widths[stages.count]` the model's output width.
    private let widths: [Int]
    private let loss: LossKernel
    private let workspace = ProductWorkspace()
    /// Rows the buffers hold, and rows in the last forward.
    private var capacity = 0
    private var batch = 0
    /// `activations[i]` is the input of stage i, `(capacity, widths[i])`; the last is the model's output.
    private var activations: [UnsafeMutablePointer<Double>] = []
    private var targets: UnsafeMutablePointer<Double>? = nil
    /// ∂loss/∂(activation), two buffers of `(capacity, max width)` used in turn.
    private var gradients: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)? = nil

    /// A step for `model` and `loss`, or nil if either is not one this class handles (see above).
    public init?(model: Module, loss: Loss) {
        guard let kernel = LossKernel(loss), let stages = TrainingStep.stages(of: model),
              case .linear = stages.first else { return nil }
        var seen = Set<ObjectIdentifier>()
        var widths: [Int] = []
        for stage in stages {
            if case let .linear(layer) = stage {
                guard seen.insert(ObjectIdentifier(layer)).inserted else { return nil }
                if let last = widths.last, last != layer.inWidth { return nil }
                if widths.isEmpty { widths.append(layer.inWidth) }
                widths.append(layer.outWidth)
            } else {
                widths.append(widths.last!)
            }
        }
        self.stages = stages
        self.widths = widths
        self.loss = kernel
    }

    deinit { release() }

    /// The modules of `model` flattened into stages, or nil if one is not supported.
    private static func stages(of model: Module) -> [Stage]? {
        switch model {
        case let layer as Linear: return [.linear(layer)]
        case is ReLU: return [.activation(.relu)]
        case let leaky as LeakyReLU: return [.activation(.leakyReLU(slope: leaky.slope))]
        case is Tanh: return [.activation(.tanh)]
        case is Sigmoid: return [.activation(.sigmoid)]
        case let sequential as Sequential:
            var result: [Stage] = []
            for module in sequential.modules {
                guard let inner = stages(of: module) else { return nil }
                result += inner
            }
            return result
        default: return nil
        }
    }

    /// The model's input width.
    public var inputWidth: Int { widths[0] }
    /// The model's output width.
    public var outputWidth: Int { widths[widths.count - 1] }

    /// Forward on rows `rows` of `inputs` `(count, inputWidth)`, in that order; returns the loss against the same
    /// rows of `targets` `(count, outputWidth)`. Also prepares the loss gradient for `backward()`.
    public func forward(inputs: Matrix, targets: Matrix, rows: ArraySlice<Int>) -> Double {
        precondition(inputs.columns == inputWidth && targets.columns == outputWidth && inputs.rows == targets.rows,
                     "TrainingStep: inputs \(inputs.shape), targets \(targets.shape) for widths \(inputWidth) → \(outputWidth)")
        precondition(!rows.isEmpty, "TrainingStep: empty batch")
        let r = rows.count
        reserve(rows: r)
        batch = r
        gather(inputs, rows: rows, into: activations[0])
        gather(targets, rows: rows, into: self.targets!)
        for (i, stage) in stages.enumerated() {
            let x = activations[i], y = activations[i + 1], inW = widths[i], outW = widths[i + 1]
            switch stage {
            case let .linear(layer):
                layer.weight.value.elements.withUnsafeBufferPointer { w in
                    layer.bias.value.elements.withUnsafeBufferPointer { b in
                        precondition(w.count == outW * inW && b.count == outW, "TrainingStep: \(layer)'s parameters changed shape")
                        affineKernel(batch: r, inWidth: inW, outWidth: outW, x: x, xRowStride: inW,
                                     weight: w.baseAddress!, bias: b.baseAddress!, y: y, yRowStride: outW,
                                     workspace: workspace)
                    }
                }
            case let .activation(kernel):
                kernel.forward(r * inW, x, y)
            }
        }
        return loss.evaluate(rows: r, columns: outputWidth, predictions: activations[stages.count],
                             targets: self.targets!, gradient: gradients!.0)
    }

    /// Backward of the last `forward`: sets every parameter's gradient to ∂loss/∂parameter for that batch
    /// (what `zeroGradients()` and then `backward` give through the module API).
    public func backward() {
        precondition(batch > 0, "TrainingStep.backward before forward")
        let r = batch
        var (d, other) = gradients!
        let firstLinear = 0  // `init` requires stage 0 to be a Linear: no stage before it needs dX
        for i in stages.indices.reversed() {
            let inW = widths[i], outW = widths[i + 1]
            switch stages[i] {
            case let .activation(kernel):
                kernel.backward(r * inW, d, kernel.backwardUsesInput ? activations[i] : activations[i + 1], d)
            case let .linear(layer):
                let x = activations[i]
                layer.weight.gradient.elements.withUnsafeMutableBufferPointer { gw in
                    precondition(gw.count == outW * inW, "TrainingStep: \(layer)'s weight gradient has \(gw.count) elements")
                    transposedProductKernel(batch: r, inWidth: inW, outWidth: outW, dY: d, dYRowStride: outW,
                                            x: x, xRowStride: inW, dWeight: gw.baseAddress!, accumulate: false,
                                            workspace: workspace)
                }
                layer.bias.gradient.elements.withUnsafeMutableBufferPointer { gb in
                    precondition(gb.count == outW, "TrainingStep: \(layer)'s bias gradient has \(gb.count) elements")
                    accumulateColumnSums(rows: r, columns: outW, d, rowStride: outW, into: gb.baseAddress!, accumulate: false)
                }
                if i > firstLinear {
                    layer.weight.value.elements.withUnsafeBufferPointer { w in
                        productKernel(batch: r, inWidth: inW, outWidth: outW, dY: d, dYRowStride: outW,
                                      weight: w.baseAddress!, dX: other, dXRowStride: inW, workspace: workspace)
                    }
                    swap(&d, &other)
                }
            }
        }
    }

    /// The model's output for the last forward's batch, `(batch, outputWidth)`.
    public var predictions: Matrix {
        let count = batch * outputWidth
        return Matrix(rows: batch, columns: outputWidth,
                      elements: Array(UnsafeBufferPointer(start: activations[stages.count], count: count)))
    }

    /// Copies rows `rows` of `m` into `out`, one after another.
    private func gather(_ m: Matrix, rows: ArraySlice<Int>, into out: UnsafeMutablePointer<Double>) {
        let width = m.columns, count = m.rows
        m.elements.withUnsafeBufferPointer { src in
            var dst = out
            for index in rows {
                precondition(index >= 0 && index < count, "TrainingStep: row \(index) of \(count)")
                dst.update(from: src.baseAddress! + index * width, count: width)
                dst += width
            }
        }
    }

    /// Makes the buffers hold at least `rows` rows (reallocating only when they are too small).
    private func reserve(rows: Int) {
        guard rows > capacity else { return }
        release()
        capacity = rows
        func buffer(_ width: Int) -> UnsafeMutablePointer<Double> {
            let p = allocateDoubles(rows * width)
            p.initialize(repeating: 0, count: max(rows * width, 1))
            return p
        }
        activations = widths.map { buffer($0) }
        targets = buffer(outputWidth)
        let widest = widths.max()!
        gradients = (buffer(widest), buffer(widest))
    }

    private func release() {
        for p in activations { deallocateDoubles(p) }
        activations = []
        targets.map(deallocateDoubles)
        targets = nil
        if let (a, b) = gradients { deallocateDoubles(a); deallocateDoubles(b) }
        gradients = nil
    }
}
