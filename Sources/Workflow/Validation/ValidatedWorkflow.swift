import Foundation

/// A workflow that passed validation against a registry: the only kind the
/// executor accepts (after ``bind(_:loader:)``).
///
/// A workflow with template nodes runs as one flat graph: each template
/// node is replaced by its template's nodes, with ids `node/inner` (at any
/// depth, `a/b/c`), their `$inputs` replaced by what the node was given or
/// the template's defaults, and edges from the node's outputs redirected to
/// the inner ports its template's `outputs:` name. An inner node's cache key
/// is the same as when its template runs alone with the same values, and a
/// run records (SaveImage embeds) the expanded graph, which re-runs without
/// the templates.
public struct ValidatedWorkflow: Sendable {
    /// What runs: the graph as written, with every template node expanded.
    public let graph: WorkflowGraph
    /// Every template the template nodes resolved to, at any depth, once
    /// each: what a job keeps to run the same texts later.
    public let templates: [TemplateText]
    /// The registry it was checked against; the executor makes its nodes here.
    public let registry: NodeRegistry
    /// Each node's declaration, by node id (of `graph`).
    let descriptions: [String: NodeDescription]

    /// Checks `graph`; throws every problem at once. `templates`: where
    /// template nodes find their templates; `templateName`: the graph is
    /// (to be saved as) that template, so a template node naming it is a cycle.
    public init(_ graph: WorkflowGraph, registry: NodeRegistry, templates: (any TemplateSource)? = nil,
                templateName: String? = nil) throws(ValidationFailure) {
        let check = Validator(registry: registry, templates: templates).check(graph, templateName: templateName)
        try self.init(checked: check, registry: registry)
    }

    /// Parses YAML or JSON `text` and checks it; throws every problem at once.
    public init(parsing text: String, file: String = "<workflow>", registry: NodeRegistry,
                templates: (any TemplateSource)? = nil, templateName: String? = nil) throws(ValidationFailure) {
        let (_, problems, check) = Validator(registry: registry, templates: templates)
            .check(text, file: file, templateName: templateName)
        guard problems.isEmpty, let check else { throw ValidationFailure(problems) }
        try self.init(checked: check, registry: registry)
    }

    /// Reads, parses and checks the file at `url`; messages name it as `file`
    /// (default: the path as given).
    public init(contentsOf url: URL, file: String? = nil, registry: NodeRegistry,
                templates: (any TemplateSource)? = nil) throws(ValidationFailure) {
        let name = file ?? url.path
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ValidationFailure([Diagnostic(.unreadableFile, file: name, at: SourceLocation(line: 1, column: 1),
                                                message: "cannot read the file as UTF-8 text: \(error.localizedDescription)")])
        }
        try self.init(parsing: text, file: name, registry: registry, templates: templates)
    }

    private init(checked check: GraphCheck, registry: NodeRegistry) throws(ValidationFailure) {
        guard check.diagnostics.isEmpty else { throw ValidationFailure(check.diagnostics) }
        self.registry = registry
        let expansion = TemplateExpansion(check.graph, resolved: check.resolved)
        graph = expansion.graph
        templates = expansion.templates
        var descriptions: [String: NodeDescription] = [:]
        for (id, entry) in graph.nodes {
            descriptions[id] = registry.description(of: entry.type)
        }
        self.descriptions = descriptions
    }

    /// The declaration of node `id`'s type.
    public func description(ofNode id: String) -> NodeDescription? {
        descriptions[id]
    }

    /// The templates it used, for a job's record.
    public var templateSnapshot: TemplateSnapshot { TemplateSnapshot(templates) }
}

/// Replaces template nodes by their templates' nodes, level by level (a
/// work list, not recursion), until none is left.
struct TemplateExpansion {
    private(set) var graph: WorkflowGraph
    private(set) var templates: [TemplateText] = []

    init(_ written: WorkflowGraph, resolved: [String: ResolvedTemplate]) {
        graph = written
        var work = resolved.sorted { $0.key > $1.key }.map { (id: $0.key, template: $0.value) }
        // A template node's output → the inner port its template names.
        var redirect: [PortReference: PortReference] = [:]
        var seen = Set<String>()
        while let (id, template) = work.popLast() {
            if seen.insert(template.text.identity).inserted { templates.append(template.text) }
            let outer = graph.nodes.removeValue(forKey: id)!
            for (innerID, inner) in template.graph.nodes {
                var node = inner
                node.id = id + "/" + innerID
                node.inputs = inner.inputs.mapValues { Self.substitute($0, in: id, from: outer, template) }
                node.params = inner.params.mapValues { Self.substitute($0, in: id, from: outer, template) }
                graph.nodes[node.id] = node
                if let nested = template.nested[innerID] { work.append((node.id, nested)) }
            }
            for output in template.graph.outputs.values {
                redirect[PortReference(node: id, port: output.name)] =
                    PortReference(node: id + "/" + output.reference.node, port: output.reference.port)
            }
        }
        guard !redirect.isEmpty else { return }
        // Follow chains (an output of a template node inside a template node).
        func target(_ reference: PortReference) -> PortReference {
            var current = reference
            while let next = redirect[current] { current = next }
            return current
        }
        for (id, entry) in graph.nodes {
            for (port, binding) in entry.inputs {
                if case let .edge(reference) = binding.source, redirect[reference] != nil {
                    graph.nodes[id]!.inputs[port]!.source = .edge(target(reference))
                }
            }
        }
        for (name, output) in graph.outputs where redirect[output.reference] != nil {
            graph.outputs[name]!.reference = target(output.reference)
        }
    }

    /// An inner binding as it reads once its template node `id` is expanded:
    /// edges to the template's own nodes renamed, `$inputs` replaced by what
    /// the node was given or the input's default.
    private static func substitute(_ binding: Binding, in id: String, from outer: NodeEntry,
                                   _ template: ResolvedTemplate) -> Binding {
        switch binding.source {
        case let .edge(reference):
            var renamed = binding
            renamed.source = .edge(PortReference(node: id + "/" + reference.node, port: reference.port))
            return renamed
        case let .parameter(name):
            if let given = outer.inputs[name] ?? outer.params[name] { return given }
            let input = template.graph.inputs[name]!
            var filled = Binding(.literal(input.defaultValue!))
            filled.location = input.defaultLocation
            filled.keyLocation = binding.keyLocation
            return filled
        case .literal:
            return binding
        }
    }
}
