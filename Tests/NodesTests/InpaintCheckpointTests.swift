import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

/// Inpainting checkpoints (9-channel UNets) through InpaintConditioning and
/// Sample; the sampling itself is checked against diffusers in
/// DiffusionTests/InpaintParityTests.
final class InpaintCheckpointTests: XCTestCase {
    private func workflow(model: String, conditioned: Bool) -> String {
        let examples = Fixture.repository.appendingPathComponent("Examples").path
        return """
            version: 1
            nodes:
              model:   {type: LoadCheckpoint, params: {path: "\(model)"}}
              text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a ball}}
              picture: {type: LoadImage, params: {path: "\(examples)/source.png"}}
              hole:    {type: LoadMask, params: {path: "\(examples)/mask.png"}}
              inpaint: {type: InpaintConditioning, inputs: {conditioning: text.conditioning, vae: model.vae, image: picture.image, mask: hole.mask}}
              sample:  {type: Sample, inputs: {unet: model.unet, conditioning: \(conditioned ? "inpaint" : "text").conditioning},
                        params: {steps: 2, width: 128, height: 128}}
            outputs:
              latent: sample.latent
            """
    }

    private func run(_ yaml: String) throws -> ExecutionResult {
        let file = Fixture.temporaryFolder("inpaint-ckpt").appendingPathComponent("w.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        return try runner.run(runner.validate(file), file: file, outputDirectory: file.deletingLastPathComponent())
    }

    func testAnInpaintingCheckpointSamplesAtTheSizeOfItsConditioning() throws {
        let result = try run(workflow(model: Fixture.tinyInpaint, conditioned: true))
        let latent = try XCTUnwrap(result.outputs["latent"]).asObject(LatentPayload.self).latent
        let source = try PNG.read(path: Fixture.repository.appendingPathComponent("Examples/source.png").path).image
        XCTAssertEqual(latent.shape, [1, 4, source.height / 8, source.width / 8],
                       "expected a 4-channel latent of the image's size (not Sample's width/height 128)")
    }

    func testAMissingOrMisplacedInpaintConditioningIsNamed() throws {
        XCTAssertThrowsError(try run(workflow(model: Fixture.tinyInpaint, conditioned: false))) { error in
            XCTAssertTrue("\(error)".contains("inpainting checkpoint (9 input channels)"), "\(error)")
            XCTAssertTrue("\(error)".contains("InpaintConditioning"), "expected the way out named: \(error)")
        }
        XCTAssertThrowsError(try run(workflow(model: Fixture.tinyModel, conditioned: true))) { error in
            XCTAssertTrue("\(error)".contains("InpaintConditioning is for inpainting checkpoints"), "\(error)")
        }
    }
}
