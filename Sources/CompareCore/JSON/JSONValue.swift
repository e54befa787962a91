import Foundation

// The project's one JSON layer: a strict parser, one writer, and a reader that knows where it is.
//
// `JSONValue.parse` is a small strict RFC 8259 parser rather than JSONSerialization or JSONDecoder, because on
// Linux Foundation `true` and `1` can come back as the same NSNumber, integers and fractions are not kept apart,
// a key given twice is silently dropped, a trailing comma is accepted, and a literal such as 1e999 fails the
// whole file with no location. Here booleans are their own case, each number keeps its exact integer value when
// it has one, duplicate keys are kept (so that the reader can report them), and 1e999 becomes +infinity so
// that validation can name where it is. Syntax errors still carry JSONSerialization's own wording, plus a line
// and column. Every file the project reads goes through it: experiment files, traces (ours and PyTorch's),
// fixtures, reports for `merge`, and the answers of bench's PyTorch server.
//
// `JSONValue.text()` (JSONWriter.swift) is the one writer; `JSONNode` (JSONReader.swift) reads a tree with the
// JSON path of every value, for messages such as `epochs[3].testLoss: expected a number, got null`.

/// A parsed JSON value. Booleans and numbers are distinct; a number keeps its exact integer value when its
/// literal has neither fraction nor exponent and fits `Int64`.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double, integer: Int64?)
    case string(String)
    case array([JSONValue])
    /// Members in file order (duplicates kept, so that they can be reported).
    case object([(String, JSONValue)])

    public static func number(_ value: Double) -> JSONValue { .number(value, integer: nil) }
    public static func integer(_ value: Int) -> JSONValue { .number(Double(value), integer: Int64(value)) }
    public static func numbers(_ values: [Double]) -> JSONValue { .array(values.map { .number($0) }) }
    public static func rows(_ rows: [[Double]]) -> JSONValue { .array(rows.map { .numbers($0) }) }
    public static func string(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x, i), .number(y, j)): return i == j && (x == y || (x.isNaN && y.isNaN))
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member `key` of an object (the last one if it is given twice), or nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    /// The Foundation form, as JSONSerialization would give it: Int for exact integers, else Double.
    public var foundationObject: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let flag): return flag
        case .number(let number, let integer): return integer.map { Int($0) as Any } ?? number
        case .string(let text): return text
        case .array(let elements): return elements.map(\.foundationObject)
        case .object(let members):
            return Dictionary(members.map { ($0.0, $0.1.foundationObject) }, uniquingKeysWith: { _, last in last })
        }
    }

    /// The JSON path of the first number that is NaN or ±∞ (which JSON cannot hold), or nil.
    public func firstNonFinitePath(_ path: String = "") -> String? {
        switch self {
        case .number(let x, _): return x.isFinite ? nil : path
        case .array(let elements):
            for (k, e) in elements.enumerated() { if let p = e.firstNonFinitePath("\(path)[\(k)]") { return p } }
            return nil
        case .object(let members):
            for (key, value) in members { if let p = value.firstNonFinitePath(path.isEmpty ? key : "\(path).\(key)") { return p } }
            return nil
        default: return nil
        }
    }

    /// "an array", "a string (\"0.1\")", "true", "null": what was found, for messages.
    public var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        // A literal without an exact Int64 had a fraction, an exponent or too many digits: Swift's shortest form
        // says so ("1.0", "1.8446744073709552e+19"), where formatNumber would make it look like an integer.
        case .number(let number, let integer): return integer.map { String($0) } ?? "\(number)"
        case .string(let text):
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            return "a string (\"\(shown)\")"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Parses one JSON document (RFC 8259; a UTF-8 byte-order mark is skipped). Throws `JSONSyntaxError`.
    /// The bytes are read in place (no copy), so that a file of B bytes costs B plus its tree, each value held
    /// inline in its array or object (the enum is not `indirect`: its arrays and objects are references already).
    ///
    /// The tree is bounded too, not only the file: a document whose tree would take more than `maxTreeBytes` (by
    /// `JSONParser`'s count of what each value, array, object and long string costs) is refused while it is
    /// read, so that what a file can make this process allocate is its size plus that bound, whatever its shape
    /// (a file of one-element rows, `[0.123456789012345],`, costs about 7 bytes of tree per byte of text).
    public static func parse(_ data: Data, maxTreeBytes: Int = JSONValue.maxTreeBytes) throws -> JSONValue {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self), maxTreeBytes: maxTreeBytes)
            return try parser.parseDocument()
        }
    }

    /// The most memory a parsed tree may take: 1 000 000 000 bytes (a 500 MB trace of wide matrices, 17-digit
    /// numbers, takes about 900 MB; one of one-element rows would take 3.4 GB, and is refused a third of the way).
    public static let maxTreeBytes = 1_000_000_000
}

/// Where and why the text is not JSON.
public struct JSONSyntaxError: Error, CustomStringConvertible {
    public var offset: Int
    public var line: Int
    public var column: Int
    public var reason: String
    /// The document is valid as far as it was read, but its tree would exceed `JSONValue.maxTreeBytes`.
    public var tooLarge = false

