import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// 9-channel inpainting checkpoints against diffusers'
/// StableDiffusionInpaintPipeline (Tests/Reference/make_inpaint_fixture.py):
/// the tiny SD1 model with a 9-channel conv_in, the mask and masked-image
/// latent appended to the scaled latent at every step.
final class InpaintParityTests: XCTestCase {
    private let reference = try! SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_inpaint.safetensors").path)
    private func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }

    func testTheLatentMaskIsThePipelinesNearestDownsampling() throws {
        let mask = try InpaintChannels.latentMask(try tensor("mask_pixels"), factor: 8)
        XCTAssertEqual(mask.shape, [1, 1, 16, 16])
        XCTAssertEqual(mask.scalars, try tensor("mask_latent").scalars, "expected each cell's top-left pixel, binarised")
    }

    func testNineChannelSamplingMatchesTheInpaintPipeline() throws {
        let model = try StableDiffusionModel.load(path: SDFixture.root.appendingPathComponent("sd1-inpaint").path)
        XCTAssertEqual(model.unet.config.inChannels, 9, "expected the inpainting UNet's 9 input channels read from its config")
        var sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let latentMask = try InpaintChannels.latentMask(try tensor("mask_pixels"), factor: 8)
        sampler.inpaintChannels = try InpaintChannels.channels(latentMask: latentMask,
                                                              maskedImageLatent: try tensor("masked_image_latents"))
        let positive = try tensor("prompt_embeds"), negative = try tensor("negative_prompt_embeds")
        let source = try tensor("init_latents")
        for (name, steps, strength) in [("ddim_5_1p0", 5, 1.0), ("euler_4_0p6", 4, 0.6)] {
            let first = try DenoiseStrength.firstStep(steps: steps, strength: strength)
            let noise = try tensor("\(name).noise")
            let latents: Tensor
            if name.hasPrefix("ddim") {
                var scheduler = DDIMScheduler(config: model.schedule, steps: steps)
                XCTAssertEqual(Array(scheduler.timesteps[first...]), try reference.floats("\(name).timesteps"))
                latents = try sampler.run(scheduler: &scheduler, noise: noise, positive: positive, negative: negative)
            } else {
                var scheduler = EulerScheduler(config: model.schedule, steps: steps)
                XCTAssertEqual(Array(scheduler.timesteps[first...]), try reference.floats("\(name).timesteps"))
                latents = try sampler.run(scheduler: &scheduler, noise: noise, positive: positive, negative: negative,
                                          source: source, firstStep: first)
            }
            assertClose(latents, try tensor("\(name).latents_out"), tolerance: 1e-3, "\(name): final latents")
        }
    }

    func testTheSingleFileInpaintingCheckpointLoadsItsNineChannels() throws {
        let folder = try StableDiffusionModel.load(path: SDFixture.root.appendingPathComponent("sd1-inpaint").path)
        let single = try StableDiffusionModel.load(path: SDFixture.root.appendingPathComponent("sd1-inpaint.safetensors").path,
                                                   config: SDFixture.root.appendingPathComponent("sd1-inpaint").path)
        XCTAssertEqual(single.unet.config.inChannels, 9, "expected 9 input channels detected from conv_in")
        let x = Tensor(shape: [1, 9, 16, 16], values: (0..<(9 * 256)).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        let context = try tensor("prompt_embeds")
        let a = try folder.unet(x, timesteps: [500], conditioning: UNetConditioning(context: context))
        let b = try single.unet(x, timesteps: [500], conditioning: UNetConditioning(context: context))
        assertClose(b, a, tolerance: 2e-2, "fp16 single file against the fp32 folder")
    }

    func testAnInpaintingUNetWithoutItsChannelsIsRefusedClearly() throws {
        let model = try StableDiffusionModel.load(path: SDFixture.root.appendingPathComponent("sd1-inpaint").path)
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        var scheduler = DDIMScheduler(config: model.schedule, steps: 2)
        let noise = try tensor("ddim_5_1p0.noise")
        XCTAssertThrowsError(try sampler.run(scheduler: &scheduler, noise: noise, positive: try tensor("prompt_embeds"),
                                             negative: try tensor("negative_prompt_embeds"))) { error in
            XCTAssertTrue("\(error)".contains("InpaintConditioning"), "expected the way out named: \(error)")
        }
    }
}
