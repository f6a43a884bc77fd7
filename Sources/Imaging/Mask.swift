/// A single-channel mask with Float32 values in [0, 1], row by row.
///
/// In this project a mask marks what to repaint: white, 1, means "inpaint
/// here"; black, 0, means "keep". (That is the convention of diffusers'
/// inpainting pipelines, whose masks users already draw.)
public struct Mask: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Values, `[height][width]`; 1 = inpaint, 0 = keep.
    public internal(set) var values: [Float]

    /// A mask from values laid out `[height][width]`. Throws
    /// ``ImagingError/invalidImage(_:)`` when the sizes do not fit together.
    public init(width: Int, height: Int, values: [Float]) throws {
        try Image.checkSize(width: width, height: height)
        guard values.count == width * height else {
            throw ImagingError.invalidImage(
                "mask has \(values.count) values, expected \(width) × \(height) = \(width * height)")
        }
        self.width = width
        self.height = height
        self.values = values
    }

    /// A mask filled with one value (default 0, keep everything). Width and
    /// height must be positive: a size that is not is a programming error.
    public init(width: Int, height: Int, fill: Float = 0) {
        precondition(width > 0 && height > 0, "Mask size must be positive, got \(width)×\(height)")
        self.width = width
        self.height = height
        self.values = [Float](repeating: fill, count: width * height)
    }

    /// The value at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> Float {
        get { values[index(x: x, y: y)] }
        set { values[index(x: x, y: y)] = newValue }
    }

    /// A binary mask: 1 where a value is at least `level`, 0 elsewhere.
    /// With the default 0.5 this is diffusers' `VaeImageProcessor.binarize`.
    public func thresholded(at level: Float = 0.5) -> Mask {
        var result = self
        result.values = values.map { $0 >= level ? 1 : 0 }
        return result
    }

    /// The complement, `1 - value`: what was inpainted is kept and the
    /// other way round.
    public func inverted() -> Mask {
        var result = self
        result.values = values.map { 1 - $0 }
        return result
    }

    /// The mean value: the fraction of the image to inpaint, for a binary mask.
    public var coverage: Float {
        values.reduce(0, +) / Float(values.count)
    }

    private func index(x: Int, y: Int) -> Int {
        precondition((0..<width).contains(x) && (0..<height).contains(y),
                     "(x \(x), y \(y)) is outside a \(width)×\(height) mask")
        return y * width + x
    }
}
