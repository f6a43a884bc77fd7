import Diffusion
import Imaging
import Workflow

/// Attaches a ControlNet and its hint image to a UNet.
struct ApplyControlNet: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "ApplyControlNet", category: "conditioning",
        doc: """
            Attaches a ControlNet with its hint image (a scribble, an edge map: Scribble, CannyEdges, or any \
            image drawn that way) to a UNet. The output is the same UNet carrying the adapter, so Sample and \
            PILOTOptimize use it unchanged: at every step the ControlNet's residuals, times `scale`, are added to \
            the UNet's skip connections and mid block (in both guidance rows, and in PILOT's gradient pass, \
            through which gradients flow), while the step lies in [start, end] of the schedule. The hint is \
            resized to the image being generated. Chain several ApplyControlNet nodes to combine ControlNets; \
            a ControlNet built for another UNet (SD 2 on SD 1) fails here.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet, or another Apply* node's)."),
            .connection("control_net", .controlNet, doc: "The ControlNet (LoadControlNet)."),
            .connection("hint", .image, doc: "The control image: white strokes or edges on black, as the ControlNet was trained."),
            .parameter("scale", .float, default: .float(1.0), min: 0, max: 10, doc: "Weight of the residuals (conditioning scale)."),
            .parameter("start", .float, default: .float(0), min: 0, max: 1, doc: "Share of the steps before the ControlNet starts acting."),
            .parameter("end", .float, default: .float(1), min: 0, max: 1, doc: "Share of the steps after which it stops acting."),
        ],
        outputs: [.output("unet", .unet, doc: "The UNet with the ControlNet attached; connect it to Sample or PILOTOptimize.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let controlNet = try inputs.object("control_net", as: ControlNetPayload.self).model
        let hint = try inputs.image("hint")
        let start = Float(try inputs.float("start")), end = Float(try inputs.float("end"))
        guard start <= end else { throw NodeError("start (\(start)) is after end (\(end))") }
        try controlNet.checkCompatible(with: unet.unet, unetSource: unet.sourceDescription)
        let adapter = UNetAdapter.controlNet(controlNet, hint: hint, scale: Float(try inputs.float("scale")), start: start, end: end)
        return ["unet": .object(unet.adding(adapter), type: .unet)]
    }
}

extension UNetPayload {
    /// "the UNet of PATH", for messages.
    var sourceDescription: String { recipe.map { "the UNet of \($0.path)" } ?? "the UNet" }
}
