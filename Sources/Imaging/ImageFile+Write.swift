import CImageCodecs
import Foundation

/// Writing PNG, JPEG and WebP with text metadata, and reading that metadata
/// back from any of the three.
///
/// PNG keeps each entry as a text chunk. JPEG and WebP have no such chunks;
/// the entries travel as one JSON array of `[key, value]` pairs:
/// - JPEG: COM segments, the first starting `PILOT-METADATA\0<byte count>\0`,
///   the JSON split over as many consecutive segments (65,533 bytes each) as
///   it needs;
/// - WebP: the extended format (a VP8X chunk flagging XMP) with an `XMP `
///   chunk whose packet holds the JSON, XML-escaped, in `<pilot:metadata>`.
extension ImageFile {
    /// Encodes `image` as `format`. `quality` (1…100) applies to JPEG and
    /// lossy WebP; `lossless` to WebP.
    public static func encode(_ image: Image, as format: Format, quality: Int = 92, lossless: Bool = false,
                              text: [PNGTextEntry] = []) throws -> Data {
        switch format {
        case .png:
            return try PNG.encode(image, text: text)
        case .jpeg:
            let json = metadataJSON(text)
            let comment = text.isEmpty ? Data() : JPEGText.header(for: json) + json
            return try encodeRGB8(image, format: format) { rgb, out, size, message, capacity in
                comment.withUnsafeBytes { bytes in
                    pilot_jpeg_encode(rgb, UInt32(image.width), UInt32(image.height), Int32(quality),
                                      bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, out, size, message, capacity)
                }
            }
        case .webp:
            let simple = try encodeRGB8(image, format: format) { rgb, out, size, message, capacity in
                pilot_webp_encode(rgb, UInt32(image.width), UInt32(image.height), Float(quality), lossless ? 1 : 0,
                                  out, size, message, capacity)
            }
            return text.isEmpty ? simple : try WebPText.withXMP(simple, json: metadataJSON(text), width: image.width,
                                                                height: image.height)
        }
    }

    /// Writes encoded bytes to `path` atomically: a temporary file beside
    /// it, flushed, renamed over it (a reader sees the old file or the new).
    public static func writeAtomically(_ data: Data, to path: String) throws {
        try FileAccess.writeAtomically(data, to: path)
    }

    /// Writes `image` to `path` as `format`, atomically.
    public static func write(_ image: Image, to path: String, as format: Format, quality: Int = 92, lossless: Bool = false,
                             text: [PNGTextEntry] = []) throws {
        try FileAccess.writeAtomically(encode(image, as: format, quality: quality, lossless: lossless, text: text), to: path)
    }

    /// The text entries of PNG, JPEG or WebP bytes (those this program
    /// writes; a JPEG or WebP from elsewhere has none). Errors name `source`.
    public static func textEntries(in data: Data, source: String = "<memory>") throws -> [PNGTextEntry] {
        switch format(of: data) {
        case .png: return try PNG.decode(data, source: source).text
        case .jpeg: return try JPEGText.json(in: data).map { try entries(fromJSON: $0, source: source) } ?? []
        case .webp: return try WebPText.json(in: data).map { try entries(fromJSON: $0, source: source) } ?? []
        case nil:
            if data.isEmpty { throw ImagingError.empty(source: source) }
            throw ImagingError.unknownFormat(source: source)
        }
    }

    /// The value of text entry `key` in the image file at `path`.
    public static func text(forKey key: String, inFileAt path: String) throws -> String? {
        try textEntries(in: FileAccess.contents(of: path), source: path).first { $0.key == key }?.value
    }

    private static func metadataJSON(_ text: [PNGTextEntry]) -> Data {
        // Keys and values are strings: serialisation cannot fail.
        try! JSONSerialization.data(withJSONObject: text.map { [$0.key, $0.value] }, options: [.withoutEscapingSlashes])
    }

    private static func entries(fromJSON data: Data, source: String) throws -> [PNGTextEntry] {
        guard let pairs = try? JSONSerialization.jsonObject(with: data) as? [[String]],
              pairs.allSatisfy({ $0.count == 2 }) else {
            throw ImagingError.malformed(source: source, detail: "its pilot metadata is not a JSON list of [key, value] pairs")
        }
        return pairs.map { PNGTextEntry(key: $0[0], value: $0[1]) }
    }

    private typealias Encoder = (UnsafePointer<UInt8>, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                                 UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>, Int) -> Int32

    private static func encodeRGB8(_ image: Image, format: Format, _ encoder: Encoder) throws -> Data {
        let count = image.width * image.height
        var rgb = [UInt8](repeating: 0, count: 3 * count)
        for p in 0..<count {
            for c in 0..<3 { rgb[3 * p + c] = UInt8((min(max(image.planes[c * count + p], 0), 1) * 255).rounded()) }
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let capacity = message.count
        let code = rgb.withUnsafeBufferPointer { encoder($0.baseAddress!, &out, &size, &message, capacity) }
        defer { pilot_codec_free_bytes(out) }
        guard code == PILOT_CODEC_OK, let out else {
            let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImagingError.encodingFailed("\(format.rawValue): " + (detail.isEmpty ? "the encoder failed (code \(code))" : detail))
        }
        return Data(bytes: out, count: size)
    }
}

/// The JPEG side: COM segments.
enum JPEGText {
    static let magic = Array("PILOT-METADATA".utf8) + [0]

