import Tensors

/// A value for the negative and the positive prompt.
public struct PromptPair<Value> {
    public var negative: Value
    public var positive: Value

    public init(negative: Value, positive: Value) {
        self.negative = negative
        self.positive = positive
    }
}

/// Which sampler a plain (non-PILOT) run uses.
public enum SamplerKind: String, Sendable, CaseIterable {
    case ddim
    case euler
    case eulerAncestral = "euler_a"
    case dpmpp2m = "dpmpp_2m"
    case dpmpp2mSDE = "dpmpp_2m_sde"
    case unipc

    /// Adds fresh noise at every step (so it needs a noise source per step).
    public var isAncestral: Bool { self == .eulerAncestral || self == .dpmpp2mSDE }

    /// Whether its steps can be placed by σ (`SigmaSpacing` other than the schedule's).
    public var takesSigmaSpacing: Bool { self != .ddim }

    /// A fresh scheduler over `schedule` for `steps` steps (`sigmas`: where
    /// the σ lie, for the kinds that take it).
    public func scheduler(_ schedule: NoiseScheduleConfig, steps: Int, eta: Float = 0,
                          sigmas: SigmaSpacing = .schedule) -> any Scheduler {
        switch self {
        case .ddim: return DDIMScheduler(config: schedule, steps: steps, eta: eta)
        case .euler: return EulerScheduler(config: schedule, steps: steps, spacing: sigmas)
        case .eulerAncestral: return EulerAncestralScheduler(config: schedule, steps: steps, spacing: sigmas)
        case .dpmpp2m: return DPMSolverScheduler(config: schedule, steps: steps, spacing: sigmas)
        case .dpmpp2mSDE: return DPMSolverScheduler(config: schedule, steps: steps, spacing: sigmas, stochastic: true)
        case .unipc: return UniPCScheduler(config: schedule, steps: steps, spacing: sigmas)
        }
    }
}

/// Progress of a sampling loop; return `false` from the handler to cancel.
public struct SamplingProgress: Sendable {
    public let step: Int
    public let total: Int
    public let timestep: Float
}

/// Thrown when a progress handler asked to stop.
public struct CancelledError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "cancelled" }
}

/// Text-conditioned denoising with classifier-free guidance, as diffusers'
/// `StableDiffusionPipeline` does it: the latent is duplicated, the UNet runs
/// on `[negative, positive]` context in one batch, and the guided output is
/// `uncond + scale·(cond − uncond)`.
public struct GuidedSampler {
    public let unet: UNet2DConditionModel
    public var guidanceScale: Float
    /// ControlNets, T2I-Adapters and IP-Adapter, when any.
    public var adapters: AdapterStack?
    /// The added conditioning of the negative and positive prompts, for
    /// UNets that take one (SDXL: pooled text and size/crop time ids).
    public var added: PromptPair<AddedConditioning>?
    /// For an inpainting UNet (9 input channels): the mask and the masked
    /// image's latent, `[1, 5, h, w]`, appended to the scaled latent at every
    /// step as diffusers' StableDiffusionInpaintPipeline does (adapters see
    /// the 4-channel latent).
    public var inpaintChannels: Tensor?
    /// Previews of x̂₀ at the steps it asks for (the first candidate's).
    public var preview: SamplerPreview?
    /// The most candidates one UNet call takes (a batch beyond it runs in
    /// groups; ``BatchMemory`` chooses it for the memory at hand).
    public var candidatesPerCall = Int.max

    public init(unet: UNet2DConditionModel, guidanceScale: Float = 7.5, adapters: AdapterStack? = nil,
                added: PromptPair<AddedConditioning>? = nil) {
        self.unet = unet
        self.guidanceScale = guidanceScale
        self.adapters = adapters
        self.added = added
    }

    /// UNet conditioning for `x` with `context` (one row per row of `x`):
    /// a guidance pass (`guided`: N unconditional rows, then N conditional)
    /// or N conditional rows.
    func conditioning(_ x: Tensor, timestep: Float, step: Int, steps: Int, context: Tensor,
                      control: AttentionControl?, guided: Bool) throws -> UNetConditioning {
        let rows = x.dim(0), n = guided ? rows / 2 : rows
        let added = self.added.map { pair in
            guided ? AddedConditioning.batched(Array(repeating: pair.negative, count: n) + Array(repeating: pair.positive, count: n))
                : n == 1 ? pair.positive : AddedConditioning.batched(Array(repeating: pair.positive, count: n))
        }
        guard let adapters, !adapters.isEmpty else {
            return UNetConditioning(context: context, attentionControl: control, added: added)
        }
        return try adapters.conditioning(x: x, timestep: timestep, step: step, steps: steps, context: context,
                                         attentionControl: control, added: added, guided: guided)
    }

    /// The guided model output at step `step` of `steps` for latents
    /// `x [N, C, h, w]`, N candidates under the same prompts (the step
    /// position gates ControlNets). The candidates go through the UNet
    /// together, `candidatesPerCall` at a time (2 rows each with guidance);
    /// no row depends on another, so each candidate's output is what it
    /// would be alone.
    public func guidedOutput(_ x: Tensor, timestep: Float, positive: Tensor, negative: Tensor,
                             control: AttentionControl? = nil, step: Int = 0, steps: Int = 1) throws -> Tensor {
        let parts = try x.rowGroups(candidatesPerCall).map { group in
            try guidedCall(group, timestep: timestep, positive: positive, negative: negative, control: control, step: step, steps: steps)
        }
        return parts.count == 1 ? parts[0] : concat(parts, axis: 0)
    }

