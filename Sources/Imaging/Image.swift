/// An RGB image with Float32 samples in [0, 1], stored planar.
///
/// `planes` is channel-major, `[3][height][width]`: all red samples row by
/// row, then all green, then all blue. That is the layout of one image in
/// an NCHW tensor, so a model input is a copy, not a transpose. Values are
/// not clamped on the way in; encoders clamp to [0, 1].
public struct Image: Sendable, Equatable {
    /// Red, green, blue.
    public static let channelCount = 3

    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Samples, `[3][height][width]`; see the type's documentation.
    public private(set) var planes: [Float]

    /// An image from planar samples laid out `[3][height][width]`. Throws
    /// ``ImagingError/invalidImage(_:)`` when the sizes do not fit together.
    public init(width: Int, height: Int, planes: [Float]) throws {
        try Self.checkSize(width: width, height: height)
        let expected = Self.channelCount * width * height
        guard planes.count == expected else {
            throw ImagingError.invalidImage(
                "planes has \(planes.count) samples, expected 3 × \(width) × \(height) = \(expected)")
        }
        self.width = width
        self.height = height
        self.planes = planes
    }

    /// An image from interleaved samples `r, g, b, r, g, b, ...`, row by row,
    /// as most pixel buffers hold them.
    public init(width: Int, height: Int, interleavedRGB samples: [Float]) throws {
        try Self.checkSize(width: width, height: height)
        let count = width * height
        guard samples.count == Self.channelCount * count else {
            throw ImagingError.invalidImage(
                "interleaved RGB has \(samples.count) samples, expected 3 × \(width) × \(height) = \(3 * count)")
        }
        var planes = [Float](repeating: 0, count: samples.count)
        for pixel in 0..<count {
            planes[pixel] = samples[3 * pixel]
            planes[count + pixel] = samples[3 * pixel + 1]
            planes[2 * count + pixel] = samples[3 * pixel + 2]
        }
        try self.init(width: width, height: height, planes: planes)
    }

    /// An image filled with one color. Width and height must be positive:
    /// a literal size that is not is a programming error, so this traps.
    public init(width: Int, height: Int, red: Float = 0, green: Float = 0, blue: Float = 0) {
        precondition(width > 0 && height > 0, "Image size must be positive, got \(width)×\(height)")
        let count = width * height
        self.width = width
        self.height = height
        self.planes = [Float](repeating: red, count: count)
            + [Float](repeating: green, count: count)
            + [Float](repeating: blue, count: count)
    }

    /// Pixels in one plane: `width * height`.
    public var pixelCount: Int { width * height }

    /// The sample of `channel` (0 red, 1 green, 2 blue) at column `x`, row `y`.
    public subscript(channel: Int, x: Int, y: Int) -> Float {
        get { planes[index(channel: channel, x: x, y: y)] }
        set { planes[index(channel: channel, x: x, y: y)] = newValue }
    }

    /// The red, green and blue samples at column `x`, row `y`.
    public func pixel(x: Int, y: Int) -> (red: Float, green: Float, blue: Float) {
        (self[0, x, y], self[1, x, y], self[2, x, y])
    }

    /// One channel's samples, row by row (0 red, 1 green, 2 blue).
    public func plane(_ channel: Int) -> ArraySlice<Float> {
        precondition((0..<Self.channelCount).contains(channel), "channel \(channel) is not 0, 1 or 2")
        return planes[channel * pixelCount..<(channel + 1) * pixelCount]
    }

    /// Gives `body` the planar samples to change in place, without a copy.
    public mutating func withUnsafeMutablePlanes<Result>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> Result
    ) rethrows -> Result {
        try planes.withUnsafeMutableBufferPointer { try body(&$0) }
    }

    private func index(channel: Int, x: Int, y: Int) -> Int {
        precondition((0..<Self.channelCount).contains(channel) && (0..<width).contains(x) && (0..<height).contains(y),
                     "(channel \(channel), x \(x), y \(y)) is outside a 3×\(width)×\(height) image")
        return (channel * height + y) * width + x
    }

    static func checkSize(width: Int, height: Int) throws {
        guard width > 0, height > 0 else {
            throw ImagingError.invalidImage("width and height must be positive, got \(width)×\(height)")
        }
        guard width.multipliedReportingOverflow(by: height).overflow == false,
              (width * height).multipliedReportingOverflow(by: channelCount).overflow == false else {
            throw ImagingError.invalidImage("\(width)×\(height) is too large to address")
        }
    }
}
