import Foundation

/// A JSON value from the strict parser (RFC 8259, nesting at most 64 deep,
/// duplicate keys refused), for hostile input: safetensors headers and the
/// daemon's signed messages.
///
/// Numbers keep their literal text so that the header validator can tell an
/// integer (`3`) from a fraction (`3.0`, `3e0`) and refuse the latter as a
/// dimension or offset instead of silently truncating it, and so that a
/// reader converts them with correct rounding (Foundation's JSON parser
/// reads `1.2345678901234568e+30` two units in the last place off).
public enum StrictJSON: Sendable {
    case object([String: StrictJSON])
    case array([StrictJSON])
    case string(String)
    case number(literal: String)
    case bool(Bool)
    case null

    /// Why bytes are not one strict JSON document, and the byte offset where that was noticed.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public let offset: Int
        public var description: String { "\(message) at byte \(offset)" }
        public init(message: String, offset: Int) {
            self.message = message
            self.offset = offset
        }
    }

    /// Parses `data`: UTF-8 text holding exactly one JSON value.
    public static func parse(_ data: Data) throws(ParseError) -> StrictJSON {
        let result = data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Result<StrictJSON, ParseError> in
            if let bad = SafeTensorsHeader.firstInvalidUTF8Offset(bytes) { return .failure(ParseError(message: "invalid UTF-8", offset: bad)) }
            do throws(JSONParser.Failure) { return .success(try JSONParser.parse(bytes)) } catch {
                return .failure(ParseError(message: error.message, offset: error.offset))
            }
        }
        return try result.get()
    }

    /// The value as an `Int`, if it is an integer literal (no fraction or
    /// exponent) that fits in 64 bits.
    public var integerValue: Int? {
        guard case let .number(literal) = self,
              !literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
        else { return nil }
        return Int(literal)
    }

    /// A short rendering for error messages, e.g. `"F33"`, `2.5`, `[0, 8, 4]`,
    /// `an object`; long values are cut so one bad entry cannot flood a log.
    var summary: String {
        let maximumLength = 60
        let text: String
        switch self {
        case .object: text = "an object"
        case let .array(elements):
            let rendered = elements.prefix(8).map(\.summary).joined(separator: ", ")
            text = elements.count > 8 ? "[\(rendered), …] (\(elements.count) elements)" : "[\(rendered)]"
        case let .string(value): text = "\"\(value)\""
        case let .number(literal): text = literal
        case let .bool(value): text = value ? "true" : "false"
        case .null: text = "null"
        }
        return text.count > maximumLength ? String(text.prefix(maximumLength)) + "…" : text
    }
}
