// Experiment files: every kind of bad input is refused with its file, JSON path and what was expected;
// the PyTorch fixtures decode; defaults are filled in; encode → decode gives the same experiment back.

import CompareCore
import Framework
import Foundation
import TestSupport
import XCTest

/// A model that fits 2-wide inputs and 2-wide targets: linear 2 → 2.
private let model22 = #"{"layers": [{"type": "linear", "in": 2, "out": 2}]}"#
/// Two rows of 2-wide inputs and targets.
private let set2 = #"{"inputs": [[0, 1], [1, 0]], "targets": [[1, 0], [0, 1]]}"#

/// One file that must be refused: the path the error must name and words its message must contain.
private struct BadFile {
    let label: String
    let json: String
    let path: String
    let words: [String]
    let line: UInt

    init(_ label: String, _ json: String, path: String, _ words: [String], line: UInt = #line) {
        self.label = label
        self.json = json
        self.path = path
        self.words = words
        self.line = line
    }
}

private let badFiles: [BadFile] = [
    // Not JSON, not an object.
    BadFile("malformed JSON", "{\n  \"model\": {\"layers\": [}\n}", path: "", ["not valid JSON", "line 2"]),
    BadFile("truncated JSON", #"{"model": "#, path: "", ["not valid JSON", "end of file"]),
    BadFile("trailing comma", #"{"model": {"layers": [],}}"#, path: "", ["not valid JSON"]),
    BadFile("nested too deeply", String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
            path: "", ["not valid JSON", "nested more than 512 levels"]),
    BadFile("top level is an array", "[1, 2]", path: "", ["expected a JSON object at the top level", "an array"]),
    BadFile("key given twice", #"{"seed": 1, "seed": 2, "model": \#(model22)}"#, path: "seed", ["given twice"]),

    // Wrong JSON types.
    BadFile("string for a number", #"{"model": \#(model22), "optimizer": {"type": "sgd", "lr": "0.1"}}"#,
            path: "optimizer.lr", ["expected a number", "a string (\"0.1\")"]),
    BadFile("bool for a number", #"{"model": \#(model22), "optimizer": {"type": "sgd", "lr": true}}"#,
            path: "optimizer.lr", ["expected a number", "true"]),
    BadFile("bool for an integer", #"{"model": \#(model22), "training": {"epochs": true}}"#,
            path: "training.epochs", ["expected an integer", "true"]),
    BadFile("fraction for an integer", #"{"model": {"layers": [{"type": "linear", "in": 2.5, "out": 2}]}}"#,
            path: "model.layers[0].in", ["expected an integer", "2.5"]),
    BadFile("fraction for batch size", #"{"model": \#(model22), "training": {"batchSize": 2.5}}"#,
            path: "training.batchSize", ["expected an integer", "2.5"]),
    BadFile("number for a bool", #"{"model": \#(model22), "training": {"shuffle": 1}}"#,
            path: "training.shuffle", ["expected true or false", "1"]),
    BadFile("null for a number", #"{"model": \#(model22), "optimizer": {"type": "adam", "eps": null}}"#,
            path: "optimizer.eps", ["expected a number", "null"]),
    BadFile("layer is a string", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, "relu"]}}"#,
            path: "model.layers[1]", ["expected an object", "a string (\"relu\")"]),
    BadFile("row is a number", #"{"model": \#(model22), "data": {"train": {"inputs": [[0, 1], 5], "targets": [[1, 0], [0, 1]]}, "test": \#(set2)}}"#,
            path: "data.train.inputs[1]", ["expected an array of numbers", "5"]),
    BadFile("string inside a weight", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1, "weight": [[1, "x"]], "bias": [0]}]}}"#,
            path: "model.layers[0].weight[0][1]", ["expected a number", "a string (\"x\")"]),
    BadFile("slope is a string", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "leakyRelu", "slope": "x"}]}}"#,
            path: "model.layers[1].slope", ["expected a number"]),
    BadFile("name is a number", #"{"name": 3, "model": \#(model22)}"#, path: "name", ["expected a string", "3"]),

    // Unknown keys and type names.
    BadFile("misspelt top-level key", #"{"modle": {}, "model": \#(model22)}"#, path: "modle",
            ["unknown key \"modle\"", "allowed: name, seed, data, model, loss, optimizer, training",
             "did you mean \"model\""]),
    BadFile("key of another layer type", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "relu", "slope": 0.1}]}}"#,
            path: "model.layers[1].slope", ["unknown key \"slope\"", "a relu layer", "allowed: type"]),
    BadFile("adam key on sgd", #"{"model": \#(model22), "optimizer": {"type": "sgd", "beta1": 0.9}}"#,
            path: "optimizer.beta1", ["unknown key \"beta1\"", "sgd", "allowed: type, lr, momentum, dampening, nesterov, weightDecay"]),
    BadFile("misspelt training key", #"{"model": \#(model22), "training": {"epoch": 3}}"#, path: "training.epoch",
            ["unknown key \"epoch\"", "allowed: epochs, batchSize, shuffle", "did you mean \"epochs\""]),
    BadFile("misspelt linear key", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "wieght": []}]}}"#,
            path: "model.layers[0].wieght", ["unknown key \"wieght\"", "did you mean \"weight\""]),
    BadFile("unknown layer type", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "swish"}]}}"#,
            path: "model.layers[1].type", ["unknown layer type \"swish\"", "linear, relu, tanh, sigmoid, leakyRelu, gelu"]),
    BadFile("unknown loss", #"{"model": \#(model22), "loss": {"type": "hinge"}}"#, path: "loss.type",
            ["unknown loss \"hinge\"", "mse, mae, bce, crossEntropy"]),
    BadFile("unknown optimizer", #"{"model": \#(model22), "optimizer": {"type": "rmsprop"}}"#, path: "optimizer.type",
            ["unknown optimizer \"rmsprop\"", "sgd, adam"]),
    BadFile("unknown data kind", #"{"model": \#(model22), "data": {"spiral": {}}}"#, path: "data.spiral",
            ["unknown data kind \"spiral\"", "disk, xor, or train and test"]),
    BadFile("two data kinds", #"{"model": \#(model22), "data": {"disk": {}, "train": \#(set2)}}"#, path: "data.train",
            ["unexpected next to \"disk\""]),
    BadFile("empty data", #"{"model": \#(model22), "data": {}}"#, path: "data", ["empty object", "disk, xor"]),
    BadFile("xor takes no keys", #"{"model": \#(model22), "data": {"xor": {"points": 4}}}"#, path: "data.xor.points",
            ["unknown key \"points\"", "allowed: none"]),
    BadFile("unknown initialization", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "init": "he"}]}}"#,
            path: "model.layers[0].init", ["unknown initialization \"he\"", "\"default\", \"xavier\", {\"uniform\": [a, b]}"]),

    // Missing required fields.
    BadFile("no model", #"{"seed": 3}"#, path: "model", ["missing"]),
    BadFile("no layers", #"{"model": {}}"#, path: "model.layers", ["missing"]),
    BadFile("layer without type", #"{"model": {"layers": [{"in": 2, "out": 2}]}}"#, path: "model.layers[0].type",
            ["missing", "linear, relu"]),
    BadFile("linear without out", #"{"model": {"layers": [{"type": "linear", "in": 2}]}}"#, path: "model.layers[0].out",
            ["missing", "in and out"]),
    BadFile("explicit data without test", #"{"model": \#(model22), "data": {"train": \#(set2)}}"#, path: "data.test",
            ["missing", "train and test"]),
    BadFile("loss without type", #"{"model": \#(model22), "loss": {}}"#, path: "loss.type", ["missing", "mse, mae"]),

    // Ragged, empty and mis-sized arrays.
    BadFile("ragged inputs", #"{"model": \#(model22), "data": {"train": {"inputs": [[0, 1], [1, 0, 1]], "targets": [[1, 0], [0, 1]]}, "test": \#(set2)}}"#,
            path: "data.train.inputs[1]", ["3 numbers", "row 0 has 2"]),
    BadFile("ragged targets", #"{"model": \#(model22), "data": {"train": \#(set2), "test": {"inputs": [[0, 1], [1, 0]], "targets": [[1, 0], [1]]}}}"#,
            path: "data.test.targets[1]", ["1 number", "row 0 has 2"]),
    BadFile("empty train set", #"{"model": \#(model22), "data": {"train": {"inputs": [], "targets": []}, "test": \#(set2)}}"#,
            path: "data.train.inputs", ["must not be empty"]),
    BadFile("empty input row", #"{"model": \#(model22), "data": {"train": {"inputs": [[]], "targets": [[1, 0]]}, "test": \#(set2)}}"#,
            path: "data.train.inputs[0]", ["must not be empty"]),
    BadFile("targets and inputs counts differ", #"{"model": \#(model22), "data": {"train": {"inputs": [[0, 1], [1, 0]], "targets": [[1, 0]]}, "test": \#(set2)}}"#,
            path: "data.train.targets", ["1 row", "inputs has 2"]),
    BadFile("test inputs narrower than train", #"{"model": \#(model22), "data": {"train": \#(set2), "test": {"inputs": [[0]], "targets": [[1, 0]]}}}"#,
            path: "data.test.inputs", ["rows of 1 number", "train inputs have 2"]),
    BadFile("empty layer list", #"{"model": {"layers": []}}"#, path: "model.layers", ["must not be empty"]),
    BadFile("weight with too few rows", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2]], "bias": [0, 0]}]}}"#,
            path: "model.layers[0].weight", ["1 row", "out is 2"]),
    BadFile("weight row too wide", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3, 4, 5]], "bias": [0, 0]}]}}"#,
            path: "model.layers[0].weight[1]", ["3 numbers", "in is 2"]),
    BadFile("bias too short", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3, 4]], "bias": [0]}]}}"#,
            path: "model.layers[0].bias", ["1 number", "out is 2"]),
    BadFile("weight without bias", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3, 4]]}]}}"#,
            path: "model.layers[0].bias", ["missing", "both or neither"]),
    BadFile("bias without weight", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "bias": [0, 0]}]}}"#,
            path: "model.layers[0].weight", ["missing", "both or neither"]),
    BadFile("init together with weights", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1, "init": "xavier", "weight": [[1, 2]], "bias": [0]}]}}"#,
            path: "model.layers[0].init", ["together with weight and bias"]),
    BadFile("uniform with three bounds", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "init": {"uniform": [0, 1, 2]}}]}}"#,
            path: "model.layers[0].init.uniform", ["two numbers [a, b]", "got 3"]),

    // Widths that do not chain.
    BadFile("in does not match previous out", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 25}, {"type": "relu"}, {"type": "linear", "in": 30, "out": 2}]}}"#,
            path: "model.layers[2].in", ["30, but the previous layer gives 25"]),
    BadFile("model starts with an activation", #"{"model": {"layers": [{"type": "relu"}, {"type": "linear", "in": 2, "out": 2}]}}"#,
            path: "model.layers[0].type", ["must start with a linear layer", "relu"]),
    BadFile("data wider than the model's input", #"{"model": {"layers": [{"type": "linear", "in": 3, "out": 2}]}, "data": {"train": \#(set2), "test": \#(set2)}}"#,
            path: "model.layers[0].in", ["3, but the data inputs are 2 wide"]),
    BadFile("targets narrower than the model's output", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 3}, {"type": "tanh"}]}, "data": {"train": \#(set2), "test": \#(set2)}}"#,
            path: "model.layers[0].out", ["3, but the data targets are 2 wide"]),
    BadFile("disk with a 3-wide model input", #"{"model": {"layers": [{"type": "linear", "in": 3, "out": 2}]}}"#,
            path: "model.layers[0].in", ["3, but disk data is 2 wide"]),
    BadFile("xor with 3 outputs", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 4}, {"type": "relu"}, {"type": "linear", "in": 4, "out": 3}]}, "data": {"xor": {}}}"#,
            path: "model.layers[2].out", ["3, but xor data has two classes", "1 output", "2 (one-hot)"]),

    // Numbers that are not finite (1e999 reads as infinity).
    BadFile("infinite weight", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1, "weight": [[1, 1e999]], "bias": [0]}]}}"#,
            path: "model.layers[0].weight[0][1]", ["must be a finite number", "inf"]),
    BadFile("infinite bias", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "weight": [[1, 2], [3, 4]], "bias": [0, -1e999]}]}}"#,
            path: "model.layers[0].bias[1]", ["must be a finite number", "-inf"]),
    BadFile("infinite input", #"{"model": \#(model22), "data": {"train": {"inputs": [[1e999, 0]], "targets": [[1, 0]]}, "test": \#(set2)}}"#,
            path: "data.train.inputs[0][0]", ["must be a finite number", "inf"]),
    BadFile("infinite target", #"{"model": \#(model22), "data": {"train": \#(set2), "test": {"inputs": [[0, 1]], "targets": [[1, 1e999]]}}}"#,
            path: "data.test.targets[0][1]", ["must be a finite number", "inf"]),
    BadFile("infinite lr", #"{"model": \#(model22), "optimizer": {"type": "adam", "lr": 1e999}}"#,
            path: "optimizer.lr", ["must be a finite number > 0", "inf"]),
    BadFile("infinite slope", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "leakyRelu", "slope": 1e999}]}}"#,
            path: "model.layers[1].slope", ["must be a finite number", "inf"]),
    BadFile("infinite uniform bound", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "init": {"uniform": [-1e999, 1]}}]}}"#,
            path: "model.layers[0].init.uniform[0]", ["must be a finite number", "-inf"]),
    BadFile("infinite momentum", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": 1e999}}"#,
            path: "optimizer.momentum", ["must be in [0, 1)", "inf"]),

    // Sizes and schedule.
    BadFile("zero epochs", #"{"model": \#(model22), "training": {"epochs": 0}}"#, path: "training.epochs",
            ["must be at least 1", "got 0"]),
    BadFile("zero batch size", #"{"model": \#(model22), "training": {"batchSize": 0}}"#, path: "training.batchSize",
            ["must be at least 1", "got 0"]),
    BadFile("zero-width layer", #"{"model": {"layers": [{"type": "linear", "in": 0, "out": 2}]}}"#,
            path: "model.layers[0].in", ["must be a positive integer", "got 0"]),
    BadFile("negative layer width", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": -2}]}}"#,
            path: "model.layers[0].out", ["must be a positive integer", "got -2"]),
    BadFile("zero disk points", #"{"model": \#(model22), "data": {"disk": {"train": 0}}}"#, path: "data.disk.train",
            ["must be a positive integer", "got 0"]),
    BadFile("fractional disk points", #"{"model": \#(model22), "data": {"disk": {"test": 10.5}}}"#, path: "data.disk.test",
            ["expected an integer", "10.5"]),
    BadFile("huge integer", #"{"model": \#(model22), "training": {"epochs": 1e30}}"#, path: "training.epochs",
            ["expected an integer", "out of range"]),

    // Optimizer hyperparameters.
    BadFile("zero lr", #"{"model": \#(model22), "optimizer": {"type": "sgd", "lr": 0}}"#, path: "optimizer.lr",
            ["must be a finite number > 0", "got 0"]),
    BadFile("negative lr", #"{"model": \#(model22), "optimizer": {"type": "adam", "lr": -0.1}}"#, path: "optimizer.lr",
            ["must be a finite number > 0", "got -0.1"]),
    BadFile("momentum 1", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": 1}}"#, path: "optimizer.momentum",
            ["must be in [0, 1)", "got 1"]),
    BadFile("negative momentum", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": -0.5}}"#,
            path: "optimizer.momentum", ["must be in [0, 1)", "got -0.5"]),
    BadFile("dampening above 1", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": 0.9, "dampening": 1.5}}"#,
            path: "optimizer.dampening", ["must be in [0, 1]", "got 1.5"]),
    BadFile("nesterov without momentum", #"{"model": \#(model22), "optimizer": {"type": "sgd", "nesterov": true}}"#,
            path: "optimizer.nesterov", ["needs momentum > 0 and dampening 0", "got momentum 0, dampening 0"]),
    BadFile("nesterov with dampening", #"{"model": \#(model22), "optimizer": {"type": "sgd", "momentum": 0.9, "dampening": 0.1, "nesterov": true}}"#,
            path: "optimizer.nesterov", ["needs momentum > 0 and dampening 0", "dampening 0.1"]),
    BadFile("negative sgd weight decay", #"{"model": \#(model22), "optimizer": {"type": "sgd", "weightDecay": -1}}"#,
            path: "optimizer.weightDecay", ["must be a finite number ≥ 0", "got -1"]),
    BadFile("negative adam weight decay", #"{"model": \#(model22), "optimizer": {"type": "adam", "weightDecay": -0.01}}"#,
            path: "optimizer.weightDecay", ["must be a finite number ≥ 0", "got -0.01"]),
    BadFile("beta1 of 1", #"{"model": \#(model22), "optimizer": {"type": "adam", "beta1": 1}}"#, path: "optimizer.beta1",
            ["must be in [0, 1)", "got 1"]),
    BadFile("negative beta2", #"{"model": \#(model22), "optimizer": {"type": "adam", "beta2": -0.1}}"#, path: "optimizer.beta2",
            ["must be in [0, 1)", "got -0.1"]),
    BadFile("zero eps", #"{"model": \#(model22), "optimizer": {"type": "adam", "eps": 0}}"#, path: "optimizer.eps",
            ["must be a finite number > 0", "got 0"]),
    BadFile("uniform with a > b", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "init": {"uniform": [0.5, 0.1]}}]}}"#,
            path: "model.layers[0].init.uniform", ["needs a < b", "[0.5, 0.1]"]),
    BadFile("uniform with a = b", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2, "init": {"uniform": [1, 1]}}]}}"#,
            path: "model.layers[0].init.uniform", ["needs a < b", "[1, 1]"]),

    // Losses that do not fit the model or the data.
    BadFile("bce targets above 1", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "sigmoid"}]}, "loss": {"type": "bce"}, "data": {"train": {"inputs": [[0, 1]], "targets": [[0, 1.5]]}, "test": \#(set2)}}"#,
            path: "data.train.targets[0][1]", ["bce needs targets in [0, 1]", "got 1.5"]),
    BadFile("bce without a sigmoid", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "relu"}, {"type": "linear", "in": 2, "out": 2}]}, "loss": {"type": "bce"}}"#,
            path: "loss.type", ["bce needs probabilities: the last layer must be sigmoid", "model.layers[2] is linear"]),
    BadFile("crossEntropy with one output", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 1}]}, "loss": {"type": "crossEntropy"}}"#,
            path: "loss.type", ["crossEntropy needs at least two outputs", "gives 1"]),

    // Absurd sizes.
    BadFile("layer too wide", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 100001}, {"type": "linear", "in": 100001, "out": 2}]}}"#,
            path: "model.layers[0].out", ["100001 units", "limit of 100000"]),
    BadFile("too many parameters", #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 10000}, {"type": "linear", "in": 10000, "out": 10000}, {"type": "linear", "in": 10000, "out": 2}]}}"#,
            path: "model.layers", ["100060002 parameters", "limit of 50000000"]),
    BadFile("too many disk points", #"{"model": \#(model22), "data": {"disk": {"train": 1000, "test": 20000000}}}"#,
            path: "data.disk.test", ["20000000 points", "limit of 10000000"]),

    // Seed and name.
    BadFile("negative seed", #"{"seed": -1, "model": \#(model22)}"#, path: "seed",
            ["expected a non-negative integer below 2^63", "-1"]),
    BadFile("fractional seed", #"{"seed": 1.5, "model": \#(model22)}"#, path: "seed",
            ["expected a non-negative integer below 2^63", "1.5"]),
    BadFile("seed of 2^63", #"{"seed": 9223372036854775808, "model": \#(model22)}"#, path: "seed",
            ["expected a non-negative integer below 2^63", "got 9.223372036854776e+18"]),
    // 2^64 − 1 reads as the nearest binary64, 2^64: shown in Swift's shortest form, it is not mistaken for the literal.
    BadFile("seed of 2^64 − 1", #"{"seed": 18446744073709551615, "model": \#(model22)}"#, path: "seed",
            ["expected a non-negative integer below 2^63", "got 1.8446744073709552e+19"]),
    BadFile("name with a line break", #"{"name": "x\nVerdict: PASS", "model": \#(model22)}"#, path: "name",
            ["must not hold control characters", "U+000A"]),
    BadFile("name with an escape sequence", #"{"name": "x\u001b[2J", "model": \#(model22)}"#, path: "name",
            ["must not hold control characters", "U+001B"]),
    BadFile("seed as a string", #"{"seed": "7", "model": \#(model22)}"#, path: "seed",
            ["expected a non-negative integer below 2^63", "a string"]),
    BadFile("empty name", #"{"name": "", "model": \#(model22)}"#, path: "name", ["must not be empty"]),
]

