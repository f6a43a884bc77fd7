import Imaging
import Workflow

/// Reads a PNG, JPEG or WebP as an RGB image.
struct LoadImage: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadImage", category: "image",
        doc: """
            Reads a PNG (any bit depth, gray or colour), JPEG (baseline or progressive, gray or colour; turned \
            upright by its EXIF orientation) or still WebP (lossy or lossless) as an RGB image with values in \
            [0, 1], alpha ignored; the format is told by the file's first bytes. Any size up to 8192² pixels: \
            CropToMask or ResizeImage bring it to the model's sides (multiples of 8, 64 for PILOT).
            """,
        inputs: [.file("path", doc: "The image file (PNG, JPEG or WebP).")],
        outputs: [.output("image", .image, doc: "The image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let url = try inputs.path("path")
        return ["image": .object(try ImageFile.read(path: url.path), type: .image)]
    }
}
