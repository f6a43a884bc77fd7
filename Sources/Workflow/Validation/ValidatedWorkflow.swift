import Foundation

/// A workflow that passed validation against a registry: the only kind the
/// executor accepts (after ``bind(_:loader:)``).
public struct ValidatedWorkflow: Sendable {
    public let graph: WorkflowGraph
    /// The registry it was checked against; the executor makes its nodes here.
    public let registry: NodeRegistry
    /// Each node's declaration, by node id.
    let descriptions: [String: NodeDescription]

    /// Checks `graph`; throws every problem at once.
    public init(_ graph: WorkflowGraph, registry: NodeRegistry) throws(ValidationFailure) {
        let problems = Validator(registry: registry).validate(graph)
        guard problems.isEmpty else { throw ValidationFailure(problems) }
        self.graph = graph
        self.registry = registry
        var descriptions: [String: NodeDescription] = [:]
        for (id, entry) in graph.nodes {
            descriptions[id] = registry.description(of: entry.type)
        }
        self.descriptions = descriptions
    }

    /// Parses YAML or JSON `text` and checks it; throws every problem at once.
    public init(parsing text: String, file: String = "<workflow>", registry: NodeRegistry) throws(ValidationFailure) {
        let (graph, problems) = Validator(registry: registry).validate(text, file: file)
        guard problems.isEmpty else { throw ValidationFailure(problems) }
        try self.init(graph, registry: registry)
    }

    /// Reads, parses and checks the file at `url`; messages name it as `file`
    /// (default: the path as given).
    public init(contentsOf url: URL, file: String? = nil, registry: NodeRegistry) throws(ValidationFailure) {
        let name = file ?? url.path
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ValidationFailure([Diagnostic(.unreadableFile, file: name, at: SourceLocation(line: 1, column: 1),
                                                message: "cannot read the file as UTF-8 text: \(error.localizedDescription)")])
        }
        try self.init(parsing: text, file: name, registry: registry)
    }

    /// The declaration of node `id`'s type.
    public func description(ofNode id: String) -> NodeDescription? {
        descriptions[id]
    }
}
