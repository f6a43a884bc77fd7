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
            `pilot templates from-png` read back as from a PNG.
            """,
        inputs: [
            .connection("image", .image, doc: "The image to write."),
            .parameter("name", .string, default: .string("image"), doc: "File name without extension (no '/')."),
            .parameter("format", .enumeration(name: "ImageFormat", cases: ["png", "jpeg", "webp"]), default: .string("png"),
                       doc: "png (lossless, 8-bit), jpeg (at `quality`), or webp (at `quality`; 100 = lossless)."),
            .parameter("quality", .int, default: .int(92), min: 1, max: 100, doc: "JPEG and WebP quality (WebP 100: lossless)."),
        ],
        isOutput: true)

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.object("image", as: Image.self)
        try context.reserveOutput(pixels: image.width * image.height)
        let quality = try inputs.int("quality")
        switch try inputs.string("format") {
        case "jpeg":
            let url = try context.outputFile(named: inputs.string("name"), extension: "jpg")
            try ImageFile.write(image, to: url.path, as: .jpeg, quality: quality, text: Self.textEntries(context))
        case "webp":
            let url = try context.outputFile(named: inputs.string("name"), extension: "webp")
            try ImageFile.write(image, to: url.path, as: .webp, quality: quality, lossless: quality == 100,
                                text: Self.textEntries(context))
        default:
            let url = try context.outputFile(named: inputs.string("name"), extension: "png")
            try PNG.write(image, to: url.path, text: Self.textEntries(context))
        }
        return [:]
    }

    /// The text chunks for a run.
    static func textEntries(_ context: NodeContext) -> [PNGTextEntry] {
        let record = context.record
        var entries: [PNGTextEntry] = []
        var parameters = record.parameters
        if !record.workflowJSON.isEmpty {
            // Parsed, not validated: template nodes are checked where the run resolved them.
            let (graph, problems) = WorkflowParser.parse(record.workflowJSON, file: "<record>")
            if problems.isEmpty {
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
        for (key, value) in record.annotations.sorted(by: { $0.key < $1.key }) {
            entries.append(PNGTextEntry(key: "pilot:" + key, value: value))
        }
        return entries
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
