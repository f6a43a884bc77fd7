import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

/// SaveImage as JPEG and WebP: the workflow travels in the metadata and
/// re-runs as from a PNG.
final class SaveImageFormatTests: XCTestCase {
    func testJPEGAndWebPOutputsEmbedTheWorkflowThatRemakesThem() throws {
        let examples = Fixture.repository.appendingPathComponent("Examples").path
        for (format, ext) in [("jpeg", "jpg"), ("webp", "webp")] {
            let folder = Fixture.temporaryFolder("save-\(format)")
            let file = folder.appendingPathComponent("w.yaml")
            try """
                version: 1
                inputs:
                  quality: {type: Int, default: 90}
                nodes:
                  picture: {type: LoadImage, params: {path: "\(examples)/source.png"}}
                  small:   {type: ResizeImage, inputs: {image: picture.image}, params: {width: 64, height: 48}}
                  save:    {type: SaveImage, inputs: {image: small.image}, params: {name: out, format: \(format), quality: $quality}}
                outputs:
                  image: small.image
                """.write(to: file, atomically: true, encoding: .utf8)
            let runner = WorkflowRunner()
            _ = try runner.run(runner.validate(file), file: file, outputDirectory: folder.appendingPathComponent("out"))
            let written = folder.appendingPathComponent("out/out.\(ext)").path
            let image = try ImageFile.read(path: written)
            XCTAssertEqual([image.width, image.height], [64, 48], "\(format): the image")
            let embedded = try XCTUnwrap(ImageFile.text(forKey: "pilot:workflow", inFileAt: written), "\(format): the workflow")
            XCTAssertEqual(try ImageFile.text(forKey: "pilot:parameters", inFileAt: written), "{\"quality\":90}")

            let again = folder.appendingPathComponent("again.json")
            try embedded.write(to: again, atomically: true, encoding: .utf8)
            _ = try runner.run(runner.validate(again), file: again, outputDirectory: folder.appendingPathComponent("out2"))
            let remade = try Data(contentsOf: folder.appendingPathComponent("out2/out.\(ext)"))
            XCTAssertEqual(try ImageFile.decode(remade).planes, image.planes, "\(format): the embedded workflow remakes the image")
        }
    }
}
