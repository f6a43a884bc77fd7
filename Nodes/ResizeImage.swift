import Imaging
import Workflow

/// Resizes an image bilinearly.
struct ResizeImage: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "ResizeImage", category: "image",
        doc: """
            Resizes an image to width × height with bilinear interpolation (pixel centres aligned, as PyTorch's \
            align_corners=False, no antialiasing). Use it to bring inputs to multiples of 8 (64 for PILOT).
            """,
        inputs: [
            .connection("image", .image, doc: "The image, or a batch of them (each resized)."),
            .parameter("width", .int, min: 1, max: 8192, doc: "New width in pixels."),
            .parameter("height", .int, min: 1, max: 8192, doc: "New height in pixels."),
        ],
        outputs: [.output("image", .image, doc: "The resized image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let width = try inputs.int("width"), height = try inputs.int("height")
        let resized = try inputs.images("image").map { image in
            try Image(width: width, height: height, planes: Self.bilinear(image.planes, channels: 3, fromWidth: image.width,
                                                                         fromHeight: image.height, toWidth: width, toHeight: height))
        }
        return ["image": ImageBatch.value(resized)]
    }

    /// Planar bilinear resize, align_corners=False.
    static func bilinear(_ source: [Float], channels: Int, fromWidth w: Int, fromHeight h: Int,
                         toWidth ow: Int, toHeight oh: Int) -> [Float] {
        func taps(_ o: Int, _ n: Int, _ on: Int) -> (Int, Int, Float) {
            let x = max((Float(o) + 0.5) * Float(n) / Float(on) - 0.5, 0)
            let i0 = min(Int(x), n - 1)
            return (i0, min(i0 + 1, n - 1), x - Float(i0))
        }
        var out = [Float](repeating: 0, count: channels * ow * oh)
        let xs = (0..<ow).map { taps($0, w, ow) }
        for c in 0..<channels {
            for y in 0..<oh {
                let (y0, y1, fy) = taps(y, h, oh)
                for x in 0..<ow {
                    let (x0, x1, fx) = xs[x]
                    let base = c * w * h
                    let top = source[base + y0 * w + x0] * (1 - fx) + source[base + y0 * w + x1] * fx
                    let bottom = source[base + y1 * w + x0] * (1 - fx) + source[base + y1 * w + x1] * fx
                    out[c * ow * oh + y * ow + x] = top * (1 - fy) + bottom * fy
                }
            }
        }
        return out
    }
}
