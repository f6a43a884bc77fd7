/// A JSON document with one stable rendering: object keys sorted by their
/// UTF-8 bytes, integers as integers, floats in Swift's shortest round-trip
/// form (always with a `.` or an exponent), strings with JSON's escapes.
/// The canonical workflow, the catalog and diagnostics for the wire all use it.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The canonical form: no whitespace.
    public var compact: String {
        var out = ""
        write(into: &out, indent: nil, depth: 0)
        return out
    }

    /// Two-space indented, same key order as ``compact``; ends with a newline.
    public var pretty: String {
        var out = ""
        write(into: &out, indent: "  ", depth: 0)
        return out + "\n"
    }

    private func write(into out: inout String, indent: String?, depth: Int) {
        switch self {
        case .null: out += "null"
        case let .bool(value): out += value ? "true" : "false"
        case let .int(value): out += String(value)
        case let .float(value): out += JSONValue.format(value)
        case let .string(value): JSONValue.escape(value, into: &out)
        case let .array(items):
            writeContainer(into: &out, open: "[", close: "]", count: items.count, indent: indent, depth: depth) { out, index in
                items[index].write(into: &out, indent: indent, depth: depth + 1)
            }
        case let .object(members):
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            writeContainer(into: &out, open: "{", close: "}", count: keys.count, indent: indent, depth: depth) { out, index in
                JSONValue.escape(keys[index], into: &out)
                out += indent == nil ? ":" : ": "
                members[keys[index]]!.write(into: &out, indent: indent, depth: depth + 1)
            }
        }
    }

    private func writeContainer(into out: inout String, open: String, close: String, count: Int,
                                indent: String?, depth: Int, item: (inout String, Int) -> Void) {
        out += open
        guard count > 0 else { return out += close }
        for index in 0..<count {
            if index > 0 { out += "," }
            if let indent { out += "\n" + String(repeating: indent, count: depth + 1) }
            item(&out, index)
        }
        if let indent { out += "\n" + String(repeating: indent, count: depth) }
        out += close
    }

    /// Shortest round-trip text that still reads back as a float.
    static func format(_ value: Double) -> String {
        precondition(value.isFinite, "JSON has no infinities or NaN")
        let text = value.description
        return text.contains(where: { $0 == "." || $0 == "e" }) ? text : text + ".0"
    }

    static func escape(_ text: String, into out: inout String) {
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