    /// "not valid JSON: <what JSONSerialization says> (line L, column C: <our reason>)", or just our reason
    /// where JSONSerialization is more lenient (it accepts a trailing comma, for one).
    public func message(for data: Data) -> String {
        // JSONSerialization's wording costs a second parse, in far more memory than ours: only for small files.
        if tooLarge { return reason }
        guard data.count <= 10_000_000 else { return "not valid JSON: \(reason) (line \(line), column \(column))" }
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let description = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                return "not valid JSON: \(description) (line \(line), column \(column): \(reason))"
            }
        }
        return "not valid JSON: \(reason) (line \(line), column \(column))"
    }

    public var description: String { "not valid JSON: \(reason) (line \(line), column \(column))" }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    /// Deeper documents are refused rather than risking the stack.
    static let maxDepth = 512
    /// What the tree built so far takes, as measured: 36 bytes per value (its 24-byte slot in its array or
    /// object, and half as much again of the slack an array keeps as it grows), 64 per array or object (a heap
    /// header of 32 and malloc's rounding), and a heap copy of every string or key longer than the 15 UTF-8
    /// bytes Swift keeps inline.
    var treeBytes = 0
    let maxTreeBytes: Int

    init(bytes: UnsafeBufferPointer<UInt8>, maxTreeBytes: Int) {
        self.bytes = bytes
        self.maxTreeBytes = maxTreeBytes
    }

    mutating func count(_ cost: Int) throws {
        treeBytes += cost
        guard treeBytes <= maxTreeBytes else {
            var failure = error("the document would take more than \(maxTreeBytes) bytes of memory once read "
                                + "(\(treeBytes) by the first \(index) of its \(bytes.count) bytes); this build reads no larger ones")
            failure.tooLarge = true
            throw failure
        }
    }

    static func stringCost(_ text: String) -> Int { text.utf8.count > 15 ? 32 + text.utf8.count : 0 }

    mutating func parseDocument() throws -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected \(currentByte) after the JSON value") }
        return value
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) levels deep") }
        try count(36)
        guard index < bytes.count else { throw error("unexpected end of file, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""):
            let text = try parseString()
            try count(Self.stringCost(text))
            return .string(text)
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected \(currentByte), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        index += 1  // {
        try count(64)
        var members: [(String, JSONValue)] = []
        skipWhitespace()
        if peek(is: "}") { index += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard peek(is: "\"") else { throw error("unexpected \(currentByte), expected a string key") }
            let key = try parseString()
            try count(24 + Self.stringCost(key))
            skipWhitespace()
            guard peek(is: ":") else { throw error("unexpected \(currentByte), expected ':' after a key") }
            index += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            if peek(is: ",") { index += 1; continue }
            if peek(is: "}") { index += 1; return .object(members) }
            throw error("unexpected \(currentByte), expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        index += 1  // [
        try count(64)
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek(is: "]") { index += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if peek(is: ",") { index += 1; continue }
            if peek(is: "]") { index += 1; return .array(elements) }
            throw error("unexpected \(currentByte), expected ',' or ']' in an array")
        }
    }

    private mutating func parseString() throws -> String {
        index += 1  // "
        var utf8: [UInt8] = []
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    throw error("a string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek(is: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("a \\u escape is half of a surrogate pair")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("a \\u escape is half of a surrogate pair")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else {
                        throw error("a \\u escape is half of a surrogate pair")
                    }
                    UTF8.encode(unicode) { utf8.append($0) }
                default:
                    index -= 1
                    throw error("unknown escape \\\(Character(Unicode.Scalar(escape)))")
                }
            case 0..<0x20:
                throw error("control character U+\(String(byte, radix: 16, uppercase: true)) in a string")
            default:
                utf8.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = hexValue(bytes[index]) else {
                throw error("a \\u escape needs four hexadecimal digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; out-of-range literals become ±infinity or 0.
    private mutating func parseNumber() throws -> JSONValue {
        let start = index
        if peek(is: "-") { index += 1 }
        guard isDigit else { throw error("unexpected \(currentByte), expected a digit") }
        if peek(is: "0") {
            index += 1
            if isDigit { throw error("a number has a leading zero") }
        } else {
            while isDigit { index += 1 }
        }
        var isIntegerLiteral = true
        if peek(is: ".") {
            isIntegerLiteral = false
            index += 1
            guard isDigit else { throw error("unexpected \(currentByte), expected a digit after '.'") }
            while isDigit { index += 1 }
        }
        if peek(is: "e") || peek(is: "E") {
            isIntegerLiteral = false
            index += 1
            if peek(is: "+") || peek(is: "-") { index += 1 }
            guard isDigit else { throw error("unexpected \(currentByte), expected a digit in the exponent") }
            while isDigit { index += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let number = Double(text) else { throw error("cannot read the number \(text)") }
        return .number(number, integer: isIntegerLiteral ? Int64(text) : nil)
    }

    private mutating func expectLiteral(_ literal: String) throws {
        for expected in literal.utf8 {
            guard index < bytes.count, bytes[index] == expected else {
                throw error("unexpected \(currentByte), expected \(literal)")
            }
            index += 1
        }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek(is character: Unicode.Scalar) -> Bool {
        index < bytes.count && bytes[index] == UInt8(ascii: character)
    }

    private var isDigit: Bool {
        index < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
    }

    private func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// "end of file", "'x'", or "byte 0xC3" for what sits at the current position.
    private var currentByte: String {
        guard index < bytes.count else { return "end of file" }
        let byte = bytes[index]
        return (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'"
            : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    /// A syntax error at the current position; lines and columns count from 1, columns in bytes.
    private func error(_ reason: String) -> JSONSyntaxError {
        let end = min(index, bytes.count)
        var line = 1, lineStart = 0
        for position in 0..<end where bytes[position] == 0x0A {
            line += 1
            lineStart = position + 1
        }
        return JSONSyntaxError(offset: end, line: line, column: end - lineStart + 1, reason: reason)
    }
}

/// 2.0 → "2", 0.1 → "0.1", 2^63 → "9223372036854775808", .infinity → "inf": numbers as a user would write them.
public func formatNumber(_ value: Double) -> String {
    if value.rounded() == value, abs(value) < 1e21 { return String(format: "%.0f", value) }
    return "\(value)"
}
