import Foundation
import Imaging
import SafeTensors
import XCTest

/// GrowMask and FeatherMask against SciPy (Tests/Reference/make_mask_fixtures.py).
final class MaskOperationTests: XCTestCase {
    private static let fixture = try! SafeTensorsFile(
        path: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/masks/mask_ops.safetensors").path)

    private func mask(_ name: String) throws -> Mask {
        try Mask(width: 61, height: 47, values: Self.fixture.floats(name))
    }

    func testGrowingAndShrinkingEqualSciPysGreyMorphologyExactly() throws {
        let source = try mask("mask")
        for r in [1, 3, 6] {
            for (name, pixels, shape) in [("grow_round_\(r)", r, Mask.GrowShape.round), ("shrink_round_\(r)", -r, .round),
                                          ("grow_square_\(r)", r, .square)] {
                let expected = try mask(name).values, got = source.grown(by: pixels, shape: shape).values
                let wrong = zip(expected, got).filter { $0 != $1 }.count
                XCTAssertEqual(wrong, 0, "\(name): expected SciPy's values exactly; \(wrong) of \(got.count) differ")
            }
        }
    }

    func testFeatheringMatchesSciPysGaussianFilterWithinOneLevel() throws {
        let source = try mask("mask")
        for (name, sigma) in [("blur_0p8", 0.8), ("blur_2p0", 2.0), ("blur_5p5", 5.5)] {
            let expected = try mask(name).values, got = source.blurred(sigma: sigma).values
            let worst = zip(expected, got).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1.0 / 255, "\(name): expected SciPy's gaussian_filter within 1/255, worst \(worst)")
        }
    }

    func testCombiningBoundingBoxAndCropsDoWhatTheySay() throws {
        let a = try Mask(width: 3, height: 2, values: [0, 0.5, 1, 0, 0, 0.25])
        let b = try Mask(width: 3, height: 2, values: [1, 0.25, 0.5, 0, 0, 0])
        XCTAssertEqual(try a.combined(with: b, .union).values, [1, 0.5, 1, 0, 0, 0.25])
        XCTAssertEqual(try a.combined(with: b, .intersection).values, [0, 0.25, 0.5, 0, 0, 0])
        XCTAssertEqual(try a.combined(with: b, .difference).values, [0, 0.25, 0.5, 0, 0, 0.25])
        XCTAssertThrowsError(try a.combined(with: Mask(width: 2, height: 2), .union), "sizes differ")
        let box = try XCTUnwrap(a.boundingBox)
        XCTAssertTrue(box == (1, 0, 2, 2), "expected the box of the nonzero values, got \(box)")
        XCTAssertNil(Mask(width: 4, height: 4).boundingBox, "an empty mask has no box")
        XCTAssertEqual(try a.cropped(x: 1, y: 0, width: 2, height: 2).values, [0.5, 1, 0, 0.25])
        XCTAssertThrowsError(try a.cropped(x: 2, y: 0, width: 2, height: 2), "a crop outside the mask")
        // Growing by zero, or a one-pixel mask by one in a 1×1 image, changes nothing.
        XCTAssertEqual(a.grown(by: 0), a)
        XCTAssertEqual(try Mask(width: 1, height: 1, values: [0.5]).grown(by: 3).values, [0.5])
    }
}
