import Yams

extension GraphReader {
    /// `nodes:`: node entries by id.
    mutating func readNodes(_ value: YAMLNode) -> [String: NodeEntry] {
        guard let nodes = mapping(value, what: "nodes") else { return [:] }
        var result: [String: NodeEntry] = [:]
        let duplicate: (String, SourceLocation) -> (Diagnostic.Code, String)? = { _, first in
            (.duplicateNodeID, "duplicate node id (first defined at \(first))")
        }
        for (id, keyLocation, body) in entries(of: nodes, duplicate: duplicate) {
            guard Identifier.isValidNodeID(id) else {
                error(.invalidName, at: keyLocation, node: id,
                      "not a valid node id (letters, digits, '_' and '-', not starting with a digit; '/' joins such names)")
                continue
            }
            var entry = readNode(id, body, at: keyLocation)
            entry.location = keyLocation
            result[id] = entry
        }
        return result
    }

    private mutating func readNode(_ id: String, _ body: YAMLNode, at location: SourceLocation) -> NodeEntry {
        var entry = NodeEntry(id: id, type: "")
        guard let fields = mapping(body, what: "a node", node: id) else {
            entry.unreadable.insert("type")
            return entry
        }
        var sawType = false
        for (key, keyLocation, value) in entries(of: fields, node: id) {
            switch key {
            case "type":
                sawType = true
                entry.typeLocation = value.location
                if let type = text(value, what: "the node type", node: id) {
                    entry.type = type
                } else {
                    entry.unreadable.insert("type")
                }
            case "version":
                if let scalar = value.scalar, case let .literal(.int(version)) = YAMLScalar.resolve(scalar) {
                    entry.version = version
                } else {
                    error(.invalidStructure, at: value.location, node: id,
                          "expected the node type's version as an integer, found \(value.kindDescription)")
                }
            case "inputs":
                readConnections(value, into: &entry)
            case "params":
                readParameters(value, into: &entry)
            default:
                error(.invalidStructure, at: keyLocation, node: id,
                      "unknown key '\(key)' (a node has type, version, inputs, params)")
            }
        }
        if !sawType {
            error(.invalidStructure, at: location, node: id, "missing 'type:'")
            entry.unreadable.insert("type")
        }
        return entry
    }

    /// `inputs:` of a node: `port: node.port` or `port: $param`.
    private mutating func readConnections(_ value: YAMLNode, into entry: inout NodeEntry) {
        guard let ports = mapping(value, what: "inputs", node: entry.id) else { return }
        for (port, keyLocation, target) in entries(of: ports, node: entry.id) {
            guard claim(port, at: keyLocation, in: entry) else { continue }
            var source: Binding.Source?
            if let scalar = target.scalar, case let .literal(.string(text)) = YAMLScalar.resolve(scalar) {
                if let name = parameterName(text) {
                    source = .parameter(name)
                } else if let reference = PortReference(text) {
                    source = .edge(reference)
                }
            }
            guard let source else {
                error(.malformedReference, at: target.location, node: entry.id, port: port,
                      "expected 'node.port' or '$param', found \(target.kindDescription)",
                      expected: "'node.port' or '$param'", found: target.kindDescription)
                entry.unreadable.insert(port)
                continue
            }
            entry.inputs[port] = located(source, at: target.location, key: keyLocation)
        }
    }

    /// `params:` of a node: a literal or `$param` (`$$x` is the text `$x`).
    private mutating func readParameters(_ value: YAMLNode, into entry: inout NodeEntry) {
        guard let ports = mapping(value, what: "params", node: entry.id) else { return }
        for (port, keyLocation, target) in entries(of: ports, node: entry.id) {
            guard claim(port, at: keyLocation, in: entry) else { continue }
            guard let literal = literal(target, what: "a value", node: entry.id, port: port) else {
                entry.unreadable.insert(port)
                continue
            }
            var source = Binding.Source.literal(literal)
            if case let .string(text) = literal, text.hasPrefix("$") {
                if text.hasPrefix("$$") {
                    source = .literal(.string(String(text.dropFirst())))
                } else if let name = parameterName(text) {
                    source = .parameter(name)
                } else {
                    error(.malformedReference, at: target.location, node: entry.id, port: port,
                          "expected '$name' with a valid name (write '$$' for a literal '$'), found \(quoted(text))",
                          expected: "'$name'", found: quoted(text))
                    entry.unreadable.insert(port)
                    continue
                }
            }
            entry.params[port] = located(source, at: target.location, key: keyLocation)
        }
    }

    /// False (and reported) when `port` is given twice, under inputs: and params:.
    private mutating func claim(_ port: String, at location: SourceLocation, in entry: NodeEntry) -> Bool {
        let earlier = entry.inputs[port]?.keyLocation ?? entry.params[port]?.keyLocation
        guard let earlier else { return true }
        error(.duplicateKey, at: location, node: entry.id, port: port,
              "given twice, under inputs: and params: (first at \(earlier))")
        return false
    }

    private func parameterName(_ text: String) -> String? {
        guard text.hasPrefix("$"), !text.hasPrefix("$$") else { return nil }
        let name = String(text.dropFirst())
        return Identifier.isValid(name) ? name : nil
    }

    private func located(_ source: Binding.Source, at location: SourceLocation, key: SourceLocation) -> Binding {
        var binding = Binding(source)
        binding.location = location
        binding.keyLocation = key
        return binding
    }
}
