import AQFiles
import Foundation

// A small, strict JSON reader (RFC 8259) and the string escaping used by the writer.
//
// Written by hand rather than with JSONSerialization so that: numbers keep their exact text (a
// shape of `2.5`, `1e3` or `true` must be rejected, not bridged to an Int), duplicate keys are
// detected, nesting depth is bounded (no stack overflow on `[[[[...`), and every index is checked
// explicitly (the target is built with -Ounchecked).

/// A node of the strict reader's tree: object keys in file order, numbers as their exact text.
/// (`AQBert.JSONValue` is the other JSON type: config values passed through untouched.)
enum JSONNode: Sendable {
    case object([(key: String, value: JSONNode)])
    case array([JSONNode])
    case string(String)
    /// The number's exact source text.
    case number(String)
    case bool(Bool)
    case null

    var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

struct JSONParseError: Error {
    let message: String
    let offset: Int
}

/// Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF).
/// Returns the offset of the first invalid byte, or nil when valid.
func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
    let n = bytes.count
    var i = 0
    while i < n {
        let b0 = bytes[i]
        if b0 < 0x80 { i += 1; continue }
        var need = 0
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: return i
        }
        if n - i <= need { return i }
        let b1 = bytes[i + 1]
        if b1 < lo || b1 > hi { return i }
        var k = 2
        while k <= need {
            let b = bytes[i + k]
            if b < 0x80 || b > 0xBF { return i }
            k += 1
        }
        i += need + 1
    }
    return nil
}

struct JSONParser {
    static let maxDepth = 64

