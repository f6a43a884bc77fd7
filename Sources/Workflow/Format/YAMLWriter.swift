/// Writes a workflow as YAML in the layout the documentation uses: one line
/// per template input, node and output, keys sorted, strings double-quoted
/// (JSON escapes are valid YAML), so the text is stable and reads back to
/// the same canonical form.
extension WorkflowGraph {
    public var yaml: String {
        var lines = ["version: \(version)"]
        lines.append("name: " + JSONValue.string(name).compact)
        if !description.isEmpty { lines.append("description: " + JSONValue.string(description).compact) }
        lines += section("inputs", inputs.mapValues(\.json))
        lines += section("nodes", nodes.mapValues(\.json))
        lines += section("outputs", outputs.mapValues { .string($0.reference.description) })
        return lines.joined(separator: "\n") + "\n"
    }

    private func section(_ title: String, _ members: [String: JSONValue]) -> [String] {
        guard !members.isEmpty else { return ["\(title): {}"] }
        let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return ["\(title):"] + keys.map { "  \($0): " + Self.flow(members[$0]!) }
    }

    /// Flow-style YAML for a value: plain keys and references, quoted strings.
    private static func flow(_ value: JSONValue) -> String {
        switch value {
        case let .object(members):
            // `type` first reads best (`{type: Add, inputs: …}`); the rest sorted.
            let keys = members.keys.sorted { a, b in
                if (a == "type") != (b == "type") { return a == "type" }
                return a.utf8.lexicographicallyPrecedes(b.utf8)
            }
            return "{" + keys.map { "\($0): " + flow(members[$0]!) }.joined(separator: ", ") + "}"
        case let .array(items):
            return "[" + items.map(flow).joined(separator: ", ") + "]"
        case let .string(text) where isPlainSafe(text):
            return text
        default:
            return value.compact
        }
    }

    /// References (`model.clip`), `$params` and names (type names, most
    /// enumeration cases) read back as the same string when written plain;
    /// `true`, `null` and the like would not.
    private static func isPlainSafe(_ text: String) -> Bool {
        if PortReference(text) != nil { return true }
        let name = text.hasPrefix("$") ? String(text.dropFirst()) : text
        return Identifier.isValid(name) && YAMLScalar.resolvePlain(text) == .literal(.string(text))
    }
}
