import Diffusion
import Foundation
import XCTest

final class GunzipTests: XCTestCase {
    /// `gzip.compress(b"hello, ", mtime=0)` and `gzip.compress(b"gzip\n", mtime=0)`.
    static let hello: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7,
        0x51, 0x00, 0x00, 0x99, 0x56, 0xea, 0x11, 0x07, 0x00, 0x00, 0x00,
    ]
    static let gzipLine: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x4b, 0xaf, 0xca, 0x2c, 0xe0, 0x02,
        0x00, 0xff, 0x7c, 0x5e, 0x61, 0x05, 0x00, 0x00, 0x00,
    ]

    func testDecompressesOneMember() throws {
        let text = try Gunzip.decompress(Data(Self.hello))
        XCTAssertEqual(String(decoding: text, as: UTF8.self), "hello, ", "expected the member's original bytes")
    }

    func testDecompressesConcatenatedMembersInOrder() throws {
        let text = try Gunzip.decompress(Data(Self.hello + Self.gzipLine))
        XCTAssertEqual(String(decoding: text, as: UTF8.self), "hello, gzip\n",
                       "expected both members' bytes, first member first")
    }

    func testDecompressesTheBundledBPEFileToItsKnownSize() throws {
        let text = try Gunzip.decompress(Data(contentsOf: TestPaths.bundledMergesFile))
        XCTAssertEqual(text.count, 3_194_984, "expected the size Python's gzip module reports")
        XCTAssertTrue(text.starts(with: Array("\"bpe_simple_vocab_16e6.txt#version: 0.2\n".utf8)),
                      "expected the merges file's header line first")
    }

    func testRejectsEmptyData() {
        XCTAssertThrowsError(try Gunzip.decompress(Data())) { error in
            XCTAssertEqual(error as? GunzipError, .empty, "expected .empty for 0 bytes, got \(error)")
        }
    }

    func testRejectsDataWithoutTheGzipMagicAndShowsItsFirstBytes() {
        XCTAssertThrowsError(try Gunzip.decompress(Data("plain text".utf8))) { error in
            XCTAssertEqual(error as? GunzipError, .notGzip(firstBytes: "70 6c 61 69"),
                           "expected .notGzip with the first four bytes, got \(error)")
        }
    }

    func testRejectsAStreamCutShort() {
        XCTAssertThrowsError(try Gunzip.decompress(Data(Self.hello.dropLast(6)))) { error in
            XCTAssertEqual(error as? GunzipError, .truncated(afterBytes: Self.hello.count - 6),
                           "expected .truncated for a stream missing its trailer, got \(error)")
        }
    }

    func testRejectsAChecksumMismatchAsCorrupt() {
        var bytes = Self.hello
        bytes[bytes.count - 8] ^= 0xff  // first CRC-32 byte of the trailer
        XCTAssertThrowsError(try Gunzip.decompress(Data(bytes))) { error in
            guard case .corrupt(let detail)? = error as? GunzipError else {
                return XCTFail("expected .corrupt for a bad CRC, got \(error)")
            }
            XCTAssertTrue(detail.contains("incorrect data check"), "expected zlib's CRC message, got \"\(detail)\"")
        }
    }

    func testRejectsGarbageAfterAMemberAsCorrupt() {
        XCTAssertThrowsError(try Gunzip.decompress(Data(Self.hello + Array("junk".utf8)))) { error in
            guard case .corrupt? = error as? GunzipError else {
                return XCTFail("expected .corrupt for bytes after the last member, got \(error)")
            }
        }
    }
}
