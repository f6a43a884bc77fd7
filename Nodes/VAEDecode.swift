import Diffusion
import Imaging
import Tensors
import Workflow

/// Decodes a latent to an image.
struct VAEDecode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "VAEDecode", category: "latent",
        doc: """
            Decodes a scaled latent to an RGB image (divides by the VAE's scaling factor first; values clamped to \
            [0, 1]). Above `tile_above` pixels (either side) it decodes in overlapping tiles blended together, \
            so a large image fits in memory. A batch of latents (Sample or PILOTOptimize with `batch`) decodes \
            one by one into a batch of images.
            """,
        inputs: [
            .connection("vae", .vae, doc: "The autoencoder (LoadCheckpoint.vae)."),
            .connection("latent", .latent, doc: "The scaled latent, or a batch of them."),
        ] + VAETiling.inputs(tile: 512, overlap: 128),
        outputs: [.output("image", .image, doc: "The decoded image, 8× the latent's size (a batch for a batch).")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let vae = try inputs.object("vae", as: VAEPayload.self).vae
        guard let batch = try inputs.latentBatch("latent") else { throw NodeError("missing input latent") }
        let d = vae.config.downscale
        let tiling = try VAETiling.choice(inputs, width: batch.dim(3) * d, height: batch.dim(2) * d, multiple: d)
        // One candidate at a time: the decoder's peak memory stays that of one image.
        let images = try (0..<batch.dim(0)).map { k in
            let latent = batch.dim(0) == 1 ? batch : batch.sliced(axis: 0, k..<(k + 1))
            guard let (tile, overlap) = tiling else { return try Image(tensor: vae.decodeToImage(scaledLatent: latent)) }
            let decoded = try vae.decodeTiled(latent * (1 / vae.config.scalingFactor), tile: tile / d, overlap: overlap / d)
            return try Image(tensor: (decoded * 0.5 + 0.5).clamped(0, 1))
        }
        return ["image": ImageBatch.value(images)]
    }
}

/// The tiling parameters of VAEEncode and VAEDecode.
enum VAETiling {
    static func inputs(tile: Int, overlap: Int) -> [PortSpec] { [
        .parameter("tile_above", .int, default: .int(2048), min: 0, max: 16384,
                   doc: "Tile when the image is larger than this many pixels on a side (0: always tile)."),
        .parameter("tile_size", .int, default: .int(tile), min: 64, max: 4096, doc: "Tile side in image pixels (a multiple of 8)."),
        .parameter("tile_overlap", .int, default: .int(overlap), min: 0, max: 2048,
                   doc: "Overlap of neighbouring tiles in image pixels (a multiple of 8), blended linearly."),
    ] }

    /// (tile, overlap) in image pixels when this image is tiled, else nil.
    static func choice(_ inputs: NodeInputs, width: Int, height: Int, multiple: Int) throws -> (Int, Int)? {
        let above = try inputs.int("tile_above")
        guard max(width, height) > above else { return nil }
        let tile = try inputs.int("tile_size"), overlap = try inputs.int("tile_overlap")
        guard tile % multiple == 0, overlap % multiple == 0, overlap < tile else {
            throw NodeError("tile_size \(tile) and tile_overlap \(overlap) must be multiples of \(multiple), the overlap smaller")
        }
        return (tile, overlap)
    }
}
