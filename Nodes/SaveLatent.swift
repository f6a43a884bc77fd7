import SafeTensors
import Workflow

/// Writes a latent to a safetensors file.
struct SaveLatent: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "SaveLatent", category: "latent",
        doc: "Writes a latent to NAME.safetensors under the output folder: the tensor `latent`, [N, C, h, w] (N candidates of a batch), F32.",
        inputs: [
            .connection("latent", .latent, doc: "The latent to write."),
            .parameter("name", .string, default: .string("latent"), doc: "File name without extension (no '/')."),
        ],
        isOutput: true)

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let latent = try inputs.object("latent", as: LatentPayload.self).latent
        // Counted as the image it stands for: 8× its height and width.
        let shape = latent.shape
        try context.reserveOutput(pixels: shape.count == 4 ? shape[0] * 64 * shape[2] * shape[3] : shape.reduce(1, *))
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: latent.shape, floats: latent.scalars)
        let url = try context.outputFile(named: inputs.string("name"), extension: "safetensors")
        let data = writer.serialized()
        try AtomicFile.write(data, to: url.path)
        context.recordOutput(url, data: data)
        return [:]
    }
}
