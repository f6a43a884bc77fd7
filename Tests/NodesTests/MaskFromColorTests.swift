import Foundation
import Imaging
@testable import Nodes
import Workflow
import XCTest

/// MaskFromColor: the pixels of one colour, within a tolerance.
final class MaskFromColorTests: XCTestCase {
    private func mask(_ image: Image, color: String, tolerance: Double = 0.02) throws -> Mask {
        let values: [String: Value] = ["image": .object(image, type: .image), "color": .string(color), "tolerance": .float(tolerance)]
        return try MaskFromColor().run(NodeInputs(values, paths: .currentDirectory), .standalone())["mask"]!.asObject(Mask.self)
    }

    func testThePaintedRegionComesBackAsTheMask() throws {
        // A grey 6 × 4 picture with magenta painted over columns 2–3 of rows 1–2, one pixel almost magenta.
        var planes = [Float](repeating: 0.5, count: 3 * 24)
        var expected = [Float](repeating: 0, count: 24)
        for y in 1...2 { for x in 2...3 {
            planes[y * 6 + x] = 1; planes[24 + y * 6 + x] = 0; planes[48 + y * 6 + x] = 1
            expected[y * 6 + x] = 1
        } }
        planes[24 + 0] = 3.0 / 255; planes[0] = 1; planes[48] = 1  // (0, 0): magenta off by 3/255 in green
        let image = try Image(width: 6, height: 4, planes: planes)
        XCTAssertEqual(try mask(image, color: "#ff00ff").values, expected.enumerated().map { $0.offset == 0 ? 1 : $0.element },
                       "expected the painted cells, and the pixel 3/255 away inside a 0.02 tolerance")
        XCTAssertEqual(try mask(image, color: "255, 0, 255", tolerance: 0).values, expected, "expected r,g,b and an exact match")
        XCTAssertEqual(MaskFromColor.parse("#00ff80"), [0, 1, Float(128) / 255])
    }

    func testAColourThatIsNotOneIsRefusedWithTheForms() throws {
        let image = try Image(width: 2, height: 2, planes: [Float](repeating: 0, count: 12))
        for bad in ["magenta", "#ff00f", "256,0,0", "1,2"] {
            XCTAssertThrowsError(try mask(image, color: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("expected #rrggbb or r,g,b"), "\(bad): \(error)")
            }
        }
    }
}
