import Imaging
import XCTest

final class PNGRoundTripTests: XCTestCase {
    /// Every 8-bit level appears in every channel.
    private func everyLevelImage() throws -> Image {
        let width = 16, height = 16
        var random = TestRandom(seed: 7)
        let planes = (0..<3 * width * height).map { index in
            Float(index < width * height ? index % 256 : random.next(below: 256)) / 255
        }
        return try Image(width: width, height: height, planes: planes)
    }

    func testRGB8BitRoundTripsExactly() throws {
        let image = try everyLevelImage()
        let decoded = try PNG.decode(PNG.encode(image))
        XCTAssertEqual(decoded.image, image, "expected every 8-bit level to decode to the value it was encoded from")
        XCTAssertEqual(decoded.colorType, .rgb, "expected an RGB PNG")
        XCTAssertEqual(decoded.bitDepth, 8, "expected 8 bits per sample")
        XCTAssertNil(decoded.alpha, "expected no alpha plane for an RGB PNG")
        XCTAssertEqual(decoded.warnings, [], "expected a clean file to decode without warnings")
    }

    func testGray8BitMaskRoundTripsExactly() throws {
        let values = (0..<256).map { Float($0) / 255 }
        let mask = try Mask(width: 32, height: 8, values: values)
        let decoded = try PNG.decode(PNG.encode(mask))
        XCTAssertEqual(decoded.colorType, .gray, "expected a gray PNG")
        XCTAssertEqual(try Mask(from: decoded), mask, "expected every gray level to round trip exactly")
        for channel in 0..<3 {
            XCTAssertEqual(Array(decoded.image.plane(channel)), values, "expected gray replicated into channel \(channel)")
        }
    }

    func testSixteenBitRoundTripsExactly() throws {
        var random = TestRandom(seed: 16)
        let planes = (0..<3 * 9 * 5).map { _ in Float(random.next(below: 65_536)) / 65_535 }
        let image = try Image(width: 9, height: 5, planes: planes)
        let decoded = try PNG.decode(PNG.encode(image, depth: .sixteen))
        XCTAssertEqual(decoded.bitDepth, 16, "expected 16 bits per sample")
        XCTAssertEqual(decoded.image, image, "expected every 16-bit level to round trip exactly")

        let mask = try Mask(width: 9, height: 5, values: Array(planes[0..<45]))
        XCTAssertEqual(try Mask(from: PNG.decode(PNG.encode(mask, depth: .sixteen))), mask,
                       "expected a 16-bit gray mask to round trip exactly")
    }

    func testEncodingClampsThenRoundsToNearest() throws {
        let image = try Image(width: 6, height: 1, interleavedRGB: [
            -0.5, 1.7, .nan,                          // clamped: 0, 1, NaN → 0
            0.4 / 255, 0.6 / 255, 127.6 / 255,         // rounded: 0, 1, 128
            1, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        let levels = try PNG.decode(PNG.encode(image)).image.planes.map { Int(($0 * 255).rounded()) }
        XCTAssertEqual([levels[0], levels[6], levels[12]], [0, 255, 0], "expected -0.5 → 0, 1.7 → 255, NaN → 0")
        XCTAssertEqual([levels[1], levels[7], levels[13]], [0, 1, 128], "expected 0.4 → 0, 0.6 → 1, 127.6 → 128")
    }

    func testEncodedBytesStartWithThePNGSignature() throws {
        let data = try PNG.encode(Image(width: 1, height: 1))
        XCTAssertEqual(Array(data.prefix(8)), PNGBytes.signature, "expected the 8-byte PNG signature first")
        XCTAssertEqual(PNGBytes.chunks(of: data).map(\.type).first, "IHDR", "expected IHDR as the first chunk")
    }
}
