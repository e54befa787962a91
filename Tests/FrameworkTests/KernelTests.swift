import Foundation
@testable import Framework
import TestSupport
import XCTest

/// The SIMD kernels against plain loops, at every kernel variant in one build (SIMD2 separate multiply-add,
/// SIMD4 and SIMD8 fused, whatever CPU runs the tests, so the AVX2 and AVX-512 code `make run` ships is the
/// code tested here): the three products of a linear layer on odd shapes (edge tiles, batches that are not
/// multiples of the SIMD width, depths over one cache block, pre-packed weights), exp and tanh against the C
/// library, and whole training runs of the module API, the one path `Trainer` has, against a plain
/// allocating use of the same API and against a straightforward implementation.
final class KernelTests: XCTestCase {
    var generator = Xoshiro256StarStar(seed: 2024)

    /// `(rows, columns)` pairs from the issue, used as (batch, in) and (out, in) in turn.
    let shapes = [(1, 1), (3, 5), (17, 33), (64, 64), (130, 257)]

    /// The rounding bound for a sum of products: |computed − exact| ≤ rtol · Σ|terms|. A relative tolerance
    /// on the result itself would be meaningless where the terms cancel.
    func assertProductClose(_ actual: Matrix, _ expected: Matrix, magnitude: Matrix, rtol: Double = 1e-13,
                            _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.rows, expected.rows, message, file: file, line: line)
        XCTAssertEqual(actual.columns, expected.columns, message, file: file, line: line)
        guard actual.shape == expected.shape else { return }
        var worst = (index: -1, excess: 0.0)
        for k in actual.elements.indices {
            let excess = abs(actual.elements[k] - expected.elements[k]) - rtol * magnitude.elements[k]
            if !(excess <= 0) && !(excess <= worst.excess) { worst = (k, excess.isNaN ? .infinity : excess) }
        }
        if worst.index >= 0 {
            let k = worst.index
            XCTFail("\(message): worst at [\(k / actual.columns), \(k % actual.columns)]: actual \(actual.elements[k]), "
                        + "expected \(expected.elements[k]), bound \(rtol * magnitude.elements[k])", file: file, line: line)
        }
    }

    /// Naive `y = x·Wᵀ + b` with its magnitude `|x|·|W|ᵀ + |b|`.
    func naiveAffine(_ x: Matrix, _ w: Matrix, _ b: Matrix) -> (Matrix, Matrix) {
        var y = Matrix(rows: x.rows, columns: w.rows), m = y
        for n in 0..<x.rows {
            for o in 0..<w.rows {
                var sum = 0.0, size = 0.0
                for i in 0..<x.columns { sum += x[n, i] * w[o, i]; size += abs(x[n, i] * w[o, i]) }
                y[n, o] = sum + b[0, o]
                m[n, o] = size + abs(b[0, o])
            }
        }
        return (y, m)
    }

    /// Runs `body` once per kernel variant.
    func forEachVariant(_ body: (any KernelVariant.Type) throws -> Void) rethrows {
        for variant in allKernelVariants { try body(variant) }
    }

    func testAffineMatchesNaiveLoops() {
        forEachVariant { variant in
            for (batch, inWidth) in shapes {
                for outWidth in [1, 2, 7, 25, 33, 64, 257] {
                    let x = randomMatrix(batch, inWidth, generator: &generator)
                    let w = randomMatrix(outWidth, inWidth, generator: &generator)
                    let b = randomMatrix(1, outWidth, generator: &generator)
                    let (expected, magnitude) = naiveAffine(x, w, b)
                    let label = "\(variant.name) affine batch \(batch), in \(inWidth), out \(outWidth)"
                    var y = Matrix(rows: batch, columns: outWidth, repeating: .nan)  // every element must be written
                    affine(variant, x, w, b, into: &y)
                    assertProductClose(y, expected, magnitude: magnitude, label)
                    var packed = Matrix(rows: batch, columns: outWidth, repeating: .nan)
                    affine(variant, x, w, b, into: &packed, prepacked: true)
                    XCTAssertEqual(packed, y, "\(label): pre-packed weights give the same bits")
                }
            }
        }
        // The public entry point runs the active variant.
        let x = randomMatrix(3, 5, generator: &generator), w = randomMatrix(4, 5, generator: &generator)
        let b = randomMatrix(1, 4, generator: &generator)
        var y = Matrix.empty
        affine(ActiveKernel.self, x, w, b, into: &y)
        XCTAssertEqual(Matrix.affine(x, weightTransposed: w, bias: b), y)
    }

    /// Operands with no unit stride (every other column of a wider matrix) go through the element-by-element
    /// packing loops of A and B, which `Linear` never needs (its operands always have one contiguous
    /// direction): a product large enough to pack A (96 × 96 per block) and a strided B packed panel by panel,
    /// against plain loops. Then the empty products: m = 0 writes nothing, k = 0 leaves C at its start value.
    func testOperandsWithoutAUnitStrideAndEmptyProducts() {
        forEachVariant { variant in stridedAndEmptyProducts(variant) }
    }

    func stridedAndEmptyProducts<V: KernelVariant>(_: V.Type) {
        let (m, k, n) = (96, 96, 64)
        let aStorage = randomMatrix(m, 2 * k, generator: &generator), bStorage = randomMatrix(k, 2 * n, generator: &generator)
        var c = [Double](repeating: .nan, count: m * n)
        var expected = c, magnitude = c
        aStorage.elements.withUnsafeBufferPointer { ap in
            bStorage.elements.withUnsafeBufferPointer { bp in
                let a = StridedMatrix(base: ap.baseAddress!, rowStride: 2 * k, columnStride: 2)
                let b = StridedMatrix(base: bp.baseAddress!, rowStride: 2 * n, columnStride: 2)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0, size = 0.0
                        for l in 0..<k { sum += a.element(i, l) * b.element(l, j); size += abs(a.element(i, l) * b.element(l, j)) }
                        expected[i * n + j] = sum
                        magnitude[i * n + j] = size
                    }
                }
                c.withUnsafeMutableBufferPointer { cp in
                    multiply(V.self, m: m, n: n, k: k, a: a, b: b, c: cp.baseAddress!, cRowStride: n, start: .zero,
                             workspace: ProductWorkspace())
                }
            }
        }
        assertProductClose(Matrix(rows: m, columns: n, elements: c), Matrix(rows: m, columns: n, elements: expected),
                           magnitude: Matrix(rows: m, columns: n, elements: magnitude), "\(V.name): both operands strided")

        let bias = [1.5, -2.0, 0.25]
        var out = [Double](repeating: 7, count: 6)
        let none = [Double](repeating: 0, count: 1)
        none.withUnsafeBufferPointer { p in
            let empty = StridedMatrix(base: p.baseAddress!, rowStride: 1, columnStride: 1)
            bias.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { cp in
                    let c = cp.baseAddress!
                    multiply(V.self, m: 0, n: 3, k: 4, a: empty, b: empty, c: c, cRowStride: 3, start: .zero, workspace: ProductWorkspace())
                    XCTAssertEqual(Array(cp), [7, 7, 7, 7, 7, 7], "\(V.name): m = 0 writes nothing")
                    multiply(V.self, m: 2, n: 3, k: 0, a: empty, b: empty, c: c, cRowStride: 3, start: .accumulate, workspace: ProductWorkspace())
                    XCTAssertEqual(Array(cp), [7, 7, 7, 7, 7, 7], "\(V.name): k = 0, C += (nothing)")
                    multiply(V.self, m: 2, n: 3, k: 0, a: empty, b: empty, c: c, cRowStride: 3, start: .bias(bp.baseAddress!), workspace: ProductWorkspace())
                    XCTAssertEqual(Array(cp), bias + bias, "\(V.name): k = 0, C = bias")
                    multiply(V.self, m: 2, n: 3, k: 0, a: empty, b: empty, c: c, cRowStride: 3, start: .zero, workspace: ProductWorkspace())
                    XCTAssertEqual(Array(cp), [0, 0, 0, 0, 0, 0], "\(V.name): k = 0, C = 0")
                }
            }
        }
    }

    /// `Matrix.affine` with variant `V` (opened from the existential), optionally with `Wᵀ` packed first.
    func affine<V: KernelVariant>(_: V.Type, _ x: Matrix, _ w: Matrix, _ b: Matrix, into y: inout Matrix, prepacked: Bool = false) {
        let packed = PackedPanels()
        if prepacked {
            w.elements.withUnsafeBufferPointer { wp in
                packed.pack(V.self, StridedMatrix(base: wp.baseAddress!, rowStride: w.columns, columnStride: 1).transposed,
                            k: w.columns, n: w.rows)
            }
        }
        Matrix.affine(V.self, x, weightTransposed: w, bias: b, into: &y, workspace: ProductWorkspace(),
                      packedWeight: prepacked ? packed : nil)
    }

    func testTransposedProductMatchesNaiveLoops() {
        forEachVariant { variant in
            for (outWidth, inWidth) in shapes {
                for batch in [1, 2, 5, 9, 100, 300] {
                    let dY = randomMatrix(batch, outWidth, generator: &generator)
                    let x = randomMatrix(batch, inWidth, generator: &generator)
                    let start = randomMatrix(outWidth, inWidth, generator: &generator)
                    var expected = start, magnitude = start
                    for o in 0..<outWidth {
                        for i in 0..<inWidth {
                            var sum = 0.0, size = 0.0
                            for n in 0..<batch { sum += dY[n, o] * x[n, i]; size += abs(dY[n, o] * x[n, i]) }
                            expected[o, i] += sum
                            magnitude[o, i] = size + abs(start[o, i])
                        }
                    }
                    var dW = start
                    transposedProduct(variant, dY, x, into: &dW)
                    assertProductClose(dW, expected, magnitude: magnitude,
                                       "\(variant.name) dYᵀ·x batch \(batch), out \(outWidth), in \(inWidth)")
                }
            }
        }
    }

    func transposedProduct<V: KernelVariant>(_: V.Type, _ dY: Matrix, _ x: Matrix, into dW: inout Matrix) {
        Matrix.accumulateTransposedProduct(V.self, dY, x, into: &dW, workspace: ProductWorkspace())
    }

    func testProductMatchesNaiveLoops() {
        forEachVariant { variant in
            for (batch, outWidth) in shapes {
                for inWidth in [1, 2, 3, 25, 31, 64, 257] {
                    let dY = randomMatrix(batch, outWidth, generator: &generator)
                    let w = randomMatrix(outWidth, inWidth, generator: &generator)
                    var expected = Matrix(rows: batch, columns: inWidth), magnitude = expected
                    for n in 0..<batch {
                        for i in 0..<inWidth {
                            var sum = 0.0, size = 0.0
                            for o in 0..<outWidth { sum += dY[n, o] * w[o, i]; size += abs(dY[n, o] * w[o, i]) }
                            expected[n, i] = sum
                            magnitude[n, i] = size
                        }
                    }
                    var dX = Matrix(rows: batch, columns: inWidth, repeating: .nan)
                    product(variant, dY, w, into: &dX)
                    assertProductClose(dX, expected, magnitude: magnitude, "\(variant.name) dY·W batch \(batch), out \(outWidth), in \(inWidth)")
                }
            }
        }
    }

    func product<V: KernelVariant>(_: V.Type, _ dY: Matrix, _ w: Matrix, into dX: inout Matrix) {
        Matrix.product(V.self, dY, w, into: &dX, workspace: ProductWorkspace())
    }

    /// Shapes past every cache block (depth > 256, rows > 192, columns > 512) so the blocked loops, the
    /// packed-A path and a pre-packed B of several blocks run.
    func testProductsAcrossCacheBlocks() {
        forEachVariant { variant in
            for (batch, inWidth, outWidth) in [(200, 300, 40), (3, 5, 1100), (194, 300, 530)] {
                let x = randomMatrix(batch, inWidth, generator: &generator)
                let w = randomMatrix(outWidth, inWidth, generator: &generator)
                let b = randomMatrix(1, outWidth, generator: &generator)
                let (expected, magnitude) = naiveAffine(x, w, b)
                var y = Matrix.empty, packed = Matrix.empty
                affine(variant, x, w, b, into: &y)
                affine(variant, x, w, b, into: &packed, prepacked: true)
                let label = "\(variant.name) affine batch \(batch), in \(inWidth), out \(outWidth)"
                assertProductClose(y, expected, magnitude: magnitude, label)
                XCTAssertEqual(packed, y, "\(label): pre-packed weights give the same bits")
            }
        }
    }

    /// A row's value does not depend on the rows computed with it: the first 7 rows of a batch of 300 are the
    /// same bits as those 7 rows alone (what makes a chunked evaluation equal to one pass).
    func testRowsDoNotDependOnTheBatchAroundThem() {
        forEachVariant { variant in
            let x = randomMatrix(300, 41, generator: &generator), w = randomMatrix(29, 41, generator: &generator)
            let b = randomMatrix(1, 29, generator: &generator)
            var whole = Matrix.empty, part = Matrix.empty
            affine(variant, x, w, b, into: &whole)
            affine(variant, x.gatheringRows(0..<7), w, b, into: &part)
            XCTAssertEqual(part, whole.gatheringRows(0..<7), variant.name)
        }
    }

    func testEmptyShapes() {
        let x = Matrix(rows: 3, columns: 0), w = Matrix(rows: 2, columns: 0), b = Matrix([[1, 2]])
        XCTAssertEqual(Matrix.affine(x, weightTransposed: w, bias: b), Matrix([[1, 2], [1, 2], [1, 2]]), "an empty sum is the bias")
        var dX = Matrix(rows: 3, columns: 2, repeating: .nan)
        Matrix.product(Matrix(rows: 3, columns: 0), Matrix(rows: 0, columns: 2), into: &dX)
        XCTAssertEqual(dX, Matrix(rows: 3, columns: 2), "an empty sum is zero, also into a kept matrix")
        XCTAssertEqual(Matrix.affine(Matrix(rows: 0, columns: 2), weightTransposed: Matrix(rows: 3, columns: 2),
                                     bias: Matrix(rows: 1, columns: 3)).shape.rows, 0)
        var dW = Matrix([[1, 2]])
        Matrix.accumulateTransposedProduct(Matrix(rows: 0, columns: 1), Matrix(rows: 0, columns: 2), into: &dW)
        XCTAssertEqual(dW, Matrix([[1, 2]]), "an empty batch adds nothing")
    }

    // MARK: Elementwise kernels

    /// Units in the last place between `a` and `b` (0 when both are NaN or equal).
    func ulps(_ a: Double, _ b: Double) -> Double {
        if a == b || (a.isNaN && b.isNaN) { return 0 }
        return abs(a - b) / max(b.ulp, Double.leastNonzeroMagnitude)
    }

    /// Inputs spread over the ranges where each formula changes, plus the special values.
    func activationInputs() -> [Double] {
        var values: [Double] = [0, -0.0, 1e-300, -1e-300, 1e-8, 0.625, -0.625, 0.6249999999, 20, -20, 354, -354,
                                709, -709, 745, -746, .infinity, -.infinity, .nan]
        for _ in 0..<2000 { values.append(generator.uniform(-30, 30)) }
        for _ in 0..<2000 { values.append(generator.uniform(-1, 1)) }
        return values
    }

    /// `f` applied by `mapLanes` at variant `V` to every value.
    func mapped<V: KernelVariant>(_: V.Type, _ x: [Double], _ f: (V.Lane) -> V.Lane) -> [Double] {
        var y = [Double](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { mapLanes(x.count, xp.baseAddress!, $0.baseAddress!, f) } }
        return y
    }

    func exp<V: KernelVariant>(_ v: V.Type, _ x: [Double]) -> [Double] { mapped(v, x) { vectorExp(V.self, $0) } }
    func tanh<V: KernelVariant>(_ v: V.Type, _ x: [Double]) -> [Double] { mapped(v, x) { vectorTanh(V.self, $0) } }

    /// The claim in `vectorExp`'s doc comment: within 1 ulp of the C library's `exp`, at every variant.
    func testExpWithinOneUlpOfTheCLibrary() {
        var x = activationInputs()
        for _ in 0..<2000 { x.append(generator.uniform(-745, 709)) }
        forEachVariant { variant in
            for (v, y) in zip(x, exp(variant, x)) {
                XCTAssertLessThanOrEqual(ulps(y, Foundation.exp(v)), 1, "\(variant.name): exp(\(v)) = \(y), C library \(Foundation.exp(v))")
            }
        }
    }

    /// The claim in `vectorTanh`'s doc comment: within 2 ulp of the C library's `tanh`, at every variant.
    func testTanhWithinTwoUlpOfTheCLibrary() {
        let x = activationInputs()
        forEachVariant { variant in
            for (v, y) in zip(x, tanh(variant, x)) {
                let expected = Foundation.tanh(v)
                XCTAssertLessThanOrEqual(ulps(y, expected), 2, "\(variant.name): tanh(\(v)) = \(y), C library \(expected)")
                if v == 0 { XCTAssertEqual(y.sign, v.sign, "tanh keeps the sign of zero") }
            }
        }
        let y = Tanh().forward(Matrix(rows: 1, columns: x.count, elements: x))
        XCTAssertEqual(y.elements.map(\.bitPattern), tanh(ActiveKernel.self, x).map(\.bitPattern), "Tanh runs vectorTanh")
    }

    /// σ(x) = 1/(1 + e^−x) with `vectorExp`: within 3 ulp of the same formula on the C library's exp (two
    /// roundings after an exp within 1 ulp).
    func testSigmoidWithinThreeUlpOfTheCLibraryFormula() {
        let x = activationInputs()
        let y = Sigmoid().forward(Matrix(rows: 1, columns: x.count, elements: x))
        for (k, v) in x.enumerated() {
            let expected = 1 / (1 + Foundation.exp(-v))
            XCTAssertLessThanOrEqual(ulps(y.elements[k], expected), 3, "σ(\(v)) = \(y.elements[k]), expected \(expected)")
        }
    }

    // MARK: Training: the fast path against the module API and against plain loops

    /// The seeds' network 2-25-25-25-2 (Linear, ReLU, Linear, Tanh, Linear, Sigmoid, Linear) from `seed`.
    func seedsNetwork(seed: UInt64, last: Module? = nil) throws -> Sequential {
        var g = Xoshiro256StarStar(seed: seed)
        var modules: [Module] = [Linear(2, 25, generator: &g), ReLU(), Linear(25, 25, generator: &g), Tanh(),
                                 Linear(25, 25, generator: &g), Sigmoid(), Linear(25, 2, generator: &g)]
        if let last { modules.append(last) }
        return try Sequential(modules)
    }

    /// One step through the module API the plain way, every matrix new: returns the batch loss.
    func plainStep(_ model: Module, _ loss: Loss, _ optimizer: Optimizer, _ data: Dataset, _ rows: ArraySlice<Int>) -> Double {
        let x = data.inputs.gatheringRows(rows), t = data.targets.gatheringRows(rows)
        model.zeroGradients()
        let y = model.forward(x)
        let value = loss.value(predictions: y, targets: t)
        _ = model.backward(loss.gradient(predictions: y, targets: t))
        optimizer.step(model.parameters)
        return value
    }

    /// Trains two copies of a network on the same batches: one the way `Trainer.fit` does (batches gathered
    /// into kept buffers, `valueAndGradient` into a kept gradient, `accumulateGradients` without the model's
    /// dInput, every module reusing its buffers), one the plain way above; every batch loss and every final
    /// parameter must agree to `rtol`.
    func assertTrainerStepMatchesPlainModuleAPI(makeModel: () throws -> Module, loss: Loss, makeOptimizer: () throws -> Optimizer,
                                                targetWidth: Int = 2, batchSize: Int, steps: Int, rtol: Double = 1e-12,
                                                file: StaticString = #filePath, line: UInt = #line) throws {
        var g = Xoshiro256StarStar(seed: 77)
        let data = Dataset.disk(count: 103, targetWidth: targetWidth, generator: &g)
        let fast = try makeModel(), plain = try makeModel()
        let fastOptimizer = try makeOptimizer(), plainOptimizer = try makeOptimizer()
        let parameters = fast.parameters
        var inputs = Matrix.empty, targets = Matrix.empty, dLoss = Matrix.empty
        var start = 0
        for s in 0..<steps {
            let rows = Array(0..<data.count)[start..<min(start + batchSize, data.count)]
            start = rows.endIndex == data.count ? 0 : rows.endIndex
            inputs.gather(rows: rows, of: data.inputs)
            targets.gather(rows: rows, of: data.targets)
            fast.zeroGradients()
            let fastLoss = loss.valueAndGradient(predictions: fast.forward(inputs), targets: targets, into: &dLoss)
            fast.accumulateGradients(dLoss)
            fastOptimizer.step(parameters)
            let plainLoss = plainStep(plain, loss, plainOptimizer, data, rows)
            assertClose(fastLoss, plainLoss, rtol: rtol, "\(loss) loss at step \(s + 1)", file: file, line: line)
        }
        for (a, b) in zip(fast.parameters, plain.parameters) {
            assertClose(a.value, b.value, rtol: rtol, atol: rtol, "\(a.name) after \(steps) steps", file: file, line: line)
            assertClose(a.gradient, b.gradient, rtol: 1e-9, atol: 1e-12, "gradient of \(a.name)", file: file, line: line)
        }
    }

    func testTrainerStepMatchesPlainModuleAPIOnTheSeedsNetwork() throws {
        for batchSize in [1, 5, 7, 100] {
            try assertTrainerStepMatchesPlainModuleAPI(makeModel: { try self.seedsNetwork(seed: 3) }, loss: MSELoss(),
                                                       makeOptimizer: { try SGD(learningRate: 0.1) }, batchSize: batchSize, steps: 60)
        }
    }

    func testTrainerStepMatchesPlainModuleAPIForEveryLossAndActivation() throws {
        let makeDeep = { () throws -> Module in
            var g = Xoshiro256StarStar(seed: 9)
            return try Sequential([Linear(2, 9, generator: &g), LeakyReLU(slope: 0.1), Linear(9, 17, generator: &g), Tanh(),
                                   try Sequential([Linear(17, 4, generator: &g), LeakyReLU(slope: -0.5)]),
                                   Linear(4, 5, generator: &g), GELU(), Linear(5, 2, generator: &g)])
        }
        try assertTrainerStepMatchesPlainModuleAPI(makeModel: makeDeep, loss: MAELoss(), makeOptimizer: { try Adam(learningRate: 0.01) },
                                                   batchSize: 6, steps: 40)
        try assertTrainerStepMatchesPlainModuleAPI(makeModel: makeDeep, loss: CrossEntropyLoss(),
                                                   makeOptimizer: { try SGD(learningRate: 0.05, momentum: 0.9, nesterov: true) },
                                                   batchSize: 9, steps: 40)
        try assertTrainerStepMatchesPlainModuleAPI(makeModel: { try self.seedsNetwork(seed: 4, last: Sigmoid()) }, loss: BCELoss(),
                                                   makeOptimizer: { try SGD(learningRate: 0.1, momentum: 0.5, dampening: 0.1, weightDecay: 0.01) },
                                                   batchSize: 4, steps: 40)
        var g = Xoshiro256StarStar(seed: 5)
        let single = Linear(2, 1, generator: &g)
        try assertTrainerStepMatchesPlainModuleAPI(makeModel: { Linear(weight: single.weight.value, bias: single.bias.value) }, loss: MSELoss(),
                                                   makeOptimizer: { try SGD(learningRate: 0.1) }, targetWidth: 1, batchSize: 3, steps: 20)
    }

    /// What the old fast path declined now runs on the one path: a loss Framework does not know trains as the
    /// plain way does, and a module used twice is refused where the model is built (its cached input would be
    /// overwritten by the second use).
    func testOtherLossesTrainOnTheSamePathAndSharedModulesAreRefused() throws {
        var g = Xoshiro256StarStar(seed: 1)
        let shared = Linear(3, 3, generator: &g)
        XCTAssertThrowsError(try Sequential([shared, Tanh(), shared]), "a Linear used twice") { error in
            XCTAssertTrue("\(error)".contains("module 2 (Linear(3 → 3)) is the same object as module 0"), "\(error)")
        }
        try assertTrainerStepMatchesPlainModuleAPI(makeModel: { try self.seedsNetwork(seed: 1) }, loss: HalfMSE(),
                                                   makeOptimizer: { try SGD(learningRate: 0.1) }, batchSize: 5, steps: 20)
    }

    /// A module returns its own output buffer; a caller that keeps the matrix keeps its values (copy-on-write),
    /// whatever later batches do.
    func testAReturnedOutputKeepsItsValues() {
        var g = Xoshiro256StarStar(seed: 12)
        let layer = Linear(3, 2, generator: &g)
        let x1 = randomMatrix(4, 3, generator: &g), x2 = randomMatrix(4, 3, generator: &g)
        let y1 = layer.forward(x1)
        let copy = Matrix(rows: y1.rows, columns: y1.columns, elements: Array(y1.elements))
        let y2 = layer.forward(x2)
        XCTAssertEqual(y1, copy, "the first output did not change")
        XCTAssertNotEqual(y1, y2)
        XCTAssertEqual(layer.forward(x1), copy, "the same input gives the same output")
    }

    /// `Trainer.fit` against a straightforward implementation of the same training:
    /// triple loops summed in order, the C library's tanh and exp, plain SGD. Losses agree to 1e-12 relative.
    func testTrainerMatchesAStraightforwardImplementation() throws {
        var g = Xoshiro256StarStar(seed: 21)
        let train = Dataset.disk(count: 200, targetWidth: 2, generator: &g)
        let test = Dataset.disk(count: 50, targetWidth: 2, generator: &g)
        let model = try seedsNetwork(seed: 8)
        let layers = model.modules.compactMap { $0 as? Linear }.map { (w: $0.weight.value, b: $0.bias.value) }
        let trace = Trainer(epochs: 4, batchSize: 10, order: .shuffled(seed: 2))
            .fit(model, loss: MSELoss(), optimizer: try SGD(learningRate: 0.5), train: train, test: test)
        var naive = NaiveSeedsNetwork(layers: layers)
        let expected = naive.train(train: train, test: test, epochs: 4, batchSize: 10,
                                                               orders: BatchOrder.shuffled(seed: 2).orders(count: 200, epochs: 4),
                                                               learningRate: 0.5)
        XCTAssertEqual(trace.epochs.count, expected.count)
        for (got, want) in zip(trace.epochs, expected) {
            assertClose(got.trainLoss, want.train, rtol: 1e-12, "train loss, epoch \(got.epoch)")
            assertClose(got.testLoss, want.test, rtol: 1e-12, "test loss, epoch \(got.epoch)")
        }
        XCTAssertLessThan(trace.epochs.last!.trainLoss, trace.epochs[0].trainLoss, "it trained")
    }
}

