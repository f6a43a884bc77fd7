import Imaging
import Workflow

/// Reads a PNG as an RGB image.
struct LoadImage: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadImage", category: "image",
        doc: """
            Reads a PNG (any bit depth, gray or colour, alpha ignored) as an RGB image with values in [0, 1]. \
            Diffusion needs sides that are multiples of 8 (64 for PILOT); ResizeImage fixes other sizes.
            """,
        inputs: [.file("path", doc: "The PNG file.")],
        outputs: [.output("image", .image, doc: "The image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let url = try inputs.path("path")
        return ["image": .object(try PNG.read(path: url.path).image, type: .image)]
    }
}
