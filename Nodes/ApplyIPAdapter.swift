import Diffusion
import Imaging
import Workflow

/// Binds an IP-Adapter to a UNet with a reference image.
struct ApplyIPAdapter: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "ApplyIPAdapter", category: "conditioning",
        doc: """
            Prompts with an image: encodes `image` with the adapter's CLIP image encoder (resized and centre-cropped \
            as transformers' CLIPImageProcessor does) and binds the IP-Adapter to the UNet. The output is the same \
            UNet carrying the adapter, so Sample and PILOTOptimize use it unchanged: in every cross-attention layer \
            `scale` × attention over the image tokens is added to the text attention (the unconditional guidance \
            row sees a zero image embedding, as in diffusers). One IP-Adapter per UNet; an adapter made for \
            another UNet width fails here.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet, or another Apply* node's)."),
            .connection("ip_adapter", .ipAdapter, doc: "The adapter and its image encoder (LoadIPAdapter)."),
            .connection("image", .image, doc: "The reference image whose content or style to carry over."),
            .parameter("scale", .float, default: .float(1.0), min: 0, max: 10, doc: "Weight of the image tokens' attention."),
        ],
        outputs: [.output("unet", .unet, doc: "The UNet with the IP-Adapter bound; connect it to Sample or PILOTOptimize.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let payload = try inputs.object("ip_adapter", as: IPAdapterPayload.self)
        let image = try inputs.image("image")
        if unet.adapters.contains(where: { if case .imagePrompt = $0 { true } else { false } }) {
            throw NodeError("this UNet already has an IP-Adapter; a UNet takes one")
        }
        let encoder = payload.encoder
        let adapter = try IPAdapter(path: payload.path, unet: unet.unet, imageEmbedDim: encoder.config.projectionDim)
        try adapter.checkCompatible(with: unet.unet, encoder: encoder, unetSource: unet.sourceDescription)
        let pixels = CLIPImagePreprocessing.pixelValues(image.tensor, size: encoder.config.imageSize)
        let embeds = try encoder.imageEmbeds(pixels)
        return ["unet": .object(unet.adding(.imagePrompt(adapter, imageEmbeds: embeds, scale: Float(try inputs.float("scale")))),
                                type: .unet)]
    }
}
