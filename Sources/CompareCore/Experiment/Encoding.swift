import Foundation
import Framework

// Typed values → an experiment file: the inverse of Decoding.swift, every field written out (defaults
// included), so that `decode(encoded()) == self` for a valid experiment.

extension Experiment {
    /// The experiment as a JSON tree.
    public var jsonValue: JSONValue {
        var members: [(String, JSONValue)] = [
            ("name", .string(name)),
            ("seed", .number(Double(seed), integer: Int64(exactly: seed))),
            ("data", data.jsonValue),
            ("model", .object([("layers", .array(model.layers.map(\.jsonValue)))])),
            ("loss", .object([("type", .string(loss.rawValue))])),
            ("optimizer", optimizer.jsonValue),
            ("training", training.jsonValue),
        ]
        if let trace {
            members.append(("trace", .object([("steps", .integer(trace.steps))] + (trace.epochParameters ? [("epochParameters", .bool(true))] : []))))
        }
        return .object(members)
    }

    /// The experiment as an experiment file (pretty-printed JSON), such that `decode(encoded(), file:) == self`
    /// for a valid experiment. Throws an `ExperimentError` at the first number that is NaN or ±∞, which an
    /// experiment file cannot hold (`validate` first, to be told why it is out of range).
    public func encoded() throws -> Data {
        let json = jsonValue
        if let path = json.firstNonFinitePath() {
            throw ExperimentError(file: name, path: path, message: "cannot be written: an experiment file holds finite numbers only")
        }
        return Data(json.text().utf8)
    }

    /// The experiment as a JSON object, every field written out: the Foundation form (`[String: Any]`).
    public func jsonObject() -> [String: Any] {
        jsonValue.foundationObject as? [String: Any] ?? [:]
    }
}

private extension DataSpec {
    var jsonValue: JSONValue {
        switch self {
        case .disk(let train, let test, let normalize):
            var disk: [(String, JSONValue)] = [("train", .integer(train)), ("test", .integer(test))]
            if normalize { disk.append(("normalize", .bool(true))) }
            return .object([("disk", .object(disk))])
        case .xor:
            return .object([("xor", .object([]))])
        case .explicit(let train, let test):
            return .object([("train", train.jsonValue), ("test", test.jsonValue)])
        }
    }
}

private extension DataSetSpec {
    var jsonValue: JSONValue {
        .object([("inputs", .rows(inputs)), ("targets", .rows(targets))])
    }
}

private extension LayerSpec {
    var jsonValue: JSONValue {
        switch self {
        case .linear(let inWidth, let outWidth, let initialization):
            var members: [(String, JSONValue)] = [
                ("type", .string("linear")), ("in", .integer(inWidth)), ("out", .integer(outWidth)),
            ]
            switch initialization {
            case .default: members.append(("init", .string("default")))
            case .xavier: members.append(("init", .string("xavier")))
            case .uniform(let low, let high):
                members.append(("init", .object([("uniform", .numbers([low, high]))])))
            case .explicit(let weight, let bias):
                members.append(("weight", .rows(weight.rowArrays)))
                members.append(("bias", .numbers(bias.elements)))
            }
            return .object(members)
        case let .activation(kind, parameters):
            return .object([("type", .string(kind.type))] + zip(kind.parameters, parameters).map { ($0.name, .number($1)) })
        }
    }
}

private extension OptimizerSpec {
    var jsonValue: JSONValue {
        func encode<C: OptimizerConfiguration>(_ c: C) -> JSONValue {
            .object([("type", .string(C.type))] + C.hyperparameters.map { field in
                switch field {
                case let .number(name, path): return (name, .number(c[keyPath: path]))
                case let .flag(name, path): return (name, .bool(c[keyPath: path]))
                }
            })
        }
        return encode(configuration)
    }
}

private extension TrainingSpec {
    var jsonValue: JSONValue {
        var members: [(String, JSONValue)] = [
            ("epochs", .integer(epochs)), ("batchSize", .integer(batchSize)), ("shuffle", .bool(shuffle)),
        ]
        if let orders { members.append(("orders", .array(orders.map { .array($0.map { .integer($0) }) }))) }
        return .object(members)
    }
}