/// MSE halved: a loss Framework does not know (it keeps the protocol's default `valueAndGradient`).
private struct HalfMSE: Loss {
    var description: String { "HalfMSE" }
    func value(predictions: Matrix, targets: Matrix) -> Double { MSELoss().value(predictions: predictions, targets: targets) / 2 }
    func gradient(predictions: Matrix, targets: Matrix) -> Matrix {
        var g = MSELoss().gradient(predictions: predictions, targets: targets)
        for k in g.elements.indices { g.elements[k] /= 2 }
        return g
    }
}

/// The seeds' network trained the plain way: `[[Double]]`, loops in index order, Foundation's tanh and exp.
private struct NaiveSeedsNetwork {
    var weights: [[[Double]]]
    var biases: [[Double]]

    init(layers: [(w: Matrix, b: Matrix)]) {
        weights = layers.map { $0.w.rowArrays }
        biases = layers.map { $0.b.elements }
    }

    /// Activations after layers 0, 1, 2: ReLU, Tanh, Sigmoid; none after the last.
    static func activate(_ x: Double, _ layer: Int) -> Double {
        switch layer {
        case 0: return x > 0 ? x : 0
        case 1: return Foundation.tanh(x)
        case 2: return 1 / (1 + Foundation.exp(-x))
        default: return x
        }
    }

