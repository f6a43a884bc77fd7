/// A value given for a template input when a workflow runs: text from the
/// command line (`--set steps=50`) converted to the input's type, or a value
/// already of it (a loaded image from `--input`, a number from JSON).
public enum ParameterValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral {
    case text(String)
    case value(Value)

    public init(stringLiteral text: String) { self = .text(text) }
    public init(integerLiteral value: Int) { self = .value(.int(value)) }
    public init(floatLiteral value: Double) { self = .value(.float(value)) }
    public init(booleanLiteral value: Bool) { self = .value(.bool(value)) }
}

/// Turns text into an object value for a template input of object type
/// (`--input image=cat.png` → an Image). Supplied by the node library; the
/// engine knows no file formats.
public typealias ObjectLoader = @Sendable (_ type: PortType, _ text: String) throws -> Value

/// Template inputs could not be bound; every problem is here.
public struct BindingFailure: Error, Sendable, CustomStringConvertible {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var parameter: String
        public var message: String
        public var expected: String?
        public var found: String?

        /// `parameter 'steps': expected Int in 1...1000, found Int 0`
        public var description: String { "parameter '\(parameter)': \(message)" }
    }

    public var problems: [Problem]

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
