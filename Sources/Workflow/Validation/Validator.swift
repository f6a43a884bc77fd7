/// Checks a parsed workflow against the node catalog and reports every
/// problem at once: nothing runs until the list is empty.
public struct Validator: Sendable {
    public let registry: NodeRegistry

    public init(registry: NodeRegistry) {
        self.registry = registry
    }

    /// Parses and checks `text`; the diagnostics of both, in source order.
    public func validate(_ text: String, file: String = "<workflow>") -> (graph: WorkflowGraph, diagnostics: [Diagnostic]) {
        let (graph, parseProblems) = WorkflowParser.parse(text, file: file)
        if parseProblems.contains(where: { $0.code == .yamlSyntax || $0.code == .limitExceeded }) { return (graph, parseProblems) }
        var problems = validate(graph)
        if !parseProblems.isEmpty {
            // A part that could not be read explains an empty workflow better.
            problems.removeAll { $0.code == .nothingToRun }
        }
        return (graph, (parseProblems + problems).sortedBySource())
    }

    /// The semantic problems of `graph`, in source order.
    public func validate(_ graph: WorkflowGraph) -> [Diagnostic] {
        var check = GraphCheck(graph: graph, registry: registry)
        check.run()
        return check.diagnostics.sortedBySource()
    }
}

/// One validation pass over one graph.
struct GraphCheck {
    let graph: WorkflowGraph
    let registry: NodeRegistry
    var diagnostics: [Diagnostic] = []
    /// Template inputs some node uses.
    var usedParameters: Set<String> = []

    init(graph: WorkflowGraph, registry: NodeRegistry) {
        self.graph = graph
        self.registry = registry
    }

    mutating func report(_ code: Diagnostic.Code, at location: SourceLocation, node: String? = nil,
                         port: String? = nil, templateInput: String? = nil, output: String? = nil,
                         _ message: String, expected: String? = nil, found: String? = nil) {
        diagnostics.append(Diagnostic(code, file: graph.file, at: location, node: node, port: port,
                                      templateInput: templateInput, output: output, message: message,
                                      expected: expected, found: found))
    }

    mutating func run() {
        checkTemplateInputs()
        for id in graph.nodes.keys.sorted() {
            checkNode(graph.nodes[id]!)
        }
        checkUnusedParameters()
        checkCycles()
        checkOutputs()
    }

    /// The declaration of a node's type, when the node is readable and the type known.
    func description(ofNode id: String) -> NodeDescription? {
        guard let entry = graph.nodes[id], !entry.unreadable.contains("type") else { return nil }
        return registry.description(of: entry.type)
    }

    private mutating func checkNode(_ entry: NodeEntry) {
        guard !entry.unreadable.contains("type") else { return }
        guard let description = registry.description(of: entry.type) else {
            report(.unknownNodeType, at: entry.typeLocation, node: entry.id,
                   "unknown node type '\(entry.type)'" + Suggestion.didYouMean(entry.type, among: registry.typeNames),
                   expected: "a node type", found: entry.type)
            return
        }
        if let version = entry.version, version != description.version {
            report(.nodeVersionMismatch, at: entry.typeLocation, node: entry.id,
                   "written for \(entry.type) version \(version), this program has version \(description.version); remove 'version:' to accept it",
                   expected: "version \(description.version)", found: "version \(version)")
        }
        for (port, binding) in entry.inputs {
            checkGiven(port, binding, underParams: false, of: entry, description)
        }
        for (port, binding) in entry.params {
            checkGiven(port, binding, underParams: true, of: entry, description)
        }
        for spec in description.inputs where spec.isRequired {
            let given = entry.inputs[spec.name] != nil || entry.params[spec.name] != nil || entry.unreadable.contains(spec.name)
            if !given {
                let kind = spec.kind == .connection ? "input" : "parameter"
                report(.missingInput, at: entry.location, node: entry.id, port: spec.name,
                       "missing required \(kind): expected \(spec.type.detailedSpelling), found nothing",
                       expected: spec.type.detailedSpelling, found: "nothing")
            }
        }
    }

    /// A port given under `inputs:` or `params:`: does it exist, is it of
    /// that kind, and does what it is given fit?
    private mutating func checkGiven(_ port: String, _ binding: Binding, underParams: Bool,
                                     of entry: NodeEntry, _ description: NodeDescription) {
        if case let .parameter(name) = binding.source { usedParameters.insert(name) }
        guard let spec = description.input(named: port) else {
            let names = description.inputs.map(\.name)
            let connections = description.inputs.filter { $0.kind == .connection }.map(\.name)
            let parameters = description.inputs.filter { $0.kind == .parameter }.map(\.name)
            let list = "inputs: \(connections.isEmpty ? "none" : connections.joined(separator: ", ")); "
                + "params: \(parameters.isEmpty ? "none" : parameters.joined(separator: ", "))"
            report(.unknownPort, at: binding.keyLocation, node: entry.id, port: port,
                   "\(entry.type) has no such \(underParams ? "parameter" : "input")"
                       + Suggestion.didYouMean(port, among: names) + " (\(list))")
            return
        }
        switch (spec.kind, underParams) {
        case (.parameter, false):
            report(.wrongPortKind, at: binding.keyLocation, node: entry.id, port: port,
                   "a parameter of \(entry.type): give it under params:, as a value or '$name'")
            return
        case (.connection, true):
            report(.wrongPortKind, at: binding.keyLocation, node: entry.id, port: port,
                   "a connection of \(entry.type): give it under inputs:, as 'node.port' or '$name'")
            return
        default:
            break
        }
        checkBinding(binding, for: spec, of: entry)
    }
}
