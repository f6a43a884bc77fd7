import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// Soft masks: the averaged keep-mask and differential blending against the
/// same rule written in PyTorch on the tiny SD1 UNet with diffusers' DDIM
/// scheduler (Tests/Reference/make_differential_fixture.py).
final class DifferentialBlendTests: XCTestCase {
    private let reference = try! SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_differential.safetensors").path)
    private func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }

    func testTheSoftKeepMaskIsOneMinusTheCellMean() throws {
        let masks = try InpaintingMasks(softPixelMask: try tensor("mask_pixels"))
        assertClose(masks.keep, try tensor("keep"), tolerance: 1e-6, "K = 1 − avg_pool2d(mask, 8)")
        XCTAssertEqual(masks.keepMass, try tensor("keep").scalars.reduce(0, +), accuracy: 1e-3)
        XCTAssertTrue(masks.keep.scalars.contains { $0 > 0 && $0 < 1 }, "expected cells partly kept")
    }

    func testDifferentialBlendingMatchesThePyTorchRule() throws {
        let model = try SDFixture("sd1").loadFolder()
        var parameters = PILOTParameters.blendedLatentDiffusion
        parameters.steps = 6
        parameters.differential = true
        parameters.sbc = false  // the rule alone: no attention masking
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: parameters)
        let blend = try tensor("blend_noise")
        let plane = blend.count / 6
        let latents = try sampler.run(noise: try tensor("noise"), source: try tensor("source"),
                                      masks: InpaintingMasks(softPixelMask: try tensor("mask_pixels")),
                                      positive: try tensor("prompt_embeds"), negative: try tensor("negative_prompt_embeds"),
                                      wordTokens: [], blendNoise: { i in
                                          Tensor(shape: [1, 4, 16, 16], values: Array(blend.scalars[(i * plane)..<((i + 1) * plane)]))
                                      })
        assertClose(latents, try tensor("latents_out"), tolerance: 1e-3, "differential blending, 6 DDIM steps")
    }

    func testTheGateLetsACellGoWhenTheScheduleReachesItsKeepValue() {
        let keep = Tensor(shape: [1, 1, 1, 4], values: [0, 0.3, 0.5, 1])
        XCTAssertEqual(PILOTSampler.differentialGate(keep, step: 0, of: 10).scalars, [0, 1, 1, 1])
        XCTAssertEqual(PILOTSampler.differentialGate(keep, step: 3, of: 10).scalars, [0, 0, 1, 1], "0.3 > 0.3 is false: let go")
        XCTAssertEqual(PILOTSampler.differentialGate(keep, step: 9, of: 10).scalars, [0, 0, 0, 1], "K = 1 is re-imposed to the end")
    }
}
