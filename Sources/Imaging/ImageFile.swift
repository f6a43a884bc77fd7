import CImageCodecs
import Foundation

/// Reads PNG, JPEG and WebP images, told apart by their first bytes, with
/// the same limits and error discipline as ``PNG``: sizes are checked on the
/// header before pixels are allocated, and every error names the source.
/// JPEGs are turned upright by their EXIF orientation, as viewers show them.
public enum ImageFile {
    public enum Format: String, Sendable {
        case png = "PNG", jpeg = "JPEG", webp = "WebP"
    }

    /// The format `data` starts like, or nil.
    public static func format(of data: Data) -> Format? {
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return .png }
        if data.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if data.count >= 12, data.prefix(4).elementsEqual(Array("RIFF".utf8)),
           data.dropFirst(8).prefix(4).elementsEqual(Array("WEBP".utf8)) { return .webp }
        return nil
    }

    /// Reads the image file at `path`. Errors name the path.
    public static func read(path: String, limits: PNGLimits = PNGLimits()) throws -> Image {
        try decode(FileAccess.contents(of: path), source: path, limits: limits)
    }

    /// Decodes PNG, JPEG or WebP bytes to RGB (alpha, if any, is dropped).
    public static func decode(_ data: Data, source: String = "<memory>", limits: PNGLimits = PNGLimits()) throws -> Image {
        switch format(of: data) {
        case .png: return try PNG.decode(data, source: source, limits: limits).image
        case .jpeg:
            let image = try decodeRGB8(data, format: .jpeg, source: source, limits: limits, pilot_jpeg_decode)
            return try oriented(image, exifOrientation: JPEGMetadata.orientation(in: data) ?? 1)
        case .webp: return try decodeRGB8(data, format: .webp, source: source, limits: limits, pilot_webp_decode)
        case nil:
            if data.isEmpty { throw ImagingError.empty(source: source) }
            throw ImagingError.unknownFormat(source: source)
        }
    }

    private typealias Decoder = (UnsafePointer<UInt8>?, Int, UInt64, UInt32, UnsafeMutablePointer<pilot_rgb8>?,
                                 UnsafeMutablePointer<CChar>?, Int) -> Int32

    private static func decodeRGB8(_ data: Data, format: Format, source: String, limits: PNGLimits,
                                   _ decoder: Decoder) throws -> Image {
        let checked = try limits.validated()
        var raw = pilot_rgb8()
        var message = [CChar](repeating: 0, count: 512)
        let capacity = message.count
        let code = data.withUnsafeBytes { bytes in
            decoder(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, UInt64(checked.maxPixels),
                    UInt32(clamping: checked.maxDimension), &raw, &message, capacity)
        }
        defer { pilot_codec_free(&raw) }
        let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch Int(code) {
        case Int(PILOT_CODEC_OK): break
        case Int(PILOT_CODEC_ERR_EMPTY): throw ImagingError.empty(source: source)
        case Int(PILOT_CODEC_ERR_LIMIT): throw ImagingError.overLimit(source: source, detail: detail)
        case Int(PILOT_CODEC_ERR_MEMORY): throw ImagingError.outOfMemory(source: source, detail: "decoding a \(format.rawValue)")
        default:
            throw ImagingError.undecodable(source: source, format: format.rawValue, detail: detail.isEmpty ? "corrupt data" : detail)
        }
        guard let pixels = raw.pixels else { throw ImagingError.undecodable(source: source, format: format.rawValue, detail: "no pixels") }
        let width = Int(raw.width), height = Int(raw.height), count = width * height
        var planes = [Float](repeating: 0, count: 3 * count)
        for p in 0..<count {
            for c in 0..<3 { planes[c * count + p] = Float(pixels[3 * p + c]) / 255 }
        }
        return try Image(width: width, height: height, planes: planes)
    }

    /// `image` turned as EXIF orientation `orientation` (1…8) asks: 2 mirror,
    /// 3 half turn, 4 flip, 5 transpose, 6 quarter turn clockwise, 7
    /// transverse, 8 quarter turn anticlockwise; anything else as is.
    public static func oriented(_ image: Image, exifOrientation orientation: Int) throws -> Image {
        guard (2...8).contains(orientation) else { return image }
        let (w, h) = (image.width, image.height)
        let swaps = orientation >= 5
        let (ow, oh) = swaps ? (h, w) : (w, h)
        func source(_ x: Int, _ y: Int) -> (Int, Int) {
            switch orientation {
            case 2: (w - 1 - x, y)
            case 3: (w - 1 - x, h - 1 - y)
            case 4: (x, h - 1 - y)
            case 5: (y, x)
            case 6: (y, h - 1 - x)
            case 7: (w - 1 - y, h - 1 - x)
            default: (w - 1 - y, x)  // 8
            }
        }
        var planes = [Float](repeating: 0, count: 3 * ow * oh)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy) = source(x, y)
                for c in 0..<3 { planes[c * ow * oh + y * ow + x] = image.planes[c * w * h + sy * w + sx] }
            }
        }
        return try Image(width: ow, height: oh, planes: planes)
    }
}

/// The little a reader needs from a JPEG's headers.
enum JPEGMetadata {
    /// The EXIF orientation (tag 0x0112 of IFD0 in the APP1 "Exif" segment),
    /// found by walking the marker segments before the scan; nil if absent
    /// or unreadable. Every offset is bounds-checked: a hostile header can
    /// only make this return nil.
    static func orientation(in data: Data) -> Int? {
        for segment in segments(in: data.prefix(1 << 20)) where segment.marker == 0xE1 {
            let body = segment.body
            if body.count > 14, body.starts(with: Array("Exif".utf8) + [0, 0]) { return tiffOrientation(Array(body[6...])) }
        }
        return nil
    }

    private static func tiffOrientation(_ tiff: [UInt8]) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            return little ? Int(tiff[at]) | Int(tiff[at + 1]) << 8 : Int(tiff[at]) << 8 | Int(tiff[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return nil }
        for k in 0..<min(entries, 512) {
            let entry = ifd + 2 + 12 * k
            guard let tag = u16(entry) else { return nil }
            if tag == 0x0112, u16(entry + 2) == 3, let value = u16(entry + 8) { return value }
        }
        return nil
    }
}
