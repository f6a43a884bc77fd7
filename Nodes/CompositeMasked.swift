import Imaging
import Workflow

/// Pastes the original background back in pixel space.
struct CompositeMasked: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "CompositeMasked", category: "image",
        doc: """
            Pastes the original background back in pixel space: result = source·(1 − mask) + image·mask, so \
            pixels outside the mask are exactly the source's (the VAE round trip otherwise changes them a \
            little). All three must be the same size. A batch of generated images gives a batch of composites.
            """,
        inputs: [
            .connection("image", .image, doc: "The generated image (VAEDecode), or a batch of them."),
            .connection("source", .image, doc: "The original image."),
            .connection("mask", .mask, doc: "White = take the generated pixel; black = keep the source."),
        ],
        outputs: [.output("image", .image, doc: "The composite.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let source = try inputs.image("source")
        let mask = try inputs.object("mask", as: Mask.self)
        return ["image": ImageBatch.value(try inputs.images("image").map { try Self.composite($0, source: source, mask: mask) })]
    }

    static func composite(_ image: Image, source: Image, mask: Mask) throws -> Image {
        guard image.width == source.width, image.height == source.height,
              mask.width == image.width, mask.height == image.height else {
            throw NodeError("sizes differ: image \(image.width)×\(image.height), source \(source.width)×\(source.height), mask \(mask.width)×\(mask.height)")
        }
        let count = image.pixelCount
        var planes = [Float](repeating: 0, count: 3 * count)
        for c in 0..<3 {
            for p in 0..<count {
                let m = mask.values[p]
                planes[c * count + p] = source.planes[c * count + p] * (1 - m) + image.planes[c * count + p] * m
            }
        }
        return try Image(width: image.width, height: image.height, planes: planes)
    }
}
