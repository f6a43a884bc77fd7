import Imaging
import Workflow

/// Grows or shrinks a mask.
struct GrowMask: Node, DefaultConstructible {
    static let shapeType = PortType.enumeration(name: "GrowShape", cases: Mask.GrowShape.allCases.map(\.rawValue))
    static let nodeDescription = NodeDescription(
        type: "GrowMask", category: "mask",
        doc: """
            Grows the hole by `pixels` (grey dilation: each value becomes the largest within that distance) or, \
            with a negative count, shrinks it (erosion). Soft values stay soft; pixels outside the image are \
            ignored. Matches scipy.ndimage.grey_dilation/grey_erosion exactly.
            """,
        inputs: [
            .connection("mask", .mask, doc: "The mask (1 = inpaint)."),
            .parameter("pixels", .int, min: -512, max: 512, doc: "How far to grow (> 0) or shrink (< 0), in pixels."),
            .parameter("shape", shapeType, default: .string("round"),
                       doc: "round: within a disc (dx² + dy² ≤ r²); square: within a square (Chebyshev distance)."),
        ],
        outputs: [.output("mask", .mask, doc: "The grown or shrunk mask.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let mask = try inputs.object("mask", as: Mask.self)
        let shape = Mask.GrowShape(rawValue: try inputs.string("shape")) ?? .round
        return ["mask": .object(mask.grown(by: try inputs.int("pixels"), shape: shape), type: .mask)]
    }
}

/// Softens a mask's edge.
struct FeatherMask: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "FeatherMask", category: "mask",
        doc: """
            Blurs the mask with a Gaussian of standard deviation `sigma` pixels (kernel cut at 4 σ, edges \
            mirrored), so a hard edge becomes a soft band and seams fade. Matches scipy.ndimage.gaussian_filter \
            (mode reflect) within 1/255.
            """,
        inputs: [
            .connection("mask", .mask, doc: "The mask (1 = inpaint)."),
            .parameter("sigma", .float, min: 0, max: 256, doc: "The blur's standard deviation in pixels (0: unchanged)."),
        ],
        outputs: [.output("mask", .mask, doc: "The feathered mask, values in [0, 1].")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let mask = try inputs.object("mask", as: Mask.self)
        return ["mask": .object(mask.blurred(sigma: try inputs.float("sigma")), type: .mask)]
    }
}

/// Swaps what is kept and what is inpainted.
struct InvertMask: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "InvertMask", category: "mask",
        doc: "1 − mask: what was inpainted is kept and the other way round.",
        inputs: [.connection("mask", .mask, doc: "The mask.")],
        outputs: [.output("mask", .mask, doc: "The inverted mask.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        ["mask": .object(try inputs.object("mask", as: Mask.self).inverted(), type: .mask)]
    }
}

/// Makes a soft mask hard.
struct ThresholdMask: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "ThresholdMask", category: "mask",
        doc: "1 where the mask is at least `level`, else 0 (0.5 is what PILOT's stages do to a soft mask).",
        inputs: [
            .connection("mask", .mask, doc: "The mask."),
            .parameter("level", .float, default: .float(0.5), min: 0, max: 1, doc: "The threshold."),
        ],
        outputs: [.output("mask", .mask, doc: "A binary mask.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let mask = try inputs.object("mask", as: Mask.self)
        return ["mask": .object(mask.thresholded(at: Float(try inputs.float("level"))), type: .mask)]
    }
}

/// Union, intersection or difference of two masks.
struct CombineMasks: Node, DefaultConstructible {
    static let operationType = PortType.enumeration(name: "MaskCombination", cases: Mask.Combination.allCases.map(\.rawValue))
    static let nodeDescription = NodeDescription(
        type: "CombineMasks", category: "mask",
        doc: "Combines two masks of the same size value by value: union max(a, b), intersection min(a, b), difference max(a − b, 0).",
        inputs: [
            .connection("a", .mask, doc: "The first mask."),
            .connection("b", .mask, doc: "The second mask."),
            .parameter("operation", operationType, default: .string("union"), doc: "union, intersection or difference (a without b)."),
        ],
        outputs: [.output("mask", .mask, doc: "The combined mask.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let a = try inputs.object("a", as: Mask.self), b = try inputs.object("b", as: Mask.self)
        let operation = Mask.Combination(rawValue: try inputs.string("operation")) ?? .union
        do {
            return ["mask": .object(try a.combined(with: b, operation), type: .mask)]
        } catch {
            throw NodeError("\(error)")
        }
    }
}

/// A mask of the pixels near one colour (a region painted in a flat colour
/// on a copy of the image, a green screen).
struct MaskFromColor: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "MaskFromColor", category: "mask",
        doc: """
            1 where a pixel is within `tolerance` of `color` in every channel (0…1 per channel), else 0: paint \
            the hole in a flat colour on a copy of the picture and take it back as a mask. For a mask drawn as \
            transparency, use LoadMask with `alpha`.
            """,
        inputs: [
            .connection("image", .image, doc: "The image to read the colour from."),
            .parameter("color", .string, default: .string("#ff00ff"), max: 32,
                       doc: "The colour: #rrggbb, or r,g,b with 0…255 channels."),
            .parameter("tolerance", .float, default: .float(0.02), min: 0, max: 1,
                       doc: "Largest difference per channel (0…1) still counted as the colour."),
        ],
        outputs: [.output("mask", .mask, doc: "1 where the colour is, else 0.")])

    /// `#rrggbb` or `r,g,b` (0…255) as three values in [0, 1]; nil when neither.
    static func parse(_ text: String) -> [Float]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("#") {
            let hex = trimmed.dropFirst()
            guard hex.count == 6, let value = UInt32(hex, radix: 16) else { return nil }
            return [16, 8, 0].map { Float((value >> UInt32($0)) & 0xff) / 255 }
        }
        let parts = trimmed.split(separator: ",", omittingEmptySubsequences: false)
            .map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0.map { (0...255).contains($0) } ?? false }) else { return nil }
        return parts.map { Float($0!) / 255 }
    }

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.image("image")
        let text = try inputs.string("color")
        guard let color = Self.parse(text) else {
            throw NodeError("color: expected #rrggbb or r,g,b (0…255 each), found \"\(text.prefix(32))\"")
        }
        let tolerance = Float(try inputs.float("tolerance")) + 1e-6  // 8-bit values read back exactly
        let n = image.width * image.height
        let values = (0..<n).map { i -> Float in
            (0..<3).allSatisfy { abs(image.planes[$0 * n + i] - color[$0]) <= tolerance } ? 1 : 0
        }
        return ["mask": .object(try Mask(width: image.width, height: image.height, values: values), type: .mask)]
    }
}
