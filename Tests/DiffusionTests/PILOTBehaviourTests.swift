@testable import Diffusion
import Foundation
import Tensors
import XCTest

/// PILOT's control flow on the tiny model: stages, degenerate masks,
/// baselines, progress and cancellation.
final class PILOTBehaviourTests: XCTestCase {
    var model: StableDiffusionModel!
    var context: Tensor!

    override func setUpWithError() throws {
        let fx = try SDFixture("sd1")
        model = try fx.loadFolder()
        context = try fx.tensor("pipeline.prompt_embeds")
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { model = nil; context = nil }

    func quickParameters(gamma: Float = 1) -> PILOTParameters {
        var p = PILOTParameters()
        p.steps = 6
        p.interval = 2
        p.innerSteps = 2
        p.coherence = gamma
        return p
    }

    func latent(_ seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor.randn([1, 4, 16, 16], using: &rng)
    }

    func masks(fill: Float, holeRows: Range<Int>? = nil) throws -> InpaintingMasks {
        var px = [Float](repeating: fill, count: 128 * 128)
        if let rows = holeRows { for y in rows { for x in 0..<64 { px[y * 128 + x] = 1 } } }
        return try InpaintingMasks(pixelMask: Tensor(shape: [128, 128], values: px))
    }

    func run(_ sampler: PILOTSampler, _ m: InpaintingMasks,
             progress: ((PILOTProgress) -> Bool)? = nil) throws -> Tensor {
        try sampler.run(noise: latent(1), source: latent(2), masks: m, positive: context, negative: context,
                        wordTokens: [1, 2, 3], blendNoise: { self.latent(100 + UInt64($0)) }, progress: progress)
    }

    /// Denoise strength below 1: the run starts at step steps − ⌊steps × strength⌋
    /// from the source noised there, and keeps more of it the later it starts.
    func testAStrengthBelowOneStartsLaterFromTheNoisedSource() throws {
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters(gamma: 0.7))
        let m = try masks(fill: 0, holeRows: 32..<96)
        func final(strength: Double) throws -> (Tensor, [Int]) {
            let first = try DenoiseStrength.firstStep(steps: 6, strength: strength)
            var steps: [Int] = []
            let s = try sampler.start(noise: latent(1), source: latent(2), masks: m, positive: context, negative: context,
                                      wordTokens: [1, 2, 3], firstStep: first)
            let out = try sampler.blend(sampler.optimise(s) { if $0.inner == nil { steps.append($0.timestep) }; return true },
                                        noise: { self.latent(100 + UInt64($0)) }) { if $0.inner == nil { steps.append($0.timestep) }; return true }
            return (out, steps)
        }
        let (full, fullSteps) = try final(strength: 1)
        let (half, halfSteps) = try final(strength: 0.5)
        let (light, lightSteps) = try final(strength: 1.0 / 6)
        XCTAssertEqual(fullSteps, [831, 665, 499, 333, 167, 1])
        XCTAssertEqual(halfSteps, [333, 167, 1], "strength 0.5 of 6 steps runs the last 3")
        XCTAssertEqual(lightSteps, [1], "strength 1/6 runs the last step only")
        let source = latent(2)
        func distance(_ a: Tensor) -> Float { zip(a.scalars, source.scalars).map { abs($0 - $1) }.reduce(0, +) }
        XCTAssertLessThan(distance(light), distance(half), "a lighter strength keeps more of the source")
        XCTAssertLessThan(distance(half), distance(full), "strength 0.5 keeps more than starting from noise")
    }

