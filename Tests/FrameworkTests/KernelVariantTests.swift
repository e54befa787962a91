@testable import Framework
import TestSupport
import XCTest

/// What each kernel variant claims beyond "close to a plain loop": the AVX2 and AVX-512 variants fuse their
/// multiply-adds (one rounding) and the portable one does not (KernelVariant.swift), and the bias gradient's
/// column sums, which `Linear` runs only at the build's active variant, are right at every variant and in each of
/// their branches (4 vectors at a time, one vector, the scalar tail).
final class KernelVariantTests: XCTestCase {
    /// `Matrix.affine` at variant `V`.
    func affine<V: KernelVariant>(_: V.Type, _ x: Matrix, _ w: Matrix, _ b: Matrix) -> Matrix {
        var y = Matrix.empty
        Matrix.affine(V.self, x, weightTransposed: w, bias: b, into: &y, workspace: ProductWorkspace())
        return y
    }

    /// y = 1·(−1) + (1 + 2⁻³⁰)(1 − 2⁻³⁰) = −2⁻⁶⁰ exactly. The kernel sums over k in order in a register from 0:
    /// acc = −1, then acc + x₂w₂. Fused, that is −1 + (1 − 2⁻⁶⁰) rounded once: −2⁻⁶⁰. Unfused, x₂w₂ first rounds to
    /// 1 (the doubles next to 1 are 2⁻⁵³ apart below it), and −1 + 1 = 0.
    func testTheAVXVariantsFuseTheirMultiplyAddsAndThePortableOneDoesNot() {
        let x = Matrix([[1, 1 + 0x1p-30]]), w = Matrix([[-1, 1 - 0x1p-30]]), b = Matrix([[0]])
        for variant in allKernelVariants {
            let y = affine(variant, x, w, b)
            XCTAssertEqual(y[0, 0], variant.fusedMultiplyAdd ? -0x1p-60 : 0, "\(variant.name)")
        }
        XCTAssertTrue(AVX2Kernel.fusedMultiplyAdd && AVX512Kernel.fusedMultiplyAdd && !PortableKernel.fusedMultiplyAdd)
        XCTAssertEqual(KernelConfiguration.fusedMultiplyAdd, ActiveKernel.fusedMultiplyAdd)
        XCTAssertEqual(affine(ActiveKernel.self, x, w, b), Matrix.affine(x, weightTransposed: w, bias: b),
                       "the public API runs the active variant")
    }

    /// `sums[c] += Σ_r m[r, c]`, the rows summed in order from 0 and then added: the same additions as this plain
    /// loop, so the bits agree exactly. The column counts reach each branch at each lane width (2, 4, 8):
    /// below one vector, one vector and a tail, exactly 4 vectors, 4 vectors and more.
    func testColumnSumsAtEveryVariantMatchAPlainLoop() {
        var generator = Xoshiro256StarStar(seed: 77)
        for variant in allKernelVariants {
            for columns in [1, 3, 5, 7, 8, 9, 13, 16, 25, 32, 33, 45, 70] {
                for rows in [1, 4, 11] {
                    let m = randomMatrix(rows, columns, generator: &generator)
                    let start = randomMatrix(1, columns, generator: &generator)
                    var expected = start
                    for c in 0..<columns {
                        var acc = 0.0
                        for r in 0..<rows { acc += m[r, c] }
                        expected[0, c] = start[0, c] + acc
                    }
                    XCTAssertEqual(columnSums(variant, m, start: start), expected, "\(variant.name), (\(rows), \(columns))")
                }
            }
        }
    }

    func columnSums<V: KernelVariant>(_: V.Type, _ m: Matrix, start: Matrix) -> Matrix {
        var sums = start
        m.elements.withUnsafeBufferPointer { mp in
            sums.elements.withUnsafeMutableBufferPointer { sp in
                accumulateColumnSums(V.self, rows: m.rows, columns: m.columns, mp.baseAddress!, into: sp.baseAddress!)
            }
        }
        return sums
    }

