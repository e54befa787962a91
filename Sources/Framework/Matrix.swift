/// A dense, row-major matrix of `Double`: element (r, c) is `elements[r * columns + c]`.
///
/// Shapes are written `(rows, columns)`; a batch of samples is `(batch, features)`: one sample per row.
/// `Matrix` is a value type (copy-on-write through its array). The products that training needs are the
/// three functions at the bottom of this file, named after the product they compute; each writes into a
/// matrix the caller keeps (`into:`), so that a module reuses its buffers from one batch to the next.
public struct Matrix: Equatable, Sendable, CustomStringConvertible {
    /// Number of rows.
    public private(set) var rows: Int
    /// Number of columns.
    public private(set) var columns: Int
    /// The `rows * columns` elements, row after row. (Assign only as many as the shape holds.)
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

    /// The `(0, 0)` matrix: where a module's buffers start, before its first batch.
    public static var empty: Matrix { Matrix(rows: 0, columns: 0) }

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
    @inlinable
    public func gatheringRows<C: Collection>(_ indices: C) -> Matrix where C.Element == Int {
        var result = Matrix.empty
        result.gather(rows: indices, of: self)
        return result
    }

    /// Makes this matrix rows `indices` of `source`, in that order: `(indices.count, source.columns)`, reusing
    /// this matrix's storage (see `reshape`). (Inlinable, so that it is specialised for the caller's collection:
    /// unspecialised, iterating a generic collection allocates.)
    @inlinable
    public mutating func gather<C: Collection>(rows indices: C, of source: Matrix) where C.Element == Int {
        reshape(rows: indices.count, columns: source.columns)
        let columns = source.columns, count = source.rows
        elements.withUnsafeMutableBufferPointer { out in
            source.elements.withUnsafeBufferPointer { src in
                guard let to = out.baseAddress, let from = src.baseAddress else { return }
                var r = 0
                for index in indices {
                    precondition(index >= 0 && index < count, "Matrix.gather: row \(index) of \(count)")
                    (to + r * columns).update(from: from + index * columns, count: columns)
                    r += 1
                }
            }
        }
    }

    /// Makes this matrix an element-for-element copy of `source`, reusing its storage (see `reshape`): what a
    /// module keeps of its input for `backward`.
    public mutating func copy(from source: Matrix) {
        reshape(rows: source.rows, columns: source.columns)
        elements.withUnsafeMutableBufferPointer { out in
            source.elements.withUnsafeBufferPointer { src in
                if let to = out.baseAddress, let from = src.baseAddress { to.update(from: from, count: src.count) }
            }
        }
    }

    /// Gives the matrix the shape `(rows, columns)`. The storage is kept, capacity included, so a buffer that
    /// goes from a batch of 5 to a last batch of 3 and back allocates nothing; the elements are then to be
    /// overwritten (new ones start at 0).
    public mutating func reshape(rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "Matrix.reshape: negative shape (\(rows), \(columns))")
        if self.rows == rows && self.columns == columns { return }
        let count = rows * columns
        self.rows = rows
        self.columns = columns
        if elements.count > count {
            elements.removeLast(elements.count - count)
        } else if elements.count < count {
            elements.append(contentsOf: repeatElement(0, count: count - elements.count))
        }
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

// Each product writes into a matrix the caller keeps (`into:`), resized to the product's shape if it differs
// (`reshape`, which keeps the storage), and takes a `ProductWorkspace` that keeps the packing buffers across
// calls (default: new ones for this call). All run the kernel in Kernels/ProductKernel.swift, which adds the
// terms in another order than a plain loop over `i` (see its file comment): results differ by rounding only.

extension Matrix {
    /// `x·Wᵀ + b` for `x` `(batch, in)`, `weight` `(out, in)`, `bias` `(1, out)`; returns `(batch, out)`.
    ///
    /// `y[n, o] = b[o] + Σ_i x[n, i] · W[o, i]`.
    public static func affine(_ x: Matrix, weightTransposed weight: Matrix, bias: Matrix) -> Matrix {
        var y = Matrix.empty
        affine(x, weightTransposed: weight, bias: bias, into: &y)
        return y
    }

    /// `y = x·Wᵀ + b` written into `y`, resized to `(batch, out)`.
    public static func affine(_ x: Matrix, weightTransposed weight: Matrix, bias: Matrix, into y: inout Matrix,
                              workspace: ProductWorkspace? = nil) {
        affine(ActiveKernel.self, x, weightTransposed: weight, bias: bias, into: &y, workspace: workspace ?? ProductWorkspace())
    }