    func testOptimisationStepsFollowTauAndGamma() throws {
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters(gamma: 0.7))
        var phases: [(PILOTProgress.Phase, Int, Int?)] = []
        _ = try run(sampler, masks(fill: 0, holeRows: 32..<96)) { p in phases.append((p.phase, p.timestep, p.inner)); return true }
        // 6 leading steps, stride 1000 // 6 = 166, offset 1. γ = 0.7: optimise while t ≥ 300.
        let steps = phases.filter { $0.2 == nil }
        XCTAssertEqual(steps.map(\.1), [831, 665, 499, 333, 167, 1])
        XCTAssertEqual(steps.map(\.0), [.optimise, .optimise, .optimise, .optimise, .blend, .blend])
        let innerAt = Set(phases.filter { $0.2 != nil }.map(\.1))
        XCTAssertEqual(innerAt, [831, 499], "optimise at i % τ == 0 among the steps with t ≥ 300")
        XCTAssertEqual(sampler.records.count, 4, "2 optimisation steps × 2 inner iterations")
        XCTAssertTrue(sampler.records.allSatisfy { $0.background > 0 && $0.total.isFinite }, "losses are reported")
    }

    func testStagesHandOverTheSameResultAsASingleCall() throws {
        let m = try masks(fill: 0, holeRows: 32..<96)
        let whole = try run(PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters(gamma: 0.7)), m)
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters(gamma: 0.7))
        let state = try sampler.start(noise: latent(1), source: latent(2), masks: m, positive: context, negative: context,
                                      wordTokens: [1, 2, 3])
        let afterFirst = try sampler.optimise(state)
        XCTAssertEqual(afterFirst.nextStep, 4, "the optimisation stage stops at the coherence threshold (t = 167 < 300)")
        let split = try sampler.blend(afterFirst, noise: { self.latent(100 + UInt64($0)) })
        XCTAssertEqual(split.scalars, whole.scalars, "optimise then blend equals run")
    }

    func testAllHoleMaskSkipsOptimisationAndSBC() throws {
        let m = try masks(fill: 1)
        XCTAssertFalse(m.hasBackground)
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters())
        let out = try run(sampler, m)
        XCTAssertTrue(sampler.records.isEmpty, "nothing kept: no optimisation (as the reference)")
        // Equals plain CFG sampling from the same noise.
        var ddim = DDIMScheduler(config: model.schedule, steps: 6)
        let plain = try GuidedSampler(unet: model.unet).run(scheduler: &ddim, noise: latent(1), positive: context, negative: context)
        XCTAssertEqual(out.scalars, plain.scalars, "an all-hole PILOT run is text-to-image")
    }

    func testAllKeepMaskOptimisesBackgroundOnlyWithoutSBC() throws {
        let m = try masks(fill: 0)
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters())
        _ = try run(sampler, m)
        XCTAssertFalse(sampler.records.isEmpty, "the background loss still drives optimisation")
        XCTAssertTrue(sampler.records.allSatisfy { $0.centralisation == 0 }, "no hole: L_sc = 0")
        XCTAssertNil(PILOTAttentionControl(masks: m).crossAttentionMask(layer: "l", queries: 256, keys: 77, batch: 2), "no SBC")
    }

    func testBlendedLatentDiffusionBaselineNeverOptimises() throws {
        var p = PILOTParameters.blendedLatentDiffusion
        p.steps = 6
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: p)
        var phases: [PILOTProgress.Phase] = []
        _ = try run(sampler, masks(fill: 0, holeRows: 32..<96)) { phases.append($0.phase); return true }
        XCTAssertTrue(sampler.records.isEmpty, "γ = 0: no optimisation")
        XCTAssertEqual(phases, Array(repeating: .blend, count: 6), "γ = 0: every step blends")
    }

    func testProgressReportsInnerIterationsAndCancelStopsTheRun() throws {
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters())
        var seen: [PILOTProgress] = []
        XCTAssertThrowsError(try run(sampler, masks(fill: 0, holeRows: 32..<96)) { p in
            seen.append(p)
            return !(p.inner == 2 && p.step == 1)     // cancel after the first optimisation step's last iteration
        }) { XCTAssertTrue($0 is CancelledError, "cancel surfaces as CancelledError") }
        XCTAssertEqual(seen.compactMap(\.inner), [1, 2], "per-iteration progress with (inner, total)")
        XCTAssertEqual(seen.last?.innerTotal, 2)
        XCTAssertNotNil(seen.last?.totalLoss, "iterations report their losses")
        XCTAssertEqual(sampler.records.count, 2, "nothing ran after the cancel")
    }

    func testInitialNoiseShapeIsValidated() throws {
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: quickParameters())
        XCTAssertThrowsError(try sampler.start(noise: Tensor.zeros([1, 4, 8, 8]), source: latent(2),
                                               masks: masks(fill: 0, holeRows: 0..<8), positive: context, negative: context,
                                               wordTokens: [1])) { error in
            XCTAssertTrue("\(error)".contains("PILOT noise/source latents"), "\(error)")
        }
    }
}
