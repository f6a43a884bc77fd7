import Foundation

/// The PNG codec: decoding with limits and text chunks, encoding images and
/// masks with text chunks, and reading and writing files.
///
/// Decoding and encoding run in libpng behind the CPNG shim, which turns
/// libpng's longjmp errors into ``ImagingError`` values and keeps libpng's
/// warnings off stderr (they are in ``DecodedPNG/warnings``).
public enum PNG {
    /// Reads and decodes the PNG file at `path`. Errors name the path.
    public static func read(path: String, limits: PNGLimits = PNGLimits()) throws -> DecodedPNG {
        try decode(FileAccess.contents(of: path), source: path, limits: limits)
    }

    /// Encodes `image` and writes it to `path` atomically: the bytes go to
    /// a temporary file in the same folder, which is then renamed over
    /// `path`, so a reader never sees a half-written PNG.
    public static func write(
        _ image: Image, to path: String, text: [PNGTextEntry] = [], depth: PNGSampleDepth = .eight
    ) throws {
        try FileAccess.writeAtomically(encode(image, text: text, depth: depth), to: path)
    }

    /// Encodes `mask` as a gray PNG and writes it to `path` atomically (see
    /// the `Image` overload).
    public static func write(
        _ mask: Mask, to path: String, text: [PNGTextEntry] = [], depth: PNGSampleDepth = .eight
    ) throws {
        try FileAccess.writeAtomically(encode(mask, text: text, depth: depth), to: path)
    }
}
