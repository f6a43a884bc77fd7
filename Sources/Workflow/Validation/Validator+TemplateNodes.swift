import Foundation

extension NodeEntry {
    /// How a node names a template: `type: template:NAME`.
    public static let templatePrefix = "template:"

    /// The template this node stands for, when its type is `template:NAME`.
    public var templateName: String? {
        guard type.hasPrefix(Self.templatePrefix) else { return nil }
        return String(type.dropFirst(Self.templatePrefix.count))
    }
}

/// A template a template node stands for, checked: its interface as a node
/// and the graph that replaces the node when the workflow runs.
struct ResolvedTemplate: Sendable {
    let text: TemplateText
    /// Its graph as written.
    let graph: WorkflowGraph
    /// Its typed inputs as the node's ports (scalars under `params:`,
    /// objects under `inputs:`), its `outputs:` as the node's outputs.
    let description: NodeDescription
    /// For each template input, the ports inside (at any depth) it feeds:
    /// a value given to the node must suit each of them.
    let uses: [String: [PortUse]]
    /// How many nodes it becomes once every template inside is expanded.
    let nodeCount: Int
    /// Its own template nodes, resolved, by node id.
    let nested: [String: ResolvedTemplate]

    struct PortUse: Sendable {
        let spec: PortSpec
        let trace: [TemplateFrame]
    }
}

/// Templates met during one validation: found once each, checked once
/// each, and the chain being checked, for cycles and depth.
final class TemplateResolution {
    /// Templates may hold templates this many levels deep.
    static let maxDepth = 8

    let source: any TemplateSource
    /// Templates being checked, outermost first.
    var chain: [String]
    /// Each template checked so far, by `name@version`: resolved, or the
    /// problems found inside it.
    var checked: [String: Result<ResolvedTemplate, ValidationFailure>] = [:]

    init(source: any TemplateSource, chain: [String]) {
        self.source = source
        self.chain = chain
    }
}

extension GraphCheck {
    /// Finds and checks the template of every template node, before any
    /// node's ports are checked (an edge may come from one).
    mutating func resolveTemplateNodes() {
        let templateNodes = graph.nodes.values.filter { $0.templateName != nil && !$0.unreadable.contains("type") }
            .sorted { ($0.location, $0.id) < ($1.location, $1.id) }
        for entry in templateNodes {
            // Its nodes will be `id/inner`: no node written here may be called that.
            if let clash = graph.nodes.keys.filter({ $0.hasPrefix(entry.id + "/") }).min() {
                report(.duplicateNodeID, at: graph.nodes[clash]!.location, node: clash,
                       "node id '\(clash)' is taken by the nodes of template node '\(entry.id)' (they are '\(entry.id)/…')")
                continue
            }
            if let template = resolveTemplate(of: entry) { resolved[entry.id] = template }
        }
        // Nested templates multiply: bound what the run would hold.
        let total = graph.nodes.count - resolved.count + resolved.values.reduce(0) { $0 + $1.nodeCount }
        let limit = WorkflowLimits.current.maxNodes
        if total > limit, let first = templateNodes.first {
            report(.limitExceeded, at: first.typeLocation, node: first.id,
                   "with its templates expanded the workflow has \(total) nodes, over the limit of \(limit)")
            resolved = [:]
        }
    }

    /// The checked template of `entry`, or nil with the reasons reported.
    private mutating func resolveTemplate(of entry: NodeEntry) -> ResolvedTemplate? {
        let name = entry.templateName!
        guard let resolution = templates else {
            report(.unknownTemplate, at: entry.typeLocation, node: entry.id,
                   "a template node, but no templates are available here to find '\(name)' in")
            return nil
        }
        if let start = resolution.chain.firstIndex(of: name) {
            report(.cycle, at: entry.typeLocation, node: entry.id,
                   "template cycle: " + (resolution.chain[start...] + [name]).joined(separator: " → "))
            return nil
        }
        guard resolution.chain.count < TemplateResolution.maxDepth else {
            report(.limitExceeded, at: entry.typeLocation, node: entry.id,
                   "templates nested more than \(TemplateResolution.maxDepth) deep (" + (resolution.chain + [name]).joined(separator: " → ") + ")")
            return nil
        }
        let text: TemplateText
        do {
            guard let found = try resolution.source.template(named: name, version: entry.version) else {
                let names = resolution.source.templateNames
                let what = entry.version.map { "no version \($0) of template '\(name)'" } ?? "no template '\(name)'"
                report(.unknownTemplate, at: entry.typeLocation, node: entry.id,
                       what + Suggestion.didYouMean(name, among: names)
                           + " (templates: \(names.isEmpty ? "none" : names.prefix(40).joined(separator: ", ")))",
                       expected: "a template", found: entry.version.map { "\(name)@\($0)" } ?? name)
                return nil
            }
            text = found
        } catch {
            report(.unknownTemplate, at: entry.typeLocation, node: entry.id, "template '\(name)': \(error)")
            return nil
        }
        let key = text.identity
        if resolution.checked[key] == nil {
            resolution.chain.append(name)
            resolution.checked[key] = Self.check(text, registry: registry, resolution: resolution)
            resolution.chain.removeLast()
        }
        switch resolution.checked[key]! {
        case let .success(template):
            return template
        case let .failure(failure):
            for problem in failure.diagnostics {
                diagnostics.append(problem.nested(in: text, at: entry, file: graph.file))
            }
            return nil
        }
    }

