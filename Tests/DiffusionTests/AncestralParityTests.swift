import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// Euler ancestral against diffusers' EulerAncestralDiscreteScheduler on the
/// tiny SD1 model with the noise it drew at each step recorded
/// (Tests/Reference/make_euler_fixtures.py).
final class AncestralParityTests: XCTestCase {
    func testEulerAncestralMatchesDiffusersWithItsStepNoise() throws {
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_ancestral.safetensors").path)
        func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }
        let model = try SDFixture("sd1").loadFolder()
        var scheduler = EulerAncestralScheduler(config: model.schedule, steps: 5)
        XCTAssertEqual(scheduler.timesteps, try reference.floats("timesteps"))
        let drawn = try tensor("step_noise"), plane = drawn.count / 5
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let latents = try sampler.run(scheduler: &scheduler, noise: try tensor("noise"), positive: try tensor("prompt_embeds"),
                                      negative: try tensor("negative_prompt_embeds"), stepNoise: { i in
                                          Tensor(shape: [1, 4, 16, 16], values: Array(drawn.scalars[(i * plane)..<((i + 1) * plane)]))
                                      })
        assertClose(latents, try tensor("latents_out"), tolerance: 1e-3, "Euler ancestral, 5 steps")
    }
}

/// Karras sigmas against diffusers' EulerDiscreteScheduler(use_karras_sigmas=True)
/// (Tests/Reference/make_euler_fixtures.py).
final class KarrasSigmaTests: XCTestCase {
    func testKarrasSigmasAndTheirTimestepsMatchDiffusers() throws {
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_karras.safetensors").path)
        func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }
        let model = try SDFixture("sd1").loadFolder()
        var scheduler = EulerScheduler(config: model.schedule, steps: 6, spacing: .karras)
        let sigmas = try reference.floats("sigmas"), timesteps = try reference.floats("timesteps")
        for (ours, theirs) in zip(scheduler.sigmaValues, sigmas) { XCTAssertEqual(ours, theirs, accuracy: 1e-5 * max(1, theirs)) }
        for (ours, theirs) in zip(scheduler.timesteps, timesteps) { XCTAssertEqual(ours, theirs, accuracy: 1e-3) }
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let latents = try sampler.run(scheduler: &scheduler, noise: try tensor("noise"), positive: try tensor("prompt_embeds"),
                                      negative: try tensor("negative_prompt_embeds"))
        assertClose(latents, try tensor("latents_out"), tolerance: 1e-3, "Euler with Karras sigmas, 6 steps")
    }
}

/// Exponential sigmas against diffusers' EulerDiscreteScheduler(use_exponential_sigmas=True).
final class ExponentialSigmaTests: XCTestCase {
    func testExponentialSigmasMatchDiffusers() throws {
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_karras.safetensors").path)
        let model = try SDFixture("sd1").loadFolder()
        let scheduler = EulerScheduler(config: model.schedule, steps: 6, spacing: .exponential)
        for (ours, theirs) in zip(scheduler.sigmaValues, try reference.floats("exponential.sigmas")) {
            XCTAssertEqual(ours, theirs, accuracy: 1e-5 * max(1, theirs))
        }
        for (ours, theirs) in zip(scheduler.timesteps, try reference.floats("exponential.timesteps")) {
            XCTAssertEqual(ours, theirs, accuracy: 1e-3)
        }
    }
}
