import Crypto
import Foundation

/// A node's cache key: SHA-256 over its type, its type's version, and for
/// each declared input (by name) what it is given: a scalar's value, an
/// upstream node's key and output port, an object template input's
/// fingerprint, or nothing; for a `readsFile` parameter, the resolved path
/// and fingerprint of the file or folder it names instead of its spelling. Because upstream keys go in instead of
/// upstream values, a key is known before anything runs, and a change
/// anywhere upstream changes every key below it.
struct CacheKeyBuilder {
    let workflow: BoundWorkflow
    let paths: PathPolicy
    /// Keys computed so far, by node id.
    private(set) var keys: [String: String] = [:]
    /// Files fingerprinted so far, by resolved path.
    private(set) var files: [String: FileFingerprint] = [:]
    /// Bytes of the files each node reads, by node id (what loading it may cost).
    private(set) var fileBytes: [String: Int64] = [:]

    init(workflow: BoundWorkflow, paths: PathPolicy) {
        self.workflow = workflow
        self.paths = paths
    }

    /// Computes node `id`'s key; its sources' keys must be known.
    mutating func key(for id: String) throws -> String {
        let entry = workflow.graph.nodes[id]!
        let description = workflow.workflow.description(ofNode: id)!
        var text = "node \(description.type) v\(description.version)\n"
        if !description.isCacheable || description.isOutput {
            text += "uncached \(UUID().uuidString)\n"  // never equal, so nothing below hits either
        }
        for spec in description.inputs.sorted(by: { $0.name < $1.name }) {
            let binding = entry.inputs[spec.name] ?? entry.params[spec.name]
            text += "\(spec.name) = "
            // A file is keyed by where it resolves and what it holds, not by
            // how the path is spelt (relative in a template, absolute nested).
            if spec.readsFile, let path = try pathValue(of: spec, in: entry) {
                let url = try paths.resolveForReading(path)
                let print = try files[url.path] ?? FileFingerprint.of(url)
                files[url.path] = print
                fileBytes[id, default: 0] += print.size
                text += "file \(url.path) \(print)\n"
                continue
            }
            switch binding?.source {
            case let .edge(reference)?:
                text += "edge \(keys[reference.node]!) \(reference.port)\n"
            case let .parameter(name)?:
                let value = workflow.parameters[name]!
                if let scalar = Literal(value), let converted = LiteralCheck.convert(scalar.value, to: spec.type),
                   let literal = Literal(converted) {
                    text += "value \(literal.json.compact)\n"
                } else {
                    text += "parameter \(workflow.parameterKeys[name]!)\n"
                }
            case let .literal(literal)?:
                let converted = LiteralCheck.convert(literal.value, to: spec.type).flatMap(Literal.init) ?? literal
                text += "value \(converted.json.compact)\n"
            case nil:
                text += spec.defaultValue.flatMap(Literal.init).map { "value \($0.json.compact)\n" } ?? "absent\n"
            }
        }
        let key = Digest.sha256Hex(Data(text.utf8))
        keys[id] = key
        return key
    }

    /// The path text a file parameter is given, if any.
    private func pathValue(of spec: PortSpec, in entry: NodeEntry) throws -> String? {
        switch (entry.params[spec.name] ?? entry.inputs[spec.name])?.source {
        case let .literal(.string(text))?: return text
        case let .parameter(name)?: return try workflow.parameters[name]?.asString()
        case .edge?: return nil  // a path computed by another node is keyed by that node
        default: return try spec.defaultValue?.asString()
        }
    }
}
