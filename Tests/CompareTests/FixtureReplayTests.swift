import CompareCore
import Foundation
import TestSupport
import XCTest

/// Replays every recorded fixture and every PyTorch trace through both engines.
final class FixtureReplayTests: XCTestCase {
    /// Both engines, by name "framework" and "reference".
    let engines: [TrainingEngine] = [FrameworkEngine(), ReferenceTrainingEngine()]

    var recordedFiles: [URL] {
        let folder = TestPaths.fixtures.appendingPathComponent("recorded")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".fixture.json") }.sorted().map { folder.appendingPathComponent($0) }
    }

    func testRecordedFixturesReplayInBothEngines() throws {
        XCTAssertEqual(recordedFiles.count, fixtureCases.count, "one file per fixture case in fixtures/recorded")
        for url in recordedFiles {
            let (fixture, _) = try Fixture.load(contentsOf: url)
            for engine in engines {
                let mismatches = try fixture.replay(engine)
                for mismatch in mismatches.prefix(5) { XCTFail("\(mismatch)") }
                if mismatches.isEmpty { print("OK fixture \(fixture.name) \(engine.name) (\(fixture.epochs.count) epochs)") }
            }
        }
    }

    func testBothEnginesReproducePyTorchTraces() throws {
        let folder = TestPaths.fixtures.appendingPathComponent("pytorch")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".experiment.json") }.sorted()
        XCTAssertEqual(names.count, 10, "the ten PyTorch cases")
        for name in names {
            let base = String(name.dropLast(".experiment.json".count))
            let experiment = try Experiment.load(contentsOf: folder.appendingPathComponent(name))
            let trace = try Trace.load(contentsOf: folder.appendingPathComponent("\(base).torch.json"), experiment: experiment)
            let fixture = Fixture.pytorch(name: "pytorch/\(base)", trace: trace, experiment: experiment)
            for engine in engines {
                let mismatches = try fixture.replay(engine)
                for mismatch in mismatches.prefix(5) { XCTFail("\(mismatch)") }
                if mismatches.isEmpty { print("OK pytorch \(base) \(engine.name): losses within 1e-10 relative, accuracies exact") }
            }
        }
    }

    /// The PyTorch referee's tolerance is 1e-10 relative, and is used: a PyTorch trace with one loss moved by
    /// 10⁻⁸ relative (far below anything a curve would show, far above the engines' 10⁻¹² agreement with it) is
    /// reported, with its tolerance.
    func testReplayReportsAlteredPyTorchTrace() throws {
        let folder = TestPaths.fixtures.appendingPathComponent("pytorch")
        let experiment = try Experiment.load(contentsOf: folder.appendingPathComponent("torch-0.experiment.json"))
        var trace = try Trace.load(contentsOf: folder.appendingPathComponent("torch-0.torch.json"), experiment: experiment)
        trace.epochs[3].trainLoss *= 1 + 1e-8
        let fixture = Fixture.pytorch(name: "pytorch/torch-0", trace: trace, experiment: experiment)
        for engine in engines {
            let mismatches = try fixture.replay(engine)
            XCTAssertEqual(mismatches.count, 1, "\(engine.name): the one altered loss, and nothing else: \(mismatches)")
            let text = mismatches.first.map { "\($0)" } ?? ""
            XCTAssertTrue(text.contains("epoch 3") && text.contains("trainLoss") && text.contains("1e-10"), text)
        }
    }

    /// Replay can fail: a fixture altered in memory (one loss off by 10⁻⁶ relative, one accuracy off by one
    /// point of the test set) is reported with fixture, engine, epoch, metric, values, tolerance and the command.
    func testReplayReportsAlteredFixture() throws {
        let url = try XCTUnwrap(recordedFiles.first { $0.lastPathComponent == "relu-mae-sgd-momentum.fixture.json" })
        var (fixture, _) = try Fixture.load(contentsOf: url)
        fixture.epochs[2].testLoss *= 1 + 1e-6
        fixture.epochs[3].trainAccuracy += 1.0 / 60
        for engine in engines {
            let mismatches = try fixture.replay(engine)
            XCTAssertEqual(mismatches.map(\.metric), ["testLoss", "trainAccuracy"], "\(engine)")
            XCTAssertEqual(mismatches.map(\.epoch), [2, 3])
            let text = mismatches.first?.description ?? ""
            XCTAssertTrue(text.hasPrefix("fixture relu-mae-sgd-momentum, engine \(engine.name), epoch 2, testLoss: expected"), text)
            XCTAssertTrue(text.contains("tolerance rtol 1e-10") && text.contains("swift run compare record --mode failed"), text)
        }
    }

    func testLoaderRejectsUnknownVersionAndMalformedFixtures() throws {
        let url = try XCTUnwrap(recordedFiles.first)
        let good = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as! [String: Any]
        func rejection(_ change: (inout [String: Any]) -> Void) -> FixtureError? {
            var object = good
            change(&object)
            let data = try! JSONSerialization.data(withJSONObject: object)
            do { _ = try Fixture.decode(data, file: "case.fixture.json"); return nil } catch { return error as? FixtureError }
        }
        XCTAssertEqual(rejection { $0["version"] = 2 }?.field, "version")
        XCTAssertEqual(rejection { $0["version"] = 2 }?.description,
                       "case.fixture.json: version: unknown format version 2; this build reads version 1")
        XCTAssertEqual(rejection { $0["format"] = "other" }?.field, "format")
        XCTAssertEqual(rejection { $0["expected"] = ["epochs": "none"] }?.field, "expected.epochs")
        XCTAssertEqual(rejection { $0.removeValue(forKey: "tolerances") }?.field, "tolerances")
        let badLayer = rejection { object in
            var experiment = object["experiment"] as! [String: Any]
            var model = experiment["model"] as! [String: Any]
            var layers = model["layers"] as! [[String: Any]]
            layers[0]["typo"] = 1
            model["layers"] = layers; experiment["model"] = model; object["experiment"] = experiment
        }
        XCTAssertEqual(badLayer?.field, "experiment.model.layers[0].typo")
        XCTAssertEqual(rejection { object in
            var expected = object["expected"] as! [String: Any]
            expected["epochs"] = Array((expected["epochs"] as! [Any]).dropLast())
            object["expected"] = expected
        }?.field, "expected.epochs")
        XCTAssertNil(rejection { _ in }, "the unaltered fixture loads")
    }
}
