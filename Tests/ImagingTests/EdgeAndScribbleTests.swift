import Foundation
import Imaging
import XCTest

/// Known answers for the ControlNet preprocessors on small synthetic images.
final class CannyEdgesTests: XCTestCase {
    /// A `size`² grey image whose pixel (x, y) is `level(x, y)` of 255 in every channel.
    private func grey(_ size: Int = 32, _ level: (Int, Int) -> Int) -> Image {
        var planes = [Float](repeating: 0, count: 3 * size * size)
        for y in 0..<size {
            for x in 0..<size {
                let v = Float(level(x, y)) / 255
                for c in 0..<3 { planes[(c * size + y) * size + x] = v }
            }
        }
        return try! Image(width: size, height: size, planes: planes)
    }

    private func edgePixels(_ mask: Mask) -> Set<[Int]> {
        var out = Set<[Int]>()
        for y in 0..<mask.height { for x in 0..<mask.width where mask[x, y] == 1 { out.insert([x, y]) } }
        return out
    }

    /// Whether a 4-connected walk over non-edge pixels gets from (0, 0) to `target`.
    private func reachable(_ mask: Mask, _ target: (Int, Int)) -> Bool {
        var seen = Set<[Int]>([[0, 0]]), stack = [[0, 0]]
        while let p = stack.popLast() {
            if p == [target.0, target.1] { return true }
            for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
                let q = [p[0] + dx, p[1] + dy]
                guard q[0] >= 0, q[0] < mask.width, q[1] >= 0, q[1] < mask.height, mask[q[0], q[1]] == 0,
                      seen.insert(q).inserted else { continue }
                stack.append(q)
            }
        }
        return false
    }

    /// A white square on black: its outline, one pixel wide, closed. As in
    /// OpenCV, the left/top edges fall on the dark side of the step and the
    /// right/bottom edges on the bright side (ties go to the right/lower pixel's neighbour).
    func testSquareGivesItsOutline() {
        let square = grey { x, y in (10...19).contains(x) && (10...19).contains(y) ? 255 : 0 }
        let edges = CannyEdges.detect(square, sigma: 0)
        let pixels = edgePixels(edges)
        XCTAssertEqual(pixels.filter { $0[1] == 14 }.map { $0[0] }.sorted(), [9, 19], "a middle row crosses the outline twice")
        XCTAssertEqual(pixels.filter { $0[0] == 14 }.map { $0[1] }.sorted(), [9, 19], "a middle column crosses it twice")
        for p in pixels {
            XCTAssertTrue((9...19).contains(p[0]) && (9...19).contains(p[1]), "edge \(p) lies off the outline")
            XCTAssertFalse((11...17).contains(p[0]) && (11...17).contains(p[1]), "edge \(p) lies inside the square")
        }
        XCTAssertFalse(reachable(edges, (14, 14)), "the outline is closed")
        XCTAssertGreaterThanOrEqual(pixels.count, 36, "four sides of about ten pixels")

        // The classic algorithm (blurred first) finds the same closed outline.
        let blurred = CannyEdges.detect(square, sigma: 1)
        XCTAssertEqual(edgePixels(blurred).filter { $0[1] == 14 }.count, 2)
        XCTAssertFalse(reachable(blurred, (14, 14)), "the blurred outline is closed too")
        XCTAssertTrue(edgePixels(blurred).allSatisfy { (8...20).contains($0[0]) && (8...20).contains($0[1]) })
    }

    /// Pixel for pixel what cv2.Canny 4.14 gives (Tests/Reference/make_canny_fixture.py) on a
    /// noisy colour picture, with the L1 and the L2 gradient.
    func testMatchesOpenCVOnAPicture() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/canny")
        func read(_ name: String) throws -> DecodedPNG { try PNG.read(path: folder.appendingPathComponent(name).path) }
        let picture = try read("input.png").image
        for (file, edges) in [("cv2_l1_100_200.png", CannyEdges.detect(picture, sigma: 0)),
                              ("cv2_l2_50_120.png", CannyEdges.detect(picture, low: 50, high: 120, sigma: 0, l2Gradient: true))] {
            let expected = try Mask(from: read(file))
            XCTAssertGreaterThan(expected.coverage, 0.1, file)
            let differing = zip(edges.values, expected.values).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(file): pixels that differ from OpenCV")
        }
    }

    func testFlatImageHasNoEdges() {
        XCTAssertEqual(CannyEdges.detect(grey { _, _ in 128 }).values.reduce(0, +), 0)
    }

    /// A vertical step of 30 levels has Sobel magnitude 4·30 = 120: above the
    /// default low threshold (100) but below high (200), so alone it is no edge.
    func testThresholdsOnTheSobelMagnitude() {
        let step = grey { x, _ in x < 16 ? 100 : 130 }
        XCTAssertEqual(edgePixels(CannyEdges.detect(step, sigma: 0)).count, 0, "weak only: nothing starts an edge")
        let strong = edgePixels(CannyEdges.detect(step, low: 100, high: 119, sigma: 0))
        XCTAssertEqual(strong, Set((0..<32).map { [15, $0] }), "above high: the dark side of the step, every row")
        XCTAssertEqual(edgePixels(CannyEdges.detect(step, low: 120, high: 119, sigma: 0)).count, 0,
                       "a pixel must also exceed low (strictly, as cv2.Canny)")
        XCTAssertEqual(edgePixels(CannyEdges.detect(step, low: 10, high: 119, sigma: 0, l2Gradient: true)).count, 32,
                       "a pure horizontal gradient has the same L1 and L2 magnitude")
    }

    /// Weak pixels survive only when 8-connected to a strong one.
    func testHysteresisKeepsWeakEdgesConnectedToStrongOnes() {
        // Left of x = 8 black; right of it 60 (strong, 240) in the top half and 30 (weak, 120) below.
        let mixed = grey { x, y in x < 8 ? 0 : (y < 16 ? 60 : 30) }
        let kept = edgePixels(CannyEdges.detect(mixed, sigma: 0))
        for y in 0..<32 {
            XCTAssertTrue(kept.contains([7, y]) || kept.contains([8, y]), "row \(y) of the step has its edge")
        }
        XCTAssertTrue((20..<32).allSatisfy { kept.contains([7, $0]) }, "the weak lower half continues the strong upper half")
        XCTAssertTrue(kept.contains { $0[0] == 28 }, "the weak horizontal step at y = 16 joins them too")

        let weakOnly = grey { x, _ in x < 8 ? 0 : 30 }
        XCTAssertEqual(edgePixels(CannyEdges.detect(weakOnly, sigma: 0)).count, 0, "no strong seed: no edges")
    }

    /// The strongest channel decides, as cv2.Canny on a colour image.
    func testColourEdgesUseTheStrongestChannel() throws {
        var planes = [Float](repeating: 0, count: 3 * 16 * 16)
        for y in 0..<16 { for x in 8..<16 { planes[(2 * 16 + y) * 16 + x] = 1 } }  // blue right half
        let edges = CannyEdges.detect(try Image(width: 16, height: 16, planes: planes), sigma: 0)
        XCTAssertEqual(edgePixels(edges), Set((0..<16).map { [7, $0] }))
    }
}

