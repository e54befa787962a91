// The one JSON writer: a `JSONValue` tree to text. Every file the project writes in JSON (reports, traces,
// exported experiments, fixtures, bench results) is built as a tree and written here.
//
// - Members keep the order they were given in (reports put the important fields first).
// - A number keeps its exact integer form when it has one; any other double is written with the shortest
//   digits that read back as the same double (Swift's `description`), so values survive a round trip bit for
//   bit. NaN and ±∞, which JSON cannot hold, are written as the strings "NaN", "Infinity", "-Infinity" (the
//   readers take them back where a number is expected).
// - Pretty form: one member per line, two spaces per level; an array of numbers (a bias, a matrix row) stays on
//   one line, so a matrix reads as its rows.

extension JSONValue {
    /// The value as JSON text; `pretty` (default) indents, otherwise everything is on one line.
    public func text(pretty: Bool = true) -> String {
        var out = ""
        write(into: &out, level: 0, pretty: pretty)
        if pretty { out += "\n" }
        return out
    }

    private var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }

    private func write(into out: inout String, level: Int, pretty: Bool) {
        switch self {
        case .null: out += "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .number(let number, let integer):
            if let integer { out += String(integer) } else { out += JSONValue.numberText(number) }
        case .string(let text): JSONValue.writeString(text, into: &out)
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            if !pretty || elements.allSatisfy(\.isScalar) {
                out += "["
                for (index, element) in elements.enumerated() {
                    if index > 0 { out += pretty ? ", " : "," }
                    element.write(into: &out, level: level + 1, pretty: pretty)
                }
                out += "]"
                return
            }
            out += "[\n"
            for (index, element) in elements.enumerated() {
                out += String(repeating: "  ", count: level + 1)
                element.write(into: &out, level: level + 1, pretty: pretty)
                out += index + 1 < elements.count ? ",\n" : "\n"
            }
            out += String(repeating: "  ", count: level) + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += pretty ? "{\n" : "{"
            for (index, (key, value)) in members.enumerated() {
                if pretty { out += String(repeating: "  ", count: level + 1) }
                JSONValue.writeString(key, into: &out)
                out += pretty ? ": " : ":"
                value.write(into: &out, level: level + 1, pretty: pretty)
                if index + 1 < members.count { out += pretty ? ",\n" : "," } else if pretty { out += "\n" }
            }
            if pretty { out += String(repeating: "  ", count: level) }
            out += "}"
        }
    }

    /// A double as JSON: the shortest round-trip digits, or a string for NaN and ±∞.
    static func numberText(_ x: Double) -> String {
        if x.isNaN { return "\"NaN\"" }
        if x.isInfinite { return x > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
        return "\(x)"
    }

    private static func writeString(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// Builds JSON objects member by member, skipping absent optional values: `object { $0["name"] = .string(n) }`.
public struct JSONObjectBuilder {
    public private(set) var members: [(String, JSONValue)] = []
    public init() {}
    public subscript(key: String) -> JSONValue? {
        get { members.last { $0.0 == key }?.1 }
        set { if let newValue { members.append((key, newValue)) } }
    }
    public var value: JSONValue { .object(members) }
}

/// An object built member by member (see `JSONObjectBuilder`).
public func jsonObject(_ build: (inout JSONObjectBuilder) -> Void) -> JSONValue {
    var builder = JSONObjectBuilder()
    build(&builder)
    return builder.value
}
