import Framework
import XCTest

/// Why `actual` is not close to `expected`, or nil when it is: shapes must match, NaN matches only NaN,
/// and every element must satisfy `|a − e| ≤ atol + rtol·|e|`. The message names the worst element.
public func closenessFailure(_ actual: Matrix, _ expected: Matrix, rtol: Double, atol: Double) -> String? {
    guard actual.shape == expected.shape else {
        return "shape \(actual.shape) ≠ expected \(expected.shape)"
    }
    var worst: (index: Int, excess: Double)? = nil
    for k in actual.elements.indices {
        let a = actual.elements[k], e = expected.elements[k]
        if a.isNaN && e.isNaN { continue }
        if a == e { continue }  // equal infinities
        let excess = abs(a - e) - (atol + rtol * abs(e))
        if !(excess <= 0) && (worst == nil || !(excess <= worst!.excess)) { worst = (k, excess.isNaN ? .infinity : excess) }
    }
    guard let (k, _) = worst else { return nil }
    let a = actual.elements[k], e = expected.elements[k]
    let (r, c) = actual.columns == 0 ? (0, 0) : (k / actual.columns, k % actual.columns)
    return "worst at [\(r), \(c)]: actual \(a), expected \(e), |diff| \(abs(a - e)) > atol \(atol) + rtol \(rtol)·|expected|"
}

/// Asserts `actual` ≈ `expected` elementwise (`|a − e| ≤ atol + rtol·|e|`); shape checked first; on failure
/// reports the worst element with both values.
public func assertClose(_ actual: Matrix, _ expected: Matrix, rtol: Double, atol: Double = 0,
                        _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    if let failure = closenessFailure(actual, expected, rtol: rtol, atol: atol) {
        XCTFail("assertClose: \(failure) \(message())", file: file, line: line)
    }
}

/// Scalar form of `assertClose`.
public func assertClose(_ actual: Double, _ expected: Double, rtol: Double, atol: Double = 0,
                        _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    assertClose(Matrix(rows: 1, columns: 1, elements: [actual]), Matrix(rows: 1, columns: 1, elements: [expected]),
                rtol: rtol, atol: atol, message(), file: file, line: line)
}

/// A `(rows, columns)` matrix of uniform draws in [a, b) from `generator`.
public func randomMatrix(_ rows: Int, _ columns: Int, in range: ClosedRange<Double> = -1...1,
                         generator: inout Xoshiro256StarStar) -> Matrix {
    var m = Matrix(rows: rows, columns: columns)
    for k in m.elements.indices { m.elements[k] = generator.uniform(range.lowerBound, range.upperBound) }
    return m
}
