import Imaging
import XCTest

final class MaskTests: XCTestCase {
    func testThresholdMatchesDiffusersBinarize() throws {
        let mask = try Mask(width: 4, height: 1, values: [0, 0.49, 0.5, 0.9])
        XCTAssertEqual(mask.thresholded().values, [0, 0, 1, 1],
                       "expected values >= 0.5 to become 1 and the rest 0")
        XCTAssertEqual(mask.thresholded(at: 0.9).values, [0, 0, 0, 1], "expected only 0.9 to pass a 0.9 threshold")
    }

    func testInvertedSwapsInpaintAndKeep() throws {
        let mask = try Mask(width: 3, height: 1, values: [0, 0.25, 1])
        XCTAssertEqual(mask.inverted().values, [1, 0.75, 0], "expected 1 - value")
        XCTAssertEqual(mask.inverted().inverted(), mask, "expected inverting twice to give the mask back")
    }

    func testCoverageIsTheFractionToInpaint() throws {
        let mask = try Mask(width: 2, height: 2, values: [1, 0, 0, 1])
        XCTAssertEqual(mask.coverage, 0.5, "expected half the pixels marked")
    }

    func testWrongValueCountIsRefused() {
        assertImagingError(try Mask(width: 2, height: 3, values: [1]), "invalidImage for 1 value",
                           matches: { if case .invalidImage = $0 { return true } else { return false } },
                           mentioning: ["2 × 3 = 6"])
    }

    func testMaskFromGrayPNGKeepsGrayValuesExactly() throws {
        let values = (0..<16).map { Float($0 * 17) / 255 }
        let decoded = try PNG.decode(PNG.encode(try Mask(width: 4, height: 4, values: values)))
        XCTAssertEqual(try Mask(from: decoded).values, values, "expected gray levels to become mask values exactly")
    }

    func testMaskFromColorPNGUsesBT601Luminance() throws {
        let image = try Image(width: 3, height: 1, interleavedRGB: [1, 0, 0, 0, 1, 0, 1, 1, 1])
        let mask = try Mask(from: PNG.decode(PNG.encode(image)))
        XCTAssertEqual(mask.values[0], 0.299, accuracy: 1e-6, "expected pure red to weigh 0.299")
        XCTAssertEqual(mask.values[1], 0.587, accuracy: 1e-6, "expected pure green to weigh 0.587")
        XCTAssertEqual(mask.values[2], 1, accuracy: 1e-6, "expected white to be 1 (inpaint)")
    }

    func testMaskFromAlphaMarksTransparentPixelsForInpainting() throws {
        // Gray+alpha, 8-bit: alpha 0 (erased), 255 (opaque), 51 (20 %).
        let raster = RawPNG(width: 3, height: 1, colorType: .grayAlpha, bitDepth: 8,
                            rows: [200, 0, 200, 255, 200, 51])
        let mask = try Mask(from: PNG.decode(PNG.encode(raster)), fromAlpha: true)
        XCTAssertEqual(mask.values[0], 1, "expected a transparent pixel to be inpainted (1)")
        XCTAssertEqual(mask.values[1], 0, "expected an opaque pixel to be kept (0)")
        XCTAssertEqual(mask.values[2], 0.8, accuracy: 1e-6, "expected alpha 51/255 to give 1 - 0.2")
    }

    func testMaskFromAlphaOfAnOpaquePNGIsRefused() throws {
        let decoded = try PNG.decode(PNG.encode(Image(width: 2, height: 2)))
        assertImagingError(try Mask(from: decoded, fromAlpha: true), "noAlpha for an RGB PNG",
                           matches: { $0 == .noAlpha(source: "<memory>") },
                           mentioning: ["<memory>", "no alpha"])
    }
}
