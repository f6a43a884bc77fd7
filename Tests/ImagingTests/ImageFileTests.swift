import Foundation
import Imaging
import XCTest

/// JPEG (libjpeg-turbo) and WebP (libwebp) against Pillow's decodes
/// (Tests/Reference/make_codec_fixtures.py), and hostile files refused.
final class ImageFileTests: XCTestCase {
    private static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/codecs")

    private func path(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }

    func testJPEGAndWebPDecodeAsPillowDoesWithTheEXIFOrientationApplied() throws {
        for (file, tolerance) in [("photo.jpg", 1), ("gray.jpg", 1), ("rotated.jpg", 1), ("lossless.webp", 0), ("lossy.webp", 1)] {
            let image = try ImageFile.read(path: path(file))
            let stem = String(file[..<file.lastIndex(of: ".")!])
            let expected = try PNG.read(path: path(stem + ".expected.png")).image
            XCTAssertEqual(image.width, expected.width, "\(file): width")
            XCTAssertEqual(image.height, expected.height, "\(file): height")
            guard image.width == expected.width, image.height == expected.height else { continue }
            let worst = zip(image.planes, expected.planes).map { Int((abs($0 - $1) * 255).rounded()) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, tolerance, "\(file): expected Pillow's pixels within \(tolerance)/255, worst \(worst)/255")
        }
        XCTAssertEqual(try ImageFile.read(path: path("rotated.jpg")).width, 32, "orientation 6 turns a 48×32 picture upright to 32×48")
        XCTAssertEqual(ImageFile.format(of: try Data(contentsOf: Self.folder.appendingPathComponent("lossy.webp"))), .webp)
    }

    func testTruncatedCorruptBombAndUnknownFilesAreRefusedWithTheirName() throws {
        let jpeg = try Data(contentsOf: Self.folder.appendingPathComponent("photo.jpg"))
        let webp = try Data(contentsOf: Self.folder.appendingPathComponent("lossy.webp"))
        // A JPEG whose SOF0 declares 65,000 × 65,000: refused from the header, before any allocation.
        var bomb = jpeg
        if let sof = (0..<(bomb.count - 9)).first(where: { bomb[$0] == 0xFF && (bomb[$0 + 1] == 0xC0 || bomb[$0 + 1] == 0xC2) }) {
            bomb.replaceSubrange((sof + 5)..<(sof + 9), with: [0xFD, 0xE8, 0xFD, 0xE8])
        }
        var webpBomb = webp
        // VP8 frame header: width and height (14 bits each) at bytes 26…29 of a simple lossy file.
        webpBomb.replaceSubrange(26..<30, with: [0xFF, 0x3F, 0xFF, 0x3F])
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "empty data"),
            ("unknown", Data("GIF89a……".utf8), "not a PNG, JPEG or WebP"),
            ("truncated JPEG", jpeg.prefix(jpeg.count / 2), "cannot read this JPEG"),
            ("JPEG header only", jpeg.prefix(20), "cannot read this JPEG"),
            ("JPEG bomb", bomb, "65000 × 65000"),
            ("truncated WebP", webp.prefix(webp.count - 40), "cannot read this WebP"),
            ("WebP header only", webp.prefix(16), "cannot read this WebP"),
            ("WebP bomb", webpBomb, "16383 × 16383"),
        ]
        for (label, data, expected) in cases {
            XCTAssertThrowsError(try ImageFile.decode(data, source: "upload/\(label)"), label) { error in
                XCTAssertTrue("\(error)".contains("upload/\(label)"), "\(label): expected the source named: \(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(label): expected '\(expected)' in: \(error)")
            }
        }
        // Corrupt scan data decodes around the damage (libjpeg's warnings), never crashes.
        var corrupt = jpeg
        for i in stride(from: jpeg.count / 2, to: jpeg.count - 4, by: 7) { corrupt[i] ^= 0x5A }
        _ = try? ImageFile.decode(corrupt, source: "corrupt.jpg")
    }

    func testEveryEXIFOrientationTurnsThePictureAsViewersDo() throws {
        // A 3×2 picture whose pixels are numbered; each orientation's expected layout, row by row.
        let numbered = try Image(width: 3, height: 2, planes: (0..<18).map { Float($0 % 6) / 10 })
        func layout(_ image: Image) -> [Int] { (0..<image.pixelCount).map { Int((image.planes[$0] * 10).rounded()) } }
        let expected: [Int: [Int]] = [
            1: [0, 1, 2, 3, 4, 5], 2: [2, 1, 0, 5, 4, 3], 3: [5, 4, 3, 2, 1, 0], 4: [3, 4, 5, 0, 1, 2],
            5: [0, 3, 1, 4, 2, 5], 6: [3, 0, 4, 1, 5, 2], 7: [5, 2, 4, 1, 3, 0], 8: [2, 5, 1, 4, 0, 3],
        ]
        for (orientation, pixels) in expected {
            XCTAssertEqual(layout(try ImageFile.oriented(numbered, exifOrientation: orientation)), pixels, "orientation \(orientation)")
        }
    }
}
