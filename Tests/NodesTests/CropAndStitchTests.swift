import Diffusion
import Foundation
import Imaging
@testable import Nodes
import Workflow
import XCTest

/// Crop-and-stitch around PILOT: a large picture with a small hole is
/// processed at the model's size and pasted back without touching the rest.
final class CropAndStitchTests: XCTestCase {
    /// A 1000×750 JPEG with a 60×40 hole near its lower right corner goes
    /// through text-inpaint-crop: the result is 1000×750, every pixel beyond
    /// the blend band is the input's bit for bit, and PILOT ran on the crop.
    func testALargePictureWithASmallHoleIsInpaintedOnItsCropAndStitchedBack() throws {
        let folder = Fixture.temporaryFolder("crop")
        let (width, height) = (1000, 750)
        let imagePath = Fixture.repository.appendingPathComponent("Tests/Fixtures/codecs/large.jpg").path
        var hole = Mask(width: width, height: height)
        for y in 690..<730 { for x in 920..<980 { hole[x, y] = 1 } }
        let maskPath = folder.appendingPathComponent("hole.png").path
        try PNG.write(hole, to: maskPath)

        // The template, with the crop's latent as a second output to look at.
        let template = try String(contentsOf: Fixture.template("text-inpaint-crop"), encoding: .utf8)
        let url = folder.appendingPathComponent("crop.yaml")
        try (template + "  latent: source.latent\n").write(to: url, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        var settings = Fixture.quickSettings("text-inpaint-crop")
        settings.merge(["image": imagePath, "mask": maskPath, "crop_size": "128", "margin": "32", "grow": "4", "feather": "3"]) { $1 }
        let result = try runner.run(runner.validate(url), file: url, set: settings, outputDirectory: folder.appendingPathComponent("out"))
        let output = try XCTUnwrap(result.outputs["image"]).asObject(Image.self)
        XCTAssertEqual(output.width, width)
        XCTAssertEqual(output.height, height)

        // The band reaches grow + 4σ (+1 for rounding) beyond the hole; beyond it, and everywhere the PNG round trip
        // kept, the output is the input exactly.
        let reach = 4 + 12 + 1
        let input = try ImageFile.read(path: imagePath)
        var changedInside = 0, changedOutside = 0
        for y in 0..<height {
            for x in 0..<width {
                let near = x >= 920 - reach && x < 980 + reach && y >= 690 - reach && y < 730 + reach
                let same = (0..<3).allSatisfy { output[$0, x, y] == input[$0, x, y] }
                if !same { if near { changedInside += 1 } else { changedOutside += 1 } }
            }
        }
        XCTAssertEqual(changedOutside, 0, "expected every pixel beyond the blend band to be the input's exactly")
        XCTAssertGreaterThan(changedInside, 60 * 40 / 2, "expected the hole repainted")

        // PILOT saw the crop (128×128 → a 16×16 latent), not the photo (a 125×93 latent).
        let latent = try XCTUnwrap(result.outputs["latent"]).asObject(LatentPayload.self).latent
        XCTAssertEqual(latent.shape, [1, 4, 16, 16], "expected PILOT to run on the crop's latent")
    }

    func testTheCropPlanKeepsTheModelsSizeAndStaysInsideThePicture() throws {
        // A 1-pixel hole in the top left corner of a 300×200 picture.
        var corner = Mask(width: 300, height: 200)
        corner[0, 0] = 1
        let plan = try CropToMask.plan(mask: corner, margin: 16, context: 1, size: 128, multiple: 64)
        XCTAssertEqual(plan.region.x, 0)
        XCTAssertEqual(plan.region.y, 0)
        XCTAssertTrue(plan.output.0 % 64 == 0 && plan.output.1 % 64 == 0, "expected sides multiples of 64, got \(plan.output)")
        // No resize: the crop widened to multiples of 64 where the picture allows.
        var middle = Mask(width: 300, height: 200)
        for y in 90..<110 { for x in 140..<170 { middle[x, y] = 0.5 } }
        let kept = try CropToMask.plan(mask: middle, margin: 8, context: 1, size: 0, multiple: 64)
        XCTAssertEqual(kept.output.0, 64)
        XCTAssertEqual(kept.output.1, 64)
        XCTAssertEqual(kept.region.width, 64)
        XCTAssertEqual(kept.region.height, 64)
        XCTAssertThrowsError(try CropToMask.plan(mask: Mask(width: 10, height: 10), margin: 0, context: 1, size: 64, multiple: 64)) { error in
            XCTAssertTrue("\(error)".contains("the mask is empty"), "expected an empty mask refused: \(error)")
        }
    }
}

/// CropLike: a second image cut as the picture was.
final class CropLikeTests: XCTestCase {
    func testASketchIsCutWhereThePictureWasAndAtItsSize() throws {
        let (w, h) = (96, 80)
        let picture = try Image(width: w, height: h, planes: (0..<(3 * w * h)).map { Float($0 % 251) / 250 })
        var hole = Mask(width: w, height: h)
        for y in 50..<60 { for x in 10..<20 { hole[x, y] = 1 } }
        let cropped = try CropToMask().run(NodeInputs(["image": .object(picture, type: .image), "mask": .object(hole, type: .mask),
                                                       "margin": .int(8), "context": .float(1), "size": .int(64),
                                                       "multiple": .int(32)], paths: .currentDirectory), .standalone())
        let crop = try cropped["image"]!.asObject(Image.self)
        func like(_ image: Image) throws -> Image {
            try CropLike().run(NodeInputs(["stitch": cropped["stitch"]!, "image": .object(image, type: .image)],
                                          paths: .currentDirectory), .standalone())["image"]!.asObject(Image.self)
        }
        XCTAssertEqual(try like(picture).planes, crop.planes, "the picture itself is cut exactly as CropToMask cut it")
        let half = picture.resized(width: w / 2, height: h / 2)
        let fromHalf = try like(half)
        XCTAssertEqual([fromHalf.width, fromHalf.height], [crop.width, crop.height], "a half-size sketch gives the crop's size")
    }
}

/// PadImage: the picture kept, the new area filled and masked, sides rounded up.
final class PadImageTests: XCTestCase {
    private func pad(_ image: Image, _ params: [String: Value]) throws -> (Image, Mask) {
        var values: [String: Value] = ["image": .object(image, type: .image), "left": .int(0), "top": .int(0), "right": .int(0),
                                       "bottom": .int(0), "multiple": .int(8), "fill": .string("edge"), "color": .float(0.5),
                                       "feather": .int(16)]
        values.merge(params) { $1 }
        let out = try PadImage().run(NodeInputs(values, paths: .currentDirectory), .standalone())
        return (try out["image"]!.asObject(Image.self), try out["mask"]!.asObject(Mask.self))
    }