    /// The packed-A path (A packed when it is read for more than two panels of B and has at least 8192 elements
    /// per block) with a row count that leaves a short last panel at every tile height (35 = 8·4 + 3), so that
    /// the panels' remainder rows (fewer than a lane) sit after other panels of the same block: the three products
    /// of a linear layer, each against a plain loop, bounded by 10⁻¹³·Σ|terms| as in KernelTests.
    func testPackedAWithAShortLastPanelAtEveryVariant() {
        var generator = Xoshiro256StarStar(seed: 79)
        let (batch, inWidth, outWidth) = (35, 300, 100)
        let x = randomMatrix(batch, inWidth, generator: &generator), w = randomMatrix(outWidth, inWidth, generator: &generator)
        let b = randomMatrix(1, outWidth, generator: &generator)
        let dY = randomMatrix(batch, outWidth, generator: &generator)
        let dYt = randomMatrix(inWidth, batch, generator: &generator), xt = randomMatrix(inWidth, outWidth, generator: &generator)
        let affineExpected = naive(batch, outWidth, inWidth, { x[$0, $2] * w[$1, $2] }, start: { _, o in b[0, o] })
        let productExpected = naive(batch, inWidth, outWidth, { dY[$0, $2] * w[$2, $1] })
        let transposedExpected = naive(batch, outWidth, inWidth, { dYt[$2, $0] * xt[$2, $1] }, start: { _, _ in 0.5 })
        for variant in allKernelVariants {
            // y = x·Wᵀ + b: A = x (35, 300), rows contiguous.
            var y = Matrix.empty
            Matrix.affine(variant, x, weightTransposed: w, bias: b, into: &y, workspace: ProductWorkspace())
            assertProductClose(y, affineExpected, "\(variant.name) affine")
            // dX = dY·W: A = dY (35, 100), rows contiguous, depth 100; B = W (100, 300).
            var dX = Matrix.empty
            Matrix.product(variant, dY, w, into: &dX, workspace: ProductWorkspace())
            assertProductClose(dX, productExpected, "\(variant.name) dY·W")
            // dW += dYᵀ·x with dY (300, 35): A = dYᵀ (35, 300), columns contiguous.
            var dW = Matrix(rows: batch, columns: outWidth, repeating: 0.5)
            Matrix.accumulateTransposedProduct(variant, dYt, xt, into: &dW, workspace: ProductWorkspace())
            assertProductClose(dW, transposedExpected, "\(variant.name) dYᵀ·x")
        }
    }

    /// Every tile height of every variant (a last tile of 1…mr rows: AVX-512's are 8 high, so its 5- and 6-row
    /// tiles need batches of 5, 6, 13, 14), in both roles of m: the batch of x·Wᵀ + b, and the outputs of dYᵀ·x.
    func testEveryTileHeightAtEveryVariant() {
        var generator = Xoshiro256StarStar(seed: 80)
        for rows in Array(1...9) + [13, 14] {
            let x = randomMatrix(rows, 3, generator: &generator), w = randomMatrix(5, 3, generator: &generator)
            let b = randomMatrix(1, 5, generator: &generator)
            let dY = randomMatrix(4, rows, generator: &generator), x2 = randomMatrix(4, 5, generator: &generator)
            let affineExpected = naive(rows, 5, 3, { x[$0, $2] * w[$1, $2] }, start: { _, o in b[0, o] })
            let transposedExpected = naive(rows, 5, 4, { dY[$2, $0] * x2[$2, $1] })
            for variant in allKernelVariants {
                var y = Matrix(rows: rows, columns: 5, repeating: .nan)
                Matrix.affine(variant, x, weightTransposed: w, bias: b, into: &y, workspace: ProductWorkspace())
                assertProductClose(y, affineExpected, "\(variant.name) affine, batch \(rows)")
                var dW = Matrix(rows: rows, columns: 5)
                Matrix.accumulateTransposedProduct(variant, dY, x2, into: &dW, workspace: ProductWorkspace())
                assertProductClose(dW, transposedExpected, "\(variant.name) dYᵀ·x, out \(rows)")
            }
        }
    }

