import Foundation
import Tensors

/// PILOT's parameters, defaulting to the reference text configuration
/// (PILOT.md, "Defaults of the reference configurations").
public struct PILOTParameters: Sendable, Equatable {
    public var steps = 100
    public var guidanceScale: Float = 7.5
    /// τ: optimise at every τ-th step.
    public var interval = 10
    /// K_opt: gradient steps per optimisation step.
    public var innerSteps = 10
    /// γ: optimise while t ≥ 1000·(1 − γ), blend below; 1 = never blend, 0 = blend only.
    public var coherence: Float = 1.0
    public var learningRate: Float = 0.025
    public var warmupLearningRate: Float = 0.007
    /// `coef`: C = coef·(#keep latent cells)/`coefNormaliser`.
    public var coef: Float = 150
    public var coefNormaliser: Float = 1499
    public var momentum: Float = 0.7
    /// Semantic boundary control in every cross-attention layer.
    public var sbc = true
    /// Differential blending (soft masks): a latent cell is re-imposed from
    /// the re-noised source at step i of n only while its keep value K
    /// exceeds i/n, then left to the model; K = 1 is always re-imposed,
    /// K = 0 never, K = 0.5 for the first half of the schedule. With a hard
    /// mask it is the plain blend. Off: the plain blend `(1−K)·x + K·z_t`.
    public var differential = false
    public var lossLayers = AttentionLayerSelection.belowFullResolution

    public init() {}

    /// γ as a timestep rule: optimisation steps are those with t ≥ this.
    public var coherenceThreshold: Float { 1000 * (1 - coherence) }

    /// The reference's text configuration (100 steps, τ 10, K 10, γ 1).
    public static let text = PILOTParameters()

    /// The reference's ControlNet configuration (γ 0.8, lr_warmup 0.01, lr 0.03).
    public static let controlNet: PILOTParameters = {
        var p = PILOTParameters()
        p.coherence = 0.8; p.warmupLearningRate = 0.01; p.learningRate = 0.03
        return p
    }()

    /// Baseline: blended latent diffusion (γ = 0: never optimise, blend the
    /// re-noised background before every step).
    public static let blendedLatentDiffusion: PILOTParameters = {
        var p = PILOTParameters()
        p.coherence = 0
        return p
    }()
}

/// Progress of a PILOT run; return `false` from the handler to cancel.
public struct PILOTProgress: Sendable {
    public enum Phase: String, Sendable { case optimise, blend }
    public let phase: Phase
    /// Denoising step (1-based) and total.
    public let step: Int, total: Int
    public let timestep: Int
    /// Inner iteration (1-based) of an optimisation step, nil for the step itself.
    public let inner: Int?
    public let innerTotal: Int
    public let backgroundLoss: Float?
    public let centralisationLoss: Float?
    public let totalLoss: Float?
}

/// The hand-over from the optimisation stage to the blend stage: everything
/// the remaining steps need.
public struct PILOTState {
    public var latent: Tensor
    /// Index of the next denoising step.
    public var nextStep: Int
    public let scheduler: DDIMScheduler
    public let masks: InpaintingMasks
    /// z_src, the scaled source latent.
    public let source: Tensor
    public let positive: Tensor
    public let negative: Tensor
    public let wordTokens: [Int]
    public let parameters: PILOTParameters
    /// SBC and capture for the whole run (its per-resolution masks are built once).
    public let control: PILOTAttentionControl
    public var isFinished: Bool { nextStep >= scheduler.integerTimesteps.count }
    /// How many candidates run together (the latent's rows).
    public var candidates: Int { latent.dim(0) }
}

/// The losses of one inner iteration (for tests and progress); with a
/// batch, each is the mean over the candidates.
public struct PILOTIterationRecord {
    public let step: Int, inner: Int, timestep: Int
    public let background: Float, centralisation: Float, lambda: Float, learningRate: Float, total: Float
    public let layerTerms: [Float]
}

