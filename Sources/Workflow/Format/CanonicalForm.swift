import Crypto
import Foundation

/// The canonical form of a workflow: its JSON with keys sorted, no
/// whitespace, every optional field left out when absent. Two workflows that
/// mean the same graph (YAML or JSON, any key order, any comments) have the
/// same canonical form and so the same SHA-256; SaveImage embeds both.
extension WorkflowGraph {
    /// The graph as a JSON value (the wire format; ``WorkflowParser`` reads it back).
    public var json: JSONValue {
        .object([
            "version": .int(version),
            "name": .string(name),
            "description": .string(description),
            "inputs": .object(inputs.mapValues(\.json)),
            "nodes": .object(nodes.mapValues(\.json)),
            "outputs": .object(outputs.mapValues { .string($0.reference.description) }),
        ])
    }

    /// The canonical JSON text.
    public var canonicalJSON: String { json.compact }

    /// SHA-256 of the canonical JSON's UTF-8 bytes, lowercase hex.
    public var sha256: String { Digest.sha256Hex(Data(canonicalJSON.utf8)) }

    /// The same graph with each template input's default set to the value
    /// a run bound, so the graph alone re-runs that run (SaveImage embeds
    /// this). Object inputs (images) have no literal and keep no default.
    public func withDefaults(_ parameters: [String: Literal]) -> WorkflowGraph {
        var copy = self
        for (name, value) in parameters where copy.inputs[name] != nil {
            copy.inputs[name]?.defaultValue = value
        }
        return copy
    }

    /// The same graph with each node's `version` set to its type's version in
    /// `registry`, so a saved workflow records what it was made with.
    public func recordingVersions(from registry: NodeRegistry) -> WorkflowGraph {
        var copy = self
        for (id, entry) in nodes {
            copy.nodes[id]?.version = registry.description(of: entry.type)?.version ?? entry.version
        }
        return copy
    }
}

extension TemplateInput {
    var json: JSONValue {
        var object: [String: JSONValue] = [:]
        if case let .enumeration(_, cases) = type {
            object["type"] = .string("Enum")
            object["choices"] = .array(cases.map(JSONValue.string))
        } else {
            object["type"] = .string(type.spelling)
            if let choices { object["choices"] = .array(choices.map(\.json)) }
        }
        if let defaultValue { object["default"] = defaultValue.json }
        if let minimum { object["min"] = Self.bound(minimum) }
        if let maximum { object["max"] = Self.bound(maximum) }
        if !description.isEmpty { object["description"] = .string(description) }
        return .object(object)
    }

    /// Whole bounds of Int inputs stay integers.
    private static func bound(_ value: Double) -> JSONValue {
        value.rounded() == value && abs(value) < 1e15 ? .int(Int(value)) : .float(value)
    }
}

extension NodeEntry {
    var json: JSONValue {
        var object: [String: JSONValue] = ["type": .string(type)]
        if let version { object["version"] = .int(version) }
        if !inputs.isEmpty { object["inputs"] = .object(inputs.mapValues(\.source.json)) }
        if !params.isEmpty { object["params"] = .object(params.mapValues(\.source.json)) }
        return .object(object)
    }
}

extension Binding.Source {
    /// As written in a file: `node.port`, `$name`, or the literal (a string
    /// starting with `$` doubled to `$$`).
    var json: JSONValue {
        switch self {
        case let .edge(reference): .string(reference.description)
        case let .parameter(name): .string("$" + name)
        case let .literal(.string(text)) where text.hasPrefix("$"): .string("$" + text)
        case let .literal(literal): literal.json
        }
    }
}

/// SHA-256 helpers.
public enum Digest {
    /// Lowercase hex SHA-256 of `data`.
    public static func sha256Hex(_ data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    /// Lowercase hex of `bytes` (a digest, a MAC, a key).
    public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
