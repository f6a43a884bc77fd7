import Foundation

/// A PNG written and taken apart byte by byte, independently of libpng, so
/// tests can corrupt, reorder or hand-build files.
struct PNGChunk: Equatable {
    var type: String
    var data: [UInt8]
}

enum PNGBytes {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The chunks of a well-formed PNG, in order.
    static func chunks(of png: Data) -> [PNGChunk] {
        let bytes = [UInt8](png)
        var chunks: [PNGChunk] = []
        var offset = signature.count
        while offset + 12 <= bytes.count {
            let length = Int(bigEndian32(bytes, at: offset))
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            chunks.append(PNGChunk(type: type, data: Array(bytes[offset + 8..<offset + 8 + length])))
            offset += 12 + length
        }
        return chunks
    }

    /// A PNG file made of `chunks`, each with a correct length and CRC.
    static func assemble(_ chunks: [PNGChunk]) -> Data {
        var bytes = signature
        for chunk in chunks {
            let typeAndData = Array(chunk.type.utf8) + chunk.data
            bytes += bigEndian(UInt32(chunk.data.count))
            bytes += typeAndData
            bytes += bigEndian(crc32(typeAndData))
        }
        return Data(bytes)
    }

    /// Byte offset in `png` where the chunk of `type` starts (its length field).
    static func offset(ofChunk type: String, in png: Data) -> Int? {
        let bytes = [UInt8](png)
        var offset = signature.count
        while offset + 12 <= bytes.count {
            let length = Int(bigEndian32(bytes, at: offset))
            if String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self) == type { return offset }
            offset += 12 + length
        }
        return nil
    }

    /// An IHDR chunk; any numbers, valid or not.
    static func ihdr(width: UInt32, height: UInt32, bitDepth: UInt8, colorType: UInt8,
                     interlace: UInt8 = 0) -> PNGChunk {
        PNGChunk(type: "IHDR",
                 data: bigEndian(width) + bigEndian(height) + [bitDepth, colorType, 0, 0, interlace])
    }

    /// A PNG built without libpng: `rows` are unfiltered packed rows; each
    /// gets filter byte 0 and the whole goes into stored deflate blocks.
    static func handBuilt(width: UInt32, height: UInt32, bitDepth: UInt8, colorType: UInt8,
                          rows: [[UInt8]], extra: [PNGChunk] = []) -> Data {
        let filtered: [UInt8] = rows.flatMap { [0] + $0 }
        return assemble([ihdr(width: width, height: height, bitDepth: bitDepth, colorType: colorType)]
                        + extra
                        + [PNGChunk(type: "IDAT", data: zlibStored(filtered)), PNGChunk(type: "IEND", data: [])])
    }

    /// A zlib stream (RFC 1950) holding `data` in stored, uncompressed
    /// deflate blocks (RFC 1951 §3.2.4).
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var stream: [UInt8] = [0x78, 0x01]
        var start = 0
        repeat {
            let end = min(start + 65_535, data.count)
            let length = UInt16(end - start)
            stream.append(end == data.count ? 1 : 0) // BFINAL, BTYPE = 00
            stream += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
            stream += data[start..<end]
            start = end
        } while start < data.count
        return stream + bigEndian(adler32(data))
    }

    static func crc32<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func bigEndian32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
