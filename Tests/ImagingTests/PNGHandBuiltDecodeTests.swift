import Imaging
import XCTest

/// Decodes PNGs assembled here byte by byte (stored deflate blocks, filter 0),
/// so the decoder is checked against files libpng's writer did not make.
final class PNGHandBuiltDecodeTests: XCTestCase {
    func testHandBuiltRGBDecodesToItsSamples() throws {
        let png = PNGBytes.handBuilt(width: 2, height: 2, bitDepth: 8, colorType: 2,
                                     rows: [[255, 0, 0, 0, 255, 0], [0, 0, 255, 51, 102, 153]])
        let image = try PNG.decode(png).image
        XCTAssertEqual(image.planes, [1, 0, 0, 0.2, 0, 1, 0, 0.4, 0, 0, 1, 0.6],
                       "expected red, green, blue, (51, 102, 153)/255 as planar R, G, B")
    }

    func testHandBuiltOneBitGrayDecodesToBlackAndWhite() throws {
        // 10 pixels: 1011001110 → row bytes 10110011 10000000.
        let png = PNGBytes.handBuilt(width: 10, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1011_0011, 0b1000_0000]])
        let decoded = try PNG.decode(png)
        XCTAssertEqual(Array(decoded.image.plane(0)), [1, 0, 1, 1, 0, 0, 1, 1, 1, 0],
                       "expected bits 1011001110 as white/black")
        XCTAssertEqual(decoded.bitDepth, 1, "expected the stored depth to be reported as 1")
    }

    func testHandBuiltPaletteWithTRNSDecodesColorsAndAlpha() throws {
        let png = PNGBytes.handBuilt(
            width: 3, height: 1, bitDepth: 2, colorType: 3, rows: [[0b0001_1000]],
            extra: [PNGChunk(type: "PLTE", data: [255, 0, 0, 0, 255, 0, 0, 0, 255]),
                    PNGChunk(type: "tRNS", data: [0, 128])])
        let decoded = try PNG.decode(png)
        XCTAssertEqual(decoded.image.planes, [1, 0, 0, 0, 1, 0, 0, 0, 1],
                       "expected indices 0, 1, 2 as red, green, blue")
        XCTAssertEqual(decoded.alpha, [0, Float(128) / 255, 1],
                       "expected tRNS alpha 0 and 128 for entries 0 and 1, opaque for entry 2")
    }
}
