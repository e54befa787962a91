// The only file that touches GSL's memory and BLAS directly: the error type, the matrix wrapper and
// the BLAS calls every other file goes through. Every GSL status is checked here and turned into a
// `ReferenceError`; GSL's default handler (print and abort) is switched off before the first call.
import CGSL

// MARK: - Errors

/// An error from the reference engine: a GSL failure (with GSL's own message) or an invalid input.
///
/// `description` reads `"<location>: <message>"`; for GSL failures `message` is `gsl_strerror(status)`
/// followed by what was being attempted, and `gslStatus` holds the raw status (e.g. `GSL_EBADLEN` = 19).
public struct ReferenceError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, e.g. "matrix/vector sizes are not conformant" (gsl_strerror of GSL_EBADLEN).
    public let message: String
    /// Where it happened, e.g. "Linear(2 → 3).forward: x·Wᵀ (gsl_blas_dgemm)".
    public let location: String
    /// The GSL status code when GSL reported the failure; `nil` for input-validation errors.
    public let gslStatus: Int32?

    /// An input-validation error (no GSL status).
    public init(_ message: String, at location: String) {
        self.message = message
        self.location = location
        self.gslStatus = nil
    }

    /// A GSL failure: the message is GSL's `gsl_strerror(status)`, plus optional detail.
    init(gslStatus status: Int32, at location: String, detail: String? = nil) {
        let text = String(cString: gsl_strerror(status))
        self.message = detail.map { "\(text) (\($0))" } ?? text
        self.location = location
        self.gslStatus = status
    }

    public var description: String {
        let status = gslStatus.map { " [GSL status \($0)]" } ?? ""
        return "\(location): \(message)\(status)"
    }
}

/// GSL's error handling, set up once: the default handler aborts the process, so it is switched off
/// and every status is checked by `GSL.check` instead.
enum GSL {
    /// Evaluated once, on first use (Swift statics are lazy and thread-safe).
    private static let handlerOff: Void = { _ = gsl_set_error_handler_off() }()

    /// Makes sure GSL will return statuses rather than abort. Called before every GSL call site.
    @inline(__always) static func prepare() { _ = handlerOff }

    /// GSL status codes the engine names (values from gsl_errno.h).
    static let invalidArgument = Int32(GSL_EINVAL)  // 4
    static let outOfMemory = Int32(GSL_ENOMEM)      // 8
    static let badLength = Int32(GSL_EBADLEN)       // 19

    /// Throws a `ReferenceError` carrying `gsl_strerror(status)` when `status` is not `GSL_SUCCESS`.
    @inline(__always) static func check(_ status: Int32, _ location: @autoclosure () -> String) throws {
        if status != GSL_SUCCESS { throw ReferenceError(gslStatus: status, at: location()) }
    }
}

// MARK: - Matrix

/// A row-major `gsl_matrix` of Doubles, owned by this object and freed in `deinit`.
///
/// Shapes are written `(rows, columns)`: data are `(batch, features)`, a linear weight is `(out, in)`,
/// a bias is `(1, out)`. Matrices come from `gsl_matrix_calloc`, so they are contiguous
/// (`tda == columns`) and the whole buffer can be viewed as one vector for level-1 BLAS.
final class Matrix {
    let gsl: UnsafeMutablePointer<gsl_matrix>
    let rows: Int
    let columns: Int

    /// A zero-filled `(rows, columns)` matrix; throws (never traps) if the size is invalid or
    /// `gsl_matrix_calloc` returns NULL.
    init(rows: Int, columns: Int, _ location: @autoclosure () -> String) throws {
        GSL.prepare()
        guard rows >= 1, columns >= 1 else {
            throw ReferenceError(gslStatus: GSL.invalidArgument, at: location(),
                                 detail: "a matrix needs at least one row and one column, got (\(rows), \(columns))")
        }
        guard let pointer = gsl_matrix_calloc(rows, columns) else {
            throw ReferenceError(gslStatus: GSL.outOfMemory, at: location(),
                                 detail: "gsl_matrix_calloc(\(rows), \(columns)) returned NULL")
        }
        gsl = pointer
        self.rows = rows
        self.columns = columns
    }

