import Framework
import XCTest

// The XCTest face of Framework's `GradientChecker` (Sources/Framework/GradientCheck.swift): the checks
// themselves live there; this only turns a report into test failures.

/// Prints the report (one line per tensor: the element check and the Taylor certificate), then fails the
/// test with one line per mismatching element (at most 10: module, tensor, index, analytical, numerical and
/// relative error), one per tensor whose certificate is not a clean order 2, and when nothing was checked.
///
/// A crossed kink (`.kinkCrossed`) fails here too: the tests choose their inputs clear of kinks, so one
/// crossed means the test's setup is not what it says.
public func assertGradientsMatch(_ report: GradientReport, file: StaticString = #filePath, line: UInt = #line) {
    print(report.description)
    for mismatch in report.mismatches.prefix(10) {
        XCTFail("gradient check: \(mismatch)", file: file, line: line)
    }
    if report.mismatches.count > 10 {
        XCTFail("gradient check: \(report.mismatches.count - 10) more mismatches in \(report.subject)", file: file, line: line)
    }
    for tensor in report.tensors {
        guard case .secondOrder = tensor.taylor.verdict else {
            XCTFail("Taylor certificate of \(tensor.module) \(tensor.tensor): \(tensor.taylor) (orders \(tensor.taylor.ordersDescription))",
                    file: file, line: line)
            continue
        }
    }
    if report.tensors.isEmpty {
        XCTFail("gradient check of \(report.subject) checked nothing", file: file, line: line)
    }
}
