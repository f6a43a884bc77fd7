/// A scalar written in a workflow file: a parameter value, a template
/// input's default, min, max or choice.
public enum Literal: Hashable, Sendable {
    case int(Int)
    case float(Double)
    case string(String)
    case bool(Bool)

    public var value: Value {
        switch self {
        case let .int(value): .int(value)
        case let .float(value): .float(value)
        case let .string(value): .string(value)
        case let .bool(value): .bool(value)
        }
    }

    /// The literal a scalar value is written as; nil for objects.
    public init?(_ value: Value) {
        switch value {
        case let .int(value): self = .int(value)
        case let .float(value): self = .float(value)
        case let .string(value): self = .string(value)
        case let .bool(value): self = .bool(value)
        case .object: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case let .int(value): .int(value)
        case let .float(value): .float(value)
        case let .string(value): .string(value)
        case let .bool(value): .bool(value)
        }
    }

    /// The number, for range checks.
    public var number: Double? {
        switch self {
        case let .int(value): Double(value)
        case let .float(value): value
        default: nil
        }
    }
}
