/// A dense, row-major matrix of `Double`: element (r, c) is `elements[r * columns + c]`.
///
/// Shapes are written `(rows, columns)`; a batch of samples is `(batch, features)`: one sample per row.
/// `Matrix` is a value type (copy-on-write through its array); the products that training needs are the
/// three functions at the bottom of this file, named after the product they compute.
public struct Matrix: Equatable, Sendable, CustomStringConvertible {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let columns: Int
    /// The `rows * columns` elements, row after row.
    public var elements: [Double]

    /// A `(rows, columns)` matrix filled with `value` (default 0).
    public init(rows: Int, columns: Int, repeating value: Double = 0) {
        precondition(rows >= 0 && columns >= 0, "Matrix: negative shape (\(rows), \(columns))")
        self.rows = rows
        self.columns = columns
        self.elements = Array(repeating: value, count: rows * columns)
    }

    /// A `(rows, columns)` matrix over `elements`, given row after row.
    public init(rows: Int, columns: Int, elements: [Double]) {
        precondition(rows >= 0 && columns >= 0, "Matrix: negative shape (\(rows), \(columns))")
        precondition(elements.count == rows * columns,
                     "Matrix: \(elements.count) elements for shape (\(rows), \(columns))")
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// A matrix from rows of equal length; `[[1, 2], [3, 4]]` is `(2, 2)`. An empty list gives `(0, 0)`.
    public init(_ rowArrays: [[Double]]) {
        let columns = rowArrays.first?.count ?? 0
        precondition(rowArrays.allSatisfy { $0.count == columns }, "Matrix: ragged rows")
        self.init(rows: rowArrays.count, columns: columns, elements: rowArrays.flatMap { $0 })
    }

    /// The shape as `(rows, columns)`.
    @inlinable public var shape: (rows: Int, columns: Int) { (rows, columns) }

    /// Element at row `row`, column `column`.
    @inlinable public subscript(row: Int, column: Int) -> Double {
        get { elements[row * columns + column] }
        set { elements[row * columns + column] = newValue }
    }

    /// The rows as arrays (for reports and for handing values to another engine).
    public var rowArrays: [[Double]] {
        (0..<rows).map { r in Array(elements[(r * columns)..<((r + 1) * columns)]) }
    }

    /// The matrix whose rows are rows `indices` of this one, in that order: `(indices.count, columns)`.
    public func gatheringRows<C: Collection>(_ indices: C) -> Matrix where C.Element == Int {
        var result = Matrix(rows: indices.count, columns: columns)
        result.elements.withUnsafeMutableBufferPointer { out in
            elements.withUnsafeBufferPointer { src in
                var r = 0
                for index in indices {
                    precondition(index >= 0 && index < rows, "Matrix.gatheringRows: row \(index) of \(rows)")
                    for c in 0..<columns { out[r * columns + c] = src[index * columns + c] }
                    r += 1
                }
            }
        }
        return result
    }

    /// Sets every element to zero, keeping the shape and the storage.
    public mutating func zero() {
        elements.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    public var description: String {
        "Matrix(\(rows)×\(columns))" + (rows * columns <= 16 ? " \(rowArrays)" : "")
    }
}

// MARK: - The three products of a linear layer

// Each product has a form that returns a new matrix and one that writes into a matrix the caller keeps
// (`into:`), reusing its storage when the shape already matches, and takes an optional `ProductWorkspace`
// to reuse packing buffers across calls. All run the SIMD kernel in Kernels.swift, which adds the terms in
// another order than a plain loop over `i` (see its file comment): results differ by rounding only.

extension Matrix {
    /// `x·Wᵀ + b` for `x` `(batch, in)`, `weight` `(out, in)`, `bias` `(1, out)`; returns `(batch, out)`.
    ///
    /// `y[n, o] = b[o] + Σ_i x[n, i] · W[o, i]`.
    public static func affine(_ x: Matrix, weightTransposed weight: Matrix, bias: Matrix) -> Matrix {
        var y = Matrix(rows: 0, columns: 0)
        affine(x, weightTransposed: weight, bias: bias, into: &y)
        return y
    }

    /// `y = x·Wᵀ + b` written into `y`, which is resized to `(batch, out)` if its shape differs; the packing
    /// buffers come from `workspace` (default: new ones for this call).
    public static func affine(_ x: Matrix, weightTransposed weight: Matrix, bias: Matrix, into y: inout Matrix,
                              workspace: ProductWorkspace? = nil) {
        let workspace = workspace ?? ProductWorkspace()
        precondition(x.columns == weight.columns, "affine: x is \(x.shape), weight is \(weight.shape)")
        precondition(bias.rows == 1 && bias.columns == weight.rows, "affine: bias is \(bias.shape), weight \(weight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = weight.rows
        y.reshape(rows: batch, columns: outWidth)
        if y.elements.isEmpty { return }
        if inWidth == 0 {  // an empty sum: every row is the bias
            for n in 0..<batch { y.elements.replaceSubrange(rowRange(n, outWidth), with: bias.elements) }
            return
        }
        y.elements.withUnsafeMutableBufferPointer { yp in
            x.elements.withUnsafeBufferPointer { xp in
                weight.elements.withUnsafeBufferPointer { wp in
                    bias.elements.withUnsafeBufferPointer { bp in
                        affineKernel(batch: batch, inWidth: inWidth, outWidth: outWidth, x: xp.baseAddress!, xRowStride: inWidth,
                               weight: wp.baseAddress!, bias: bp.baseAddress!, y: yp.baseAddress!, yRowStride: outWidth,
                               workspace: workspace)
                    }
                }
            }
        }
    }

    /// Accumulates `dWeight += dYᵀ·x` for `dY` `(batch, out)`, `x` `(batch, in)`, `dWeight` `(out, in)`; the
    /// packing buffers come from `workspace` (default: new ones for this call).
    public static func accumulateTransposedProduct(_ dY: Matrix, _ x: Matrix, into dWeight: inout Matrix,
                                                   workspace: ProductWorkspace? = nil) {
        let workspace = workspace ?? ProductWorkspace()
        precondition(dY.rows == x.rows && dWeight.rows == dY.columns && dWeight.columns == x.columns,
                     "dYᵀ·x: dY is \(dY.shape), x is \(x.shape), dWeight is \(dWeight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = dY.columns
        if batch == 0 || dWeight.elements.isEmpty { return }  // nothing to add
        dWeight.elements.withUnsafeMutableBufferPointer { gp in
            dY.elements.withUnsafeBufferPointer { dp in
                x.elements.withUnsafeBufferPointer { xp in
                    transposedProductKernel(batch: batch, inWidth: inWidth, outWidth: outWidth,
                                      dY: dp.baseAddress!, dYRowStride: outWidth, x: xp.baseAddress!, xRowStride: inWidth,
                                      dWeight: gp.baseAddress!, accumulate: true, workspace: workspace)
                }
            }
        }
    }

    /// `dY·W` for `dY` `(batch, out)` and `weight` `(out, in)`; returns `(batch, in)`.
    public static func product(_ dY: Matrix, _ weight: Matrix) -> Matrix {
        var dX = Matrix(rows: 0, columns: 0)
        product(dY, weight, into: &dX)
        return dX
    }

    /// `dX = dY·W` written into `dX`, which is resized to `(batch, in)` if its shape differs; the packing
    /// buffers come from `workspace` (default: new ones for this call).
    public static func product(_ dY: Matrix, _ weight: Matrix, into dX: inout Matrix, workspace: ProductWorkspace? = nil) {
        let workspace = workspace ?? ProductWorkspace()
        precondition(dY.columns == weight.rows, "dY·W: dY is \(dY.shape), weight is \(weight.shape)")
        let batch = dY.rows, inWidth = weight.columns, outWidth = weight.rows
        dX.reshape(rows: batch, columns: inWidth)
        if dX.elements.isEmpty { return }
        if outWidth == 0 {  // an empty sum
            dX.zero()
            return
        }
        dX.elements.withUnsafeMutableBufferPointer { xp in
            dY.elements.withUnsafeBufferPointer { dp in
                weight.elements.withUnsafeBufferPointer { wp in
                    productKernel(batch: batch, inWidth: inWidth, outWidth: outWidth, dY: dp.baseAddress!, dYRowStride: outWidth,
                            weight: wp.baseAddress!, dX: xp.baseAddress!, dXRowStride: inWidth, workspace: workspace)
                }
            }
        }
    }

    /// Gives the matrix the shape `(rows, columns)`, keeping its storage when the shape is already that
    /// (contents are then overwritten by the caller), else replacing it with zeros.
    mutating func reshape(rows: Int, columns: Int) {
        if self.rows != rows || self.columns != columns { self = Matrix(rows: rows, columns: columns) }
    }
}

// MARK: - The products on raw buffers (shared by the Matrix API and TrainingStep)

/// `y = x·Wᵀ + b`: x `(batch, in)` rows `xRowStride` apart, W `(out, in)` contiguous, b `(out)`, y `(batch, out)`.
func affineKernel(batch: Int, inWidth: Int, outWidth: Int, x: UnsafePointer<Double>, xRowStride: Int,
            weight: UnsafePointer<Double>, bias: UnsafePointer<Double>,
            y: UnsafeMutablePointer<Double>, yRowStride: Int, workspace: ProductWorkspace) {
    multiply(m: batch, n: outWidth, k: inWidth,
             a: StridedMatrix(base: x, rowStride: xRowStride, columnStride: 1),
             b: StridedMatrix(base: weight, rowStride: inWidth, columnStride: 1).transposed,
             c: y, cRowStride: yRowStride, start: .bias(bias), workspace: workspace)
}

/// `dW (+)= dYᵀ·x`: dY `(batch, out)`, x `(batch, in)`, dW `(out, in)` contiguous; overwrites unless `accumulate`.
func transposedProductKernel(batch: Int, inWidth: Int, outWidth: Int, dY: UnsafePointer<Double>, dYRowStride: Int,
                       x: UnsafePointer<Double>, xRowStride: Int, dWeight: UnsafeMutablePointer<Double>,
                       accumulate: Bool, workspace: ProductWorkspace) {
    multiply(m: outWidth, n: inWidth, k: batch,
             a: StridedMatrix(base: dY, rowStride: dYRowStride, columnStride: 1).transposed,
             b: StridedMatrix(base: x, rowStride: xRowStride, columnStride: 1),
             c: dWeight, cRowStride: inWidth, start: accumulate ? .accumulate : .zero, workspace: workspace)
}

/// `dX = dY·W`: dY `(batch, out)`, W `(out, in)` contiguous, dX `(batch, in)`.
func productKernel(batch: Int, inWidth: Int, outWidth: Int, dY: UnsafePointer<Double>, dYRowStride: Int,
             weight: UnsafePointer<Double>, dX: UnsafeMutablePointer<Double>, dXRowStride: Int,
             workspace: ProductWorkspace) {
    multiply(m: batch, n: inWidth, k: outWidth,
             a: StridedMatrix(base: dY, rowStride: dYRowStride, columnStride: 1),
             b: StridedMatrix(base: weight, rowStride: inWidth, columnStride: 1),
             c: dX, cRowStride: dXRowStride, start: .zero, workspace: workspace)
}