    /// Parses one JSON value followed only by whitespace. `bytes` must already be valid UTF-8.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> JSONNode {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.pos < parser.end {
            throw parser.error("unexpected data after the JSON value")
        }
        return value
    }

    let bytes: UnsafeRawBufferPointer
    let end: Int
    var pos = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.end = bytes.count
    }

    func error(_ message: String) -> JSONParseError {
        JSONParseError(message: message, offset: pos)
    }

    @inline(__always) func peek() -> UInt8? { pos < end ? bytes[pos] : nil }

    mutating func skipWhitespace() {
        while pos < end {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func expect(_ literal: StaticString, value: JSONNode) throws(JSONParseError) -> JSONNode {
        let count = literal.utf8CodeUnitCount
        guard end - pos >= count else { throw error("invalid literal") }
        let p = literal.utf8Start
        for k in 0..<count where bytes[pos + k] != p[k] {
            throw error("invalid literal")
        }
        pos += count
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONNode {
        guard let c = peek() else { throw error("unexpected end of JSON") }
        switch c {
        case UInt8(ascii: "{"):
            guard depth < JSONParser.maxDepth else { throw error("JSON nested too deeply") }
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            guard depth < JSONParser.maxDepth else { throw error("JSON nested too deeply") }
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", value: .bool(true))
        case UInt8(ascii: "f"): return try expect("false", value: .bool(false))
        case UInt8(ascii: "n"): return try expect("null", value: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw error("unexpected character")
        }
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONNode {
        pos += 1  // {
        var members: [(key: String, value: JSONNode)] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append((key, value))
            skipWhitespace()
            guard let c = peek() else { throw error("unexpected end of JSON") }
            pos += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "}") { return .object(members) }
            pos -= 1
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONNode {
        pos += 1  // [
        var items: [JSONNode] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard let c = peek() else { throw error("unexpected end of JSON") }
            pos += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "]") { return .array(items) }
            pos -= 1
            throw error("expected ',' or ']'")
        }
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard end - pos >= 4 else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A")) + 10
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func parseString() throws(JSONParseError) -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard pos < end else { throw error("unterminated string") }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; break }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            pos += 1
            guard pos < end else { throw error("unterminated string") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    guard end - pos >= 2, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw error("lone surrogate in \\u escape")
                    }
                    pos += 2
                    let low = try parseHex4()
                    guard low >= 0xDC00 && low <= 0xDFFF else { throw error("lone surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                    throw error("lone surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                pos -= 1
                throw error("invalid escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func parseNumber() throws(JSONParseError) -> String {
        let start = pos
        if peek() == UInt8(ascii: "-") { pos += 1 }
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw error("invalid number")
        }
        if first == UInt8(ascii: "0") {
            pos += 1
        } else {
            while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { pos += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            pos += 1
            guard let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { throw error("invalid number") }
            while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { pos += 1 }
        }
        if let c = peek(), c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            pos += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { throw error("invalid number") }
            while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { pos += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }
}

/// How a JSON value reads as a non-negative integer (shape dimension, offset, size).
enum JSONIntegerReading {
    case value(Int)
    case negative
    case notAnInteger
    case tooLarge
}

func readNonNegativeInteger(_ value: JSONNode) -> JSONIntegerReading {
    guard case .number(let text) = value else { return .notAnInteger }
    var digits = Substring(text)
    var negative = false
    if digits.first == "-" { negative = true; digits = digits.dropFirst() }
    guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else {
        // A fraction or exponent: reject even when integral (serde rejects 2.0 for usize).
        return .notAnInteger
    }
    if negative { return digits.allSatisfy({ $0 == "0" }) ? .value(0) : .negative }
    var result = 0
    for c in digits.utf8 {
        let (m, o1) = result.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
        if o1 || o2 { return .tooLarge }
        result = a
    }
    return .value(result)
}

// MARK: - Writing

/// A JSON string literal escaped the way serde_json does (so headers match the Rust library
/// byte for byte): `"` `\` and control characters escaped, everything else raw UTF-8.
func jsonQuoted(_ s: String) -> String { JSONText.quoted(s) }

// MARK: - Strict checks for JSON that Foundation decodes

/// What Foundation's JSON decoding lets through or reports without a place: an empty file,
/// invalid UTF-8, a syntax error, a duplicate key (Foundation keeps one of them silently).
/// `problem(in:)` names the first such problem with its line and column, or returns nil.
public enum StrictJSON {
    public static func problem(in data: Data) -> String? {
        guard !data.isEmpty else { return "the file is empty" }
        return data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> String? in
            if let bad = firstInvalidUTF8Offset(bytes) { return "\(place(bad, in: bytes)): not valid UTF-8" }
            let value: JSONNode
            do throws(JSONParseError) { value = try JSONParser.parse(bytes) } catch { return "\(place(error.offset, in: bytes)): \(error.message)" }
            return duplicateKey(in: value, path: "")
        }
    }

    /// "line L, column C" (1-based, columns in bytes) of a byte offset.
    static func place(_ offset: Int, in bytes: UnsafeRawBufferPointer) -> String {
        var line = 1, column = 1
        for i in 0..<min(offset, bytes.count) {
            if bytes[i] == 0x0A { line += 1; column = 1 } else { column += 1 }
        }
        return "line \(line), column \(column)"
    }

    static func duplicateKey(in value: JSONNode, path: String) -> String? {
        switch value {
        case .object(let members):
            var seen = Set<String>()
            for (key, member) in members {
                let here = path.isEmpty ? key : path + "." + key
                if !seen.insert(key).inserted { return "duplicate key \"\(here)\"" }
                if let found = duplicateKey(in: member, path: here) { return found }
            }
        case .array(let items):
            for (i, item) in items.enumerated() {
                if let found = duplicateKey(in: item, path: "\(path)[\(i)]") { return found }
            }
        default: break
        }
        return nil
    }

    /// Whether a number from JSONSerialization was a JSON `true`/`false` (Foundation bridges both
    /// to NSNumber, and `0`/`1` cast to Bool, so only the class tells them apart).
    public static func isBoolean(_ n: NSNumber) -> Bool {
        String(describing: type(of: n)).contains("Bool")
    }

    /// One line for a `DecodingError`: where (the key path, array indices as [i]) and what.
    public static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            var s = ""
            for k in keys {
                if let i = k.intValue, k.stringValue.hasPrefix("Index") { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
            }
            return s.isEmpty ? "the top level" : "\"\(s)\""
        }
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .keyNotFound(let key, let c): return "missing key \(path(c.codingPath + [key]))"
        case .typeMismatch(let type, let c): return "\(path(c.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let c): return "\(path(c.codingPath)): expected \(typeName(type)), found null"
        case .dataCorrupted(let c):
            return "\(path(c.codingPath)): \(c.debugDescription.replacingOccurrences(of: "\n", with: " "))"
        @unknown default: return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return name
        }
    }
}