    func testTeleaContinuesThePictureOutwardAndKeepsIt() throws {
        // A 1-pixel-wide vertical stripe picture: telea carries each row's colour outward.
        let picture = try Image(width: 2, height: 3, planes: [0.1, 0.1, 0.5, 0.5, 0.9, 0.9] + [Float](repeating: 0.3, count: 12))
        let (image, mask) = try pad(picture, ["left": .int(3), "right": .int(3), "multiple": .int(1), "fill": .string("telea"),
                                              "feather": .int(0)])
        XCTAssertEqual([image.width, image.height], [8, 3])
        for y in 0..<3 {
            for x in 3..<5 { XCTAssertEqual(image.planes[y * 8 + x], picture.planes[y * 2 + x - 3], "the picture is kept") }
            XCTAssertEqual(image.planes[y * 8 + 0], [0.1, 0.5, 0.9][y], accuracy: 0.1, "row \(y) continued to the left edge")
            XCTAssertEqual(mask.values[y * 8 + 0], 1)
        }
        let tiny = try pad(try Image(width: 1, height: 1, planes: [0.2, 0.4, 0.6]), ["right": .int(7), "bottom": .int(7),
                                                                                     "fill": .string("telea")]).0
        XCTAssertEqual(tiny.planes.prefix(64).map { abs($0 - 0.2) }.max()!, 0, accuracy: 1e-5, "one pixel fills everything with itself")
    }

    func testThePictureIsKeptTheNewAreaFilledAndTheMaskFadesIntoThePicture() throws {
        let picture = try Image(width: 3, height: 2, planes: (0..<18).map { Float($0) / 20 })
        for fill in ["edge", "mirror", "color"] {
            let (image, mask) = try pad(picture, ["left": .int(2), "right": .int(1), "multiple": .int(4), "fill": .string(fill),
                                                  "feather": .int(1), "color": .float(0.25)])
            XCTAssertEqual(image.width, 8, "\(fill): 3 + 2 + 1, grown to a multiple of 4")
            XCTAssertEqual(image.height, 4, "\(fill): 2, the bottom grown to a multiple of 4")
            for y in 0..<2 { for x in 0..<3 { for c in 0..<3 {
                XCTAssertEqual(image[c, x + 2, y], picture[c, x, y], "\(fill): the picture's pixels are unchanged")
            } } }
            XCTAssertEqual(mask[0, 0], 1, "\(fill): the new area is masked")
            XCTAssertEqual(mask[2, 0], 0.5, "\(fill): the picture's first column fades (feather 1)")
            XCTAssertEqual(mask[3, 0], 0, "\(fill): farther in, the picture is kept")
            XCTAssertEqual(mask[4, 0], 0.5, "\(fill): the last column, next to the right padding")
            XCTAssertEqual(mask[5, 0], 1, "\(fill): the right padding")
            switch fill {
            case "edge": XCTAssertEqual(image[0, 0, 0], picture[0, 0, 0])
            case "mirror": XCTAssertEqual(image[0, 0, 0], picture[0, 2, 0], "mirror without repeating the edge: x = −2 → 2")
            default: XCTAssertEqual(image[1, 7, 1], 0.25)
            }
        }
    }
}
