/// A value flowing along an edge or bound to a parameter.
///
/// Scalars are stored as such; everything a node produces that is not a
/// scalar (a loaded UNet, an image, a latent) travels as ``object(_:type:)``:
/// a type-erased payload tagged with its ``PortType`` so the executor can
/// check what a node returned against what it declared.
public enum Value: Sendable {
    case int(Int)
    case float(Double)
    case string(String)
    case bool(Bool)
    case object(any Sendable, type: PortType)

    /// The type this value has on its own (a `.string` reports `String` even
    /// where it feeds a Path or an enumeration port).
    public var type: PortType {
        switch self {
        case .int: .int
        case .float: .float
        case .string: .string
        case .bool: .bool
        case let .object(_, type): type
        }
    }

    /// The integer, or a ``ValueError``.
    public func asInt() throws(ValueError) -> Int {
        guard case let .int(value) = self else { throw mismatch("Int") }
        return value
    }

    /// The number; an integer is widened.
    public func asDouble() throws(ValueError) -> Double {
        switch self {
        case let .float(value): return value
        case let .int(value): return Double(value)
        default: throw mismatch("Float")
        }
    }

    /// The string (also the text of a Path or an enumeration case).
    public func asString() throws(ValueError) -> String {
        guard case let .string(value) = self else { throw mismatch("String") }
        return value
    }

    /// The boolean.
    public func asBool() throws(ValueError) -> Bool {
        guard case let .bool(value) = self else { throw mismatch("Bool") }
        return value
    }

    /// The payload of an object value, cast to `T`.
    public func asObject<T>(_: T.Type = T.self) throws(ValueError) -> T {
        guard case let .object(payload, _) = self else { throw mismatch(String(describing: T.self)) }
        guard let typed = payload as? T else {
            throw ValueError(expected: String(describing: T.self),
                             found: "\(type.spelling) holding \(Swift.type(of: payload))")
        }
        return typed
    }

    /// Short text for messages: `Int 3`, `String "a"`, `Image`.
    public var summary: String {
        switch self {
        case let .int(value): "Int \(value)"
        case let .float(value): "Float \(value)"
        case let .string(value): "String \(quoted(value))"
        case let .bool(value): "Bool \(value)"
        case let .object(_, type): type.spelling
        }
    }

    private func mismatch(_ expected: String) -> ValueError {
        ValueError(expected: expected, found: summary)
    }
}

/// A value was not of the type asked for.
public struct ValueError: Error, Sendable, Equatable, CustomStringConvertible {
    public var expected: String
    public var found: String

    public var description: String { "expected \(expected), found \(found)" }
}

/// A double-quoted rendering of `text` for messages, with JSON escapes.
func quoted(_ text: String) -> String {
    JSONValue.string(text).compact
}