/// PILOT sampling (Pan et al.): latent optimisation with a background
/// loss and a semantic-centralisation loss during the first stage, semantic
/// boundary control throughout, re-noised background blending after the
/// coherence threshold.
public final class PILOTSampler {
    public let unet: UNet2DConditionModel
    public let schedule: NoiseScheduleConfig
    public var parameters: PILOTParameters
    /// ControlNets, T2I-Adapters and IP-Adapter: in the gradient pass too.
    public var adapters: AdapterStack?
    /// SDXL's added conditioning (pooled text, time ids) of both prompts:
    /// in the gradient pass (positive) and the guided pass.
    public var added: PromptPair<AddedConditioning>?
    /// Every inner iteration's losses, in order.
    public private(set) var records: [PILOTIterationRecord] = []
    /// The latent after each optimisation step, in order.
    public private(set) var optimisedLatents: [Tensor] = []
    /// Called with (step index, latent) after every denoising step.
    public var onStep: ((Int, Tensor) -> Void)?
    /// The most candidates one UNet call takes, in the guided pass (2 rows
    /// each) and the gradient pass (1 row each, kept for the backward pass);
    /// a larger batch runs in groups.
    public var candidatesPerCall = Int.max

    public init(unet: UNet2DConditionModel, schedule: NoiseScheduleConfig, parameters: PILOTParameters = PILOTParameters()) {
        self.unet = unet
        self.schedule = schedule
        self.parameters = parameters
    }

    /// Starts a run: the state before step 0 from the initial noise `noise`
    /// `[N, 4, h, w]`, one row per candidate (the candidates share the
    /// source, mask and prompts; their losses, gradients and steps are each
    /// their own, so a batch gives what N separate runs give).
    /// `firstStep` > 0 (a denoise strength below 1, ``DenoiseStrength``)
    /// starts from the source noised to that step, as image to image does,
    /// so the hole keeps the source's layout; the optimisation and blend
    /// stages run on the steps that remain.
    public func start(noise: Tensor, source: Tensor, masks: InpaintingMasks, positive: Tensor, negative: Tensor,
                      wordTokens: [Int], firstStep: Int = 0) throws -> PILOTState {
        guard noise.rank == 4, source.rank == 4, source.dim(0) == 1, noise.dim(0) >= 1,
              noise.shape.dropFirst() == source.shape.dropFirst(),
              noise.dim(2) == masks.latentHeight, noise.dim(3) == masks.latentWidth else {
            throw ModelInputError.shape(what: "PILOT noise/source latents",
                                        expected: "noise [N, C, \(masks.latentHeight), \(masks.latentWidth)] over a source [1, C, \(masks.latentHeight), \(masks.latentWidth)]",
                                        found: noise.shape + source.shape)
        }
        try adapters?.checkCompatible(with: unet, height: masks.latentHeight, width: masks.latentWidth)
        let scheduler = DDIMScheduler(config: schedule, steps: parameters.steps)
        records.removeAll()
        optimisedLatents.removeAll()
        guard firstStep >= 0, firstStep < scheduler.integerTimesteps.count else {
            throw ModelInputError.shape(what: "PILOT first step", expected: "0 ..< \(scheduler.integerTimesteps.count)", found: [firstStep])
        }
        let latent = firstStep == 0 ? noise * scheduler.initNoiseSigma : scheduler.addNoise(source, noise: noise, step: firstStep)
        return PILOTState(latent: latent, nextStep: firstStep, scheduler: scheduler, masks: masks,
                          source: source, positive: positive, negative: negative, wordTokens: wordTokens,
                          parameters: parameters,
                          control: PILOTAttentionControl(masks: masks, sbc: parameters.sbc, selection: parameters.lossLayers))
    }

    /// Stage 1: runs steps while t ≥ 1000·(1 − γ), optimising every τ-th.
    /// `preview` sees x̂₀ at every optimisation step and the others it asks for.
    public func optimise(_ state: PILOTState, progress: ((PILOTProgress) -> Bool)? = nil,
                         preview: SamplerPreview? = nil) throws -> PILOTState {
        var s = state
        let threshold = parameters.coherenceThreshold
        while !s.isFinished, Float(s.scheduler.integerTimesteps[s.nextStep]) >= threshold {
            try step(&s, blendNoise: nil, progress: progress, preview: preview)
        }
        return s
    }

