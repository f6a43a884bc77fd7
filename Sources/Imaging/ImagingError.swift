/// What went wrong reading, decoding, encoding or writing an image.
///
/// Cases about input data carry `source`: the file path, or `"<memory>"` for
/// bytes that came from elsewhere (a socket frame, a test), so a message in a
/// log says which input was at fault.
public enum ImagingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The data has no bytes at all.
    case empty(source: String)
    /// The data does not start with the 8-byte PNG signature.
    case notPNG(source: String)
    /// The data ends before the PNG does; `detail` says where.
    case truncated(source: String, detail: String)
    /// The header asks for more pixels than ``PNGLimits`` allows; refused
    /// before any pixel memory was allocated.
    case overLimit(source: String, detail: String)
    /// libpng refused the data: a CRC mismatch, a zero or invalid size, a
    /// bad chunk, corrupt compressed data. `detail` is libpng's account.
    case malformed(source: String, detail: String)
    /// Memory ran out while decoding or encoding.
    case outOfMemory(source: String, detail: String)
    /// A mask was asked for from alpha, but the PNG has no alpha channel and
    /// no transparency chunk.
    case noAlpha(source: String)
    /// A file could not be read or written; `reason` is the system's.
    case io(path: String, operation: String, reason: String)
    /// A text entry cannot be stored in a PNG text chunk.
    case invalidText(key: String, reason: String)
    /// Pixel data or dimensions that do not fit together.
    case invalidImage(String)
    /// A ``PNGLimits`` bound that is not positive.
    case invalidLimits(String)
    /// libpng refused to encode for a reason not covered above.
    case encodingFailed(String)
    /// A JPEG or WebP file could not be read: `format` says which, `detail`
    /// what was wrong (truncated, corrupt, over the limits, CMYK, animated).
    case undecodable(source: String, format: String, detail: String)
    /// The data is none of the image formats this program reads.
    case unknownFormat(source: String)

    public var description: String {
        switch self {
        case .empty(let source):
            return "\(source): empty data (0 bytes), expected a PNG"
        case .notPNG(let source):
            return "\(source): not a PNG (bad signature: the data does not start with \\x89PNG\\r\\n\\x1a\\n)"
        case .truncated(let source, let detail):
            return "\(source): truncated PNG: \(detail)"
        case .overLimit(let source, let detail):
            return "\(source): PNG refused by the size limit: \(detail)"
        case .malformed(let source, let detail):
            return "\(source): malformed PNG: \(detail)"
        case .outOfMemory(let source, let detail):
            return "\(source): out of memory handling PNG: \(detail)"
        case .noAlpha(let source):
            return "\(source): cannot take a mask from alpha: the PNG has no alpha channel or transparency"
        case .io(let path, let operation, let reason):
            return "\(path): cannot \(operation): \(reason)"
        case .invalidText(let key, let reason):
            return "PNG text entry \"\(key)\" cannot be stored: \(reason)"
        case .invalidImage(let detail):
            return "invalid image: \(detail)"
        case .invalidLimits(let detail):
            return "invalid PNG limits: \(detail)"
        case .encodingFailed(let detail):
            return "PNG encoding failed: \(detail)"
        case .undecodable(let source, let format, let detail):
            return "\(source): cannot read this \(format): \(detail)"
        case .unknownFormat(let source):
            return "\(source): not a PNG, JPEG or WebP image (by its first bytes)"
        }
    }
}
