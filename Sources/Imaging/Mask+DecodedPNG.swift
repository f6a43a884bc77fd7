extension Mask {
    /// A mask from a decoded PNG.
    ///
    /// By default the mask is the image's luminance, so white = 1 = inpaint.
    /// Gray files give their gray values exactly; color files are weighted
    /// `0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601, as PIL's `convert("L")`,
    /// which diffusers applies to mask images).
    ///
    /// With `fromAlpha`, the mask is `1 - alpha`: transparent pixels, the
    /// ones an editor erased, are the ones to inpaint. Throws
    /// ``ImagingError/noAlpha(source:)`` when the PNG has no alpha.
    public init(from decoded: DecodedPNG, fromAlpha: Bool = false) throws {
        let image = decoded.image
        let values: [Float]
        if fromAlpha {
            guard let alpha = decoded.alpha else { throw ImagingError.noAlpha(source: decoded.source) }
            values = alpha.map { 1 - $0 }
        } else if decoded.colorType.isGray {
            values = Array(image.plane(0))
        } else {
            let count = image.pixelCount
            values = image.planes.withUnsafeBufferPointer { planes in
                (0..<count).map { pixel in
                    0.299 * planes[pixel] + 0.587 * planes[count + pixel] + 0.114 * planes[2 * count + pixel]
                }
            }
        }
        try self.init(width: image.width, height: image.height, values: values)
    }
}
