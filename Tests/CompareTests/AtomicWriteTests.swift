// Every file the project writes goes through `writeAtomically` (a temporary file beside the target, then a
// rename), so a write that fails half-way leaves the previous file intact and no temporary file behind.

import CompareCore
import Foundation
import TestSupport
import XCTest

final class AtomicWriteTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeScratchDirectory("atomic-tests")
    }

    override func tearDownWithError() throws {
        removeScratchDirectory(scratch)
    }

    private struct EncoderFailure: Error {}

    private func contents(of folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    func testAWriteReplacesTheFileAndLeavesNoTemporaryFile() throws {
        let url = scratch.appendingPathComponent("report.json")
        try writeAtomically(Data("old".utf8), to: url)
        try writeAtomically(to: url) { Data("new".utf8) }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "new")
        XCTAssertEqual(try contents(of: scratch), ["report.json"])
    }

    /// An encoder that throws half-way: its error comes back, the old file is as it was, nothing else is left.
    func testAFailingEncoderLeavesTheOldFileIntact() throws {
        let url = scratch.appendingPathComponent("report.json")
        try writeAtomically(Data("old".utf8), to: url)
        XCTAssertThrowsError(try writeAtomically(to: url) { throw EncoderFailure() }) { error in
            XCTAssertTrue(error is EncoderFailure, "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "old")
        XCTAssertEqual(try contents(of: scratch), ["report.json"], "no temporary file left behind")
    }

    /// The temporary file is written, but the rename cannot replace the target (a non-empty folder stands
    /// there): an `OutputError` names the target, the folder and its content are untouched, the temporary
    /// file is removed.
    func testAFailedRenameLeavesTheOldContentAndNoTemporaryFile() throws {
        let url = scratch.appendingPathComponent("plots")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try writeAtomically(Data("old".utf8), to: url.appendingPathComponent("old.svg"))
        XCTAssertThrowsError(try writeAtomically(Data("new".utf8), to: url)) { error in
            guard let error = error as? OutputError else { return XCTFail("not an OutputError: \(error)") }
            XCTAssertEqual(error.path, url.path)
            XCTAssertTrue("\(error)".contains("cannot write"), "\(error)")
        }
        XCTAssertEqual(try contents(of: scratch), ["plots"], "no temporary file left behind")
        XCTAssertEqual(try contents(of: url), ["old.svg"])
        XCTAssertEqual(try String(contentsOf: url.appendingPathComponent("old.svg"), encoding: .utf8), "old")
    }

    /// The temporary file cannot even be created (its folder is a regular file): an `OutputError`, nothing written.
    func testAnUnwritableFolderIsAnOutputError() throws {
        let file = scratch.appendingPathComponent("a-file")
        try writeAtomically(Data("old".utf8), to: file)
        XCTAssertThrowsError(try writeAtomically(Data("new".utf8), to: file.appendingPathComponent("report.json"))) { error in
            XCTAssertTrue(error is OutputError, "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "old")
        XCTAssertEqual(try contents(of: scratch), ["a-file"])
    }

    /// No source writes a file except through `writeAtomically`: Foundation's and C's ways of writing a file
    /// appear nowhere else in Sources (a guard against a new writer that bypasses it).
    func testTheSourcesWriteFilesOnlyThroughWriteAtomically() throws {
        let sources = TestPaths.packageRoot.appendingPathComponent("Sources")
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: sources.path))
        let writers = [".write(to:", "createFile(", "FileHandle(forWriting", "fopen(", "open(", "FileHandle(forUpdating"]
        var checked = 0
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".swift"), relative != "CompareCore/Reports/Files.swift" else { continue }
            checked += 1
            let text = try String(contentsOf: sources.appendingPathComponent(relative), encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                // A read-only open(2) (an engine's trace, /proc) writes nothing.
                for writer in writers where code.contains(writer) && !code.contains("dlopen(") && !code.contains("\"/dev/null\"")
                    && !(writer == "open(" && code.contains("O_RDONLY")) {
                    XCTFail("Sources/\(relative):\(number + 1) writes a file without writeAtomically: \(line)")
                }
            }
        }
        XCTAssertGreaterThan(checked, 20, "found the sources")
    }
}
