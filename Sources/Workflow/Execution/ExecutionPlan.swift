/// Which nodes a run needs, in an order where every node comes after the
/// nodes it reads from.
struct ExecutionPlan {
    /// Needed nodes, topologically sorted; ties broken by position in the
    /// file, so the order is the same every run.
    let order: [String]
    /// Nodes a needed node reads from, by node.
    let sources: [String: [String]]

    /// The nodes the named outputs and the sink (`isOutput`) nodes depend on.
    init(_ workflow: ValidatedWorkflow) {
        let graph = workflow.graph
        var sources: [String: [String]] = [:]
        for (id, entry) in graph.nodes {
            var from = Set<String>()
            for binding in entry.inputs.values {
                if case let .edge(reference) = binding.source { from.insert(reference.node) }
            }
            sources[id] = from.sorted()
        }
        var needed = Set(graph.outputs.values.map(\.reference.node))
        needed.formUnion(graph.nodes.keys.filter { workflow.description(ofNode: $0)?.isOutput == true })
        var frontier = Array(needed)
        while let id = frontier.popLast() {
            for source in sources[id] ?? [] where needed.insert(source).inserted {
                frontier.append(source)
            }
        }
        // Kahn's algorithm over the needed subgraph.
        let rank: (String) -> (SourceLocation, String) = { (graph.nodes[$0]!.location, $0) }
        var waiting = Dictionary(uniqueKeysWithValues: needed.map { ($0, Set(sources[$0] ?? [])) })
        var order: [String] = []
        while !waiting.isEmpty {
            let ready = waiting.filter { $0.value.isEmpty }.keys.sorted { rank($0) < rank($1) }
            precondition(!ready.isEmpty, "validated workflows have no cycles")
            for id in ready {
                order.append(id)
                waiting.removeValue(forKey: id)
            }
            for key in waiting.keys { waiting[key]!.subtract(ready) }
        }
        self.order = order
        self.sources = sources
    }
}
