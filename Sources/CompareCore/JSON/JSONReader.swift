// Reading a parsed JSON tree with the path of every value, so that each error names where it is:
// `model.layers[2].in`, `epochs[3].testLoss`, `steps[0].tensors["layers[2].dWeight"]`.

/// A problem at a JSON path; whoever read the file adds its name (`ExperimentError`, `TraceError`, …).
public struct JSONProblem: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// A JSON value and where it sits in the file: "" for the top level, "model.layers[2].in" below it.
public struct JSONNode {
    public let value: JSONValue
    public let path: String

    public init(_ value: JSONValue, path: String = "") {
        self.value = value
        self.path = path
    }

    /// The path of member `key`: `.key` for a plain identifier, `["key"]` otherwise (`tensors["layers[0].bias"]`).
    public func child(_ key: String) -> String {
        let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" }
            && !("0"..."9").contains(key.unicodeScalars.first!)
        if plain { return path.isEmpty ? key : "\(path).\(key)" }
        return "\(path)[\"\(key)\"]"
    }

    public func element(_ index: Int) -> String { "\(path)[\(index)]" }
    public func problem(_ message: String) -> JSONProblem { JSONProblem(path, message) }

    /// The members of an object; a key given twice is an error.
    public func members() throws -> JSONMembers {
        guard case .object(let pairs) = value else { throw problem("expected an object, got \(value.summary)") }
        var values: [String: JSONValue] = [:]
        for (key, member) in pairs {
            guard values.updateValue(member, forKey: key) == nil else {
                throw JSONProblem(child(key), "given twice")
            }
        }
        return JSONMembers(node: self, keys: pairs.map(\.0), values: values)
    }

    public func array() throws -> [JSONNode] {
        guard case .array(let elements) = value else { throw problem("expected an array, got \(value.summary)") }
        return elements.enumerated().map { JSONNode($1, path: element($0)) }
    }

    /// Any JSON number, including ±infinity from literals such as 1e999 (validation rejects those later).
    public func number() throws -> Double {
        guard case .number(let number, _) = value else { throw problem("expected a number, got \(value.summary)") }
        return number
    }

    /// A number, or one of the strings "NaN", "Infinity", "-Infinity" (how reports and traces write what JSON
    /// cannot hold).
    public func numberOrNonFinite() throws -> Double {
        switch value {
        case .number(let number, _): return number
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        default: throw problem("expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got \(value.summary)")
        }
    }

    /// A JSON number with an integral value that fits `Int` (2 and 2.0 and 2e0 alike).
    public func integer() throws -> Int {
        guard case .number(let number, let exact) = value else {
            throw problem("expected an integer, got \(value.summary)")
        }
        if let exact, let integer = Int(exactly: exact) { return integer }
        guard number.isFinite, number.rounded() == number else {
            throw problem("expected an integer, got \(formatNumber(number))")
        }
        guard let integer = Int(exactly: number) else {
            throw problem("expected an integer, got \(formatNumber(number)), out of range")
        }
        return integer
    }

    public func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw problem("expected true or false, got \(value.summary)") }
        return flag
    }

    public func string() throws -> String {
        guard case .string(let text) = value else { throw problem("expected a string, got \(value.summary)") }
        return text
    }

    /// An array of numbers: (count). With `nonFinite`, the strings "NaN", "Infinity", "-Infinity" too.
    public func numbers(nonFinite: Bool = false) throws -> [Double] {
        guard case .array(let elements) = value else {
            throw problem("expected an array of numbers, got \(value.summary)")
        }
        return try elements.enumerated().map { index, element in
            let node = JSONNode(element, path: self.element(index))
            return nonFinite ? try node.numberOrNonFinite() : try node.number()
        }
    }

    /// An array of arrays of numbers: (rows, columns), not checked for raggedness here.
    public func rows(nonFinite: Bool = false) throws -> [[Double]] {
        guard case .array(let elements) = value else {
            throw problem("expected an array of rows (arrays of numbers), got \(value.summary)")
        }
        return try elements.enumerated().map { try JSONNode($1, path: element($0)).numbers(nonFinite: nonFinite) }
    }

    /// Whether the value is JSON null.
    public var isNull: Bool {
        if case .null = value { return true }
        return false
    }
}

/// An object's members, in file order for messages and by key for lookup.
public struct JSONMembers {
    public let node: JSONNode
    public let keys: [String]
    let values: [String: JSONValue]

    public subscript(key: String) -> JSONNode? {
        values[key].map { JSONNode($0, path: node.child(key)) }
    }

    /// The member `key`, or a problem at its path saying `missing` (what was expected).
    public func required(_ key: String, _ missing: String) throws -> JSONNode {
        guard let member = self[key] else { throw JSONProblem(node.child(key), missing) }
        return member
    }

    /// Every key must be one of `allowed`; the first other key is an error naming it and listing `allowed`.
    public func allowOnly(_ allowed: [String], in context: String? = nil) throws {
        for key in keys where !allowed.contains(key) {
            let place = context.map { " in \($0)" } ?? ""
            let list = allowed.isEmpty ? "none" : allowed.joined(separator: ", ")
            var message = "unknown key \"\(key)\"\(place); allowed: \(list)"
            if let guess = closestKey(to: key, in: allowed) { message += " (did you mean \"\(guess)\"?)" }
            throw JSONProblem(node.child(key), message)
        }
    }
}

/// The allowed key within edit distance 2 of a misspelt one (case ignored), if there is exactly one best.
func closestKey(to key: String, in allowed: [String]) -> String? {
    let scored = allowed.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2,
          scored.filter({ $0.1 == best.1 }).count == 1 else { return nil }
    return best.0
}

/// Levenshtein distance.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
