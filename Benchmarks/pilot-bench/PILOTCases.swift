import Foundation
import Diffusion
import Tensors

/// The PILOT cases: one inner iteration of the latent optimisation at
/// 512×512, and a whole run at 256×256. The peer (`models.py`) builds the
/// same prompt ids, mask and schedule.
enum PILOTCases {
    /// "a red fox in the snow" in CLIP ids (BOS, six words, EOS), padded
    /// with EOS to 77 as SD 1.x pads.
    static let promptIDs: [Int32] = padded([49406, 320, 736, 3240, 530, 518, 2583, 49407])
    static let negativeIDs: [Int32] = padded([49406, 49407])
    /// Positions of the prompt's words, the tokens L_sc measures.
    static let wordTokens = Array(1...6)

    static func padded(_ ids: [Int32]) -> [Int32] {
        ids + [Int32](repeating: 49407, count: 77 - ids.count)
    }

    /// A latent keep-mask (1 = keep) with a centred square hole of half the
    /// side: a quarter of the image to inpaint, with a hole that survives
    /// down to the 1/8-resolution attention layers (F_s there has 2×2 hole
    /// cells), so every loss layer contributes.
    static func masks(side: Int) -> InpaintingMasks {
        let hole = (side / 4)..<(3 * side / 4)
        var keep = [Float](repeating: 1, count: side * side)
        for i in hole { for j in hole { keep[i * side + j] = 0 } }
        return InpaintingMasks(keep: keep, height: side, width: side)
    }

    /// The reference text configuration (PILOT.md) scaled to 20 steps.
    static var runParameters: PILOTParameters {
        var p = PILOTParameters()
        p.steps = 20
        p.interval = 2
        p.innerSteps = 10
        p.coherence = 1
        p.learningRate = 0.025
        p.warmupLearningRate = 0.007
        p.coef = 150
        p.momentum = 0.7
        p.guidanceScale = 7.5
        return p
    }

    /// The timestep of the inner iteration: step 10 of the 20-step DDIM
    /// schedule (t = 451), in the λ(t) ramp.
    static let innerTimestep = 451

    /// One inner iteration as `PILOTSampler` runs it: the conditional UNet
    /// forward (batch 1) on a tape, with the control capturing the default
    /// loss layers (the 11 below full resolution) and SBC on; L_bg + λ·L_sc;
    /// ∂L/∂x through the whole UNet; the heavy-ball update.
    static func innerIteration() -> ModelCase {
        ModelCase(name: "pilot_inner", shape: "x[1,4,64,64] t=451 SBC, 11 loss layers, dL/dx", warmups: 1,
                  fixedReps: nil, timeRatioTarget: 1) { model in
            try innerCall(model, side: 64, context: ModelCases.normal([1, 77, 768], seed: 7), added: nil, lossLayers: 11)
        }
    }

    /// The timed call of an inner-iteration case on a `side`×`side` latent:
    /// x and z_src seeded, the given context (and SDXL's added conditioning),
    /// `lossLayers` layers expected in L_sc.
    static func innerCall(_ model: StableDiffusionModel, side: Int, context: Tensor, added: AddedConditioning?,
                          lossLayers: Int) throws -> () throws -> [Phase] {
        let x = ModelCases.normal([1, 4, side, side], seed: 5)
        let source = ModelCases.normal([1, 4, side, side], seed: 6)
        let masks = masks(side: side)
        let p = runParameters
        let scheduler = DDIMScheduler(config: model.schedule, steps: p.steps)
        let t = innerTimestep
        precondition(scheduler.integerTimesteps.contains(t), "t = \(t) is not a step of the schedule")
        let a = scheduler.alphaCumprod(t)
        let c = p.coef * Float(masks.keepCount) / p.coefNormaliser
        let lambda = PILOTLoss.lambda(timestep: t, scale: c)
        let eta = PILOTLoss.learningRate(timestep: t, base: p.learningRate)
        let control = PILOTAttentionControl(masks: masks, sbc: true, selection: p.lossLayers)
        let momentum = Tensor.zeros(x.shape)
        return {
            let tape = Tape()
            let xw = tape.watch(x)
            control.reset()
            control.capturing = true
            let eps = try model.unet(xw, timesteps: [Float(t)],
                                     conditioning: UNetConditioning(context: context, attentionControl: control, added: added))
            control.capturing = false
            precondition(control.captured.count == lossLayers,
                         "captured \(control.captured.count) loss layers, expected \(lossLayers)")
            let x0 = (xw - eps * (1 - a).squareRoot()) / a.squareRoot()
            let background = PILOTLoss.background(reconstruction: x0, source: source, keep: masks.keep)
            var centralisation: Tensor?
            for (_, probabilities) in control.captured {
                guard let f = masks.hole[probabilities.dim(2)],
                      let term = PILOTLoss.centralisationTerm(probabilities: probabilities, hole: f,
                                                              wordTokens: wordTokens) else { continue }
                centralisation = centralisation.map { $0 + term } ?? term
            }
            guard let centralisation else { preconditionFailure("no loss layer saw both hole and background") }
            let loss = background + centralisation * (lambda / Float(control.captured.count))
            let g = try tape.gradient(of: loss, wrt: [xw])[0]
            _ = x + (momentum * p.momentum - g * eta)
            return []
        }
    }