    /// Stage 2: the remaining steps, blending the re-noised source background
    /// in before each (`noise(i)` supplies ε for step i, a row per candidate).
    public func blend(_ state: PILOTState, noise: @escaping (Int) -> Tensor, progress: ((PILOTProgress) -> Bool)? = nil,
                      preview: SamplerPreview? = nil) throws -> Tensor {
        var s = state
        while !s.isFinished { try step(&s, blendNoise: noise, progress: progress, preview: preview) }
        return s.latent
    }

    /// Both stages.
    public func run(noise: Tensor, source: Tensor, masks: InpaintingMasks, positive: Tensor, negative: Tensor,
                    wordTokens: [Int], blendNoise: @escaping (Int) -> Tensor,
                    progress: ((PILOTProgress) -> Bool)? = nil, preview: SamplerPreview? = nil) throws -> Tensor {
        let s = try start(noise: noise, source: source, masks: masks, positive: positive, negative: negative,
                          wordTokens: wordTokens)
        return try blend(optimise(s, progress: progress, preview: preview), noise: blendNoise, progress: progress, preview: preview)
    }

    // MARK: One denoising step

    /// Differential blending's mask at step `i` of `n`: 1 where K > i/n.
    public static func differentialGate(_ keep: Tensor, step i: Int, of n: Int) -> Tensor {
        let threshold = Float(i) / Float(n)
        return Tensor(shape: keep.shape, values: keep.scalars.map { $0 > threshold ? 1 : 0 })
    }

    private func step(_ s: inout PILOTState, blendNoise: ((Int) -> Tensor)?, progress: ((PILOTProgress) -> Bool)?,
                      preview: SamplerPreview?) throws {
        let i = s.nextStep
        let t = s.scheduler.integerTimesteps[i]
        let total = s.scheduler.integerTimesteps.count
        let blending = Float(t) < parameters.coherenceThreshold
        let control = s.control
        if blending {
            guard let blendNoise else { preconditionFailure("blend step without blend noise") }
            // x ← (1−K)·x + K·(√ᾱ_t·z_src + √(1−ᾱ_t)·ε)
            let a = s.scheduler.alphaCumprod(t)
            let noised = s.source * a.squareRoot() + blendNoise(i) * (1 - a).squareRoot()
            let keep = parameters.differential ? Self.differentialGate(s.masks.keep, step: i, of: total) : s.masks.keep
            s.latent = s.latent * (1 - keep) + noised * keep
        }
        let optimised = !blending && i % parameters.interval == 0 && s.masks.hasBackground
        if optimised {
            // The reference skips optimisation entirely when nothing is kept.
            s.latent = try optimiseLatent(s, step: i, timestep: t, control: control, progress: progress)
            optimisedLatents.append(s.latent)
        }
        var sampler = GuidedSampler(unet: unet, guidanceScale: parameters.guidanceScale, adapters: adapters, added: added)
        sampler.candidatesPerCall = candidatesPerCall
        let out = try sampler.guidedOutput(s.latent, timestep: Float(t), positive: s.positive, negative: s.negative,
                                           control: control, step: i, steps: total)
        // Every optimisation step is previewed, the others as asked.
        if let preview, optimised || preview.wants(i + 1, total) {
            preview.show(i + 1, total, s.scheduler.denoised(out, step: i, sample: s.latent))
        }
        var scheduler = s.scheduler
        s.latent = scheduler.step(out, step: i, sample: s.latent, noise: nil)
        s.nextStep += 1
        onStep?(i, s.latent)
        if let progress, !progress(PILOTProgress(phase: blending ? .blend : .optimise, step: i + 1, total: total,
                                                 timestep: t, inner: nil, innerTotal: 0, backgroundLoss: nil,
                                                 centralisationLoss: nil, totalLoss: nil)) {
            throw CancelledError()
        }
    }

