import Foundation

/// How a PNG stores each pixel: the color type byte of its IHDR chunk.
public enum PNGColorType: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// One gray sample (1, 2, 4, 8 or 16 bits).
    case gray = 0
    /// Red, green, blue (8 or 16 bits each).
    case rgb = 2
    /// An index into a PLTE palette (1, 2, 4 or 8 bits).
    case palette = 3
    /// Gray and alpha (8 or 16 bits each).
    case grayAlpha = 4
    /// Red, green, blue and alpha (8 or 16 bits each).
    case rgba = 6

    /// Samples per pixel as stored.
    public var channels: Int {
        switch self {
        case .gray, .palette: return 1
        case .grayAlpha: return 2
        case .rgb: return 3
        case .rgba: return 4
        }
    }

    /// Whether the stored pixels are gray rather than color.
    public var isGray: Bool { self == .gray || self == .grayAlpha }

    /// Bit depths the PNG specification allows for this color type.
    public var allowedBitDepths: [Int] {
        switch self {
        case .gray: return [1, 2, 4, 8, 16]
        case .palette: return [1, 2, 4, 8]
        case .rgb, .grayAlpha, .rgba: return [8, 16]
        }
    }

    public var description: String {
        switch self {
        case .gray: return "gray"
        case .rgb: return "RGB"
        case .palette: return "palette"
        case .grayAlpha: return "gray+alpha"
        case .rgba: return "RGBA"
        }
    }
}

/// Bits per sample when encoding an ``Image`` or a ``Mask``.
public enum PNGSampleDepth: Int, Sendable {
    /// 8 bits: values are rounded to the nearest of 256 levels.
    case eight = 8
    /// 16 bits: values are rounded to the nearest of 65 536 levels.
    case sixteen = 16

    /// The largest sample value, which stands for 1.0.
    var maxValue: Float { self == .eight ? 255 : 65_535 }
}

/// The size a PNG declares in its IHDR chunk, read without decoding
/// anything: what a server checks before it lets a small file expand into
/// a large raster. Nil if `data` does not start like a PNG.
public enum PNGHeader {
    public static func size(of data: Data) -> (width: Int, height: Int)? {
        // Signature (8), then the first chunk: length (4), "IHDR" (4), width (4), height (4).
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard data.count >= 24, data.prefix(8).elementsEqual(signature),
              data.dropFirst(12).prefix(4).elementsEqual(Array("IHDR".utf8)) else { return nil }
        func bigEndian(at offset: Int) -> Int {
            data.dropFirst(offset).prefix(4).reduce(0) { $0 << 8 | Int($1) }
        }
        return (bigEndian(at: 16), bigEndian(at: 20))
    }
}
