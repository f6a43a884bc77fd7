/// A parsed JSON value, as much of JSON as a safetensors header needs.
///
/// Numbers keep their literal text so that the header validator can tell an
/// integer (`3`) from a fraction (`3.0`, `3e0`) and refuse the latter as a
/// dimension or offset instead of silently truncating it.
enum JSONValue {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case number(literal: String)
    case bool(Bool)
    case null

    /// The value as an `Int`, if it is an integer literal (no fraction or
    /// exponent) that fits in 64 bits.
    var integerValue: Int? {
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