final class ExperimentFileTests: XCTestCase {
    // MARK: Refusals

    func testEveryBadFileIsRefusedWithItsPathAndReason() {
        for bad in badFiles {
            assertRefused(bad.json, path: bad.path, words: bad.words, label: bad.label, line: bad.line)
        }
    }

    func testErrorDescriptionNamesFilePathAndReason() throws {
        let json = #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 25}, {"type": "relu"}, {"type": "linear", "in": 30, "out": 2}]}}"#
        XCTAssertThrowsError(try Experiment.decode(Data(json.utf8), file: "bad.json")) { error in
            XCTAssertEqual("\(error)", "bad.json: model.layers[2].in: 30, but the previous layer gives 25")
        }
        XCTAssertEqual("\(ExperimentError(file: "a.json", path: "", message: "m"))", "a.json: m")
    }

    func testSyntaxErrorsCarryJSONSerializationsWordsAndAPosition() throws {
        let json = "{\n  \"seed\": 1,\n  \"model\": x\n}"
        let serializationSays: String
        do {
            _ = try JSONSerialization.jsonObject(with: Data(json.utf8))
            return XCTFail("JSONSerialization accepted invalid JSON")
        } catch {
            serializationSays = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? ""
        }
        XCTAssertThrowsError(try Experiment.decode(Data(json.utf8), file: "x.json")) { error in
            guard let error = error as? ExperimentError else { return XCTFail("not an ExperimentError: \(error)") }
            XCTAssertEqual(error.path, "")
            XCTAssertTrue(error.message.contains(serializationSays), error.message)
            XCTAssertTrue(error.message.contains("line 3, column 12"), error.message)
        }
    }

