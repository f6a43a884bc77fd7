extension GraphCheck {
    /// Does what a port is given fit its declaration?
    mutating func checkBinding(_ binding: Binding, for spec: PortSpec, of entry: NodeEntry) {
        switch binding.source {
        case let .literal(literal):
            if let problem = LiteralCheck.problem(with: literal.value, for: spec) {
                report(problem.code, at: binding.location, node: entry.id, port: spec.name, problem.text,
                       expected: problem.expected, found: problem.found)
            } else if entry.templateName != nil {
                checkTemplateValue(literal.value, port: spec.name, of: entry, at: binding.location)
            }
        case let .parameter(name):
            checkParameter(name, at: binding.location, for: spec, of: entry)
        case let .edge(reference):
            checkEdge(reference, at: binding.location, for: spec, of: entry)
        }
    }

    private mutating func checkParameter(_ name: String, at location: SourceLocation, for spec: PortSpec,
                                         of entry: NodeEntry) {
        usedParameters.insert(name)
        guard let input = graph.inputs[name] else {
            let known = graph.inputs.keys.sorted()
            report(.unboundParameter, at: location, node: entry.id, port: spec.name,
                   "no template input '\(name)'" + Suggestion.didYouMean(name, among: known)
                       + " (template inputs: \(known.isEmpty ? "none" : known.joined(separator: ", ")))",
                   expected: "a declared template input", found: "$" + name)
            return
        }
        guard !input.isUnreadable else { return }
        guard spec.type.accepts(input.type) else {
            let found = input.type.detailedSpelling
            report(.typeMismatch, at: location, node: entry.id, port: spec.name,
                   "expected \(spec.type.detailedSpelling), found \(found) (template input '$\(name)')",
                   expected: spec.type.detailedSpelling, found: found)
            return
        }
        // What the template may pass must also suit the port.
        guard input.type.isScalar else { return }
        var candidates = input.defaultValue.map { [$0] } ?? []
        if case .enumeration = spec.type, let choices = input.choices { candidates += choices }
        for candidate in candidates {
            if let problem = LiteralCheck.problem(with: candidate.value, for: spec) {
                report(problem.code, at: location, node: entry.id, port: spec.name,
                       problem.text + " (from template input '$\(name)')",
                       expected: problem.expected, found: problem.found)
                return
            }
            if entry.templateName != nil {
                let before = diagnostics.count
                checkTemplateValue(candidate.value, port: spec.name, of: entry, at: location,
                                   note: " (from template input '$\(name)')")
                if diagnostics.count > before { return }
            }
        }
    }

    private mutating func checkEdge(_ reference: PortReference, at location: SourceLocation, for spec: PortSpec,
                                    of entry: NodeEntry) {
        guard graph.nodes[reference.node] != nil else {
            let ids = graph.nodes.keys.sorted()
            report(.unknownNode, at: location, node: entry.id, port: spec.name,
                   "no node '\(reference.node)' (in '\(reference)')" + Suggestion.didYouMean(reference.node, among: ids),
                   expected: "a node id", found: reference.node)
            return
        }
        guard let source = description(ofNode: reference.node) else { return }
        guard let output = source.output(named: reference.port) else {
            let names = source.outputs.map(\.name)
            report(.unknownPort, at: location, node: entry.id, port: spec.name,
                   "node '\(reference.node)' (\(source.type)) has no output '\(reference.port)'"
                       + Suggestion.didYouMean(reference.port, among: names)
                       + " (outputs: \(names.isEmpty ? "none" : names.joined(separator: ", ")))",
                   expected: "an output of \(source.type)", found: reference.port)
            return
        }
        if !spec.type.accepts(output.type) {
            report(.typeMismatch, at: location, node: entry.id, port: spec.name,
                   "expected \(spec.type.detailedSpelling), found \(output.type.detailedSpelling) (from '\(reference)')",
                   expected: spec.type.detailedSpelling, found: output.type.detailedSpelling)
        }
    }
}
