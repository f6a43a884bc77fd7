import CPNG
import Foundation

extension PNG {
    /// Decodes PNG bytes of any color type and bit depth, interlaced or not.
    ///
    /// The header is checked against `limits` before pixel memory is
    /// allocated. Errors name `source` (use the path the bytes came from)
    /// and the problem: ``ImagingError/empty(source:)``,
    /// ``ImagingError/notPNG(source:)``, ``ImagingError/truncated(source:detail:)``,
    /// ``ImagingError/overLimit(source:detail:)``,
    /// ``ImagingError/malformed(source:detail:)`` (CRC mismatch, zero size,
    /// corrupt data...). A bad CRC fails the decode even in an ancillary
    /// chunk, since text chunks carry workflows.
    public static func decode(
        _ data: Data, source: String = "<memory>", limits: PNGLimits = PNGLimits()
    ) throws -> DecodedPNG {
        let cLimits = try limits.validated().cLimits
        var raw = pilot_png_image()
        var message = [CChar](repeating: 0, count: cpngMessageCapacity)
        let capacity = message.count
        let code = data.withUnsafeBytes { bytes in
            pilot_png_decode(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, cLimits,
                             &raw, &message, capacity)
        }
        guard code == Int32(PILOT_PNG_OK) else {
            throw ImagingError(cpngCode: code, message: cpngMessage(message), source: source)
        }
        defer { pilot_png_image_free(&raw) }
        return try DecodedPNG(raw, source: source)
    }
}

extension PNGLimits {
    /// The shim's form; bounds beyond its integer types are clamped.
    var cLimits: pilot_png_limits {
        pilot_png_limits(max_pixels: UInt64(maxPixels),
                         max_dimension: UInt32(clamping: maxDimension),
                         max_chunk_bytes: UInt32(clamping: maxChunkBytes))
    }
}

extension DecodedPNG {
    /// Copies what the shim decoded into Swift values.
    init(_ raw: pilot_png_image, source: String) throws {
        guard let colorType = PNGColorType(rawValue: Int(raw.color_type)), let pixels = raw.pixels else {
            throw ImagingError.malformed(source: source, detail: "libpng returned an unknown color type")
        }
        let width = Int(raw.width), height = Int(raw.height), count = width * height
        let keepAlpha = raw.has_alpha != 0
        let samples = raw.sample_bits == 16
            ? PlanarSamples(rgba16: pixels.bindMemory(to: UInt16.self, capacity: 4 * count),
                            pixelCount: count, keepAlpha: keepAlpha)
            : PlanarSamples(rgba8: pixels.bindMemory(to: UInt8.self, capacity: 4 * count),
                            pixelCount: count, keepAlpha: keepAlpha)
        self.source = source
        self.image = try Image(width: width, height: height, planes: samples.planes)
        self.alpha = samples.alpha
        self.text = (0..<raw.text_count).map { index in
            let entry = raw.text[index]
            return PNGTextEntry(key: utf8String(entry.key, count: entry.key_length),
                                value: utf8String(entry.value, count: entry.value_length))
        }
        self.bitDepth = Int(raw.bit_depth)
        self.colorType = colorType
        self.isInterlaced = raw.interlaced != 0
        self.warnings = raw.warnings.map { String(cString: $0).split(separator: "\n").map(String.init) } ?? []
    }
}

/// UTF-8 bytes from the shim as a String; invalid sequences (an iTXt that
/// is not really UTF-8) become U+FFFD rather than failing the decode.
private func utf8String(_ pointer: UnsafeMutablePointer<CChar>?, count: Int) -> String {
    guard let pointer else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: count), as: UTF8.self)
}