final class ScribbleTests: XCTestCase {
    private func image(_ size: Int = 16, background: Float, stroke: Float, on: (Int, Int) -> Bool) -> Image {
        var planes = [Float](repeating: background, count: 3 * size * size)
        for y in 0..<size { for x in 0..<size where on(x, y) { for c in 0..<3 { planes[(c * size + y) * size + x] = stroke } } }
        return try! Image(width: size, height: size, planes: planes)
    }

    private func strokePixels(_ mask: Mask) -> Set<[Int]> {
        var out = Set<[Int]>()
        for y in 0..<mask.height { for x in 0..<mask.width where mask[x, y] == 1 { out.insert([x, y]) } }
        return out
    }

    func testPenOnPaperBecomesWhiteOnBlack() {
        let line = Set((0..<16).map { [$0, 8] })
        let pen = image(background: 1, stroke: 0) { _, y in y == 8 }
        XCTAssertEqual(strokePixels(Scribble.hint(pen)), line, "auto: a light picture has dark strokes")
        XCTAssertEqual(strokePixels(Scribble.hint(pen, strokes: .dark)), line)
        let hint = image(background: 0, stroke: 1) { _, y in y == 8 }
        XCTAssertEqual(strokePixels(Scribble.hint(hint)), line, "auto: a dark picture already has light strokes")
        XCTAssertEqual(strokePixels(Scribble.hint(hint, strokes: .dark)).count, 16 * 15,
                       "forcing dark strokes on a hint marks its ground instead")
    }

    /// ControlNet's scribble demo: any channel darker than the threshold is a stroke.
    func testThresholdOnTheDarkestChannel() throws {
        let grey = image(background: 1, stroke: 0.6) { x, _ in x == 3 }
        XCTAssertEqual(strokePixels(Scribble.hint(grey)).count, 0, "0.6 is not darker than 0.5")
        XCTAssertEqual(strokePixels(Scribble.hint(grey, threshold: 0.7)), Set((0..<16).map { [3, $0] }))
        var planes = [Float](repeating: 1, count: 3 * 4 * 4)
        planes[5] = 0.1  // red channel of pixel (1, 1): a cyan pixel
        XCTAssertEqual(strokePixels(Scribble.hint(try Image(width: 4, height: 4, planes: planes))), [[1, 1]])
    }

    func testThickeningDilatesByADisc() {
        let dot = image(background: 1, stroke: 0) { x, y in x == 8 && y == 8 }
        XCTAssertEqual(strokePixels(Scribble.hint(dot)).count, 1)
        let thick = strokePixels(Scribble.hint(dot, thickness: 2))
        XCTAssertEqual(thick.count, 13, "a disc of radius 2: 1 + 4 + 4 + 4 pixels")
        XCTAssertTrue(thick.contains([10, 8]) && thick.contains([9, 9]) && !thick.contains([10, 10]))
        let corner = image(background: 1, stroke: 0) { x, y in x == 0 && y == 0 }
        XCTAssertEqual(strokePixels(Scribble.hint(corner, thickness: 1)), [[0, 0], [1, 0], [0, 1]], "clipped at the border")
    }

    func testGreyImageFromMaskRepeatsTheValues() throws {
        let mask = try Mask(width: 2, height: 1, values: [0.25, 1])
        let image = Image(grey: mask)
        XCTAssertEqual(image.planes, [0.25, 1, 0.25, 1, 0.25, 1])
    }
}
