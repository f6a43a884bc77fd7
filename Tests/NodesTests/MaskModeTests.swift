import Foundation
import Imaging
import Nodes
import Tensors
import Workflow
import XCTest

/// `mask_mode` on Sample and PILOTOptimize: soft masks reach the samplers.
/// The rule itself is checked against PyTorch in DiffusionTests.
final class MaskModeTests: XCTestCase {
    /// Runs blended Sample and PILOT on `mask` with `mode`; the two latents.
    private func latents(mask: Mask, mode: String) throws -> [Tensor] {
        let folder = Fixture.temporaryFolder("mask-mode")
        try PNG.write(mask, to: folder.appendingPathComponent("mask.png").path)
        let yaml = """
            version: 1
            nodes:
              model:   {type: LoadCheckpoint, params: {path: "\(Fixture.tinyModel)"}}
              text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a ball}}
              picture: {type: LoadImage, params: {path: "\(Fixture.repository.appendingPathComponent("Examples/source.png").path)"}}
              hole:    {type: LoadMask, params: {path: mask.png}}
              source:  {type: VAEEncode, inputs: {vae: model.vae, image: picture.image}}
              blended: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 4, mask_mode: \(mode)}}
              pilot:   {type: PILOTOptimize, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 4, interval: 2, inner_steps: 1, coherence: 0.5, mask_mode: \(mode)}}
              blend:   {type: Blend, inputs: {state: pilot.state}}
            outputs:
              blended: blended.latent
              pilot: blend.latent
            """
        let file = folder.appendingPathComponent("w.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        let result = try runner.run(runner.validate(file), file: file, outputDirectory: folder)
        return try ["blended", "pilot"].map { try XCTUnwrap(result.outputs[$0]).asObject(LatentPayload.self).latent }
    }

    private func sourceSize() throws -> (Int, Int) {
        let image = try PNG.read(path: Fixture.repository.appendingPathComponent("Examples/source.png").path).image
        return (image.width, image.height)
    }

    func testAHardMaskOnLatentCellsGivesTheSameRunInEitherMode() throws {
        let (width, height) = try sourceSize()
        var values = [Float](repeating: 0, count: width * height)
        for y in 16..<48 { for x in 24..<64 { values[y * width + x] = 1 } }  // whole 8 × 8 cells
        let mask = try Mask(width: width, height: height, values: values)
        let hard = try latents(mask: mask, mode: "hard"), soft = try latents(mask: mask, mode: "soft")
        XCTAssertEqual(hard[0].scalars, soft[0].scalars, "expected differential blending to equal the plain blend on a hard mask")
        XCTAssertEqual(hard[1].scalars, soft[1].scalars, "expected PILOT's soft path to equal its hard one on a hard mask")
    }

    func testAFeatheredMaskChangesTheRunOnlyInSoftMode() throws {
        let (width, height) = try sourceSize()
        var values = [Float](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width {
                let d = (Float(x - 40) * Float(x - 40) + Float(y - 32) * Float(y - 32)).squareRoot()
                values[y * width + x] = min(max(1 - (d - 10) / 20, 0), 1)
            }
        }
        let feathered = try Mask(width: width, height: height, values: values)
        let hard = try latents(mask: feathered, mode: "hard"), soft = try latents(mask: feathered, mode: "soft")
        XCTAssertNotEqual(hard[0].scalars, soft[0].scalars, "expected the soft edge to change the blended run")
        XCTAssertNotEqual(hard[1].scalars, soft[1].scalars, "expected the soft edge to change the PILOT run")
    }
}
