import Diffusion
import Imaging
import Tensors
import Workflow

/// What an inpainting checkpoint's UNet takes beside the latent.
struct InpaintConditioning: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "InpaintConditioning", category: "conditioning",
        doc: """
            For inpainting checkpoints (SD 1.5/2 inpainting: a UNet with 9 input channels): attaches to the \
            prompt embeddings the mask at latent size and the latent of the image with the hole greyed out, \
            as diffusers' StableDiffusionInpaintPipeline makes them: the mask binarised at 0.5 and sampled at \
            each 8 × 8 cell's top-left pixel; the image's masked pixels set to mid grey, then encoded (the VAE \
            posterior's mean, scaled). Sample then runs the checkpoint on them (the latent's size is theirs \
            unless a latent or source is given). A soft mask counts as hard here: the checkpoint was trained \
            on hard ones.
            """,
        inputs: [
            .connection("conditioning", .conditioning, doc: "Prompt embeddings (TextEncode)."),
            .connection("vae", .vae, doc: "The checkpoint's autoencoder (LoadCheckpoint.vae)."),
            .connection("image", .image, doc: "The image to inpaint (sides multiples of 8)."),
            .connection("mask", .mask, doc: "The hole, the image's size: white = inpaint."),
        ],
        outputs: [.output("conditioning", .conditioning, doc: "The same prompts, carrying the inpainting channels for Sample.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let conditioning = try inputs.object("conditioning", as: ConditioningPayload.self)
        let vae = try inputs.object("vae", as: VAEPayload.self).vae
        let image = try inputs.image("image")
        let mask = try inputs.object("mask", as: Mask.self)
        let factor = vae.config.downscale
        guard image.width % factor == 0, image.height % factor == 0 else {
            throw NodeError("image is \(image.width)×\(image.height); InpaintConditioning needs sides that are multiples of \(factor) (use ResizeImage or CropToMask)")
        }
        guard mask.width == image.width, mask.height == image.height else {
            throw NodeError("mask is \(mask.width)×\(mask.height), the image \(image.width)×\(image.height): expected the same size")
        }
        let pixels = Tensor(shape: [1, 1, mask.height, mask.width], values: mask.values)
        let masked = try InpaintChannels.maskedImage(image.tensor, mask: pixels)
        let channels = try InpaintChannels.channels(latentMask: InpaintChannels.latentMask(pixels, factor: factor),
                                                    maskedImageLatent: vae.encodeImage(masked))
        return ["conditioning": .object(conditioning.with(inpaint: channels), type: .conditioning)]
    }
}
