import Imaging
import Workflow

/// Decodes a latent to an image.
struct VAEDecode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "VAEDecode", category: "latent",
        doc: "Decodes a scaled latent to an RGB image (divides by the VAE's scaling factor first; values clamped to [0, 1]).",
        inputs: [
            .connection("vae", .vae, doc: "The autoencoder (LoadCheckpoint.vae)."),
            .connection("latent", .latent, doc: "The scaled latent."),
        ],
        outputs: [.output("image", .image, doc: "The decoded image, 8× the latent's size.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let vae = try inputs.object("vae", as: VAEPayload.self).vae
        let latent = try inputs.object("latent", as: LatentPayload.self).latent
        return ["image": .object(try Image(tensor: vae.decodeToImage(scaledLatent: latent)), type: .image)]
    }
}
