import SafeTensors
import Tensors
import Workflow

/// Reads a latent from a safetensors file.
struct LoadLatent: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadLatent", category: "latent",
        doc: """
            Reads a latent from a safetensors file: the tensor `latent`, shape [1, 4, h, w], F32 (F16/BF16 are \
            widened). Lets users and tests pass exact initial noise to Sample or PILOTOptimize.
            """,
        inputs: [.file("path", doc: "The .safetensors file holding `latent`.")],
        outputs: [.output("latent", .latent, doc: "The latent.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let url = try inputs.path("path")
        let file = try SafeTensorsFile(path: url.path)
        guard file.contains("latent") else {
            throw NodeError("\(url.path) has no tensor 'latent' (it has: \(file.names.joined(separator: ", ")))")
        }
        let shape = try file.info("latent").shape
        guard shape.count == 4, shape[0] == 1 else {
            throw NodeError("\(url.path): 'latent' has shape \(shape), expected [1, C, h, w]")
        }
        let latent = Tensor(shape: shape, values: try file.floats("latent"))
        return ["latent": .object(LatentPayload(latent), type: .latent)]
    }
}