    /// A matrix holding `values` (row `r` of `values` is row `r` of the matrix); throws if `values` is
    /// empty or ragged. `name` is used in the message, e.g. "train.inputs".
    convenience init(_ values: [[Double]], name: String) throws {
        guard let width = values.first?.count, width > 0 else {
            throw ReferenceError("\(name) is empty; expected at least one row with at least one value", at: name)
        }
        if let bad = values.firstIndex(where: { $0.count != width }) {
            throw ReferenceError("\(name) is ragged: row 0 has \(width) values but row \(bad) has \(values[bad].count)",
                                 at: name)
        }
        try self.init(rows: values.count, columns: width, name)
        for (r, row) in values.enumerated() {
            row.withUnsafeBufferPointer { src in (data + r * columns).update(from: src.baseAddress!, count: width) }
        }
    }

    deinit { gsl_matrix_free(gsl) }

    /// The contiguous buffer, row-major, `rows * columns` values.
    var data: UnsafeMutablePointer<Double> { gsl.pointee.data }
    var count: Int { rows * columns }

    subscript(row: Int, column: Int) -> Double {
        get { data[row * columns + column] }
        set { data[row * columns + column] = newValue }
    }

    /// The values as Swift rows.
    var array: [[Double]] {
        (0..<rows).map { r in Array(UnsafeBufferPointer(start: data + r * columns, count: columns)) }
    }

    /// A new matrix with the same shape and values (`gsl_matrix_memcpy`).
    func copy(_ location: @autoclosure () -> String) throws -> Matrix {
        let result = try Matrix(rows: rows, columns: columns, location())
        try GSL.check(gsl_matrix_memcpy(result.gsl, gsl), "\(location()) (gsl_matrix_memcpy)")
        return result
    }

    /// A new `(indices.count, columns)` matrix whose row `k` is row `indices[k]` of this one.
    /// The indices must be valid rows (callers validate user input first).
    func gatherRows<C: Collection>(_ indices: C, _ location: @autoclosure () -> String) throws -> Matrix
    where C.Element == Int {
        let result = try Matrix(rows: indices.count, columns: columns, location())
        for (k, r) in indices.enumerated() {
            precondition(r >= 0 && r < rows, "gatherRows: row \(r) outside 0..<\(rows)")
            (result.data + k * columns).update(from: data + r * columns, count: columns)
        }
        return result
    }

    var shape: String { "(\(rows), \(columns))" }
}

// MARK: - BLAS

/// The BLAS calls the engine makes, each a checked `gsl_blas_*` call.
enum BLAS {
    /// `C = alpha·op(A)·op(B) + beta·C` with `op(X) = Xᵀ` when the flag is set (`gsl_blas_dgemm`).
    /// Mismatched shapes come back from GSL as `GSL_EBADLEN` and are thrown.
    static func gemm(_ a: Matrix, transposeA: Bool, _ b: Matrix, transposeB: Bool,
                     alpha: Double, beta: Double, into c: Matrix, _ location: @autoclosure () -> String) throws {
        GSL.prepare()
        let status = gsl_blas_dgemm(transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                                    alpha, a.gsl, b.gsl, beta, c.gsl)
        try GSL.check(status, "\(location()) (gsl_blas_dgemm \(a.shape)\(transposeA ? "ᵀ" : "")·"
                              + "\(b.shape)\(transposeB ? "ᵀ" : "") → \(c.shape))")
    }

    /// `y = alpha·x + y` over all elements (`gsl_blas_daxpy` on the flattened matrices).
    static func axpy(_ alpha: Double, _ x: Matrix, _ y: Matrix, _ location: @autoclosure () -> String) throws {
        GSL.prepare()
        var xView = gsl_vector_view_array(x.data, x.count)
        var yView = gsl_vector_view_array(y.data, y.count)
        let status = gsl_blas_daxpy(alpha, &xView.vector, &yView.vector)
        try GSL.check(status, "\(location()) (gsl_blas_daxpy \(x.shape) → \(y.shape))")
    }

    /// `x = alpha·x` over all elements (`gsl_blas_dscal`; GSL returns no status for it).
    static func scale(_ alpha: Double, _ x: Matrix) {
        GSL.prepare()
        var view = gsl_vector_view_array(x.data, x.count)
        gsl_blas_dscal(alpha, &view.vector)
    }

    /// `y = x` elementwise (`gsl_matrix_memcpy`); shapes must match.
    static func copy(_ x: Matrix, into y: Matrix, _ location: @autoclosure () -> String) throws {
        GSL.prepare()
        try GSL.check(gsl_matrix_memcpy(y.gsl, x.gsl), "\(location()) (gsl_matrix_memcpy \(x.shape) → \(y.shape))")
    }
}
