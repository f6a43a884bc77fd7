/// Bounds a decode enforces from the PNG header, before allocating pixels,
/// so a small file that claims a huge image (a decompression bomb) is
/// refused with ``ImagingError/overLimit(source:detail:)``.
public struct PNGLimits: Sendable, Equatable {
    /// Most pixels (width × height) an image may have. The default, 8192²,
    /// decodes to 768 MiB of Float32 RGB.
    public var maxPixels: Int
    /// Most pixels along either side.
    public var maxDimension: Int
    /// Largest ancillary chunk, after decompression (zTXt, iTXt, iCCP...).
    /// Larger ones are skipped with a warning, not decoded.
    public var maxChunkBytes: Int

    /// Limits with the given bounds; every bound must be positive.
    public init(maxPixels: Int = 8192 * 8192, maxDimension: Int = 65_536, maxChunkBytes: Int = 8 << 20) {
        self.maxPixels = maxPixels
        self.maxDimension = maxDimension
        self.maxChunkBytes = maxChunkBytes
    }

    /// Throws when a bound is not positive: a zero limit is a mistake, not
    /// a request to refuse everything.
    func validated() throws -> PNGLimits {
        for (name, value) in [("maxPixels", maxPixels), ("maxDimension", maxDimension),
                              ("maxChunkBytes", maxChunkBytes)] where value <= 0 {
            throw ImagingError.invalidLimits("\(name) must be positive, got \(value)")
        }
        return self
    }
}
