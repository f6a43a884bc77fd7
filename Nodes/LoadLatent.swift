import SafeTensors
import Tensors
import Workflow

/// Reads a latent from a safetensors file.
struct LoadLatent: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadLatent", category: "latent",
        doc: """
            Reads a latent from a safetensors file: the tensor `latent`, shape [N, C, h, w] (N ≤ 64 candidates; \
            the sampling nodes' initial noise takes one), or recorded per-step noise [k, N, C, h, w] for Blend; \
            F32 (F16/BF16 are widened). Lets users and tests pass exact initial noise to Sample or PILOTOptimize.
            """,
        inputs: [.file("path", doc: "The .safetensors file holding `latent`.")],
        outputs: [.output("latent", .latent, doc: "The latent.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let url = try inputs.path("path")
        return ["latent": .object(try LatentPayload.read(path: url.path), type: .latent)]
    }
}