    /// One UNet call for the candidates `x [n, C, h, w]`.
    private func guidedCall(_ x: Tensor, timestep: Float, positive: Tensor, negative: Tensor,
                            control: AttentionControl?, step: Int, steps: Int) throws -> Tensor {
        let n = x.dim(0)
        if guidanceScale == 1 {
            let context = positive.repeatingRows(n)
            return try unet(withInpaintChannels(x), timesteps: Array(repeating: timestep, count: n),
                            conditioning: conditioning(x, timestep: timestep, step: step, steps: steps, context: context,
                                                       control: control, guided: false))
        }
        let batch = concat([x, x], axis: 0)
        let context = concat([negative.repeatingRows(n), positive.repeatingRows(n)], axis: 0)
        let out = try unet(withInpaintChannels(batch), timesteps: Array(repeating: timestep, count: 2 * n),
                           conditioning: conditioning(batch, timestep: timestep, step: step, steps: steps, context: context,
                                                      control: control, guided: true))
        let parts = out.chunked(2, axis: 0)
        return parts[0] + (parts[1] - parts[0]) * guidanceScale
    }

    /// `x [B, 4, h, w]` with the inpainting channels appended (for each of
    /// the B rows), or `x` itself without them.
    func withInpaintChannels(_ x: Tensor) -> Tensor {
        guard let inpaintChannels else { return x }
        return concat([x, inpaintChannels.repeatingRows(x.dim(0))], axis: 1)
    }

    /// An inpainting UNet has its channels, any other none, and their size is the latent's.
    func checkInpaintChannels(height: Int, width: Int) throws {
        let expected = unet.config.inChannels - unet.config.outChannels
        let given = inpaintChannels.map { $0.dim(1) } ?? 0
        guard given == expected else {
            throw ModelInputError.shape(what: "inpainting channels (mask and masked-image latent)",
                                        expected: expected == 0 ? "none: this UNet takes the latent alone"
                                            : "[1, \(expected), \(height), \(width)] (an inpainting UNet; InpaintConditioning makes them)",
                                        found: inpaintChannels?.shape ?? [])
        }
        if let inpaintChannels, inpaintChannels.dim(0) != 1 || inpaintChannels.dim(2) != height || inpaintChannels.dim(3) != width {
            throw ModelInputError.shape(what: "inpainting channels", expected: "[1, \(expected), \(height), \(width)]",
                                        found: inpaintChannels.shape)
        }
    }

    /// Runs every step of `scheduler` from `noise` `[N, C, h, w]` (N
    /// candidates; the initial latent before scaling by `initNoiseSigma`).
    /// `stepNoise` supplies the per-step noise (DDIM η, ancestral samplers), N rows.
    ///
    /// Image to image: with `source` (a clean scaled latent) the run starts
    /// at step `firstStep` (``DenoiseStrength/firstStep(steps:strength:)``)
    /// from `source` noised to that step with `noise`, as diffusers'
    /// img2img pipelines do.
    public func run(scheduler: inout some Scheduler, noise: Tensor, positive: Tensor, negative: Tensor,
                    source: Tensor? = nil, firstStep: Int = 0,
                    stepNoise: ((Int) -> Tensor)? = nil,
                    progress: ((SamplingProgress) -> Bool)? = nil) throws -> Tensor {
        try adapters?.checkCompatible(with: unet, height: noise.dim(2), width: noise.dim(3))
        try checkInpaintChannels(height: noise.dim(2), width: noise.dim(3))
        let ts = scheduler.timesteps
        precondition(firstStep >= 0 && firstStep < ts.count, "first step \(firstStep) of \(ts.count)")
        var x = source.map { scheduler.addNoise($0, noise: noise, step: firstStep) } ?? noise * scheduler.initNoiseSigma
        for (i, t) in ts.enumerated() where i >= firstStep {
            let input = scheduler.scaleModelInput(x, step: i)
            let out = try guidedOutput(input, timestep: t, positive: positive, negative: negative, step: i, steps: ts.count)
            if let preview, preview.wants(i + 1, ts.count) {
                preview.show(i + 1, ts.count, scheduler.denoised(out, step: i, sample: x))
            }
            x = scheduler.step(out, step: i, sample: x, noise: stepNoise?(i))
            if let progress, !progress(SamplingProgress(step: i + 1, total: ts.count, timestep: t)) {
                throw CancelledError()
            }
        }
        return x
    }
}

extension AutoencoderKL {
    /// RGB in [0, 1] for scaled latents (divides by the scaling factor first).
    public func decodeToImage(scaledLatent z: Tensor) throws -> Tensor {
        let image = try decode(z * (1 / config.scalingFactor))
        return (image * 0.5 + 0.5).clamped(0, 1)
    }

    /// Scaled latents (posterior mean, or a sample with `noise`) for RGB in [0, 1].
    public func encodeImage(_ rgb: Tensor, noise: Tensor? = nil) throws -> Tensor {
        let posterior = try encode(rgb * 2 - 1)
        return (noise.map { posterior.sample(noise: $0) } ?? posterior.mean) * config.scalingFactor
    }
}
