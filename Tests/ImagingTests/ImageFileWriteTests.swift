import Foundation
@testable import Imaging
import XCTest

/// SaveImage's JPEG and WebP: the pixels, and the text entries carried as
/// metadata and read back.
final class ImageFileWriteTests: XCTestCase {
    private let picture: Image = {
        let (w, h) = (40, 24)
        var planes = [Float](repeating: 0, count: 3 * w * h)
        for y in 0..<h { for x in 0..<w {
            planes[y * w + x] = Float(x) / Float(w - 1)
            planes[w * h + y * w + x] = Float(y) / Float(h - 1)
            planes[2 * w * h + y * w + x] = 0.5
        } }
        return try! Image(width: w, height: h, planes: planes)
    }()

    private let entries = [PNGTextEntry(key: "pilot:workflow", value: "{\"nodes\": {\"a\": \"<b> & c\"}, \"text\": \"é ✓\"}"),
                           PNGTextEntry(key: "pilot:seed", value: "7")]

    private func maxDifference(_ a: Image, _ b: Image) -> Float {
        zip(a.planes, b.planes).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testJPEGAndWebPCarryTheTextEntriesAndThePicture() throws {
        for (format, quality, lossless, tolerance) in [(ImageFile.Format.jpeg, 95, false, Float(0.06)),
                                                       (.webp, 90, false, 0.08), (.webp, 100, true, 0.501 / 255)] {
            let data = try ImageFile.encode(picture, as: format, quality: quality, lossless: lossless, text: entries)
            XCTAssertEqual(ImageFile.format(of: data), format)
            let decoded = try ImageFile.decode(data, source: "written")
            XCTAssertEqual([decoded.width, decoded.height], [40, 24], "\(format)")
            XCTAssertLessThanOrEqual(maxDifference(decoded, picture), tolerance, "\(format) q\(quality): pixels")
            XCTAssertEqual(try ImageFile.textEntries(in: data), entries, "\(format): the entries, in order, read back")
        }
        XCTAssertEqual(try ImageFile.textEntries(in: ImageFile.encode(picture, as: .webp)), [], "no entries: a simple WebP")
    }

    func testAWorkflowLongerThanOneJPEGSegmentSpansSeveralAndReadsBackWhole() throws {
        let long = String(repeating: "0123456789abcdef", count: 10_000)  // 160,000 bytes: three COM segments
        let data = try ImageFile.encode(picture, as: .jpeg, text: [PNGTextEntry(key: "pilot:workflow", value: long)])
        XCTAssertEqual(JPEGMetadata.segments(in: data).filter { $0.marker == 0xFE }.count, 3)
        XCTAssertEqual(try ImageFile.textEntries(in: data).first?.value, long)
    }

    func testDamagedMetadataIsAClearErrorOrAbsentNeverACrash() throws {
        var jpeg = try ImageFile.encode(picture, as: .jpeg, text: entries)
        // Claim more bytes than the comment holds.
        let header = Data(JPEGText.magic)
        let at = try XCTUnwrap(jpeg.range(of: header)).upperBound
        let digits = jpeg[at...].prefix { $0 != 0 }
        jpeg.replaceSubrange(at..<(at + digits.count), with: Data(String(repeating: "9", count: digits.count).utf8))
        XCTAssertThrowsError(try ImageFile.textEntries(in: jpeg)) { error in
            XCTAssertTrue("\(error)".contains("PILOT-METADATA comment declares"), "\(error)")
        }
        // A WebP whose XMP chunk claims to run past the file: no metadata, and the picture still decodes.
        var webp = try ImageFile.encode(picture, as: .webp, lossless: true, text: entries)
        let xmp = try XCTUnwrap(webp.range(of: Data("XMP ".utf8))).upperBound
        webp.replaceSubrange(xmp..<(xmp + 4), with: Data([0xFF, 0xFF, 0xFF, 0x7F]))
        XCTAssertEqual(try ImageFile.textEntries(in: webp), [])
        for cut in [1, 20, 100] {
            XCTAssertNoThrow(try? ImageFile.textEntries(in: jpeg.prefix(cut)), "a truncated file: \(cut) bytes")
        }
    }
}
