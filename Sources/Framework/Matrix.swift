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

extension Matrix {
    /// `x·Wᵀ + b` for `x` `(batch, in)`, `weight` `(out, in)`, `bias` `(1, out)`; returns `(batch, out)`.
    ///
    /// `y[n, o] = b[o] + Σ_i x[n, i] · W[o, i]`, summed over `i` in increasing order.
    public static func affine(_ x: Matrix, weightTransposed weight: Matrix, bias: Matrix) -> Matrix {
        precondition(x.columns == weight.columns, "affine: x is \(x.shape), weight is \(weight.shape)")
        precondition(bias.rows == 1 && bias.columns == weight.rows, "affine: bias is \(bias.shape), weight \(weight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = weight.rows
        var y = Matrix(rows: batch, columns: outWidth)
        y.elements.withUnsafeMutableBufferPointer { yp in
            x.elements.withUnsafeBufferPointer { xp in
                weight.elements.withUnsafeBufferPointer { wp in
                    bias.elements.withUnsafeBufferPointer { bp in
                        for n in 0..<batch {
                            let xRow = n * inWidth
                            for o in 0..<outWidth {
                                let wRow = o * inWidth
                                var sum = 0.0
                                for i in 0..<inWidth { sum += xp[xRow + i] * wp[wRow + i] }
                                yp[n * outWidth + o] = sum + bp[o]
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Accumulates `dWeight += dYᵀ·x` for `dY` `(batch, out)`, `x` `(batch, in)`, `dWeight` `(out, in)`.
    public static func accumulateTransposedProduct(_ dY: Matrix, _ x: Matrix, into dWeight: inout Matrix) {
        precondition(dY.rows == x.rows && dWeight.rows == dY.columns && dWeight.columns == x.columns,
                     "dYᵀ·x: dY is \(dY.shape), x is \(x.shape), dWeight is \(dWeight.shape)")
        let batch = x.rows, inWidth = x.columns, outWidth = dY.columns
        dWeight.elements.withUnsafeMutableBufferPointer { gp in
            dY.elements.withUnsafeBufferPointer { dp in
                x.elements.withUnsafeBufferPointer { xp in
                    for o in 0..<outWidth {
                        for i in 0..<inWidth {
                            var sum = 0.0
                            for n in 0..<batch { sum += dp[n * outWidth + o] * xp[n * inWidth + i] }
                            gp[o * inWidth + i] += sum
                        }
                    }
                }
            }
        }
    }

    /// `dY·W` for `dY` `(batch, out)` and `weight` `(out, in)`; returns `(batch, in)`.
    public static func product(_ dY: Matrix, _ weight: Matrix) -> Matrix {
        precondition(dY.columns == weight.rows, "dY·W: dY is \(dY.shape), weight is \(weight.shape)")
        let batch = dY.rows, inWidth = weight.columns, outWidth = weight.rows
        var dX = Matrix(rows: batch, columns: inWidth)
        dX.elements.withUnsafeMutableBufferPointer { xp in
            dY.elements.withUnsafeBufferPointer { dp in
                weight.elements.withUnsafeBufferPointer { wp in
                    for n in 0..<batch {
                        for o in 0..<outWidth {
                            let d = dp[n * outWidth + o]
                            for i in 0..<inWidth { xp[n * inWidth + i] += d * wp[o * inWidth + i] }
                        }
                    }
                }
            }
        }
        return dX
    }
}
