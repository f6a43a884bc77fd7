import CZlib
import Foundation

/// Why gzip data could not be decompressed.
public enum GunzipError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The data has no bytes at all.
    case empty
    /// The data does not start with the gzip magic bytes 1f 8b.
    case notGzip(firstBytes: String)
    /// zlib refused the compressed stream (bad header, bad block, CRC or
    /// length mismatch); `detail` is zlib's message.
    case corrupt(detail: String)
    /// The data ends before the gzip stream does.
    case truncated(afterBytes: Int)
    /// zlib could not be set up or ran out of memory.
    case zlib(detail: String)

    public var description: String {
        switch self {
        case .empty:
            return "empty data (0 bytes), expected gzip"
        case .notGzip(let firstBytes):
            return "not gzip data: expected the magic bytes 1f 8b, found \(firstBytes)"
        case .corrupt(let detail):
            return "corrupt gzip data: \(detail)"
        case .truncated(let count):
            return "truncated gzip data: the stream is incomplete after \(count) bytes"
        case .zlib(let detail):
            return "zlib failed: \(detail)"
        }
    }
}

/// Decompresses gzip data (RFC 1952) with zlib.
///
/// Concatenated gzip members are decompressed one after the other, as
/// Python's `gzip` module and `gunzip` do.
public enum Gunzip {
    /// Output is grown in steps of this many bytes.
    private static let chunkSize = 1 << 18

    /// Returns the decompressed bytes of `data`, or throws if it is not a
    /// complete, valid gzip stream.
    public static func decompress(_ data: Data) throws(GunzipError) -> Data {
        guard !data.isEmpty else { throw .empty }
        guard data.count >= 2, data[data.startIndex] == 0x1f, data[data.startIndex + 1] == 0x8b else {
            let head = data.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw .notGzip(firstBytes: head)
        }
        let result: Result<Data, GunzipError> = data.withUnsafeBytes { input in
            inflateMembers(UnsafeRawBufferPointer(input))
        }
        return try result.get()
    }

    /// Inflates every gzip member in `input` into one buffer.
    private static func inflateMembers(_ input: UnsafeRawBufferPointer) -> Result<Data, GunzipError> {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer, with the largest window.
        let status = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { return .failure(.zlib(detail: "inflateInit2 returned \(status)")) }
        defer { inflateEnd(&stream) }

        var output = Data()
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        let base = input.bindMemory(to: Bytef.self).baseAddress!
        stream.next_in = UnsafeMutablePointer(mutating: base)
        stream.avail_in = uInt(input.count)

        while true {
            let code: Int32 = chunk.withUnsafeMutableBufferPointer { buffer in
                stream.next_out = buffer.baseAddress
                stream.avail_out = uInt(buffer.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            output.append(contentsOf: chunk[0 ..< chunkSize - Int(stream.avail_out)])
            switch code {
            case Z_OK:
                continue
            case Z_STREAM_END:
                // Another member may follow; anything else after it is an error.
                guard stream.avail_in > 0 else { return .success(output) }
                guard inflateReset(&stream) == Z_OK else {
                    return .failure(.zlib(detail: "inflateReset failed between gzip members"))
                }
            case Z_BUF_ERROR where stream.avail_in == 0:
                return .failure(.truncated(afterBytes: input.count))
            case Z_DATA_ERROR:
                return .failure(.corrupt(detail: message(of: stream) ?? "invalid compressed data"))
            case Z_MEM_ERROR:
                return .failure(.zlib(detail: "out of memory"))
            default:
                return .failure(.zlib(detail: "inflate returned \(code)" + (message(of: stream).map { ": \($0)" } ?? "")))
            }
        }
    }

    private static func message(of stream: z_stream) -> String? {
        stream.msg.map { String(cString: $0) }
    }
}
