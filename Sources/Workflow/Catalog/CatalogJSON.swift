/// The node catalog as JSON (`pilot nodes --json`): the same declarations
/// the validator checks against.
extension NodeRegistry {
    public var catalogJSON: JSONValue {
        .object([
            "formatVersion": .int(WorkflowGraph.formatVersion),
            "types": .array(PortType.named.map { .string($0.spelling) }),
            "nodes": .array(descriptions.map(\.json)),
        ])
    }
}

extension NodeDescription {
    public var json: JSONValue {
        .object([
            "type": .string(type), "version": .int(version), "category": .string(category),
            "doc": .string(doc), "isOutput": .bool(isOutput), "isCacheable": .bool(isCacheable),
            "inputs": .array(inputs.map(\.inputJSON)),
            "outputs": .array(outputs.map(\.outputJSON)),
        ])
    }
}

extension PortSpec {
    var inputJSON: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "type": .string(type.spelling), "kind": .string(kind.rawValue),
            "required": .bool(isRequired), "doc": .string(doc),
        ]
        if case let .enumeration(_, cases) = type { object["choices"] = .array(cases.map(JSONValue.string)) }
        if let choices { object["choices"] = .array(choices.map(JSONValue.string)) }
        if let value = defaultValue.flatMap(Literal.init) { object["default"] = value.json }
        if let minimum { object["min"] = type == .int ? .int(Int(minimum)) : .float(minimum) }
        if let maximum {
            switch type {
            case .int: object["max"] = .int(Int(maximum))
            case .string: object["max_bytes"] = .int(Int(maximum))
            default: object["max"] = .float(maximum)
            }
        }
        if readsFile { object["readsFile"] = .bool(true) }
        return .object(object)
    }

    var outputJSON: JSONValue {
        .object(["name": .string(name), "type": .string(type.spelling), "doc": .string(doc)])
    }
}