    /// `affine` with the kernel variant `V`, and optionally `packedWeight`, the same `Wᵀ` packed once by
    /// `PackedPanels.pack` (Linear does that while its weight is unchanged, e.g. for a chunked evaluation).
    static func affine<V: KernelVariant>(_: V.Type, _ x: Matrix, weightTransposed weight: Matrix, bias: Matrix,
                                         into y: inout Matrix, workspace: ProductWorkspace, packedWeight: PackedPanels? = nil) {
        precondition(x.columns == weight.columns, "affine: x is \(x.shape), weight is \(weight.shape)")
        precondition(bias.rows == 1 && bias.columns == weight.rows, "affine: bias is \(bias.shape), weight \(weight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = weight.rows
        y.reshape(rows: batch, columns: outWidth)
        if y.elements.isEmpty { return }
        y.elements.withUnsafeMutableBufferPointer { yp in
            x.elements.withUnsafeBufferPointer { xp in
                weight.elements.withUnsafeBufferPointer { wp in
                    bias.elements.withUnsafeBufferPointer { bp in
                        // The empty sum (in = 0) is every row the bias: the kernel's start value alone.
                        let xBase = xp.baseAddress ?? bp.baseAddress!, wBase = wp.baseAddress ?? bp.baseAddress!
                        multiply(V.self, m: batch, n: outWidth, k: inWidth,
                                 a: StridedMatrix(base: xBase, rowStride: inWidth, columnStride: 1),
                                 b: StridedMatrix(base: wBase, rowStride: inWidth, columnStride: 1).transposed,
                                 packedB: packedWeight, c: yp.baseAddress!, cRowStride: outWidth,
                                 start: .bias(bp.baseAddress!), workspace: workspace)
                    }
                }
            }
        }
    }

    /// Accumulates `dWeight += dYᵀ·x` for `dY` `(batch, out)`, `x` `(batch, in)`, `dWeight` `(out, in)`.
    public static func accumulateTransposedProduct(_ dY: Matrix, _ x: Matrix, into dWeight: inout Matrix,
                                                   workspace: ProductWorkspace? = nil) {
        accumulateTransposedProduct(ActiveKernel.self, dY, x, into: &dWeight, workspace: workspace ?? ProductWorkspace())
    }

    static func accumulateTransposedProduct<V: KernelVariant>(_: V.Type, _ dY: Matrix, _ x: Matrix, into dWeight: inout Matrix,
                                                              workspace: ProductWorkspace) {
        precondition(dY.rows == x.rows && dWeight.rows == dY.columns && dWeight.columns == x.columns,
                     "dYᵀ·x: dY is \(dY.shape), x is \(x.shape), dWeight is \(dWeight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = dY.columns
        if batch == 0 || dWeight.elements.isEmpty { return }  // nothing to add
        dWeight.elements.withUnsafeMutableBufferPointer { gp in
            dY.elements.withUnsafeBufferPointer { dp in
                x.elements.withUnsafeBufferPointer { xp in
                    multiply(V.self, m: outWidth, n: inWidth, k: batch,
                             a: StridedMatrix(base: dp.baseAddress!, rowStride: outWidth, columnStride: 1).transposed,
                             b: StridedMatrix(base: xp.baseAddress!, rowStride: inWidth, columnStride: 1),
                             c: gp.baseAddress!, cRowStride: inWidth, start: .accumulate, workspace: workspace)
                }
            }
        }
    }

    /// `dY·W` for `dY` `(batch, out)` and `weight` `(out, in)`; returns `(batch, in)`.
    public static func product(_ dY: Matrix, _ weight: Matrix) -> Matrix {
        var dX = Matrix.empty
        product(dY, weight, into: &dX)
        return dX
    }

    /// `dX = dY·W` written into `dX`, resized to `(batch, in)`.
    public static func product(_ dY: Matrix, _ weight: Matrix, into dX: inout Matrix, workspace: ProductWorkspace? = nil) {
        product(ActiveKernel.self, dY, weight, into: &dX, workspace: workspace ?? ProductWorkspace())
    }

    static func product<V: KernelVariant>(_: V.Type, _ dY: Matrix, _ weight: Matrix, into dX: inout Matrix,
                                          workspace: ProductWorkspace) {
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
                    multiply(V.self, m: batch, n: inWidth, k: outWidth,
                             a: StridedMatrix(base: dp.baseAddress!, rowStride: outWidth, columnStride: 1),
                             b: StridedMatrix(base: wp.baseAddress!, rowStride: inWidth, columnStride: 1),
                             c: xp.baseAddress!, cRowStride: inWidth, start: .zero, workspace: workspace)
                }
            }
        }
    }
}