    /// K_opt heavy-ball steps on x (momentum reset at each optimisation step).
    /// Each candidate's gradient is that of its own objective: the batch's
    /// objective is the sum of the candidates', which share no term.
    private func optimiseLatent(_ s: PILOTState, step i: Int, timestep t: Int, control: PILOTAttentionControl,
                                progress: ((PILOTProgress) -> Bool)?) throws -> Tensor {
        let p = parameters
        let c = p.coef * s.masks.keepMass / p.coefNormaliser
        let lambda = PILOTLoss.lambda(timestep: t, scale: c)
        let eta = i == 0 ? p.warmupLearningRate : PILOTLoss.learningRate(timestep: t, base: p.learningRate)
        let n = s.candidates
        var x = s.latent
        var m = Tensor.zeros(x.shape)
        for j in 0..<p.innerSteps {
            var gradients: [Tensor] = []
            var background: Float = 0, centralisation: Float = 0, total: Float = 0
            var terms: [Float] = []
            for group in x.rowGroups(candidatesPerCall) {
                let tape = Tape()
                let xw = tape.watch(group)
                let objective = try self.objective(xw, state: s, step: i, timestep: t, lambda: lambda, control: control)
                gradients.append(try tape.gradient(of: objective.total, wrt: [xw])[0])
                background += objective.background.item
                centralisation += objective.centralisation?.item ?? 0
                total += objective.total.item
                terms = terms.isEmpty ? objective.layerTerms : zip(terms, objective.layerTerms).map { $0 + $1 }
            }
            let g = gradients.count == 1 ? gradients[0] : concat(gradients, axis: 0)
            m = m * p.momentum - g * eta
            x = x + m
            let mean = 1 / Float(n)
            let record = PILOTIterationRecord(step: i, inner: j, timestep: t, background: background * mean,
                                              centralisation: centralisation * mean, lambda: lambda, learningRate: eta,
                                              total: total * mean, layerTerms: terms.map { $0 * mean })
            records.append(record)
            if let progress, !progress(PILOTProgress(phase: .optimise, step: i + 1, total: s.scheduler.integerTimesteps.count,
                                                     timestep: t, inner: j + 1, innerTotal: p.innerSteps,
                                                     backgroundLoss: record.background,
                                                     centralisationLoss: record.centralisation, totalLoss: record.total)) {
                throw CancelledError()
            }
        }
        control.reset()     // the captured maps are not needed past the optimisation step
        return x.detached
    }

    /// PILOT's objective at latents `x` `[n, C, h, w]` (watched on a tape for
    /// the gradient): one conditional UNet pass (adapters and added
    /// conditioning included) capturing the selected layers' attention, L_bg
    /// on the scheduler's x̂₀, and the mean centralisation term weighted by λ;
    /// for n candidates, the sum of their objectives.
    func objective(_ x: Tensor, state s: PILOTState, step i: Int, timestep t: Int, lambda: Float,
                   control: PILOTAttentionControl) throws -> PILOTObjective {
        control.reset()
        control.capturing = true
        let gradientSampler = GuidedSampler(unet: unet, guidanceScale: 1, adapters: adapters, added: added)
        let rows = x.dim(0)
        let cond = try gradientSampler.conditioning(x, timestep: Float(t), step: i, steps: s.scheduler.integerTimesteps.count,
                                                    context: s.positive.repeatingRows(rows), control: control, guided: false)
        let output = try unet(x, timesteps: Array(repeating: Float(t), count: rows), conditioning: cond)
        control.capturing = false
        // x̂₀ as the model's parameterisation defines it (ε, v or x₀ prediction).
        let x0 = s.scheduler.predictOriginal(output, step: i, sample: x).x0
        let lbg = PILOTLoss.background(reconstruction: x0, source: s.source, keep: s.masks.keep)
        var terms: [Float] = []
        var lsc: Tensor?
        var layerCount = 0
        // The reference has no SBC masks (and so no L_sc) when the image has no hole.
        if s.masks.hasHole {
            for (_, probs) in control.captured {
                layerCount += 1
                guard let f = s.masks.hole[probs.dim(2)],
                      let term = PILOTLoss.centralisationTerm(probabilities: probs, hole: f, wordTokens: s.wordTokens) else {
                    terms.append(0)
                    continue
                }
                terms.append(term.item)
                lsc = lsc.map { $0 + term } ?? term
            }
        }
        let lscMean = lsc.map { $0 * (1 / Float(max(layerCount, 1))) }
        return PILOTObjective(background: lbg, centralisation: lscMean, layerTerms: terms,
                              total: lscMean.map { lbg + $0 * lambda } ?? lbg)
    }
}

/// The terms of PILOT's objective at one latent.
struct PILOTObjective {
    let background: Tensor
    /// The mean centralisation term (nil without a hole).
    let centralisation: Tensor?
    let layerTerms: [Float]
    let total: Tensor
}
