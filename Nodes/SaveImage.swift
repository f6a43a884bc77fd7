import Foundation
import Imaging
import Workflow

/// Writes an image as a PNG (or JPEG, WebP) that records how it was made.
struct SaveImage: Node, DefaultConstructible {
    /// The PNG text keys SaveImage writes.
    enum Key {
        static let workflow = "pilot:workflow"
        static let workflowSHA256 = "pilot:workflow-sha256"
        static let parameters = "pilot:parameters"
        static let seed = "pilot:seed"
        static let models = "pilot:models"
        static let version = "pilot:version"
        static let candidate = "pilot:candidate"
    }

    static let nodeDescription = NodeDescription(
        type: "SaveImage", category: "image",
        doc: """
            Writes NAME.png (8-bit RGB) under the output folder with text chunks recording how it was made: \
            `pilot:workflow` (the canonical JSON of the workflow, node versions recorded, each template input's \
            default set to the value this run bound and relative file paths made absolute, so it alone re-runs \
            the image: `pilot workflow-from`), `pilot:workflow-sha256`, `pilot:parameters` (JSON), `pilot:seed` \
            (when a template input `seed` exists), `pilot:models` (SHA-256 of every file read, by path) and \
            `pilot:version`. With `format` jpeg or webp it writes NAME.jpg or NAME.webp instead, with the \
            same entries as metadata (JPEG: COM segments; WebP: an XMP chunk), which `pilot workflow-from` and \
            `pilot templates from-png` read back as from a PNG. A batch of N images (a sampling node's `batch`) \
            writes NAME-0 … NAME-(N−1), each recording the workflow of that one image: every batched node \
            set to batch 1 and seed + i (its seed bound through the template input when only batched seeds use \
            it), and `pilot:candidate` {"index": i, "count": N}.
            """,
        inputs: [
            .connection("image", .image, doc: "The image to write, or a batch (NAME-0, NAME-1, …)."),
            .parameter("name", .string, default: .string("image"), doc: "File name without extension (no '/')."),
            .parameter("format", .enumeration(name: "ImageFormat", cases: ["png", "jpeg", "webp"]), default: .string("png"),
                       doc: "png (lossless, 8-bit), jpeg (at `quality`), or webp (at `quality`; 100 = lossless)."),
            .parameter("quality", .int, default: .int(92), min: 1, max: 100, doc: "JPEG and WebP quality (WebP 100: lossless)."),
        ],
        isOutput: true)

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let images = try inputs.images("image")
        for image in images { try context.reserveOutput(pixels: image.width * image.height) }
        let quality = try inputs.int("quality"), format = try inputs.string("format"), name = try inputs.string("name")
        for (index, image) in images.enumerated() {
            let candidate = images.count == 1 ? nil : Candidate(index: index, count: images.count)
            let fileName = candidate.map { "\(name)-\($0.index)" } ?? name
            let text = Self.textEntries(context, candidate: candidate)
            let (data, ext): (Data, String)
            switch format {
            case "jpeg": (data, ext) = (try ImageFile.encode(image, as: .jpeg, quality: quality, text: text), "jpg")
            case "webp": (data, ext) = (try ImageFile.encode(image, as: .webp, quality: quality, lossless: quality == 100, text: text), "webp")
            default: (data, ext) = (try ImageFile.encode(image, as: .png, text: text), "png")
            }
            let url = try context.outputFile(named: fileName, extension: ext)
            try ImageFile.writeAtomically(data, to: url.path)
            context.recordOutput(url, data: data)
        }
        return [:]
    }

    /// Image `index` of a batch of `count`.
    struct Candidate {
        let index: Int, count: Int
    }

    /// The text chunks for a run (for one image of a batch: its own workflow).
    static func textEntries(_ context: NodeContext, candidate: Candidate? = nil) -> [PNGTextEntry] {
        let record = context.record
        var entries: [PNGTextEntry] = []
        var parameters = record.parameters
        if !record.workflowJSON.isEmpty {
            // Parsed, not validated: template nodes are checked where the run resolved them.
            let (parsed, problems) = WorkflowParser.parse(record.workflowJSON, file: "<record>")
            if problems.isEmpty {
                let graph = candidate.map { single(parsed, parameters: &parameters, index: $0.index) } ?? parsed
                let absolute = absolutePaths(graph, parameters: &parameters, base: context.workflowDirectory)
                let saved = absolute.withDefaults(parameters)
                entries.append(PNGTextEntry(key: Key.workflow, value: saved.canonicalJSON))
                entries.append(PNGTextEntry(key: Key.workflowSHA256, value: saved.sha256))
            } else {
                entries.append(PNGTextEntry(key: Key.workflow, value: record.workflowJSON))
                entries.append(PNGTextEntry(key: Key.workflowSHA256, value: record.workflowSHA256))
            }
        }
        entries.append(PNGTextEntry(key: Key.parameters,
                                    value: JSONValue.object(parameters.mapValues(\.json)).compact))
        if let seed = parameters["seed"] { entries.append(PNGTextEntry(key: Key.seed, value: seed.json.compact)) }
        if !record.files.isEmpty {
            entries.append(PNGTextEntry(key: Key.models,
                                        value: JSONValue.object(record.files.mapValues { .string($0.sha256) }).compact))
        }
        entries.append(PNGTextEntry(key: Key.version, value: NodeLibrary.programVersion))
        if let candidate {
            entries.append(PNGTextEntry(key: Key.candidate,
                                        value: JSONValue.object(["index": .int(candidate.index), "count": .int(candidate.count)]).compact))
        }
        for (key, value) in record.annotations.sorted(by: { $0.key < $1.key }) {
            entries.append(PNGTextEntry(key: "pilot:" + key, value: value))
        }
        return entries
    }

    /// The workflow of image `index` of a batch: every node run with a
    /// `batch` above 1 runs one candidate, seed + index, which is the image
    /// its batch made at that index. A batch or seed bound through a
    /// template input changes that input when only those ports use it, else
    /// the node's own parameter.
    static func single(_ graph: WorkflowGraph, parameters: inout [String: Literal], index: Int) -> WorkflowGraph {
        var copy = graph
        func bound(_ binding: Binding?, port: PortSpec?) -> Literal? {
            switch binding?.source {
            case let .literal(value)?: return value
            case let .parameter(name)?: return parameters[name] ?? graph.inputs[name]?.defaultValue
            default: return port?.defaultValue.flatMap(Literal.init)
            }
        }
        // Template inputs feeding anything but the batched nodes' batch and seed stay as they are.
        var batched: [String: Int] = [:]
        for (id, entry) in graph.nodes {
            guard let description = NodeRegistry.standard.description(of: entry.type),
                  let batchPort = description.inputs.first(where: { $0.name == "batch" }),
                  case let .int(batch)? = bound(entry.params["batch"], port: batchPort), batch > 1 else { continue }
            batched[id] = batch
        }
        var otherUses: Set<String> = []
        for (id, entry) in graph.nodes {
            for (port, binding) in entry.params.merging(entry.inputs, uniquingKeysWith: { a, _ in a }) {
                if case let .parameter(name) = binding.source, batched[id] == nil || (port != "batch" && port != "seed") {
                    otherUses.insert(name)
                }
            }
        }
        func rebind(_ id: String, _ port: String, _ value: Literal) {
            if case let .parameter(name)? = graph.nodes[id]?.params[port]?.source, !otherUses.contains(name) {
                parameters[name] = value
            } else {
                copy.nodes[id]?.params[port] = Binding(.literal(value))
            }
        }
        for id in batched.keys.sorted() {
            guard let entry = graph.nodes[id], let description = NodeRegistry.standard.description(of: entry.type) else { continue }
            let seedPort = description.inputs.first { $0.name == "seed" }
            guard case let .int(seed)? = bound(entry.params["seed"], port: seedPort) else { continue }
            let (candidateSeed, overflow) = seed.addingReportingOverflow(index)
            guard !overflow else { continue }    // the node refuses such a batch; it did not make this image
            rebind(id, "batch", .int(1))
            rebind(id, "seed", .int(candidateSeed))
        }
        return copy
    }

    /// Relative paths (Path template inputs, file parameters written in
    /// place) made absolute against the workflow's folder, so the embedded
    /// workflow runs from anywhere.
    private static func absolutePaths(_ graph: WorkflowGraph, parameters: inout [String: Literal], base: URL) -> WorkflowGraph {
        func absolute(_ text: String) -> String {
            text.hasPrefix("/") || text.isEmpty ? text : base.appendingPathComponent(text).standardizedFileURL.path
        }
        for (name, input) in graph.inputs where input.type == .path {
            if case let .string(text)? = parameters[name] { parameters[name] = .string(absolute(text)) }
        }
        var copy = graph
        for (id, entry) in graph.nodes {
            guard let description = NodeRegistry.standard.description(of: entry.type) else { continue }
            for port in description.inputs where port.readsFile {
                if case let .literal(.string(text))? = entry.params[port.name]?.source {
                    copy.nodes[id]?.params[port.name]?.source = .literal(.string(absolute(text)))
                }
            }
        }
        return copy
    }
}
