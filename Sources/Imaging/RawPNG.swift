import CPNG

/// Pixels exactly as a PNG stores them, for any color type and bit depth:
/// the low-level input of `PNG.encode(_ raster: RawPNG, text:)`.
///
/// `rows` holds `height` rows of ``rowBytes(width:colorType:bitDepth:)``
/// bytes each, before PNG's filtering: samples narrower than 8 bits are
/// packed most significant bits first, 16-bit samples are big-endian, and
/// there is no filter byte. Most code wants ``PNG/encode(_:text:depth:)``
/// with an ``Image`` or a ``Mask``; this exists for files of other layouts
/// (and for tests that need every layout).
public struct RawPNG: Sendable, Equatable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// How each pixel is stored.
    public var colorType: PNGColorType
    /// Bits per sample; one of ``PNGColorType/allowedBitDepths``.
    public var bitDepth: Int
    /// The packed rows; see the type's documentation.
    public var rows: [UInt8]
    /// PLTE entries as `r, g, b` triples; required for ``PNGColorType/palette``.
    public var palette: [UInt8]
    /// tRNS alpha for the first palette entries; empty for none.
    public var paletteAlpha: [UInt8]
    /// tRNS for gray (one value) or RGB (three): the color that is transparent.
    public var transparentColor: [UInt16]?
    /// Whether to write Adam7 interlacing.
    public var isInterlaced: Bool

    /// A raster with the given layout and packed rows.
    public init(width: Int, height: Int, colorType: PNGColorType, bitDepth: Int, rows: [UInt8],
                palette: [UInt8] = [], paletteAlpha: [UInt8] = [], transparentColor: [UInt16]? = nil,
                isInterlaced: Bool = false) {
        self.width = width
        self.height = height
        self.colorType = colorType
        self.bitDepth = bitDepth
        self.rows = rows
        self.palette = palette
        self.paletteAlpha = paletteAlpha
        self.transparentColor = transparentColor
        self.isInterlaced = isInterlaced
    }

    /// Bytes in one packed row, or 0 when the width or the combination of
    /// color type and bit depth is not valid PNG.
    public static func rowBytes(width: Int, colorType: PNGColorType, bitDepth: Int) -> Int {
        guard let width = UInt32(exactly: width) else { return 0 }
        return pilot_png_row_bytes(width, Int32(colorType.rawValue), Int32(bitDepth))
    }

    /// Throws ``ImagingError/invalidImage(_:)`` for what the shim would read
    /// out of bounds or refuse with a vaguer message.
    func validate() throws {
        func invalid(_ detail: String) -> ImagingError { .invalidImage(detail) }
        guard width > 0, height > 0, UInt32(exactly: width) != nil, UInt32(exactly: height) != nil else {
            throw invalid("width and height must be 1 to 2^32-1, got \(width)×\(height)")
        }
        let rowBytes = Self.rowBytes(width: width, colorType: colorType, bitDepth: bitDepth)
        guard rowBytes > 0 else {
            throw invalid("\(colorType) PNGs allow bit depths \(colorType.allowedBitDepths), not \(bitDepth)")
        }
        guard rows.count == rowBytes * height else {
            throw invalid("rows has \(rows.count) bytes, expected \(height) rows × \(rowBytes) bytes")
        }
        guard palette.count % 3 == 0, palette.count <= 3 * 256 else {
            throw invalid("palette has \(palette.count) bytes, expected r, g, b triples for at most 256 colors")
        }
        if let transparentColor {
            let expected = colorType == .gray ? 1 : colorType == .rgb ? 3 : 0
            guard expected > 0, transparentColor.count == expected else {
                throw invalid("a transparent color needs 1 value for gray or 3 for RGB, "
                              + "got \(transparentColor.count) for \(colorType)")
            }
        }
    }
}
