// The text report and the verdict per published figure: the rule |Δ| ≤ max(2σ published, 2σ ours, 0.01),
// known differences marked, the verdict first, and nothing wider than 120 columns.

import CompareCore
import Foundation
import TestSupport
import XCTest

final class TextReportTests: XCTestCase {
    /// Three rounds of a small disk experiment, with the published figures given.
    func report(published: [PublishedFigure]) throws -> Report {
        let scratch = try makeScratchDirectory("text-report-tests")
        defer { removeScratchDirectory(scratch) }
        let file = try writeScratchFile("small.json", CompareCommandTests.smallExperiment, in: scratch)
        let experiment = try Experiment.load(contentsOf: URL(fileURLWithPath: file))
        return try CompareCore.run(RunRequest(experiments: [PlannedExperiment(experiment, table: "a table", published: published)], rounds: 3)).report
    }

    func testEachPublishedFigureGetsItsVerdictByTheRule() throws {
        let first = try report(published: [])
        let ours = try XCTUnwrap(first.experiments[0].statistic("testAccuracy"))
        let train = try XCTUnwrap(first.experiments[0].statistic("trainAccuracy"))
        let margin = max(2 * ours.deviation, 0.01)
        // Just inside and just outside the margin (σ published 0), and a wide published σ that covers a gap.
        let figures = [
            PublishedFigure(report: "r", table: "t", metric: "testAccuracy", mean: ours.mean + margin * 0.99, sd: nil, text: "inside"),
            PublishedFigure(report: "r", table: "t", metric: "trainAccuracy", mean: train.mean - max(2 * train.deviation, 0.01) * 1.01 - 1e-9,
                            sd: nil, text: "outside", knownDifference: "a reason we know"),
        ]
        let judged = try report(published: figures).experiments[0].figureComparisons
        XCTAssertEqual(judged.map(\.verdict), ["consistent", "differs"], "\(judged)")
        XCTAssertEqual(judged[0].difference ?? .nan, -margin * 0.99, accuracy: 1e-12)
        XCTAssertEqual(judged[0].margin ?? .nan, margin, accuracy: 1e-15)
        let wide = PublishedFigure(report: "r", table: "t", metric: "testAccuracy", mean: ours.mean + 0.05, sd: 0.03, text: "wide σ")
        XCTAssertEqual(try report(published: [wide]).experiments[0].figureComparisons.map(\.verdict), ["consistent"],
                       "2σ published = 0.06 covers a Δ of 0.05")
        let text = textReport(try report(published: figures))
        XCTAssertTrue(text.hasPrefix("Verdict: PASS — parity holds in 3 of 3 rounds"), text)
        XCTAssertTrue(text.contains("differs*"), "a known difference is marked: \(text)")
        XCTAssertTrue(text.contains("* train differs, as expected: a reason we know"), text)
        for line in text.split(separator: "\n") where line.count > 120 { XCTFail("wider than 120 columns: \(line)") }
    }

    /// A figure without a number is shown as text and never judged; a metric we do not measure is "not measured".
    func testFiguresWithoutNumbersAreNotJudged() throws {
        let judged = try report(published: [
            PublishedFigure(report: "r", table: "t", metric: "testAccuracy", mean: nil, sd: nil, text: "converges within 60 epochs"),
            PublishedFigure(report: "r", table: "t", metric: "runtime", mean: 1, sd: nil, unit: "s", text: "1 s"),
        ]).experiments[0].figureComparisons
        XCTAssertEqual(judged.map(\.verdict), ["no number published", "not measured"])
        XCTAssertNil(judged[0].difference)
    }
}