    /// A whole PILOT run at 256×256 (latent 32×32), timed once: both prompts
    /// through the text encoder, the source image through the VAE encoder,
    /// `PILOTSampler.run` (20 steps, 10 optimisation steps of 10 gradient
    /// passes each, 20 guided batch-2 forwards), the VAE decoder.
    static func run256() -> ModelCase {
        ModelCase(name: "pilot_run_256", shape: "256x256, 20 steps, tau 2, 10 inner, gamma 1, CFG 7.5", warmups: 0,
                  fixedReps: 1) { model in
            var rng = SplitMix64(seed: 8)
            let image = Tensor.uniform([1, 3, 256, 256], using: &rng)
            let noise = ModelCases.normal([1, 4, 32, 32], seed: 9)
            let masks = masks(side: 32)
            return {
                var phases: [Phase] = []
                var lap = Stopwatch.now()
                func mark(_ name: String) {
                    let now = Stopwatch.now()
                    phases.append(Phase(name: name, ms: (now - lap) * 1e3))
                    lap = now
                }
                let embeddings = model.textEncoder(ids: [negativeIDs, promptIDs]).chunked(2, axis: 0)
                mark("text")
                let source = try model.vae.encodeImage(image)
                mark("vae_encode")
                // The progress handler runs after every gradient pass (inner != nil)
                // and after every guided step, so the time between two calls
                // belongs to the one that ends it.
                var gradientMs = 0.0, guidedMs = 0.0, previous = Stopwatch.now()
                let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: runParameters)
                let latent = try sampler.run(
                    noise: noise, source: source, masks: masks, positive: embeddings[1], negative: embeddings[0],
                    wordTokens: wordTokens, blendNoise: { _ in Tensor.zeros(noise.shape) },
                    progress: { event in
                        let now = Stopwatch.now()
                        if event.inner != nil { gradientMs += (now - previous) * 1e3 } else { guidedMs += (now - previous) * 1e3 }
                        previous = now
                        return true
                    })
                mark("sampler")
                _ = try model.vae.decodeToImage(scaledLatent: latent)
                mark("vae_decode")
                // Sub-steps of "sampler": 100 gradient passes (each with its
                // update) and 20 guided steps (batch-2 forward and DDIM step).
                precondition(sampler.records.count == 100, "ran \(sampler.records.count) gradient passes, expected 100")
                phases.insert(contentsOf: [Phase(name: "sampler/gradient_passes", ms: gradientMs),
                                           Phase(name: "sampler/guided_steps", ms: guidedMs)],
                              at: phases.count - 1)
                return phases
            }
        }
    }

    /// The batch case's settings: the text configuration shortened to 6
    /// steps (τ 2, K 2: 3 optimisation steps, 6 gradient passes a candidate).
    static var batchParameters: PILOTParameters {
        var p = runParameters
        p.steps = 6
        p.innerSteps = 2
        return p
    }

    /// Candidates in the batch case.
    static let batchCandidates = 3

    /// Three PILOT candidates at 256×256 (latent 32×32), as three runs one
    /// after the other (batch 1 each) and as one batch of 3 (every UNet call
    /// takes the three: guided calls of 6 rows, gradient passes of 3), both
    /// in each call, in alternating order from round to round so a slow
    /// spell does not fall on one of them only. Timed once a round; the sub-steps
    /// `three_runs` and `batch_of_3` are the comparison (the report's batch table).
    static func batch256() -> ModelCase {
        ModelCase(name: "pilot_batch_256", shape: "3 candidates, 256x256, 6 steps, tau 2, 2 inner, gamma 1, CFG 7.5",
                  warmups: 0, fixedReps: 1) { model in
            let n = batchCandidates
            let noise = ModelCases.normal([n, 4, 32, 32], seed: 9)
            let source = ModelCases.normal([1, 4, 32, 32], seed: 6)
            let masks = masks(side: 32)
            let embeddings = model.textEncoder(ids: [negativeIDs, promptIDs]).chunked(2, axis: 0)
            // Odd rounds (models.sh sets PILOT_BENCH_ROUND) run the three runs first, even rounds the batch.
            let round = ProcessInfo.processInfo.environment["PILOT_BENCH_ROUND"].flatMap(Int.init) ?? 1
            return {
                func run(_ x: Tensor) throws -> Tensor {
                    let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: batchParameters)
                    let latent = try sampler.run(noise: x, source: source, masks: masks, positive: embeddings[1],
                                                 negative: embeddings[0], wordTokens: wordTokens,
                                                 blendNoise: { _ in Tensor.zeros(x.shape) })
                    precondition(sampler.records.count == 6, "ran \(sampler.records.count) gradient iterations, expected 6")
                    return latent
                }
                func singles() throws -> Double {
                    let start = Stopwatch.now()
                    for k in 0..<n { _ = try run(noise.sliced(axis: 0, k..<(k + 1))) }
                    return (Stopwatch.now() - start) * 1e3
                }
                func batch() throws -> Double {
                    let start = Stopwatch.now()
                    _ = try run(noise)
                    return (Stopwatch.now() - start) * 1e3
                }
                var three = 0.0, together = 0.0
                if round % 2 == 1 {
                    three = try singles()
                    together = try batch()
                } else {
                    together = try batch()
                    three = try singles()
                }
                return [Phase(name: "three_runs", ms: three), Phase(name: "batch_of_3", ms: together)]
            }
        }
    }
}