    /// The public entry points run the active variant, and `KernelConfiguration` describes it.
    func testThePublicAPIRunsTheActiveVariantAndSaysWhichItIs() {
        var generator = Xoshiro256StarStar(seed: 81)
        let dY = randomMatrix(3, 4, generator: &generator), w = randomMatrix(4, 6, generator: &generator)
        var dX = Matrix.empty
        Matrix.product(ActiveKernel.self, dY, w, into: &dX, workspace: ProductWorkspace())
        XCTAssertEqual(Matrix.product(dY, w), dX)
        let width = ActiveKernel.Lane.scalarCount, rows = ActiveKernel.TileRows.value
        let columns = ActiveKernel.TileVectors.value * width
        XCTAssertEqual([KernelConfiguration.laneWidth, KernelConfiguration.tileRows, KernelConfiguration.tileColumns],
                       [width, rows, columns])
        XCTAssertEqual(KernelConfiguration.variant, ActiveKernel.name)
        XCTAssertEqual(KernelConfiguration.description,
                       "\(ActiveKernel.name): SIMD\(width)<Double>, \(rows)×\(columns) tiles, "
                       + (ActiveKernel.fusedMultiplyAdd ? "fused multiply-add" : "separate multiply and add"))
    }

    /// `(rows, columns)` of `start(i, j) + Σ_k term(i, j, k)` and of `|start| + Σ_k |term|`, summed in k order.
    func naive(_ rows: Int, _ columns: Int, _ depth: Int, _ term: (Int, Int, Int) -> Double,
               start: (Int, Int) -> Double = { _, _ in 0 }) -> (value: Matrix, magnitude: Matrix) {
        var value = Matrix(rows: rows, columns: columns), magnitude = value
        for i in 0..<rows {
            for j in 0..<columns {
                var sum = 0.0, size = 0.0
                for k in 0..<depth { let t = term(i, j, k); sum += t; size += abs(t) }
                value[i, j] = start(i, j) + sum
                magnitude[i, j] = abs(start(i, j)) + size
            }
        }
        return (value, magnitude)
    }

    func assertProductClose(_ actual: Matrix, _ expected: (value: Matrix, magnitude: Matrix), _ label: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(actual.shape == expected.value.shape, "\(label): shape \(actual.shape)", file: file, line: line)
        guard actual.shape == expected.value.shape else { return }
        let worst = actual.elements.indices.max { k1, k2 in
            excess(actual, expected, k1) < excess(actual, expected, k2)
        }
        if let k = worst, !(excess(actual, expected, k) <= 0) {
            XCTFail("\(label): worst at [\(k / actual.columns), \(k % actual.columns)]: actual \(actual.elements[k]), "
                    + "expected \(expected.value.elements[k])", file: file, line: line)
        }
    }

    private func excess(_ actual: Matrix, _ expected: (value: Matrix, magnitude: Matrix), _ k: Int) -> Double {
        let e = abs(actual.elements[k] - expected.value.elements[k]) - 1e-13 * expected.magnitude.elements[k]
        return e.isNaN ? .infinity : e
    }

    /// Linear's bias gradient accumulates over backward calls in every branch of the active variant's column sums.
    func testLinearBiasGradientsAccumulateAtEveryWidth() {
        var generator = Xoshiro256StarStar(seed: 78)
        for out in [1, 3, 9, 25, 33] {
            let layer = Linear(4, out, generator: &generator)
            let x = randomMatrix(6, 4, generator: &generator)
            let dY1 = randomMatrix(6, out, generator: &generator), dY2 = randomMatrix(6, out, generator: &generator)
            _ = layer.forward(x)
            _ = layer.backward(dY1)
            _ = layer.backward(dY2)
            var expected = Matrix(rows: 1, columns: out)
            for c in 0..<out { for r in 0..<6 { expected[0, c] += dY1[r, c] + dY2[r, c] } }
            assertClose(layer.bias.gradient, expected, rtol: 1e-14, atol: 1e-15, "Linear(4 → \(out))")
        }
    }
}
