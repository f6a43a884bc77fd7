import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// DPM++ 2M on Karras and exponential σ, DPM++ 2M SDE and UniPC against
/// diffusers' DPMSolverMultistepScheduler and UniPCMultistepScheduler on the
/// tiny SD1 model, the SDE cases with the
/// noise diffusers drew at each step (Tests/Reference/make_dpm_fixtures.py).
final class DPMVariantParityTests: XCTestCase {
    private func check(_ name: String, steps: Int, spacing: SigmaSpacing, stochastic: Bool, unipc: Bool = false) throws {
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("sd1_dpm.safetensors").path)
        func tensor(_ key: String) throws -> Tensor { try Tensor(reference, key) }
        let model = try SDFixture("sd1").loadFolder()
        let unipcScheduler = UniPCScheduler(config: model.schedule, steps: steps, spacing: spacing)
        let dpm = DPMSolverScheduler(config: model.schedule, steps: steps, spacing: spacing, stochastic: stochastic)
        let (sigmaValues, timesteps) = unipc ? (unipcScheduler.sigmaValues, unipcScheduler.timesteps) : (dpm.sigmaValues, dpm.timesteps)
        var scheduler: any Scheduler = unipc ? unipcScheduler : dpm
        let sigmas = try reference.floats("\(name).sigmas")
        XCTAssertEqual(sigmaValues.count, sigmas.count, "\(name): expected \(sigmas.count) σ (the last 0)")
        for (ours, theirs) in zip(sigmaValues, sigmas) {
            XCTAssertEqual(ours, theirs, accuracy: 1e-5 * max(1, theirs), "\(name): expected diffusers' σ")
        }
        XCTAssertEqual(timesteps, try reference.floats("\(name).timesteps"), "\(name): expected diffusers' timesteps")
        var stepNoise: ((Int) -> Tensor)?
        if stochastic {
            let drawn = try tensor("\(name).step_noise"), plane = drawn.count / steps
            stepNoise = { i in Tensor(shape: [1, 4, 16, 16], values: Array(drawn.scalars[(i * plane)..<((i + 1) * plane)])) }
        }
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let latents = try sampler.run(scheduler: &scheduler, noise: try tensor("\(name).noise"), positive: try tensor("prompt_embeds"),
                                      negative: try tensor("negative_prompt_embeds"), stepNoise: stepNoise)
        assertClose(latents, try tensor("\(name).latents_out"), tolerance: 1e-3, "\(name), \(steps) steps")
    }

    func testDPMPlusPlus2MKarrasMatchesDiffusers() throws {
        try check("karras", steps: 8, spacing: .karras, stochastic: false)
    }

    func testDPMPlusPlus2MExponentialMatchesDiffusers() throws {
        try check("exponential", steps: 8, spacing: .exponential, stochastic: false)
    }

    func testDPMPlusPlus2MSDEMatchesDiffusersWithItsStepNoise() throws {
        try check("sde", steps: 6, spacing: .schedule, stochastic: true)
    }

    func testDPMPlusPlus2MSDEKarrasMatchesDiffusersWithItsStepNoise() throws {
        try check("sde_karras", steps: 6, spacing: .karras, stochastic: true)
    }

    func testUniPCMatchesDiffusers() throws {
        try check("unipc", steps: 7, spacing: .schedule, stochastic: false, unipc: true)
    }

    func testUniPCKarrasMatchesDiffusers() throws {
        try check("unipc_karras", steps: 7, spacing: .karras, stochastic: false, unipc: true)
    }
}
