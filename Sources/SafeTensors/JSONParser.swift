/// A strict JSON parser (RFC 8259) over bytes already known to be UTF-8.
///
/// A hand-written parser, rather than Foundation's, because the header is
/// hostile input: nesting depth is bounded so a header of a million `[`
/// cannot exhaust the stack, duplicate keys are refused rather than silently
/// resolved, and number literals survive unconverted (see `StrictJSON`).
struct JSONParser {
    /// A parse failure with the byte offset where it was noticed.
    struct Failure: Error {
        let message: String
        let offset: Int
    }

    /// Deepest nesting accepted; a valid safetensors header needs 3.
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    /// Parses `bytes` as exactly one JSON value, surrounded by optional whitespace.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> StrictJSON {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.failure("unexpected \(parser.describeCurrentByte()) after the top-level value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    // MARK: Values

    private mutating func parseValue(depth: Int) throws(Failure) -> StrictJSON {
        guard depth < Self.maximumDepth else {
            throw failure("nested deeper than \(Self.maximumDepth) levels")
        }
        guard let byte = peek() else { throw failure("unexpected end of header, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected \(describeCurrentByte()), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws(Failure) -> StrictJSON {
        position += 1  // "{"
        var members: [String: StrictJSON] = [:]
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else {
                throw failure("unexpected \(describeCurrentByte()), expected a string key")
            }
            let keyOffset = position
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), what: "':' after an object key")
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            guard members.updateValue(value, forKey: key) == nil else {
                throw Failure(message: "duplicate key \"\(key)\"", offset: keyOffset)
            }
            skipWhitespace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"), what: "',' or '}' in an object")
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws(Failure) -> StrictJSON {
        position += 1  // "["
        var elements: [StrictJSON] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"), what: "',' or ']' in an array")
            return .array(elements)
        }
    }

    /// Accepts the RFC 8259 number grammar and returns the literal unconverted.
    private mutating func parseNumber() throws(Failure) -> StrictJSON {
        let start = position
        if peek() == UInt8(ascii: "-") { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
        } else {
            guard skipDigits() > 0 else { throw failure("malformed number, expected a digit") }
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard skipDigits() > 0 else { throw failure("malformed number, expected a digit after '.'") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard skipDigits() > 0 else { throw failure("malformed number, expected a digit in the exponent") }
        }
        let literal = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        return .number(literal: literal)
    }

    // MARK: Strings

    private mutating func parseString() throws(Failure) -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = peek() else { throw failure("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try appendEscape(to: &utf8)
            case 0..<0x20:
                throw failure("unescaped control character 0x\(String(byte, radix: 16)) in a string")
            default:
                utf8.append(byte)
                position += 1
            }
        }
    }

    private mutating func appendEscape(to utf8: inout [UInt8]) throws(Failure) {
        guard let byte = peek() else { throw failure("unterminated escape") }
        position += 1
        let simple: UInt8?
        switch byte {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw Failure(message: "invalid escape '\\\(Character(Unicode.Scalar(byte)))'", offset: position - 1)
        }
        if let simple {
            utf8.append(simple)
            return
        }
        let scalar = try parseUnicodeEscape()
        utf8.append(contentsOf: String(Character(scalar)).utf8)
    }

    /// Reads the hex digits after `\u`, joining a UTF-16 surrogate pair when
    /// one follows; a lone surrogate is refused because it is not a character.
    private mutating func parseUnicodeEscape() throws(Failure) -> Unicode.Scalar {
        let first = try parseHexQuad()
        if (0xD800..<0xDC00).contains(first) {
            guard peek() == UInt8(ascii: "\\"), peek(offset: 1) == UInt8(ascii: "u") else {
                throw failure("unpaired UTF-16 high surrogate in a \\u escape")
            }
            position += 2
            let second = try parseHexQuad()
            guard (0xDC00..<0xE000).contains(second) else {
                throw failure("high surrogate not followed by a low surrogate")
            }
            let value = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            return Unicode.Scalar(value)!  // always in 0x10000...0x10FFFF
        }
        guard let scalar = Unicode.Scalar(first) else {
            throw failure("unpaired UTF-16 low surrogate in a \\u escape")
        }
        return scalar
    }

    private mutating func parseHexQuad() throws(Failure) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek(), let digit = Self.hexDigitValue(byte) else {
                throw failure("expected four hex digits after \\u")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private static func hexDigitValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    // MARK: Bytes

    private func peek(offset: Int = 0) -> UInt8? {
        let index = position + offset
        return index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    /// Skips decimal digits and returns how many there were.
    private mutating func skipDigits() -> Int {
        let start = position
        while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            position += 1
        }
        return position - start
    }

    private mutating func expect(_ byte: UInt8, what: String) throws(Failure) {
        guard peek() == byte else { throw failure("unexpected \(describeCurrentByte()), expected \(what)") }
        position += 1
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for (offset, expected) in text.enumerated() where peek(offset: offset) != expected {
            throw Failure(message: "malformed literal, expected \(literal)", offset: position)
        }
        position += text.count
    }

    private func describeCurrentByte() -> String {
        guard let byte = peek() else { return "end of header" }
        if (0x21..<0x7F).contains(byte) { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16))"
    }

    private func failure(_ message: String) -> Failure {
        Failure(message: message, offset: position)
    }
}