    static func header(for json: Data) -> Data { Data(magic + Array("\(json.count)".utf8) + [0]) }

    /// The metadata JSON, from the first COM segment with the magic and the
    /// consecutive COM segments after it; nil when there is none. Bounded by
    /// the file: a declared length the segments do not hold is an error.
    static func json(in data: Data) throws -> Data? {
        let segments = JPEGMetadata.segments(in: data)
        guard let start = segments.firstIndex(where: { $0.marker == 0xFE && $0.body.starts(with: magic) }) else { return nil }
        let first = segments[start].body.dropFirst(magic.count)
        guard let zero = first.firstIndex(of: 0), let length = Int(String(decoding: first[..<zero], as: UTF8.self)),
              length >= 0, length <= data.count else {
            throw ImagingError.malformed(source: "JPEG", detail: "its PILOT-METADATA comment has no valid length")
        }
        var json = Data(first[(zero + 1)...])
        var next = start + 1
        while json.count < length, next < segments.count, segments[next].marker == 0xFE {
            json.append(contentsOf: segments[next].body)
            next += 1
        }
        guard json.count == length else {
            throw ImagingError.malformed(source: "JPEG", detail: "its PILOT-METADATA comment declares \(length) bytes and holds \(json.count)")
        }
        return json
    }
}

extension JPEGMetadata {
    /// The marker segments before the scan, in order (a hostile header ends
    /// the walk: what was read so far is returned).
    static func segments(in data: Data) -> [(marker: UInt8, body: [UInt8])] {
        let bytes = [UInt8](data)
        var found: [(UInt8, [UInt8])] = []
        var i = 2
        while i + 4 <= bytes.count {
            guard bytes[i] == 0xFF else { break }
            let marker = bytes[i + 1]
            if marker == 0xFF { i += 1; continue }
            if marker == 0xDA || marker == 0xD9 { break }  // the scan begins: no more headers
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard length >= 2, i + 2 + length <= bytes.count else { break }
            found.append((marker, Array(bytes[(i + 4)..<(i + 2 + length)])))
            i += 2 + length
        }
        return found
    }
}

/// The WebP side: an XMP chunk in the extended format.
enum WebPText {
    static let open = "<pilot:metadata>", close = "</pilot:metadata>"

    /// A simple-format WebP (`RIFF…WEBPVP8 ` or `VP8L`) re-wrapped as the
    /// extended format with an XMP chunk holding `json`.
    static func withXMP(_ simple: Data, json: Data, width: Int, height: Int) throws -> Data {
        guard simple.count > 12 else { throw ImagingError.encodingFailed("WebP: the encoder returned \(simple.count) bytes") }
        let image = simple.dropFirst(12)  // the VP8/VP8L chunk, padded
        let escaped = String(decoding: json, as: UTF8.self)
            .replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
        let packet = """
            <?xpacket begin="\u{FEFF}" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">\
            <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" \
            xmlns:pilot="https://pilot-swift.invalid/ns/1.0/">\(open)\(escaped)\(close)</rdf:Description></rdf:RDF>\
            </x:xmpmeta><?xpacket end="r"?>
            """
        func chunk(_ fourCC: String, _ payload: Data) -> Data {
            var out = Data(fourCC.utf8)
            out.append(contentsOf: le32(payload.count))
            out.append(payload)
            if payload.count % 2 == 1 { out.append(0) }
            return out
        }
        var vp8x = Data([0x04, 0, 0, 0])  // flags: XMP
        vp8x.append(contentsOf: le24(width - 1))
        vp8x.append(contentsOf: le24(height - 1))
        var body = Data("WEBP".utf8)
        body.append(chunk("VP8X", vp8x))
        body.append(image)
        body.append(chunk("XMP ", Data(packet.utf8)))
        var file = Data("RIFF".utf8)
        file.append(contentsOf: le32(body.count))
        file.append(body)
        return file
    }

    /// The metadata JSON from the XMP chunk, or nil. Chunk sizes are
    /// bounds-checked: a hostile file can only make this return nil.
    static func json(in data: Data) throws -> Data? {
        let bytes = [UInt8](data)
        var i = 12
        while i + 8 <= bytes.count {
            let fourCC = String(decoding: bytes[i..<(i + 4)], as: UTF8.self)
            let size = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
            guard size >= 0, i + 8 + size <= bytes.count else { return nil }
            if fourCC == "XMP " {
                let packet = String(decoding: bytes[(i + 8)..<(i + 8 + size)], as: UTF8.self)
                guard let start = packet.range(of: open), let end = packet.range(of: close, range: start.upperBound..<packet.endIndex)
                else { return nil }
                let text = String(packet[start.upperBound..<end.lowerBound]).replacingOccurrences(of: "&lt;", with: "<")
                    .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
                return Data(text.utf8)
            }
            i += 8 + size + size % 2
        }
        return nil
    }

    private static func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    private static func le24(_ value: Int) -> [UInt8] { (0..<3).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}
