import Yams

/// Reads a workflow from YAML or JSON (JSON is read as YAML, so both report
/// line:column). Never stops at the first problem: it reads what it can and
/// returns every structural problem with the graph, for ``Validator`` to add
/// the semantic ones.
public enum WorkflowParser {
    /// The graph (empty when the text is not YAML at all) and the problems
    /// met while reading it, in source order.
    public static func parse(_ text: String, file: String = "<workflow>",
                             limits: WorkflowLimits = .current) -> (graph: WorkflowGraph, diagnostics: [Diagnostic]) {
        var reader = GraphReader(file: file)
        // Before the parser: it recurses per nesting level.
        if let (location, message) = limits.violation(in: text) {
            reader.error(.limitExceeded, at: location, message)
            return (WorkflowGraph(file: file), reader.diagnostics)
        }
        let root: YAMLNode?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            reader.syntaxError(error)
            return (WorkflowGraph(file: file), reader.diagnostics)
        }
        guard let root else {
            reader.error(.invalidStructure, at: SourceLocation(line: 1, column: 1),
                         "empty document: expected a workflow mapping (version, nodes, outputs)")
            return (WorkflowGraph(file: file), reader.diagnostics)
        }
        if let (location, message) = limits.longString(in: root) {
            reader.error(.limitExceeded, at: location, message)
            return (WorkflowGraph(file: file), reader.diagnostics)
        }
        reader.limits = limits
        let graph = reader.readWorkflow(root)
        return (graph, reader.diagnostics.sortedBySource())
    }
}

/// The reading state: the file name for messages and the problems so far.
struct GraphReader {
    let file: String
    var diagnostics: [Diagnostic] = []
    var limits = WorkflowLimits()

    mutating func error(_ code: Diagnostic.Code, at location: SourceLocation, node: String? = nil,
                        port: String? = nil, templateInput: String? = nil, output: String? = nil,
                        _ message: String, expected: String? = nil, found: String? = nil) {
        diagnostics.append(Diagnostic(code, file: file, at: location, node: node, port: port,
                                      templateInput: templateInput, output: output, message: message,
                                      expected: expected, found: found))
    }

    mutating func syntaxError(_ error: any Error) {
        guard let yamlError = error as? YamlError else {
            return self.error(.yamlSyntax, at: SourceLocation(line: 1, column: 1), "YAML syntax error: \(error)")
        }
        switch yamlError {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            // An unclosed bracket or quote is noticed where the text ends or
            // the next construct starts; point at where it was opened.
            if let context, let opened = Self.unclosed(context.text, problem) {
                let start = SourceLocation(context.mark)
                self.error(.yamlSyntax, at: start,
                           "YAML syntax error: \(opened) opened at \(start) is never closed (\(problem) at \(SourceLocation(mark)))")
                return
            }
            var message = "YAML syntax error: \(problem)"
            if let context {
                message += " (\(context.text) started at \(SourceLocation(context.mark)))"
            }
            self.error(.yamlSyntax, at: SourceLocation(mark), message)
        case let .reader(problem, offset, _, _):
            self.error(.yamlSyntax, at: SourceLocation(line: 1, column: 1),
                       "YAML syntax error: \(problem)" + (offset.map { " at byte \($0)" } ?? ""))
        default:
            self.error(.yamlSyntax, at: SourceLocation(line: 1, column: 1), "YAML syntax error: \(yamlError)")
        }
    }

    /// What was left open, for libyaml's context and problem texts of an
    /// unclosed flow collection or quoted scalar; nil for other errors.
    static func unclosed(_ context: String, _ problem: String) -> String? {
        if context.hasSuffix("flow mapping"), problem.contains("',' or '}'") { return "flow mapping '{'" }
        if context.hasSuffix("flow sequence"), problem.contains("',' or ']'") { return "flow sequence '['" }
        if context.hasSuffix("quoted scalar"), problem.contains("end of stream") { return "quoted string" }
        return nil
    }

