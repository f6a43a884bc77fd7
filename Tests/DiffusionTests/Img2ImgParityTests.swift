import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// Denoise strength against diffusers' StableDiffusionImg2ImgPipeline on the
/// tiny SD1 model (Tests/Reference/make_img2img_fixture.py): the given clean
/// latent noised to the first step that runs, then the remaining steps.
final class Img2ImgParityTests: XCTestCase {
    func testImageToImageAtAStrengthMatchesDiffusersForEachScheduler() throws {
        let fx = try SDFixture("sd1")
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_img2img.safetensors").path)
        func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }
        let model = try fx.loadFolder()
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let source = try tensor("init_latents"), positive = try tensor("prompt_embeds"), negative = try tensor("negative_prompt_embeds")
        for (name, steps, strength) in [("ddim_5_0p6", 5, 0.6), ("euler_4_0p5", 4, 0.5), ("dpmpp_5_0p7", 5, 0.7), ("ddim_4_1p0", 4, 1.0)] {
            let first = try DenoiseStrength.firstStep(steps: steps, strength: strength)
            let noise = try tensor("\(name).noise")
            func run(_ scheduler: some Scheduler) throws -> Tensor {
                var scheduler = scheduler
                XCTAssertEqual(Array(scheduler.timesteps[first...]), try reference.floats("\(name).timesteps"), "\(name): the steps that run")
                return try sampler.run(scheduler: &scheduler, noise: noise, positive: positive, negative: negative,
                                       source: source, firstStep: first)
            }
            let latents: Tensor
            switch name.prefix(while: { $0 != "_" }) {
            case "ddim": latents = try run(DDIMScheduler(config: model.schedule, steps: steps))
            case "euler": latents = try run(EulerScheduler(config: model.schedule, steps: steps))
            default: latents = try run(DPMSolverScheduler(config: model.schedule, steps: steps))
            }
            assertClose(latents, try tensor("\(name).latents_out"), tolerance: 1e-3, "\(name): final latents")
        }
    }

    func testAStrengthThatRunsNoStepIsRefused() throws {
        XCTAssertEqual(try DenoiseStrength.firstStep(steps: 10, strength: 0.35), 7, "⌊10 × 0.35⌋ = 3 steps run: the last three")
        XCTAssertEqual(try DenoiseStrength.firstStep(steps: 10, strength: 1), 0)
        XCTAssertThrowsError(try DenoiseStrength.firstStep(steps: 4, strength: 0.2)) { error in
            XCTAssertTrue("\(error)".contains("runs no step"), "expected the reason: \(error)")
        }
        XCTAssertThrowsError(try DenoiseStrength.firstStep(steps: 4, strength: 0), "strength 0 is refused")
    }
}
