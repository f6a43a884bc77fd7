import Imaging
import XCTest

final class ImageTests: XCTestCase {
    func testPlanesAreChannelMajorRowByRow() throws {
        let width = 3, height = 2
        let planes = (0..<18).map(Float.init)
        let image = try Image(width: width, height: height, planes: planes)
        for channel in 0..<3 {
            for y in 0..<height {
                for x in 0..<width {
                    XCTAssertEqual(image[channel, x, y], Float((channel * height + y) * width + x),
                                   "expected sample (c \(channel), x \(x), y \(y)) at planes[(c*H + y)*W + x]")
                }
            }
        }
        XCTAssertEqual(Array(image.plane(1)), Array(planes[6..<12]), "expected plane 1 to be the green block")
    }

    func testInterleavedInitializerDeinterleavesIntoPlanes() throws {
        let image = try Image(width: 2, height: 1, interleavedRGB: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        XCTAssertEqual(image.planes, [0.1, 0.4, 0.2, 0.5, 0.3, 0.6],
                       "expected r r g g b b from r g b r g b")
        XCTAssertTrue(image.pixel(x: 1, y: 0) == (0.4, 0.5, 0.6), "expected pixel (1, 0) to be (0.4, 0.5, 0.6)")
    }

    func testFillInitializerAndSubscriptSetter() {
        var image = Image(width: 2, height: 2, red: 1, green: 0.5, blue: 0)
        image[2, 1, 1] = 0.25
        XCTAssertTrue(image.pixel(x: 0, y: 0) == (1, 0.5, 0), "expected the fill color at (0, 0)")
        XCTAssertEqual(image[2, 1, 1], 0.25, "expected the blue sample written at (1, 1) to read back")
        XCTAssertEqual(image.planes.count, 12, "expected 3 planes of 2×2")
    }

    func testWrongSampleCountIsRefusedWithTheExpectedCount() {
        assertImagingError(try Image(width: 2, height: 2, planes: [0, 0, 0]), "invalidImage for 3 samples",
                           matches: { if case .invalidImage = $0 { return true } else { return false } },
                           mentioning: ["3 × 2 × 2 = 12"])
    }

    func testNonPositiveSizeIsRefused() {
        assertImagingError(try Image(width: 0, height: 2, planes: []), "invalidImage for width 0",
                           matches: { if case .invalidImage = $0 { return true } else { return false } },
                           mentioning: ["positive", "0×2"])
    }
}