    /// A mapping's entries with scalar keys, in source order. A repeated key
    /// is reported (against `duplicate`'s wording) and its later entries
    /// dropped, so nothing downstream sees two.
    mutating func entries(of mapping: YAMLNode.Mapping, duplicate: (String, SourceLocation) -> (Diagnostic.Code, String)? = { _, _ in nil },
                          node: String? = nil) -> [(key: String, keyLocation: SourceLocation, value: YAMLNode)] {
        var result: [(key: String, keyLocation: SourceLocation, value: YAMLNode)] = []
        var first: [String: SourceLocation] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                error(.invalidStructure, at: keyNode.location, node: node,
                      "expected a name as key, found \(keyNode.kindDescription)")
                continue
            }
            if let earlier = first[key] {
                let (code, message) = duplicate(key, earlier)
                    ?? (.duplicateKey, "duplicate key '\(key)' (first at \(earlier))")
                error(code, at: keyNode.location, node: code == .duplicateNodeID ? key : node, message)
                continue
            }
            first[key] = keyNode.location
            result.append((key, keyNode.location, value))
        }
        return result
    }

    /// `node` as a mapping, or a reported problem.
    mutating func mapping(_ node: YAMLNode, what: String, node nodeID: String? = nil,
                          templateInput: String? = nil) -> YAMLNode.Mapping? {
        if let mapping = node.mapping { return mapping }
        error(.invalidStructure, at: node.location, node: nodeID, templateInput: templateInput,
              "expected \(what) as a mapping, found \(node.kindDescription)")
        return nil
    }

    /// `node` as text, or a reported problem.
    mutating func text(_ node: YAMLNode, what: String, node nodeID: String? = nil, templateInput: String? = nil) -> String? {
        if let scalar = node.scalar, case let .literal(literal) = YAMLScalar.resolve(scalar) {
            if case let .string(text) = literal { return text }
            return scalar.string
        }
        error(.invalidStructure, at: node.location, node: nodeID, templateInput: templateInput,
              "expected \(what) as text, found \(node.kindDescription)")
        return nil
    }

    mutating func readWorkflow(_ root: YAMLNode) -> WorkflowGraph {
        var graph = WorkflowGraph(file: file)
        guard let top = mapping(root, what: "the workflow") else { return graph }
        var sawVersion = false, sawNodes = false
        for (key, keyLocation, value) in entries(of: top) {
            switch key {
            case "version":
                sawVersion = true
                readVersion(value, into: &graph)
            case "name":
                graph.name = text(value, what: "the name") ?? ""
            case "description":
                graph.description = text(value, what: "the description") ?? ""
            case "inputs":
                if case let .mapping(m) = value, m.count > limits.maxTemplateInputs {
                    error(.limitExceeded, at: keyLocation, "\(m.count) template inputs, over the limit of \(limits.maxTemplateInputs)")
                    return graph
                }
                graph.inputs = readTemplateInputs(value)
            case "nodes":
                sawNodes = true
                if case let .mapping(m) = value, m.count > limits.maxNodes {
                    error(.limitExceeded, at: keyLocation, "\(m.count) nodes, over the limit of \(limits.maxNodes)")
                    return graph
                }
                graph.nodes = readNodes(value)
            case "outputs":
                graph.outputs = readOutputs(value)
            default:
                error(.invalidStructure, at: keyLocation,
                      "unknown key '\(key)' (a workflow has version, name, description, inputs, nodes, outputs)")
            }
        }
        if !sawVersion {
            error(.unsupportedVersion, at: root.location, "missing 'version: \(WorkflowGraph.formatVersion)'",
                  expected: "version \(WorkflowGraph.formatVersion)", found: "nothing")
        }
        if !sawNodes {
            error(.invalidStructure, at: root.location, "missing 'nodes:'")
        }
        return graph
    }

    mutating func readVersion(_ value: YAMLNode, into graph: inout WorkflowGraph) {
        let expected = "version \(WorkflowGraph.formatVersion)"
        if let scalar = value.scalar, case let .literal(.int(version)) = YAMLScalar.resolve(scalar) {
            graph.version = version
            if version == WorkflowGraph.formatVersion { return }
            error(.unsupportedVersion, at: value.location,
                  "expected \(expected), found \(version); this program reads format version \(WorkflowGraph.formatVersion) only",
                  expected: expected, found: "version \(version)")
        } else {
            error(.unsupportedVersion, at: value.location, "expected \(expected), found \(value.kindDescription)",
                  expected: expected, found: value.kindDescription)
        }
    }

    mutating func readOutputs(_ value: YAMLNode) -> [String: OutputEntry] {
        guard let outputs = mapping(value, what: "outputs") else { return [:] }
        var result: [String: OutputEntry] = [:]
        for (name, keyLocation, target) in entries(of: outputs) {
            guard Identifier.isValid(name) else {
                error(.invalidName, at: keyLocation, output: name, "not a valid name (letters, digits, '_' and '-', not starting with a digit)")
                continue
            }
            guard let scalar = target.scalar, case let .literal(.string(text)) = YAMLScalar.resolve(scalar),
                  let reference = PortReference(text) else {
                error(.malformedReference, at: target.location, output: name,
                      "expected 'node.port', found \(target.kindDescription)", expected: "'node.port'",
                      found: target.kindDescription)
                continue
            }
            var entry = OutputEntry(name: name, reference: reference)
            entry.location = target.location
            result[name] = entry
        }
        return result
    }
}