    /// Every truncation of a valid file is refused with an error, never a trap.
    func testEveryPrefixOfAValidFileIsRefusedCleanly() throws {
        let json = #"{"name": "p", "seed": 3, "data": {"xor": {}}, "model": {"layers": [{"type": "linear", "in": 2, "out": 1, "init": {"uniform": [-1, 1]}}, {"type": "sigmoid"}]}, "loss": {"type": "bce"}, "optimizer": {"type": "sgd", "nesterov": false}, "training": {"shuffle": false}}"#
        let bytes = Array(json.utf8)
        XCTAssertNoThrow(try Experiment.decode(Data(bytes), file: "p.json"))
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try Experiment.decode(Data(bytes[..<length]), file: "p.json")) { error in
                XCTAssertTrue(error is ExperimentError, "prefix \(length): \(error)")
            }
        }
    }

    func testUnreadableFileIsAnExperimentError() {
        let url = URL(fileURLWithPath: "/nonexistent/missing.experiment.json")
        XCTAssertThrowsError(try Experiment.load(contentsOf: url)) { error in
            guard let error = error as? ExperimentError else { return XCTFail("not an ExperimentError: \(error)") }
            XCTAssertEqual(error.file, "/nonexistent/missing.experiment.json")
            XCTAssertEqual(error.path, "")
            XCTAssertTrue(error.message.contains("cannot read"), error.message)
        }
    }

    /// Checks that run after command-line overrides, on values no file could hold.
    func testValidateCatchesOverrides() throws {
        var experiment = try Experiment.decode(Data(#"{"model": \#(model22)}"#.utf8), file: "ok.json")
        XCTAssertNoThrow(try experiment.validate(file: "ok.json"))

        experiment.optimizer.lr = .nan
        assertInvalid(experiment, path: "optimizer.lr", words: ["finite number > 0", "nan"])
        experiment.optimizer.lr = 0.5
        experiment.training.epochs = -3
        assertInvalid(experiment, path: "training.epochs", words: ["at least 1", "-3"])
        experiment.training.epochs = 10
        experiment.seed = 1 << 63
        assertInvalid(experiment, path: "seed", words: ["below 2^63"])
        experiment.seed = 5
        experiment.model.layers = [.linear(in: 2, out: 2, initialization: .default), .leakyRelu(slope: .nan)]
        assertInvalid(experiment, path: "model.layers[1].slope", words: ["finite", "nan"])
        experiment.model.layers = [.linear(in: 2, out: 2, initialization: .default)]
        XCTAssertNoThrow(try experiment.validate(file: "ok.json"))
    }

    func testTooManyExplicitRowsAreRefused() {
        let rows = Array(repeating: [0.5], count: Experiment.maxDataPoints + 1)
        let experiment = Experiment(
            name: "big",
            data: .explicit(train: DataSetSpec(inputs: rows, targets: rows),
                            test: DataSetSpec(inputs: [[0.5]], targets: [[0.5]])),
            model: ModelSpec(layers: [.linear(in: 1, out: 1, initialization: .default)]))
        assertInvalid(experiment, path: "data.train.inputs", words: ["10000001 rows", "limit of 10000000"])
    }

    // MARK: Accepted files

    func testPyTorchFixturesDecode() throws {
        let directory = TestPaths.fixtures.appendingPathComponent("pytorch")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".experiment.json") }.sorted()
        XCTAssertEqual(files.count, 10, "\(files)")
        for file in files {
            let experiment = try Experiment.load(contentsOf: directory.appendingPathComponent(file))
            XCTAssertEqual(experiment.name + ".experiment.json", file)
            XCTAssertFalse(experiment.training.shuffle, file)
            guard case .explicit(let train, let test) = experiment.data else {
                XCTFail("\(file): expected explicit data"); continue
            }
            XCTAssertEqual(train.inputs.first?.count, experiment.model.inputWidth, file)
            XCTAssertEqual(test.targets.first?.count, experiment.model.outputWidth, file)
            for case .linear(_, _, let initialization) in experiment.model.layers {
                guard case .explicit = initialization else { XCTFail("\(file): expected explicit weights"); break }
            }
            XCTAssertEqual(try Experiment.decode(experiment.encoded(), file: file), experiment, file)
        }
    }

    func testTorch0IsTheOriginalTask() throws {
        let url = TestPaths.fixtures.appendingPathComponent("pytorch/torch-0.experiment.json")
        let experiment = try Experiment.load(contentsOf: url)
        XCTAssertEqual(experiment.seed, 0)
        XCTAssertEqual(experiment.loss, .mse)
        XCTAssertEqual(experiment.optimizer, .sgd(SGDSpec(lr: 0.1, momentum: 0)))
        XCTAssertEqual(experiment.training, TrainingSpec(epochs: 25, batchSize: 5, shuffle: false))
        XCTAssertEqual(experiment.model.layers.map(\.typeName),
                       ["linear", "relu", "linear", "tanh", "linear", "sigmoid", "linear"])
        XCTAssertEqual(experiment.model.parameterCount, 2 * 25 + 25 + 2 * (25 * 25 + 25) + 25 * 2 + 2)
    }

    func testMinimalFileGetsTheDocumentedDefaults() throws {
        let json = #"{"model": {"layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "leakyRelu"}]}}"#
        let experiment = try Experiment.decode(Data(json.utf8), file: "runs/minimal.experiment.json")
        XCTAssertEqual(experiment.name, "minimal")
        XCTAssertEqual(experiment.seed, 1)
        XCTAssertEqual(experiment.data, .disk(train: 1000, test: 1000))
        XCTAssertEqual(experiment.model.layers, [.linear(in: 2, out: 2, initialization: .default),
                                                 .leakyRelu(slope: 0.01)])
        XCTAssertEqual(experiment.model.inputWidth, 2)
        XCTAssertEqual(experiment.model.outputWidth, 2)
        XCTAssertEqual(experiment.loss, .mse)
        XCTAssertEqual(experiment.optimizer,
                       .sgd(SGDSpec(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0)))
        XCTAssertEqual(experiment.training, TrainingSpec(epochs: 300, batchSize: 5, shuffle: true))

        let adam = try Experiment.decode(Data(#"{"model": \#(model22), "optimizer": {"type": "adam"}}"#.utf8),
                                         file: "plain.json")
        XCTAssertEqual(adam.name, "plain")
        XCTAssertEqual(adam.optimizer, .adam(AdamSpec(lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)))

        let disk = try Experiment.decode(Data(#"{"model": \#(model22), "data": {"disk": {"train": 50}}}"#.utf8),
                                         file: "d.json")
        XCTAssertEqual(disk.data, .disk(train: 50, test: 1000))
    }

    func testIntegralNumbersCountAsIntegersAndBooleansStayBooleans() throws {
        let json = #"{"seed": 9223372036854775807, "model": {"layers": [{"type": "linear", "in": 2.0, "out": 2e0}]}, "training": {"epochs": 1E1, "shuffle": false}}"#
        let experiment = try Experiment.decode(Data(json.utf8), file: "n.json")
        XCTAssertEqual(experiment.seed, UInt64(Int64.max))
        XCTAssertEqual(experiment.model.layers, [.linear(in: 2, out: 2, initialization: .default)])
        XCTAssertEqual(experiment.training.epochs, 10)
        XCTAssertFalse(experiment.training.shuffle)
    }

    // MARK: Round trip

    func testEncodeDecodeRoundTrip() throws {
        let experiments = [
            try Experiment.decode(Data(#"{"model": \#(model22)}"#.utf8), file: "minimal.json"),
            Experiment(
                name: "every field / and \"quotes\" ü",
                seed: UInt64(Int64.max),
                data: .xor,
                model: ModelSpec(layers: [
                    .linear(in: 2, out: 3, initialization: .xavier), .leakyRelu(slope: 0.2),
                    .linear(in: 3, out: 4, initialization: .uniform(-0.3, 0.7)), .tanh,
                    .linear(in: 4, out: 2, initialization: .explicit(
                        weight: Matrix([[0.1, 1.0 / 3, -2.5e-300, 4], [.leastNonzeroMagnitude, -0.0, 1e20, 0.19384416214976818]]),
                        bias: Matrix([[0.5, -7]]))),
                    .sigmoid,
                ]),
                loss: .bce,
                optimizer: .adam(AdamSpec(lr: 0.003, beta1: 0.8, beta2: 0.99, eps: 1e-7, weightDecay: 0.01)),
                training: TrainingSpec(epochs: 7, batchSize: 3, shuffle: false)),
            Experiment(
                name: "sgd",
                data: .explicit(train: DataSetSpec(inputs: [[0.25, 1], [2, 3]], targets: [[1, 0], [0, 1]]),
                                test: DataSetSpec(inputs: [[0.1, 0.2]], targets: [[0, 1]])),
                model: ModelSpec(layers: [.linear(in: 2, out: 2, initialization: .default), .relu]),
                loss: .crossEntropy,
                optimizer: .sgd(SGDSpec(lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 1e-4))),
        ]
        for experiment in experiments {
            XCTAssertNoThrow(try experiment.validate(file: experiment.name))
            let data = try experiment.encoded()
            XCTAssertEqual(try Experiment.decode(data, file: "other.json"), experiment, experiment.name)

            // The same content through JSONSerialization, which is what jsonObject() promises to fit.
            let viaFoundation = try JSONSerialization.data(withJSONObject: experiment.jsonObject())
            XCTAssertEqual(try Experiment.decode(viaFoundation, file: "other.json"), experiment, experiment.name)
        }
        let text = String(decoding: try experiments[0].encoded(), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{\n"), "not pretty-printed: \(text.prefix(40))")
        XCTAssertLessThan(try XCTUnwrap(text.range(of: "\"data\"")).lowerBound,
                          try XCTUnwrap(text.range(of: "\"model\"")).lowerBound, "keys not sorted")
    }

    func testEncodingANonFiniteNumberThrows() throws {
        var experiment = try Experiment.decode(Data(#"{"model": \#(model22)}"#.utf8), file: "ok.json")
        experiment.optimizer.lr = .infinity
        XCTAssertThrowsError(try experiment.encoded())
    }

    // MARK: Helpers

    private func assertRefused(_ json: String, path: String, words: [String], label: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        do {
            let experiment = try Experiment.decode(Data(json.utf8), file: "bad.json")
            XCTFail("\(label): accepted, got \(experiment.name)", file: file, line: line)
        } catch let error as ExperimentError {
            XCTAssertEqual(error.file, "bad.json", "\(label)", file: file, line: line)
            XCTAssertEqual(error.path, path, "\(label): \(error)", file: file, line: line)
            for word in words where !error.message.contains(word) {
                XCTFail("\(label): message lacks \"\(word)\": \(error)", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): not an ExperimentError: \(error)", file: file, line: line)
        }
    }

    private func assertInvalid(_ experiment: Experiment, path: String, words: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try experiment.validate(file: "cli"), file: file, line: line) { error in
            guard let error = error as? ExperimentError else {
                return XCTFail("not an ExperimentError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(error.file, "cli", file: file, line: line)
            XCTAssertEqual(error.path, path, "\(error)", file: file, line: line)
            for word in words where !error.message.contains(word) {
                XCTFail("message lacks \"\(word)\": \(error)", file: file, line: line)
            }
        }
    }
}
