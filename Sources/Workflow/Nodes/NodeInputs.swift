import Foundation

/// The inputs of one node run, by port name, with typed accessors whose
/// errors name the port.
public struct NodeInputs: Sendable {
    /// The values as the node receives them: edges resolved, template inputs
    /// bound, defaults filled in, Ints widened where a Float is declared.
    public let values: [String: Value]
    let paths: PathPolicy

    public init(_ values: [String: Value], paths: PathPolicy) {
        self.values = values
        self.paths = paths
    }

    public subscript(name: String) -> Value? { values[name] }

    /// Whether an optional input was given (or has a default).
    public func has(_ name: String) -> Bool { values[name] != nil }

    /// The value of `name`, or ``NodeInputError/missing(port:)``.
    public func value(_ name: String) throws(NodeInputError) -> Value {
        guard let value = values[name] else { throw .missing(port: name) }
        return value
    }

    public func int(_ name: String) throws(NodeInputError) -> Int {
        try typed(name) { value throws(ValueError) in try value.asInt() }
    }

    public func float(_ name: String) throws(NodeInputError) -> Double {
        try typed(name) { value throws(ValueError) in try value.asDouble() }
    }

    public func string(_ name: String) throws(NodeInputError) -> String {
        try typed(name) { value throws(ValueError) in try value.asString() }
    }

    public func bool(_ name: String) throws(NodeInputError) -> Bool {
        try typed(name) { value throws(ValueError) in try value.asBool() }
    }

    /// The payload of an object input, cast to `T`.
    public func object<T>(_ name: String, as _: T.Type = T.self) throws(NodeInputError) -> T {
        try typed(name) { value throws(ValueError) in try value.asObject(T.self) }
    }

    /// The payload of an optional object input, or nil when it was not given.
    public func optionalObject<T>(_ name: String, as _: T.Type = T.self) throws(NodeInputError) -> T? {
        guard has(name) else { return nil }
        return try object(name, as: T.self)
    }

    /// A Path input resolved for reading: relative to the workflow file's
    /// folder, and refused when it lies outside the allowed read directories.
    public func path(_ name: String) throws(NodeInputError) -> URL {
        let text = try string(name)
        do {
            return try paths.resolveForReading(text)
        } catch {
            throw .path(port: name, error)
        }
    }

    private func typed<T>(_ name: String, _ read: (Value) throws(ValueError) -> T) throws(NodeInputError) -> T {
        let value = try value(name)
        do {
            return try read(value)
        } catch {
            throw .wrongType(port: name, error)
        }
    }
}

/// A node asked for an input it did not get, or as the wrong type.
public enum NodeInputError: Error, Sendable, CustomStringConvertible {
    case missing(port: String)
    case wrongType(port: String, ValueError)
    case path(port: String, PathError)

    public var description: String {
        switch self {
        case let .missing(port): "port '\(port)': no value given"
        case let .wrongType(port, error): "port '\(port)': \(error)"
        case let .path(port, error): "port '\(port)': \(error)"
        }
    }
}
