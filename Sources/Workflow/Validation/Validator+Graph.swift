extension GraphCheck {
    /// Each cycle once, named by its nodes in edge order, reported at the
    /// node on it that comes first in the file.
    mutating func checkCycles() {
        let successors = edgeTargets()
        for component in StronglyConnected.components(of: successors) {
            let isLoop = component.count > 1 || successors[component[0]]?.contains(component[0]) == true
            guard isLoop else { continue }
            let members = Set(component)
            let start = component.min { (graph.nodes[$0]!.location, $0) < (graph.nodes[$1]!.location, $1) }!
            let path = StronglyConnected.cycle(from: start, within: members, successors: successors)
            report(.cycle, at: graph.nodes[start]!.location, node: start,
                   "cycle: " + (path + [start]).joined(separator: " → "))
        }
    }

    /// For each node, the nodes that read its outputs, sorted.
    private func edgeTargets() -> [String: [String]] {
        var targets: [String: Set<String>] = [:]
        for (id, entry) in graph.nodes {
            for binding in entry.inputs.values {
                if case let .edge(reference) = binding.source, graph.nodes[reference.node] != nil {
                    targets[reference.node, default: []].insert(id)
                }
            }
        }
        var result: [String: [String]] = [:]
        for id in graph.nodes.keys { result[id] = (targets[id] ?? []).sorted() }
        return result
    }

    /// Every `outputs:` entry names an existing node's output; and the
    /// workflow produces something.
    mutating func checkOutputs() {
        for name in graph.outputs.keys.sorted() {
            let output = graph.outputs[name]!, reference = output.reference
            guard graph.nodes[reference.node] != nil else {
                report(.danglingOutput, at: output.location, output: name,
                       "no node '\(reference.node)' (in '\(reference)')"
                           + Suggestion.didYouMean(reference.node, among: graph.nodes.keys.sorted()),
                       expected: "a node id", found: reference.node)
                continue
            }
            guard let source = description(ofNode: reference.node) else { continue }
            if source.output(named: reference.port) == nil {
                let names = source.outputs.map(\.name)
                report(.danglingOutput, at: output.location, output: name,
                       "node '\(reference.node)' (\(source.type)) has no output '\(reference.port)'"
                           + Suggestion.didYouMean(reference.port, among: names)
                           + " (outputs: \(names.isEmpty ? "none" : names.joined(separator: ", ")))",
                       expected: "an output of \(source.type)", found: reference.port)
            }
        }
        let hasSink = graph.nodes.keys.contains { description(ofNode: $0)?.isOutput == true }
        let unknownTypes = graph.nodes.keys.contains { description(ofNode: $0) == nil }
        if graph.outputs.isEmpty, !hasSink, !unknownTypes {
            report(.nothingToRun, at: SourceLocation(line: 1, column: 1),
                   "nothing to run: no 'outputs:' and no output node (such as SaveImage)")
        }
    }
}

/// Tarjan's strongly connected components, and a cycle through one.
enum StronglyConnected {
    /// Components over `successors`' keys; each component's members sorted.
    static func components(of successors: [String: [String]]) -> [[String]] {
        var index = 0, indices: [String: Int] = [:], lowlink: [String: Int] = [:]
        var stack: [String] = [], onStack: Set<String> = [], result: [[String]] = []

        func visit(_ node: String) {
            indices[node] = index; lowlink[node] = index; index += 1
            stack.append(node); onStack.insert(node)
            for next in successors[node] ?? [] {
                if indices[next] == nil {
                    visit(next)
                    lowlink[node] = min(lowlink[node]!, lowlink[next]!)
                } else if onStack.contains(next) {
                    lowlink[node] = min(lowlink[node]!, indices[next]!)
                }
            }
            if lowlink[node] == indices[node] {
                var component: [String] = []
                while let top = stack.popLast() {
                    onStack.remove(top)
                    component.append(top)
                    if top == node { break }
                }
                result.append(component.sorted())
            }
        }
        for node in successors.keys.sorted() where indices[node] == nil { visit(node) }
        return result
    }

    /// A path `start → … ` inside `members` whose last node leads back to
    /// `start` (breadth-first, so the shortest such cycle).
    static func cycle(from start: String, within members: Set<String>, successors: [String: [String]]) -> [String] {
        var previous: [String: String] = [:], queue = [start], head = 0
        while head < queue.count {
            let node = queue[head]; head += 1
            for next in successors[node] ?? [] where members.contains(next) {
                if next == start {
                    var path = [node]
                    while let back = previous[path[0]] { path.insert(back, at: 0) }
                    return path
                }
                if previous[next] == nil, next != start {
                    previous[next] = node
                    queue.append(next)
                }
            }
        }
        return [start]
    }
}
