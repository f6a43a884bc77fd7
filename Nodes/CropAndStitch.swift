import Foundation
import Imaging
import Workflow

/// Where a crop came from: what Stitch needs to paste the processed crop back.
public struct StitchRecord: Sendable, EstimatedByteSize {
    /// The full image and mask the crop was taken from.
    public var image: Image
    public var mask: Mask
    /// The crop's rectangle in the full image.
    public var x: Int, y: Int, width: Int, height: Int
    /// The size the crop was resized to for processing.
    public var outputWidth: Int, outputHeight: Int

    public var estimatedBytes: Int { (image.planes.count + mask.values.count) * 4 + 64 }
}

/// Crops an image and mask to the mask's surroundings, at the model's size.
struct CropToMask: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "CropToMask", category: "image",
        doc: """
            Cuts out the part of the image around the mask, so the model works on the hole and its \
            surroundings at its own resolution instead of on the whole photo (any image size). The crop is the \
            mask's bounding box grown by `margin` pixels (and to `context` times its size), widened to the \
            aspect of the output, moved inside the image, then resized so its area is about `size`² with sides \
            multiples of `multiple` (size 0: no resize, the crop only widened to multiples). Stitch pastes the \
            result back.
            """,
        inputs: [
            .connection("image", .image, doc: "The full image."),
            .connection("mask", .mask, doc: "The full mask (1 = inpaint); must not be empty."),
            .parameter("margin", .int, default: .int(32), min: 0, max: 4096, doc: "Context around the mask's bounding box, in pixels."),
            .parameter("context", .float, default: .float(1.0), min: 1, max: 16,
                       doc: "The crop is at least this many times the bounding box's width and height."),
            .parameter("size", .int, default: .int(512), min: 0, max: 4096,
                       doc: "Process the crop at about size × size pixels (512 for SD 1.x, 1024 for SDXL); 0 keeps its pixels."),
            .parameter("multiple", .int, default: .int(64), min: 1, max: 512, doc: "Sides of the output are multiples of this (64 for PILOT)."),
        ],
        outputs: [
            .output("image", .image, doc: "The crop, resized."),
            .output("mask", .mask, doc: "The mask over the crop, resized."),
            .output("stitch", .stitch, doc: "Where the crop came from (for Stitch)."),
        ])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.image("image")
        let mask = try inputs.object("mask", as: Mask.self)
        guard image.width == mask.width, image.height == mask.height else {
            throw NodeError("image \(image.width)×\(image.height) and mask \(mask.width)×\(mask.height) differ in size")
        }
        let plan = try Self.plan(mask: mask, margin: inputs.int("margin"), context: inputs.float("context"),
                                 size: inputs.int("size"), multiple: inputs.int("multiple"))
        let r = plan.region
        var crop = try image.cropped(x: r.x, y: r.y, width: r.width, height: r.height)
        var cropMask = try mask.cropped(x: r.x, y: r.y, width: r.width, height: r.height)
        if plan.output != (r.width, r.height) {
            let (w, h) = plan.output
            crop = try Image(width: w, height: h, planes: ResizeImage.bilinear(crop.planes, channels: 3, fromWidth: r.width,
                                                                               fromHeight: r.height, toWidth: w, toHeight: h))
            cropMask = try Mask(width: w, height: h, values: ResizeImage.bilinear(cropMask.values, channels: 1, fromWidth: r.width,
                                                                                 fromHeight: r.height, toWidth: w, toHeight: h))
        }
        let record = StitchRecord(image: image, mask: mask, x: r.x, y: r.y, width: r.width, height: r.height,
                                  outputWidth: crop.width, outputHeight: crop.height)
        return ["image": .object(crop, type: .image), "mask": .object(cropMask, type: .mask),
                "stitch": .object(record, type: .stitch)]
    }

    /// The crop rectangle and the size it is processed at.
    static func plan(mask: Mask, margin: Int, context: Double, size: Int, multiple: Int) throws
        -> (region: (x: Int, y: Int, width: Int, height: Int), output: (Int, Int)) {
        guard let box = mask.boundingBox else { throw NodeError("the mask is empty: there is nothing to inpaint") }
        let imageWidth = mask.width, imageHeight = mask.height
        // Grown by the margin and the context factor, about the box's centre.
        var width = max(box.width + 2 * margin, Int((Double(box.width) * context).rounded(.up)))
        var height = max(box.height + 2 * margin, Int((Double(box.height) * context).rounded(.up)))
        width = min(width, imageWidth)
        height = min(height, imageHeight)
        func roundedMultiple(_ value: Double) -> Int { max(multiple, Int((value / Double(multiple)).rounded()) * multiple) }
        let output: (Int, Int)
        if size > 0 {
            let scale = Double(size) / Double(width * height).squareRoot()
            output = (roundedMultiple(Double(width) * scale), roundedMultiple(Double(height) * scale))
            // Widen one side to the output's aspect, as far as the image allows.
            let aspect = Double(output.0) / Double(output.1)
            if Double(width) / Double(height) < aspect {
                width = min(imageWidth, Int((Double(height) * aspect).rounded()))
            } else {
                height = min(imageHeight, Int((Double(width) / aspect).rounded()))
            }
        } else {
            // No resize: widen to multiples where the image allows; a side it cannot hold is resized up.
            let wantWidth = Int((Double(width) / Double(multiple)).rounded(.up)) * multiple
            let wantHeight = Int((Double(height) / Double(multiple)).rounded(.up)) * multiple
            width = min(wantWidth, imageWidth)
            height = min(wantHeight, imageHeight)
            output = (wantWidth, wantHeight)
        }
        // Centred on the box, then moved inside the image.
        let centreX = box.x * 2 + box.width, centreY = box.y * 2 + box.height  // twice the centre, to stay in integers
        let x = min(max((centreX - width) / 2, 0), imageWidth - width)
        let y = min(max((centreY - height) / 2, 0), imageHeight - height)
        return ((x, y, width, height), output)
    }
}

