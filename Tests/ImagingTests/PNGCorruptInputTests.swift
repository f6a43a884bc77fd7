import Foundation
import Imaging
import XCTest

/// Every kind of broken input throws an ImagingError whose message names
/// the problem and the source.
final class PNGCorruptInputTests: XCTestCase {
    private func validPNG() throws -> Data {
        var random = TestRandom(seed: 3)
        let planes = (0..<3 * 24 * 24).map { _ in Float(random.next(below: 256)) / 255 }
        return try PNG.encode(Image(width: 24, height: 24, planes: planes),
                              text: [PNGTextEntry(key: "Comment", value: "a text chunk")])
    }

    private func isTruncated(_ error: ImagingError) -> Bool {
        if case .truncated = error { return true } else { return false }
    }

    private func isMalformed(_ error: ImagingError) -> Bool {
        if case .malformed = error { return true } else { return false }
    }

    private func isOverLimit(_ error: ImagingError) -> Bool {
        if case .overLimit = error { return true } else { return false }
    }

    /// Found by fuzzing: a 1 KB file whose zTXt chunk declared 1.7 GB made
    /// libpng allocate and clear 1.7 GB before noticing the bytes were not
    /// there. The chunk lengths are now checked first.
    func testAChunkDeclaringMoreBytesThanFollowIsRefusedBeforeAnyAllocation() throws {
        let png = try validPNG()
        let afterHeader = 8 + 12 + 13  // signature, then the IHDR chunk
        var bytes = Array(png.prefix(afterHeader))
        bytes += [0x69, 0x00, 0x00, 0x15] + Array("zTXt".utf8) + Array("comment".utf8) + [0, 0, 0x78, 0x9C]
        bytes += Array(png.dropFirst(afterHeader))
        assertImagingError(try PNG.decode(Data(bytes), source: "bomb.png"), "truncated",
                           matches: isTruncated, mentioning: ["bomb.png", "zTXt", "declares 1761607701 bytes"])

        // A real 2 MiB text chunk is over a 1 MiB per-chunk limit, refused by its declared length.
        var random = TestRandom(seed: 5)
        let noise = String(decoding: (0..<(2 << 20)).map { _ in UInt8(0x21 + random.next(below: 94)) }, as: UTF8.self)
        let big = try PNG.encode(Image(width: 2, height: 2), text: [PNGTextEntry(key: "workflow", value: noise)])
        assertImagingError(try PNG.decode(big, source: "big.png", limits: PNGLimits(maxChunkBytes: 1 << 20)), "overLimit",
                           matches: isOverLimit, mentioning: ["big.png", "over the limit of 1048576 bytes per chunk"])
    }

    func testEmptyDataIsRefusedAsEmpty() {
        assertImagingError(try PNG.decode(Data(), source: "empty.png"), "empty",
                           matches: { $0 == .empty(source: "empty.png") }, mentioning: ["empty.png", "empty"])
    }

    func testBadSignatureIsRefusedAsNotAPNG() {
        for bytes in [Array("GIF89a, not a PNG at all".utf8), [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46], [0x89]] {
            assertImagingError(try PNG.decode(Data(bytes + [0, 0]), source: "photo.jpg"), "notPNG",
                               matches: { $0 == .notPNG(source: "photo.jpg") }, mentioning: ["photo.jpg", "not a PNG"])
        }
    }

    func testTruncationAnywhereIsRefusedAsTruncated() throws {
        let png = try validPNG()
        let idat = try XCTUnwrap(PNGBytes.offset(ofChunk: "IDAT", in: png), "expected an IDAT chunk")
        let iend = try XCTUnwrap(PNGBytes.offset(ofChunk: "IEND", in: png), "expected an IEND chunk")
        let cuts = [("in the signature", 5), ("in IHDR", 20), ("at the start of IDAT", idat + 4),
                    ("in IDAT", idat + 30), ("before IEND", iend), ("in IEND's CRC", png.count - 1)]
        for (place, cut) in cuts {
            let error = assertImagingError(try PNG.decode(png.prefix(cut)), "truncated when cut \(place)",
                                           matches: isTruncated, mentioning: ["truncated", "<memory>"])
            XCTAssertNotNil(error, "expected a file cut \(place) (at byte \(cut)) to be refused")
        }
    }

