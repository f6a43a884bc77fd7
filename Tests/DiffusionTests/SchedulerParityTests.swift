import Diffusion
import Tensors
import XCTest

/// DDIM, Euler and DPM++ 2M against diffusers' schedulers (same betas, the
/// configs in the fixture metadata). References are PyTorch float32; our
/// schedules are formed in float32 too, so 1e-5 relative holds for
/// timestep/ᾱ tables and 1e-4 for samples.
final class SchedulerParityTests: XCTestCase {
    func schedule(_ fx: SDFixture) -> NoiseScheduleConfig {
        .stableDiffusion(fx.variant == "sd1" ? .epsilon : .vPrediction)
    }

    func testDDIMTablesAndStepsForEpsilonAndV() throws {
        for v in ["sd1", "sd2"] {
            let fx = try SDFixture(v)
            let config = schedule(fx)
            let ac = Tensor(shape: [1000], values: config.alphasCumprod)
            assertClose(ac, try fx.tensor("ddim.alphas_cumprod"), tolerance: 1e-6, "\(v) ᾱ")
            for n in [4, 50] {
                XCTAssertEqual(DDIMScheduler(config: config, steps: n).timesteps, try fx.floats("ddim.timesteps_\(n)"),
                               "\(v) DDIM timesteps for \(n) steps")
            }
            for t in [981, 501, 1] {
                for (eta, tag) in [(Float(0), "eta0"), (0.5, "eta0p5")] {
                    var s = DDIMScheduler(config: config, steps: 50, eta: eta)
                    let i = s.integerTimesteps.firstIndex(of: t)!
                    let x = try fx.tensor("ddim.step.\(t).x_t"), out = try fx.tensor("ddim.step.\(t).model_output")
                    let (x0, _) = s.predictOriginal(out, step: i, sample: x)
                    assertClose(x0, try fx.tensor("ddim.step.\(t).\(tag).pred_original_sample"), tolerance: 1e-4,
                                "\(v) x̂₀ at t=\(t) η=\(eta)")
                    let prev = s.step(out, step: i, sample: x, noise: try fx.tensor("ddim.step.\(t).variance_noise"))
                    assertClose(prev, try fx.tensor("ddim.step.\(t).\(tag).prev_sample"), tolerance: 1e-4,
                                "\(v) DDIM step at t=\(t) η=\(eta)")
                }
            }
        }
    }

    func checkTrajectory(_ fx: SDFixture, _ name: String, _ make: (NoiseScheduleConfig) -> any Scheduler) throws {
        var s = make(schedule(fx))
        XCTAssertEqual(s.timesteps, try fx.floats("\(name).timesteps"), "\(fx.variant) \(name) timesteps")
        XCTAssertEqual(s.initNoiseSigma, try fx.floats("\(name).init_noise_sigma")[0], accuracy: 1e-4,
                       "\(fx.variant) \(name) initial σ")
        var x = try fx.tensor("\(name).noise") * s.initNoiseSigma
        for i in 0..<10 {
            let input = s.scaleModelInput(x, step: i)
            assertClose(input, try fx.tensor("\(name).step.\(i).model_input"), tolerance: 1e-4, "\(fx.variant) \(name) input \(i)")
            x = s.step(try fx.tensor("\(name).step.\(i).model_output"), step: i, sample: x, noise: nil)
            assertClose(x, try fx.tensor("\(name).step.\(i).prev_sample"), tolerance: 1e-4, "\(fx.variant) \(name) step \(i)")
        }
    }

    func testEulerTrajectory() throws {
        for v in ["sd1", "sd2"] {
            let fx = try SDFixture(v)
            try checkTrajectory(fx, "euler") { EulerScheduler(config: $0, steps: 10) }
            assertClose(Tensor(shape: [11], values: EulerScheduler(config: schedule(fx), steps: 10).sigmaValues),
                        try fx.tensor("euler.sigmas"), tolerance: 1e-4, "\(v) Euler σ")
        }
    }

    func testDPMSolverPlusPlus2MTrajectory() throws {
        for v in ["sd1", "sd2"] {
            let fx = try SDFixture(v)
            try checkTrajectory(fx, "dpmpp2m") { DPMSolverScheduler(config: $0, steps: 10) }
            assertClose(Tensor(shape: [11], values: DPMSolverScheduler(config: schedule(fx), steps: 10).sigmaValues),
                        try fx.tensor("dpmpp2m.sigmas"), tolerance: 1e-4, "\(v) DPM++ σ")
        }
    }

    func testSpacingVariants() {
        var c = NoiseScheduleConfig.stableDiffusion()
        XCTAssertEqual(c.timesteps(steps: 4), [751, 501, 251, 1], "leading, offset 1")
        // 1,000 leading steps with offset 1 would start at 1000, one past the schedule
        // (AddressSanitizer caught DDIM reading past ᾱ's end).
        XCTAssertEqual(c.timesteps(steps: 1000).max(), 999, "expected every timestep inside the 1,000-step schedule")
        var ddim = DDIMScheduler(config: c, steps: 1000)
        let x = Tensor(shape: [1, 1, 1, 1], values: [0.5])
        XCTAssertTrue(ddim.step(x, step: 0, sample: x, noise: nil).scalars.allSatisfy(\.isFinite), "expected a finite first step")
        c.spacing = .trailing
        XCTAssertEqual(c.timesteps(steps: 4), [999, 749, 499, 249], "trailing")
        c.spacing = .linspace
        XCTAssertEqual(c.timesteps(steps: 4), [999, 666, 333, 0], "linspace (round half to even)")
    }
}
