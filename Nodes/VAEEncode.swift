import Imaging
import Tensors
import Workflow

/// Encodes an image to a latent.
struct VAEEncode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "VAEEncode", category: "latent",
        doc: """
            Encodes an RGB image to a latent: the VAE posterior's mean (deterministic), multiplied by the VAE's \
            scaling factor. The image's sides must be multiples of 8. Above `tile_above` pixels (either side) it \
            encodes in overlapping tiles blended together, so a large image fits in memory.
            """,
        inputs: [
            .connection("vae", .vae, doc: "The autoencoder (LoadCheckpoint.vae)."),
            .connection("image", .image, doc: "The image to encode."),
        ] + VAETiling.inputs(tile: 512, overlap: 128),
        outputs: [.output("latent", .latent, doc: "The scaled latent [1, 4, H/8, W/8].")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let vae = try inputs.object("vae", as: VAEPayload.self).vae
        let image = try inputs.image("image")
        guard image.width % 8 == 0, image.height % 8 == 0 else {
            throw NodeError("image is \(image.width)×\(image.height); VAEEncode needs sides that are multiples of 8 (use ResizeImage)")
        }
        guard let (tile, overlap) = try VAETiling.choice(inputs, width: image.width, height: image.height,
                                                         multiple: vae.config.downscale) else {
            return ["latent": .object(LatentPayload(try vae.encodeImage(image.tensor)), type: .latent)]
        }
        let mean = try vae.encodeTiled(image.tensor * 2 - 1, tile: tile, overlap: overlap)
        return ["latent": .object(LatentPayload(mean * vae.config.scalingFactor), type: .latent)]
    }
}
