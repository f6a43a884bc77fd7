import Imaging
import Workflow

/// Reads an inpainting mask from a PNG.
struct LoadMask: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadMask", category: "image",
        doc: """
            Reads an inpainting mask from a PNG: white (1) = the region to inpaint, black (0) = keep. The \
            luminance of a colour file is used (BT.601); with `alpha`, transparent pixels are the hole \
            (what an editor erased). `invert` swaps hole and background.
            """,
        inputs: [
            .file("path", doc: "The PNG file."),
            .parameter("invert", .bool, default: .bool(false), doc: "Swap hole and background (black = inpaint)."),
            .parameter("alpha", .bool, default: .bool(false),
                       doc: "Take the mask from the alpha channel: transparent = inpaint."),
        ],
        outputs: [.output("mask", .mask, doc: "The mask, values in [0, 1], 1 = inpaint.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let url = try inputs.path("path")
        var mask = try Mask(from: PNG.read(path: url.path), fromAlpha: inputs.bool("alpha"))
        if try inputs.bool("invert") { mask = mask.inverted() }
        return ["mask": .object(mask, type: .mask)]
    }
}