    func testCRCMismatchInAnyChunkIsRefused() throws {
        let png = try validPNG()
        for type in ["IHDR", "tEXt", "IDAT", "IEND"] {
            var bytes = [UInt8](png)
            let offset = try XCTUnwrap(PNGBytes.offset(ofChunk: type, in: png), "expected a \(type) chunk")
            let length = Int(PNGBytes.bigEndian32(bytes, at: offset))
            bytes[offset + 8 + length] ^= 0x01 // first byte of the CRC
            assertImagingError(try PNG.decode(Data(bytes)), "malformed with a CRC error in \(type)",
                               matches: isMalformed, mentioning: ["CRC", type])
        }
    }

    func testHugeHeaderIsRefusedBeforeAnyPixelMemoryIsAllocated() {
        // A 100000×100000 RGBA image would need 80 GB; the IDAT here holds
        // one row. The limit must stop it at the header, so the error is
        // "over the limit", not "not enough image data".
        for (width, height, phrase) in [(UInt32(100_000), UInt32(100_000), "exceeds user limit"),
                                        (50_000, 50_000, "2500000000 pixels")] {
            let png = PNGBytes.handBuilt(width: width, height: height, bitDepth: 8, colorType: 6, rows: [[0, 0, 0, 0]])
            assertImagingError(try PNG.decode(png), "overLimit for \(width)×\(height)",
                               matches: isOverLimit, mentioning: ["limit", phrase])
        }
    }

    func testCallerLimitsAreEnforced() throws {
        let png = try PNG.encode(Image(width: 11, height: 10))
        assertImagingError(try PNG.decode(png, limits: PNGLimits(maxPixels: 100)), "overLimit for 110 pixels",
                           matches: isOverLimit, mentioning: ["11x10", "110 pixels", "limit of 100"])
        assertImagingError(try PNG.decode(png, limits: PNGLimits(maxDimension: 10)), "overLimit for width 11",
                           matches: isOverLimit, mentioning: ["width exceeds user limit"])
        XCTAssertNoThrow(try PNG.decode(png, limits: PNGLimits(maxPixels: 110, maxDimension: 11)),
                         "expected an image exactly at the limits to decode")
        assertImagingError(try PNG.decode(png, limits: PNGLimits(maxPixels: 0)), "invalidLimits for maxPixels 0",
                           matches: { if case .invalidLimits = $0 { return true } else { return false } },
                           mentioning: ["maxPixels"])
    }

    func testZeroSizeIsRefused() {
        for (width, height) in [(UInt32(0), UInt32(4)), (4, 0)] {
            let png = PNGBytes.handBuilt(width: width, height: height, bitDepth: 8, colorType: 0, rows: [])
            assertImagingError(try PNG.decode(png), "malformed for a \(width)×\(height) header",
                               matches: isMalformed, mentioning: ["is zero"])
        }
    }

    func testMissingImageDataIsRefused() throws {
        let chunks = PNGBytes.chunks(of: try validPNG()).filter { $0.type != "IDAT" }
        assertImagingError(try PNG.decode(PNGBytes.assemble(chunks)), "malformed without IDAT",
                           matches: isMalformed, mentioning: ["out of place", "before the image data"])
    }

    func testCorruptCompressedDataIsRefused() throws {
        var chunks = PNGBytes.chunks(of: try validPNG())
        let index = try XCTUnwrap(chunks.firstIndex { $0.type == "IDAT" })
        chunks[index].data = [0x78, 0x9C] + [UInt8](repeating: 0xFF, count: 40) // valid CRC, invalid deflate
        assertImagingError(try PNG.decode(PNGBytes.assemble(chunks)), "malformed for bad deflate data",
                           matches: isMalformed, mentioning: ["IDAT"])
    }
}
