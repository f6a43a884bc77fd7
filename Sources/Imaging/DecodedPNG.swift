/// Everything a PNG decode yields: the image, its alpha, its text chunks and
/// how the file stored its pixels.
public struct DecodedPNG: Sendable {
    /// Where the bytes came from: a path, or `"<memory>"`.
    public let source: String
    /// The color samples. Gray files have R = G = B; palettes are expanded.
    /// Samples are the stored values scaled to [0, 1] (`v / 255` for up to
    /// 8 bits, `v / 65535` for 16); gamma and ICC profiles are not applied.
    public let image: Image
    /// Opacity, `[height][width]` in [0, 1] (1 = opaque), when the file had
    /// an alpha channel or a tRNS chunk; `nil` otherwise.
    public let alpha: [Float]?
    /// Text chunks (tEXt, zTXt, iTXt) in file order, those before the image
    /// data first.
    public let text: [PNGTextEntry]
    /// Bits per sample as stored: 1, 2, 4, 8 or 16.
    public let bitDepth: Int
    /// The color type as stored.
    public let colorType: PNGColorType
    /// Whether the file is Adam7-interlaced.
    public let isInterlaced: Bool
    /// What libpng warned about while decoding (a bad gamma value, an
    /// ancillary chunk over the size limit that was skipped); empty for a
    /// clean file.
    public let warnings: [String]

    /// Pixels per row.
    public var width: Int { image.width }
    /// Rows.
    public var height: Int { image.height }

    /// The value of the first text entry with this key, if there is one.
    public func text(forKey key: String) -> String? {
        text.first { $0.key == key }?.value
    }
}