    /// f′ from the activation's output y (ReLU: y > 0 ⇔ x > 0).
    static func derivative(_ y: Double, _ layer: Int) -> Double {
        switch layer {
        case 0: return y > 0 ? 1 : 0
        case 1: return 1 - y * y
        case 2: return y * (1 - y)
        default: return 1
        }
    }

    /// Outputs of every layer (after its activation) for one sample; element 0 is the input.
    func forward(_ input: [Double]) -> [[Double]] {
        var outs = [input]
        for l in weights.indices {
            let x = outs.last!
            var y = [Double](repeating: 0, count: weights[l].count)
            for o in y.indices {
                var sum = 0.0
                for i in x.indices { sum += x[i] * weights[l][o][i] }
                y[o] = NaiveSeedsNetwork.activate(sum + biases[l][o], l)
            }
            outs.append(y)
        }
        return outs
    }

    func meanSquaredError(_ data: Dataset) -> Double {
        var sum = 0.0
        for n in 0..<data.count {
            let y = forward(data.inputs.rowArrays[n]).last!
            for c in y.indices { let d = y[c] - data.targets[n, c]; sum += d * d }
        }
        return sum / Double(data.count * data.targets.columns)
    }

    mutating func train(train: Dataset, test: Dataset, epochs: Int, batchSize: Int, orders: [[Int]],
                        learningRate: Double) -> [(train: Double, test: Double)] {
        var result = [(meanSquaredError(train), meanSquaredError(test))]
        for epoch in 0..<epochs {
            var start = 0
            while start < train.count {
                let rows = orders[epoch][start..<min(start + batchSize, train.count)]
                start += rows.count
                var dW = weights.map { $0.map { $0.map { _ in 0.0 } } }, dB = biases.map { $0.map { _ in 0.0 } }
                let scale = 2 / Double(rows.count * train.targets.columns)
                for n in rows {
                    let outs = forward(train.inputs.rowArrays[n])
                    var d = outs.last!.indices.map { scale * (outs.last![$0] - train.targets[n, $0]) }
                    for l in weights.indices.reversed() {
                        let y = outs[l + 1], x = outs[l]
                        for o in d.indices { d[o] *= NaiveSeedsNetwork.derivative(y[o], l) }
                        var dx = [Double](repeating: 0, count: x.count)
                        for o in d.indices {
                            dB[l][o] += d[o]
                            for i in x.indices {
                                dW[l][o][i] += d[o] * x[i]
                                dx[i] += d[o] * weights[l][o][i]
                            }
                        }
                        d = dx
                    }
                }
                for l in weights.indices {
                    for o in weights[l].indices {
                        for i in weights[l][o].indices { weights[l][o][i] -= learningRate * dW[l][o][i] }
                        biases[l][o] -= learningRate * dB[l][o]
                    }
                }
            }
            result.append((meanSquaredError(train), meanSquaredError(test)))
        }
        return result
    }
}
