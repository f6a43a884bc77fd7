/// Checks a parsed workflow against the node catalog and reports every
/// problem at once: nothing runs until the list is empty.
///
/// With a ``TemplateSource``, a node may be a template (`type:
/// template:NAME`, `version:` pinning a saved version): the template is
/// checked on its own, then the node against its typed inputs and outputs.
public struct Validator: Sendable {
    public let registry: NodeRegistry
    public let templates: (any TemplateSource)?

    public init(registry: NodeRegistry, templates: (any TemplateSource)? = nil) {
        self.registry = registry
        self.templates = templates
    }

    /// Parses and checks `text`; the diagnostics of both, in source order.
    /// `templateName`: the text is (to be) template NAME, so a template node
    /// naming it is a cycle.
    public func validate(_ text: String, file: String = "<workflow>",
                         templateName: String? = nil) -> (graph: WorkflowGraph, diagnostics: [Diagnostic]) {
        let (graph, diagnostics, _) = check(text, file: file, templateName: templateName)
        return (graph, diagnostics)
    }

    /// The semantic problems of `graph`, in source order.
    public func validate(_ graph: WorkflowGraph, templateName: String? = nil) -> [Diagnostic] {
        check(graph, templateName: templateName).diagnostics
    }

    func check(_ text: String, file: String, templateName: String?) -> (WorkflowGraph, [Diagnostic], GraphCheck?) {
        let (graph, parseProblems) = WorkflowParser.parse(text, file: file)
        if parseProblems.contains(where: { $0.code == .yamlSyntax || $0.code == .limitExceeded }) { return (graph, parseProblems, nil) }
        let check = check(graph, templateName: templateName)
        return (graph, Self.merge(parseProblems, check.diagnostics), check)
    }

    func check(_ graph: WorkflowGraph, templateName: String?) -> GraphCheck {
        let resolution = templates.map { TemplateResolution(source: $0, chain: templateName.map { [$0] } ?? []) }
        var check = GraphCheck(graph: graph, registry: registry, templates: resolution)
        check.run()
        check.diagnostics = check.diagnostics.sortedBySource()
        return check
    }

    /// Parse problems and semantic ones, in source order.
    static func merge(_ parseProblems: [Diagnostic], _ semantic: [Diagnostic]) -> [Diagnostic] {
        var problems = semantic
        if !parseProblems.isEmpty {
            // A part that could not be read explains an empty workflow better.
            problems.removeAll { $0.code == .nothingToRun }
        }
        return (parseProblems + problems).sortedBySource()
    }
}

/// One validation pass over one graph.
struct GraphCheck {
    let graph: WorkflowGraph
    let registry: NodeRegistry
    var diagnostics: [Diagnostic] = []
    /// Template inputs some node uses.
    var usedParameters: Set<String> = []
    /// Where template nodes look their templates up; nil: nowhere.
    let templates: TemplateResolution?
    /// Template nodes whose template checked out, by node id.
    var resolved: [String: ResolvedTemplate] = [:]

    init(graph: WorkflowGraph, registry: NodeRegistry, templates: TemplateResolution? = nil) {
        self.graph = graph
        self.registry = registry
        self.templates = templates
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
        resolveTemplateNodes()
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
        if entry.templateName != nil { return resolved[id]?.description }
        return registry.description(of: entry.type)
    }

    private mutating func checkNode(_ entry: NodeEntry) {
        // What it passes on counts as used even when its type is unusable
        // (reported once, there), so no "unused" noise follows.
        for binding in Array(entry.inputs.values) + Array(entry.params.values) {
            if case let .parameter(name) = binding.source { usedParameters.insert(name) }
        }
        guard !entry.unreadable.contains("type") else { return }
        if entry.templateName != nil {
            // Its own problems were reported when it was resolved.
            guard let template = resolved[entry.id] else { return }
            return checkPorts(of: entry, template.description)
        }
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
        checkPorts(of: entry, description)
    }

    /// What each port is given, and that every required one is.
    private mutating func checkPorts(of entry: NodeEntry, _ description: NodeDescription) {
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
