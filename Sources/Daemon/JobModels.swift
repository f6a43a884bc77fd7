import Foundation
import Workflow

/// The models a job reads: for each `Path` parameter of its nodes, the
/// entry of the models folder the path falls in (`sd15` for
/// `MODELS/sd15/unet/…`), by name. A shared queue's workers take only jobs
/// whose models they have, and prefer those of the model they loaded last
/// (docs/queue.md, "Model affinity"). Paths outside the models folder (an
/// input, an example) name no model.
enum JobModels {
    /// `base`: the folder relative paths resolve against (the workflow file's).
    static func names(_ bound: BoundWorkflow, registry: NodeRegistry, base: URL, models: URL) -> [String] {
        let root = models.standardizedFileURL.path
        var found = Set<String>()
        for node in bound.graph.nodes.values {
            guard let description = registry.description(of: node.type) else { continue }
            for (name, binding) in node.params where description.input(named: name)?.type == .path {
                let text: String?
                switch binding.source {
                case let .literal(.string(value)): text = value
                case let .parameter(input):
                    if case let .string(value)? = bound.parameters[input] { text = value } else { text = nil }
                default: text = nil
                }
                guard let text, !text.isEmpty else { continue }
                let url = text.hasPrefix("/") ? URL(fileURLWithPath: text) : base.appendingPathComponent(text)
                let path = url.standardizedFileURL.path
                guard path.hasPrefix(root + "/") else { continue }
                if let first = path.dropFirst(root.count + 1).split(separator: "/").first { found.insert(String(first)) }
            }
        }
        return found.sorted()
    }

    /// The entries of a models folder, by name (what a worker has).
    static func available(in models: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }
}
