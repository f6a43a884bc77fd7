import Foundation
import Imaging
import XCTest

/// HoleFill.telea: the fast-marching infill.
final class HoleFillTests: XCTestCase {
    private func ramp(_ w: Int, _ h: Int) throws -> Image {
        var planes = [Float](repeating: 0, count: 3 * w * h)
        for y in 0..<h { for x in 0..<w {
            planes[y * w + x] = Float(x) / Float(w - 1)
            planes[w * h + y * w + x] = Float(y) / Float(h - 1)
            planes[2 * w * h + y * w + x] = 0.25
        } }
        return try Image(width: w, height: h, planes: planes)
    }

    func testAHoleInASmoothPictureIsContinuedAndTheRestKept() throws {
        let (w, h) = (48, 40)
        let image = try ramp(w, h)
        let hole = (0..<(w * h)).map { p -> Bool in
            let (x, y) = (Float(p % w) - 20, Float(p / w) - 18)
            return x * x + y * y <= 64
        }
        let filled = try HoleFill.telea(image, hole: hole)
        var worst: Float = 0
        for p in 0..<(w * h) {
            for c in 0..<3 {
                let (got, was) = (filled.planes[c * w * h + p], image.planes[c * w * h + p])
                if hole[p] {
                    worst = max(worst, abs(got - was))
                } else {
                    XCTAssertEqual(got, was, "pixel \(p) outside the hole must be unchanged")
                }
            }
        }
        XCTAssertLessThan(worst, 0.01, "expected the ramp continued into a 17-pixel hole, worst error \(worst)")
        XCTAssertEqual(filled.planes[2 * w * h + 18 * w + 20], 0.25, accuracy: 1e-6, "a flat channel stays flat")
    }

    func testEveryHolePixelIsReachedAndStaysAColour() throws {
        // Noise around a large, oddly shaped hole touching the border.
        let (w, h) = (64, 32)
        var generator = SystemRandomNumberGenerator()
        let planes = (0..<(3 * w * h)).map { _ in Float.random(in: 0.2...0.7, using: &generator) }
        let hole = (0..<(w * h)).map { p in p % w < 40 && (p / w + p % w) % 7 != 0 || p / w < 3 }
        let filled = try HoleFill.telea(try Image(width: w, height: h, planes: planes), hole: hole)
        for (p, inHole) in hole.enumerated() where inHole {
            for c in 0..<3 {
                let v = filled.planes[c * w * h + p]
                XCTAssertTrue(v.isFinite && v >= 0 && v <= 1, "pixel \(p): \(v) is not a colour value")
                XCTAssertNotEqual(v, planes[c * w * h + p], "pixel \(p) was filled, not left as it was")
            }
        }
    }

    func testAHoleThatIsTheWholePictureIsRefused() throws {
        let image = try ramp(4, 4)
        XCTAssertThrowsError(try HoleFill.telea(image, hole: [Bool](repeating: true, count: 16))) { error in
            XCTAssertTrue("\(error)".contains("nothing to fill from"), "\(error)")
        }
        XCTAssertThrowsError(try HoleFill.telea(image, hole: [true]), "a hole of the wrong size")
    }
}
