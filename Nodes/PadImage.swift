import Imaging
import Workflow

/// Extends a picture on its sides for outpainting.
struct PadImage: Node, DefaultConstructible {
    static let fillType = PortType.enumeration(name: "PadFill", cases: PadFill.allCases.map(\.rawValue))
    static let nodeDescription = NodeDescription(
        type: "PadImage", category: "image",
        doc: """
            Adds `left`, `top`, `right` and `bottom` pixels around the picture (right and bottom grown further to \
            reach multiples of `multiple`), filled by repeating the edge pixels, mirroring the picture, one \
            colour, or a fast-marching fill that continues the picture's colours outward (telea); the mask marks the new area (1) and fades over `feather` pixels into the picture, so the seam \
            is repainted too. The picture's own pixels are unchanged.
            """,
        inputs: [
            .connection("image", .image, doc: "The picture."),
            .parameter("left", .int, default: .int(0), min: 0, max: 4096, doc: "Pixels added on the left."),
            .parameter("top", .int, default: .int(0), min: 0, max: 4096, doc: "Pixels added on top."),
            .parameter("right", .int, default: .int(0), min: 0, max: 4096, doc: "Pixels added on the right."),
            .parameter("bottom", .int, default: .int(0), min: 0, max: 4096, doc: "Pixels added at the bottom."),
            .parameter("multiple", .int, default: .int(8), min: 1, max: 512, doc: "Grow right and bottom until the sides are multiples of this (64 for PILOT)."),
            .parameter("fill", fillType, default: .string("edge"), doc: "edge: repeat the border pixels; mirror: reflect the picture; color: the colour below; telea: fast-marching infill (HoleFill.telea, radius 5)."),
            .parameter("color", .float, default: .float(0.5), min: 0, max: 1, doc: "The grey level of the color fill."),
            .parameter("feather", .int, default: .int(16), min: 0, max: 1024, doc: "How many pixels into the picture the mask fades out."),
        ],
        outputs: [
            .output("image", .image, doc: "The padded picture."),
            .output("mask", .mask, doc: "1 on the new area, fading to 0 inside the picture."),
        ])

    enum PadFill: String, CaseIterable { case edge, mirror, color, telea }

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.image("image")
        let multiple = try inputs.int("multiple")
        let left = try inputs.int("left"), top = try inputs.int("top")
        var right = try inputs.int("right"), bottom = try inputs.int("bottom")
        right += (multiple - (image.width + left + right) % multiple) % multiple
        bottom += (multiple - (image.height + top + bottom) % multiple) % multiple
        let (w, h) = (image.width, image.height), (ow, oh) = (w + left + right, h + top + bottom)
        guard ow * oh <= 8192 * 8192 else { throw NodeError("the padded picture would be \(ow)×\(oh), over 8192² pixels") }
        let fill = PadFill(rawValue: try inputs.string("fill")) ?? .edge
        let grey = Float(try inputs.float("color"))
        func mirrored(_ i: Int, _ n: Int) -> Int {
            guard n > 1 else { return 0 }
            let period = 2 * (n - 1)
            var j = i % period
            if j < 0 { j += period }
            return j < n ? j : period - j
        }
        var planes = [Float](repeating: 0, count: 3 * ow * oh)
        for y in 0..<oh {
            for x in 0..<ow {
                let sx = x - left, sy = y - top
                let inside = sx >= 0 && sx < w && sy >= 0 && sy < h
                for c in 0..<3 {
                    let value: Float
                    if inside {
                        value = image.planes[c * w * h + sy * w + sx]
                    } else {
                        switch fill {
                        case .edge: value = image.planes[c * w * h + min(max(sy, 0), h - 1) * w + min(max(sx, 0), w - 1)]
                        case .mirror: value = image.planes[c * w * h + mirrored(sy, h) * w + mirrored(sx, w)]
                        case .color, .telea: value = grey
                        }
                    }
                    planes[c * ow * oh + y * ow + x] = value
                }
            }
        }
        var padded = try Image(width: ow, height: oh, planes: planes)
        if fill == .telea {
            let outside = (0..<(ow * oh)).map { p -> Bool in
                let sx = p % ow - left, sy = p / ow - top
                return !(sx >= 0 && sx < w && sy >= 0 && sy < h)
            }
            if outside.contains(true) { padded = try HoleFill.telea(padded, hole: outside) }
        }
        // The mask: 1 outside the picture; inside, 1 − d/(feather + 1) for a pixel d steps from a padded side.
        let feather = try inputs.int("feather")
        var mask = [Float](repeating: 0, count: ow * oh)
        for y in 0..<oh {
            for x in 0..<ow {
                let sx = x - left, sy = y - top
                guard sx >= 0, sx < w, sy >= 0, sy < h else { mask[y * ow + x] = 1; continue }
                var d = Int.max
                if left > 0 { d = min(d, sx + 1) }
                if right > 0 { d = min(d, w - sx) }
                if top > 0 { d = min(d, sy + 1) }
                if bottom > 0 { d = min(d, h - sy) }
                if d != .max, feather > 0, d <= feather { mask[y * ow + x] = 1 - Float(d) / Float(feather + 1) }
            }
        }
        return ["image": .object(padded, type: .image),
                "mask": .object(try Mask(width: ow, height: oh, values: mask), type: .mask)]
    }
}