    /// Parses and checks one template's text on its own.
    private static func check(_ text: TemplateText, registry: NodeRegistry,
                              resolution: TemplateResolution) -> Result<ResolvedTemplate, ValidationFailure> {
        let (graph, parseProblems) = WorkflowParser.parse(text.text, file: text.file)
        if parseProblems.contains(where: { $0.code == .yamlSyntax || $0.code == .limitExceeded }) {
            return .failure(ValidationFailure(parseProblems))
        }
        var inner = GraphCheck(graph: graph, registry: registry, templates: resolution)
        inner.run()
        let problems = Validator.merge(parseProblems, inner.diagnostics)
        guard problems.isEmpty else { return .failure(ValidationFailure(problems)) }
        return .success(inner.interface(of: text))
    }

    /// This graph with the relative paths written in it (Path literals and
    /// Path defaults) made absolute against `directory`.
    private func rebased(on directory: String) -> WorkflowGraph {
        let base = URL(fileURLWithPath: directory, isDirectory: true)
        func absolute(_ literal: Literal) -> Literal {
            guard case let .string(path) = literal, !path.isEmpty, !path.hasPrefix("/") else { return literal }
            return .string(base.appendingPathComponent(path).standardizedFileURL.path)
        }
        var copy = graph
        for (name, input) in graph.inputs where input.type == .path {
            copy.inputs[name]?.defaultValue = input.defaultValue.map(absolute)
        }
        for (id, entry) in graph.nodes {
            for (port, binding) in entry.params {
                guard case let .literal(literal) = binding.source,
                      description(ofNode: id)?.input(named: port)?.type == .path else { continue }
                copy.nodes[id]?.params[port]?.source = .literal(absolute(literal))
            }
        }
        return copy
    }

    /// This (valid) graph as the template node `text` names.
    private func interface(of text: TemplateText) -> ResolvedTemplate {
        let graph = text.directory.map(rebased) ?? graph
        var inputs: [PortSpec] = []
        for input in graph.inputs.values.sorted(by: { $0.name < $1.name }) {
            let requirement = input.defaultValue.map { PortSpec.Requirement.defaultValue(LiteralCheck.convert($0.value, to: input.type) ?? $0.value) }
                ?? .required
            let strings = input.choices?.compactMap { literal -> String? in
                if case let .string(text) = literal { return text }
                return nil
            }
            inputs.append(PortSpec(name: input.name, type: input.type, kind: input.type.isScalar ? .parameter : .connection,
                                   requirement: requirement, minimum: input.minimum, maximum: input.maximum,
                                   choices: input.type == .string && strings?.count == input.choices?.count ? strings : nil,
                                   doc: input.description))
        }
        let outputs = graph.outputs.values.sorted { $0.name < $1.name }.map { output in
            PortSpec(name: output.name, type: description(ofNode: output.reference.node)!.output(named: output.reference.port)!.type,
                     kind: .connection, doc: "")
        }
        let asNode = NodeDescription(type: NodeEntry.templatePrefix + text.name, version: text.version ?? 0,
                                          category: "templates", doc: graph.description, inputs: inputs, outputs: outputs)
        var uses: [String: [ResolvedTemplate.PortUse]] = [:]
        for (id, entry) in graph.nodes {
            for (port, binding) in entry.inputs.merging(entry.params, uniquingKeysWith: { first, _ in first }) {
                guard case let .parameter(name) = binding.source else { continue }
                let frame = TemplateFrame(template: text.name, version: text.version, file: graph.file,
                                          location: binding.location, node: id, port: port)
                if let nested = resolved[id] {
                    for use in nested.uses[port] ?? [] {
                        uses[name, default: []].append(.init(spec: use.spec, trace: [frame] + use.trace))
                    }
                } else if let spec = description(ofNode: id)?.input(named: port) {
                    uses[name, default: []].append(.init(spec: spec, trace: [frame]))
                }
            }
        }
        let count = graph.nodes.count - resolved.count + resolved.values.reduce(0) { $0 + $1.nodeCount }
        return ResolvedTemplate(text: text, graph: graph, description: asNode, uses: uses, nodeCount: count,
                                nested: resolved)
    }

    /// A value a template node's port is given (or may be, through `$name`)
    /// against the template input's own bounds and every port inside it
    /// feeds; reported at `location`, with the inner port in the trace.
    mutating func checkTemplateValue(_ value: Value, port: String, of entry: NodeEntry, at location: SourceLocation,
                                     note: String = "") {
        guard let template = resolved[entry.id] else { return }
        if let input = template.graph.inputs[port],
           let problem = LiteralCheck.problem(with: value, type: input.type, minimum: input.minimum,
                                              maximum: input.maximum, choices: input.choices) {
            report(problem.code, at: location, node: entry.id, port: port, problem.text + note,
                   expected: problem.expected, found: problem.found)
            return
        }
        for use in template.uses[port] ?? [] {
            guard let problem = LiteralCheck.problem(with: value, for: use.spec) else { continue }
            var diagnostic = Diagnostic(problem.code, file: graph.file, at: location, node: entry.id, port: port,
                                        message: problem.text + note, expected: problem.expected, found: problem.found)
            diagnostic.trace = use.trace
            diagnostics.append(diagnostic)
            return
        }
    }
}
