import Diffusion
import Imaging
import Workflow

/// Attaches a T2I-Adapter and its hint image to a UNet.
struct ApplyT2IAdapter: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "ApplyT2IAdapter", category: "conditioning",
        doc: """
            Attaches a T2I-Adapter with its hint image (a sketch from Scribble, edges from CannyEdges) to a UNet. \
            The output is the same UNet carrying the adapter, so Sample and PILOTOptimize use it unchanged: the \
            adapter's features of the hint, times `scale`, are added inside the UNet's down blocks at every step \
            (computed once per run; constants for PILOT's gradient pass). The hint is resized to the image being \
            generated; one-channel adapters (sketch) get its luminance. Several adapters add up. An adapter whose \
            feature widths do not match the UNet's blocks fails here.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet, or another Apply* node's)."),
            .connection("t2i_adapter", .t2iAdapter, doc: "The adapter (LoadT2IAdapter)."),
            .connection("hint", .image, doc: "The control image: white strokes or edges on black."),
            .parameter("scale", .float, default: .float(1.0), min: 0, max: 10, doc: "Weight of the adapter's features."),
        ],
        outputs: [.output("unet", .unet, doc: "The UNet with the adapter attached; connect it to Sample or PILOTOptimize.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let adapter = try inputs.object("t2i_adapter", as: T2IAdapterPayload.self).model
        let hint = try inputs.image("hint")
        let scale = Float(try inputs.float("scale"))
        // Check the features against the UNet now, at the hint's own size, so a
        // mismatch names this node rather than the sampler.
        let (height, width) = (max(1, hint.height / 8), max(1, hint.width / 8))
        let trial = AdapterStack()
        try trial.addT2IAdapter(adapter, image: hint.tensor(width: 8 * width, height: 8 * height, channels: adapter.config.inChannels),
                                scale: scale)
        try trial.checkCompatible(with: unet.unet, height: height, width: width, unetSource: unet.sourceDescription)
        return ["unet": .object(unet.adding(.t2iAdapter(adapter, hint: hint, scale: scale)), type: .unet)]
    }
}
