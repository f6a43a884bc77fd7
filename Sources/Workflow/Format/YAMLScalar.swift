import Yams

/// The YAML library's node tree (our `Node` is a workflow node type).
typealias YAMLNode = Yams.Node

/// Reads YAML scalars as the YAML 1.2 core schema does, whatever resolver the
/// YAML library uses: plain `true`/`false` are booleans (`yes`/`no`/`on`/`off`
/// stay strings), plain numbers are numbers, `~`/`null`/empty are null,
/// quoted scalars and `!!str` are always strings.
enum YAMLScalar {
    enum Resolved: Equatable {
        case null
        case literal(Literal)
        /// `.inf`, `.nan`: not allowed in a workflow.
        case nonFinite(String)
    }

    static func resolve(_ scalar: YAMLNode.Scalar) -> Resolved {
        let text = scalar.string
        if scalar.style != .plain || scalar.tag.description == "tag:yaml.org,2002:str" {
            return .literal(.string(text))
        }
        return resolvePlain(text)
    }

    /// How a plain (unquoted) scalar with this text reads.
    static func resolvePlain(_ text: String) -> Resolved {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .literal(.bool(true))
        case "false", "False", "FALSE": return .literal(.bool(false))
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
            return .nonFinite(text)
        default: break
        }
        if let integer = integer(text) { return .literal(.int(integer)) }
        if isFloat(text), let number = Double(text), number.isFinite { return .literal(.float(number)) }
        return .literal(.string(text))
    }

    /// Decimal, `0x` hex and `0o` octal integers, optionally signed.
    private static func integer(_ text: String) -> Int? {
        var body = Substring(text)
        var sign = 1
        if let first = body.first, first == "-" || first == "+" {
            sign = first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        guard !body.isEmpty else { return nil }
        let radix: Int
        if body.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if body.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        else {
            radix = 10
            guard body.allSatisfy(\.isASCII), body.allSatisfy(\.isNumber) else { return nil }
        }
        guard let magnitude = Int(body, radix: radix) else { return nil }
        return sign * magnitude
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat(_ text: String) -> Bool {
        var scalars = Array(text.unicodeScalars)[...]
        func digits() -> Int {
            let count = scalars.prefix { ("0"..."9").contains($0) }.count
            scalars = scalars.dropFirst(count)
            return count
        }
        if let first = scalars.first, first == "-" || first == "+" { scalars = scalars.dropFirst() }
        let whole = digits()
        var fraction = 0
        if scalars.first == "." {
            scalars = scalars.dropFirst()
            fraction = digits()
        }
        guard whole > 0 || fraction > 0 else { return false }
        if let first = scalars.first, first == "e" || first == "E" {
            scalars = scalars.dropFirst()
            if let sign = scalars.first, sign == "-" || sign == "+" { scalars = scalars.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return scalars.isEmpty
    }
}

extension SourceLocation {
    init(_ mark: Mark?) {
        self = mark.map { SourceLocation(line: $0.line, column: $0.column) } ?? .unknown
    }
}

extension YAMLNode {
    /// Where this node starts.
    var location: SourceLocation { SourceLocation(mark) }

    /// "a mapping", "a sequence", "String \"x\"", for messages.
    var kindDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a sequence"
        case let .scalar(scalar):
            switch YAMLScalar.resolve(scalar) {
            case .null: return "nothing"
            case let .literal(literal): return literal.value.summary
            case let .nonFinite(text): return "Float \(text)"
            }
        }
    }
}