/// Crops a second image (a sketch, a control hint) as CropToMask cropped the
/// picture, so it lines up with the crop.
struct CropLike: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "CropLike", category: "image",
        doc: """
            Cuts from `image` the rectangle CropToMask cut from the picture and resizes it to the crop's \
            processing size, so a sketch or control hint drawn over the whole picture lines up with the crop. \
            An image of another size than the picture is taken as covering the same area (the rectangle is \
            scaled to it).
            """,
        inputs: [
            .connection("stitch", .stitch, doc: "CropToMask's record."),
            .connection("image", .image, doc: "An image over the whole picture (any size)."),
        ],
        outputs: [.output("image", .image, doc: "Its crop, at the crop's processing size.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let record = try inputs.object("stitch", as: StitchRecord.self)
        let image = try inputs.image("image")
        let sx = Double(image.width) / Double(record.image.width), sy = Double(image.height) / Double(record.image.height)
        let x = min(Int((Double(record.x) * sx).rounded(.down)), image.width - 1)
        let y = min(Int((Double(record.y) * sy).rounded(.down)), image.height - 1)
        let width = max(1, min(Int((Double(record.width) * sx).rounded()), image.width - x))
        let height = max(1, min(Int((Double(record.height) * sy).rounded()), image.height - y))
        let crop = try image.cropped(x: x, y: y, width: width, height: height)
        return ["image": .object(crop.resized(width: record.outputWidth, height: record.outputHeight), type: .image)]
    }
}

/// Pastes a processed crop back into the full image.
struct Stitch: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "Stitch", category: "image",
        doc: """
            Pastes the processed crop back where CropToMask took it from, resized to the crop's pixels, through \
            the original mask grown by `grow` pixels and feathered by a Gaussian of `feather` pixels (cut at 4 σ \
            and kept inside the crop). Every pixel where that band is 0 (farther than grow + 4·feather from the \
            hole, or outside the crop) is the input's, bit for bit.
            """,
        inputs: [
            .connection("stitch", .stitch, doc: "CropToMask's record."),
            .connection("image", .image, doc: "The processed crop (any size; resized back), or a batch of them (each stitched)."),
            .parameter("grow", .int, default: .int(4), min: 0, max: 512, doc: "Grow the hole before feathering, in pixels."),
            .parameter("feather", .float, default: .float(4), min: 0, max: 128, doc: "The blend band's Gaussian σ, in pixels."),
        ],
        outputs: [.output("image", .image, doc: "The full image with the crop pasted back (a batch for a batch).")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let record = try inputs.object("stitch", as: StitchRecord.self)
        let band = try Self.band(record, grow: inputs.int("grow"), feather: inputs.float("feather"))
        return ["image": ImageBatch.value(try inputs.images("image").map { try Self.paste($0, record: record, band: band) })]
    }

    /// `processed` pasted into the record's image through `band`.
    static func paste(_ processed: Image, record: StitchRecord, band: Mask) throws -> Image {
        let (w, h) = (record.width, record.height)
        let patch = processed.width == w && processed.height == h ? processed.planes
            : ResizeImage.bilinear(processed.planes, channels: 3, fromWidth: processed.width, fromHeight: processed.height,
                                   toWidth: w, toHeight: h)
        var planes = record.image.planes
        let (fullWidth, count) = (record.image.width, record.image.pixelCount)
        for row in 0..<h {
            for column in 0..<w {
                let m = band.values[row * w + column]
                guard m > 0 else { continue }
                let p = (record.y + row) * fullWidth + record.x + column
                for c in 0..<3 {
                    planes[c * count + p] = planes[c * count + p] * (1 - m) + patch[c * w * h + row * w + column] * m
                }
            }
        }
        return try Image(width: record.image.width, height: record.image.height, planes: planes)
    }

    /// The blend weights over the crop: the full mask grown and feathered,
    /// computed on the crop plus the band's reach (so the result is the
    /// same as on the whole mask), then cut to the crop.
    static func band(_ record: StitchRecord, grow: Int, feather: Double) throws -> Mask {
        let reach = grow + Int(4 * feather + 0.5) + 1
        let x0 = max(record.x - reach, 0), y0 = max(record.y - reach, 0)
        let x1 = min(record.x + record.width + reach, record.mask.width), y1 = min(record.y + record.height + reach, record.mask.height)
        let around = try record.mask.cropped(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
            .grown(by: grow).blurred(sigma: feather)
        return try around.cropped(x: record.x - x0, y: record.y - y0, width: record.width, height: record.height)
    }
}
