import Foundation

/// Runs bound workflows: only the nodes the outputs and sinks need, in
/// topological order, serving unchanged nodes from the output cache.
///
/// A run first computes every needed node's cache key (cheap: hashes of
/// keys, values and file fingerprints), then walks back from the outputs:
/// a node found in the cache is served from it and nothing it reads from is
/// needed any more; any other node runs, and so must what it reads from.
/// Sinks (``NodeDescription/isOutput``) always run. Cancellation is checked
/// before each node and by nodes between their steps.
public final class Executor: Sendable {
    public let cache: OutputCache

    public init(cache: OutputCache = OutputCache()) {
        self.cache = cache
    }

    /// Runs `workflow`. Throws ``ExecutionError`` naming the node that failed
    /// or at which the run was cancelled.
    public func run(_ workflow: BoundWorkflow, paths: PathPolicy,
                    cancellation: CancellationToken = CancellationToken(), annotations: [String: String] = [:],
                    preview: PreviewRequest? = nil,
                    onEvent: @escaping @Sendable (ExecutionEvent) -> Void = { _ in }) throws(ExecutionError) -> ExecutionResult {
        let start = DispatchTime.now()
        let plan = ExecutionPlan(workflow.workflow)
        var keyBuilder = CacheKeyBuilder(workflow: workflow, paths: paths)
        for id in plan.order {
            do {
                _ = try keyBuilder.key(for: id)
            } catch {
                throw .nodeFailed(nodeID: id, nodeType: workflow.graph.nodes[id]!.type, underlying: error)
            }
        }
        let keys = keyBuilder.keys
        var record = runRecord(workflow, files: keyBuilder.files)
        record.annotations = annotations
        if !workflow.workflow.templates.isEmpty {
            // Which templates the template nodes ran (pilot:nested-templates in a PNG).
            record.annotations["nested-templates"] = JSONValue.array(workflow.workflow.templates.map(\.summary)).compact
        }
        let written = OutputAllowance(maxPixels: paths.maxOutputPixels)

        // Walk back from the outputs: what is cached, what must run.
        var required = Set(workflow.graph.outputs.values.map(\.reference.node))
        var served: [String: [String: Value]] = [:]
        var toRun = Set<String>()
        for id in plan.order.reversed() {
            let description = workflow.workflow.description(ofNode: id)!
            guard required.contains(id) || description.isOutput else { continue }
            if description.isCacheable, !description.isOutput, let outputs = cache.lookup(keys[id]!) {
                served[id] = outputs
            } else {
                toRun.insert(id)
                required.formUnion(plan.sources[id] ?? [])
            }
        }

        var values = served
        var runs: [NodeRun] = []
        for id in plan.order where served[id] != nil || toRun.contains(id) {
            let entry = workflow.graph.nodes[id]!
            if served[id] != nil {
                let run = NodeRun(nodeID: id, nodeType: entry.type, milliseconds: 0, cacheHit: true, cacheKey: keys[id]!)
                runs.append(run)
                onEvent(.nodeFinished(run))
                continue
            }
            if cancellation.isCancelled { throw .cancelled(nodeID: id) }
            // Evict before loading: a node that reads model files needs about their size.
            if let bytes = keyBuilder.fileBytes[id], bytes > 0 { cache.makeRoom(for: Int(clamping: bytes)) }
            onEvent(.nodeStarted(nodeID: id, nodeType: entry.type))
            let context = NodeContext(nodeID: id, nodeType: entry.type, paths: paths, record: record,
                                      cancellation: cancellation, written: written, preview: preview, emit: onEvent)
            let nodeStart = DispatchTime.now()
            let outputs = try runNode(id, workflow, values: values, context: context)
            let run = NodeRun(nodeID: id, nodeType: entry.type, milliseconds: Self.milliseconds(since: nodeStart),
                              cacheHit: false, cacheKey: keys[id]!)
            values[id] = outputs
            let description = workflow.workflow.description(ofNode: id)!
            if description.isCacheable, !description.isOutput { cache.store(keys[id]!, outputs) }
            runs.append(run)
            onEvent(.nodeFinished(run))
        }

        var outputs: [String: Value] = [:]
        for (name, output) in workflow.graph.outputs {
            outputs[name] = values[output.reference.node]?[output.reference.port]
        }
        return ExecutionResult(outputs: outputs, nodes: runs, milliseconds: Self.milliseconds(since: start), files: written.files)
    }

    /// Runs one node on its inputs and checks what it returns.
    private func runNode(_ id: String, _ workflow: BoundWorkflow, values: [String: [String: Value]],
                         context: NodeContext) throws(ExecutionError) -> [String: Value] {
        let entry = workflow.graph.nodes[id]!
        let description = workflow.workflow.description(ofNode: id)!
        let fail = { (error: any Error) in ExecutionError.nodeFailed(nodeID: id, nodeType: entry.type, underlying: error) }
        var inputs: [String: Value] = [:]
        for spec in description.inputs {
            let value: Value?
            switch (entry.inputs[spec.name] ?? entry.params[spec.name])?.source {
            case let .edge(reference)?: value = values[reference.node]?[reference.port]
            case let .parameter(name)?: value = workflow.parameters[name]
            case let .literal(literal)?: value = literal.value
            case nil: value = spec.defaultValue
            }
            guard let value else { continue }
            guard let converted = LiteralCheck.convert(value, to: spec.type) else {
                throw fail(NodeContractError(description:
                    "input '\(spec.name)': expected \(spec.type.spelling), found \(value.summary) from upstream"))
            }
            inputs[spec.name] = converted
        }
        guard let node = workflow.workflow.registry.makeNode(entry.type) else {
            throw fail(NodeContractError(description: "node type \(entry.type) is not registered"))
        }
        let outputs: [String: Value]
        do {
            outputs = try node.run(NodeInputs(inputs, paths: context.paths), context)
        } catch is CancellationError {
            throw .cancelled(nodeID: id)
        } catch {
            throw fail(error)
        }
        var checked: [String: Value] = [:]
        for spec in description.outputs {
            guard let value = outputs[spec.name] else {
                throw fail(NodeContractError(description: "did not return its output '\(spec.name)'"))
            }
            guard let converted = LiteralCheck.convert(value, to: spec.type) else {
                throw fail(NodeContractError(description:
                    "returned \(value.summary) for output '\(spec.name)', declared \(spec.type.spelling)"))
            }
            checked[spec.name] = converted
        }
        return checked
    }

    private func runRecord(_ workflow: BoundWorkflow, files: [String: FileFingerprint]) -> RunRecord {
        let saved = workflow.graph.recordingVersions(from: workflow.workflow.registry)
        return RunRecord(workflowJSON: saved.canonicalJSON, workflowSHA256: saved.sha256,
                         parameters: workflow.parameters.compactMapValues(Literal.init), files: files)
    }

    private static func milliseconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
    }
}
