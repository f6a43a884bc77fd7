/// Turning a finished run's workflow (the one SaveImage embeds) into a
/// template with chosen parameters as typed inputs.
extension WorkflowGraph {
    public struct ExposeError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// A copy whose template inputs are exactly `names`, each keeping the
    /// value this graph had as its default: a name that is already an input
    /// stays one; a name that is a literal parameter (`steps`, or
    /// `node.param` when several nodes have it) becomes an input typed,
    /// bounded and documented as the node's port, and the node reads it.
    /// Every other input is written back in place as its default value.
    public func exposing(_ names: [String], registry: NodeRegistry) throws(ExposeError) -> WorkflowGraph {
        var graph = self
        var kept = Set<String>()
        for requested in names {
            if inputs[requested] != nil {
                kept.insert(requested)
                continue
            }
            let parts = requested.split(separator: ".", maxSplits: 1).map(String.init)
            let (nodeFilter, param) = parts.count == 2 ? (Optional(parts[0]), parts[1]) : (nil, requested)
            let candidates = nodes.values.filter { entry in
                guard nodeFilter == nil || entry.id == nodeFilter, case .literal? = entry.params[param]?.source else { return false }
                return true
            }.sorted { $0.id < $1.id }
            guard let node = candidates.first else {
                throw ExposeError(description: "'\(requested)' is neither a template input nor a literal parameter of any node "
                                  + "(inputs: \(inputs.keys.sorted().joined(separator: ", ")))")
            }
            guard candidates.count == 1 else {
                throw ExposeError(description: "'\(requested)' is a parameter of several nodes: name one as "
                                  + candidates.map { "\($0.id).\(param)" }.joined(separator: " or "))
            }
            // An expanded template node's id (`fill/pilot`) is not an input name: `fill_pilot_steps`.
            let name = nodeFilter == nil ? param : "\(node.id.replacingOccurrences(of: "/", with: "_"))_\(param)"
            guard graph.inputs[name] == nil else {
                throw ExposeError(description: "an input named '\(name)' already exists: expose '\(requested)' as node.param instead")
            }
            guard case let .literal(value)? = node.params[param]?.source,
                  let port = registry.description(of: node.type)?.inputs.first(where: { $0.name == param }) else {
                throw ExposeError(description: "node '\(node.id)' (\(node.type)) has no parameter '\(param)' in the catalog")
            }
            // Bounds apply to numbers only (a String port's maximum is its length).
            let numeric = port.type == .int || port.type == .float
            graph.inputs[name] = TemplateInput(name: name, type: port.type, defaultValue: value,
                                               minimum: numeric ? port.minimum : nil, maximum: numeric ? port.maximum : nil,
                                               choices: port.choices?.map(Literal.string), description: port.doc)
            graph.nodes[node.id]!.params[param] = Binding(.parameter(name))
            kept.insert(name)
        }
        // The inputs not chosen: their defaults written in place.
        for (name, input) in inputs where !kept.contains(name) {
            guard let value = input.defaultValue else {
                throw ExposeError(description: "input '\(name)' has no value to write in place: expose it too")
            }
            graph.inputs.removeValue(forKey: name)
            for id in graph.nodes.keys {
                for (port, binding) in graph.nodes[id]!.params where binding.source == .parameter(name) {
                    graph.nodes[id]!.params[port] = Binding(.literal(value))
                }
                for (port, binding) in graph.nodes[id]!.inputs where binding.source == .parameter(name) {
                    graph.nodes[id]!.inputs[port] = Binding(.literal(value))
                }
            }
        }
        return graph
    }
}
