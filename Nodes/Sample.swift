import Diffusion
import Imaging
import Tensors
import Workflow

/// Plain classifier-free-guided sampling: text-to-image, or blended-latent
/// inpainting when a source latent and a mask are given.
struct Sample: Node, DefaultConstructible {
    static let schedulerType = PortType.enumeration(name: "Scheduler", cases: SamplerKind.allCases.map(\.rawValue))

    static let nodeDescription = NodeDescription(
        type: "Sample", category: "sampling",
        doc: """
            Denoises a latent with classifier-free guidance (DDIM, Euler, Euler ancestral, DPM++ 2M, DPM++ 2M \
            SDE or UniPC; all but DDIM on the schedule's, Karras or exponential σ), as diffusers' \
            StableDiffusionPipeline does. The initial noise is `latent` when given, else seeded noise of \
            width/8 × height/8 (the size of `source` when that is given). With `source` and `mask` it does \
            blended latent diffusion (ddim only): before every step the masked-out background is replaced by \
            the source re-noised to that step, so only the white region of the mask is generated. Adapters \
            attached to the UNet (ApplyControlNet, ApplyT2IAdapter, ApplyIPAdapter) act at every step. An \
            inpainting checkpoint (9-channel UNet) runs on the channels InpaintConditioning attached to the \
            conditioning, at their size. With `batch` N it makes N candidates at once (seeds seed … seed + N − 1, \
            one UNet call for all where memory allows), each the image a run of its own seed makes.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet, or an Apply* or LoadLoRA node's, carrying its adapters)."),
            .connection("conditioning", .conditioning, doc: "Prompt embeddings (TextEncode)."),
            .connection("latent", .latent, optional: true,
                        doc: "Initial noise [1, C, h, w] (unscaled standard normal); seeded noise when absent."),
            .connection("source", .latent, optional: true,
                        doc: "The encoded source image (VAEEncode): with a mask, blended inpainting; alone, image to image at `strength`."),
            .connection("mask", .mask, optional: true, doc: "Blended inpainting: white = generate, black = keep the source."),
            PILOTNodeSupport.maskModeInput,
            .parameter("steps", .int, default: .int(30), min: 1, max: 1000, doc: "Denoising steps."),
            .parameter("strength", .float, default: .float(1), min: 0, max: 1,
                       doc: """
                           Image to image (a source without a mask): how much to change it. The run starts at step \
                           steps − ⌊steps × strength⌋ from the source noised to that step, as diffusers' img2img; 1 \
                           starts from (almost) pure noise, lower keeps more of the layout.
                           """),
            .parameter("cfg", .float, default: .float(7.5), min: 0, max: 100, doc: "Classifier-free guidance scale."),
            .parameter("scheduler", schedulerType, default: .string("ddim"), doc: "The sampler."),
            .parameter("eta", .float, default: .float(0), min: 0, max: 1, doc: "DDIM η (0 = deterministic)."),
            .parameter("sigmas", .enumeration(name: "Sigmas", cases: SigmaSpacing.allCases.map(\.rawValue)), default: .string("schedule"),
                       doc: """
                           Where the σ-space samplers (euler, euler_a, dpmpp_2m, dpmpp_2m_sde, unipc) place their steps: schedule \
                           (the checkpoint's timestep spacing), karras (Karras et al.'s ramp, ρ 7: diffusers' \
                           use_karras_sigmas; "DPM++ 2M Karras") or exponential (even in log σ). ddim takes only schedule.
                           """),
            .parameter("seed", .int, default: .int(0), doc: "Seed of the initial noise (and of η and blend noise)."),
            PILOTNodeSupport.batchInput,
            NoiseSourceKind.input,
            .parameter("width", .int, default: .int(512), min: 8, max: 4096, doc: "Image width in pixels (multiple of 8) when no latent or source is given."),
            .parameter("height", .int, default: .int(512), min: 8, max: 4096, doc: "Image height in pixels (multiple of 8) when no latent or source is given."),
        ] + PILOTNodeSupport.sizeConditioningInputs,
        outputs: [.output("latent", .latent, doc: "The denoised (scaled) latent, N rows for a batch; VAEDecode makes it an image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let conditioning = try inputs.object("conditioning", as: ConditioningPayload.self)
        let source = try inputs.singleLatent("source")
        let mask = try inputs.optionalObject("mask", as: Mask.self)
        let steps = try inputs.int("steps")
        let cfg = Float(try inputs.float("cfg")), eta = Float(try inputs.float("eta"))
        guard let kind = SamplerKind(rawValue: try inputs.string("scheduler")) else {
            throw NodeError("unknown scheduler")
        }
        let sigmas = SigmaSpacing(rawValue: try inputs.string("sigmas")) ?? .schedule
        guard sigmas == .schedule || kind.takesSigmaSpacing else {
            throw NodeError("sigmas \(sigmas.rawValue) applies to the euler, euler_a, dpmpp_2m, dpmpp_2m_sde and unipc schedulers, found \(kind.rawValue)")
        }
        let config = unet.unet.config
        if config.inChannels != config.outChannels, conditioning.inpaint == nil {
            throw NodeError("this UNet is an inpainting checkpoint (\(config.inChannels) input channels): give Sample the "
                            + "conditioning of an InpaintConditioning node (it adds the mask and the masked image)")
        }
        if config.inChannels == config.outChannels, conditioning.inpaint != nil {
            throw NodeError("the conditioning carries inpainting channels (InpaintConditioning), but this UNet takes "
                            + "\(config.inChannels) channels: InpaintConditioning is for inpainting checkpoints (9 channels)")
        }
        var random = try NoiseSource(inputs)
        let noise: Tensor
        if let given = try inputs.singleLatent("latent") {
            try PILOTNodeSupport.checkGivenNoise(random, port: "latent")
            noise = given
        } else if let source {
            noise = random.initial([1, source.dim(1), source.dim(2), source.dim(3)])
        } else if let inpaint = conditioning.inpaint {
            noise = random.initial([1, config.outChannels, inpaint.dim(2), inpaint.dim(3)])
        } else {
            let width = try inputs.int("width"), height = try inputs.int("height")
            guard width % 8 == 0, height % 8 == 0 else {
                throw NodeError("width and height must be multiples of 8, found \(width)×\(height)")
            }
            noise = random.initial([1, config.outChannels, height / 8, width / 8])
        }
        try WorkLimit.check(node: "Sample", guidedSteps: steps, batch: 2 * noise.dim(0), gradientPasses: 0,
                            height: noise.dim(2), width: noise.dim(3))
        let perCall = BatchMemory.candidatesPerCall(unet: unet.unet, latentHeight: noise.dim(2), latentWidth: noise.dim(3),
                                                    gradient: false)
        let adapters = try unet.adapterStack(latentHeight: noise.dim(2), latentWidth: noise.dim(3))
        let added = try PILOTNodeSupport.addedConditioning(inputs, unet: unet, conditioning: conditioning,
                                                           latentHeight: noise.dim(2), latentWidth: noise.dim(3))
        let report: (Int, Int) -> Bool = { step, total in
            context.report(step: step, total: total)
            return !context.isCancelled
        }
        do {
            switch (source, mask) {
            case let (source?, mask?):
                guard try inputs.float("strength") == 1 else {
                    throw NodeError("strength applies to image to image (a source without a mask); blended inpainting runs every step")
                }
                guard kind == .ddim else {
                    throw NodeError("blended inpainting (source and mask given) runs with scheduler ddim only, found \(kind.rawValue)")
                }
                guard conditioning.inpaint == nil else {
                    throw NodeError("an inpainting checkpoint takes its mask through InpaintConditioning; give Sample no mask")
                }
                let latent = try blended(unet: unet, adapters: adapters, added: added, conditioning: conditioning, noise: noise,
                                         source: source, mask: mask, soft: try inputs.string("mask_mode") == "soft",
                                         steps: steps, cfg: cfg, random: random, perCall: perCall,
                                         preview: LatentPreview.hook(context, unet: unet.unet), report: report)
                return ["latent": .object(LatentPayload(latent), type: .latent)]
            case let (source, nil):
                // Text to image, or image to image from the source at `strength`.
                let firstStep = source == nil ? 0 : try DenoiseStrength.firstStep(steps: steps, strength: try inputs.float("strength"))
                var scheduler = kind.scheduler(unet.schedule, steps: steps, eta: eta, sigmas: sigmas)
                let shape = [1] + noise.shape.dropFirst()    // one candidate's
                // DDIM's η and the ancestral samplers draw fresh noise every step.
                let stepNoise: ((Int) -> Tensor)? = eta > 0 || kind.isAncestral
                    ? random.steps(stream: SeededNoise.etaStream, shape: shape)
                    : nil
                let latent = try sample(&scheduler, unet: unet, adapters: adapters, added: added, conditioning: conditioning, noise: noise,
                                        source: source, firstStep: firstStep, cfg: cfg, stepNoise: stepNoise, perCall: perCall,
                                        preview: LatentPreview.hook(context, unet: unet.unet), report: report)
                return ["latent": .object(LatentPayload(latent), type: .latent)]
            default:
                throw NodeError("a mask needs a 'source' to inpaint; none was given")
            }
        } catch is CancelledError {
            throw CancellationError()
        }
    }

    private func sample(_ scheduler: inout some Scheduler, unet: UNetPayload, adapters: AdapterStack?,
                        added: PromptPair<AddedConditioning>?, conditioning: ConditioningPayload, noise: Tensor,
                        source: Tensor?, firstStep: Int, cfg: Float, stepNoise: ((Int) -> Tensor)?, perCall: Int,
                        preview: SamplerPreview?, report: @escaping (Int, Int) -> Bool) throws -> Tensor {
        var sampler = GuidedSampler(unet: unet.unet, guidanceScale: cfg, adapters: adapters, added: added)
        sampler.candidatesPerCall = perCall
        sampler.inpaintChannels = conditioning.inpaint
        sampler.preview = preview
        return try sampler.run(scheduler: &scheduler, noise: noise, positive: conditioning.positive,
                               negative: conditioning.negative, source: source, firstStep: firstStep, stepNoise: stepNoise,
                               progress: { report($0.step, $0.total) })
    }

    private func blended(unet: UNetPayload, adapters: AdapterStack?, added: PromptPair<AddedConditioning>?, conditioning: ConditioningPayload, noise: Tensor,
                         source: Tensor, mask: Mask, soft: Bool, steps: Int, cfg: Float, random: NoiseSource, perCall: Int,
                         preview: SamplerPreview?, report: @escaping (Int, Int) -> Bool) throws -> Tensor {
        var parameters = PILOTParameters.blendedLatentDiffusion
        parameters.steps = steps
        parameters.guidanceScale = cfg
        parameters.differential = soft
        let sampler = PILOTSampler(unet: unet.unet, schedule: unet.schedule, parameters: parameters)
        sampler.adapters = adapters
        sampler.added = added
        sampler.candidatesPerCall = perCall
        let masks = try PILOTNodeSupport.masks(mask, for: source, soft: soft)
        return try sampler.run(noise: noise, source: source, masks: masks, positive: conditioning.positive,
                               negative: conditioning.negative, wordTokens: conditioning.wordTokens,
                               blendNoise: random.steps(stream: SeededNoise.blendStream, shape: source.shape),
                               progress: { report($0.step, $0.total) }, preview: preview)
    }
}

/// Shared by Sample, PILOTOptimize and Blend.
enum PILOTNodeSupport {
    /// `batch` on Sample and PILOTOptimize.
    static let batchInput: PortSpec = .parameter(
        "batch", .int, default: .int(1), min: 1, max: Double(LatentPayload.maxBatch), doc: """
            Candidates to make at once, with seeds seed … seed + batch − 1 (each with its own generator, as \
            AUTOMATIC1111 seeds a batch), so candidate i is the image of a run with seed + i. They share the UNet \
            calls (one call for all where memory allows: PILOT_BATCH_PER_CALL caps it) and PILOT's losses and \
            gradients stay each candidate's own. The latent has a row per candidate; VAEDecode makes a batch of \
            images and SaveImage writes NAME-0 … NAME-(batch−1).
            """)

    /// Given initial noise is one candidate's: a batch draws its own from the seeds.
    static func checkGivenNoise(_ random: NoiseSource, port: String) throws {
        guard random.candidates == 1 else {
            throw NodeError("'\(port)' gives the initial noise of one candidate, but batch is \(random.candidates): a batch "
                            + "draws each candidate's noise from seed + i; give no '\(port)' or set batch to 1")
        }
    }

    /// SDXL's size conditioning, optional parameters of the sampling nodes
    /// (ignored by families without it).
    static let sizeConditioningInputs: [PortSpec] = [
        .parameter("original_width", .int, optional: true, min: 8, max: 16384,
                   doc: "SDXL size conditioning: the width the image is said to have had (default: the output width)."),
        .parameter("original_height", .int, optional: true, min: 8, max: 16384,
                   doc: "SDXL size conditioning: the original height (default: the output height)."),
        .parameter("crop_left", .int, default: .int(0), min: 0, max: 16384,
                   doc: "SDXL crop conditioning: the left edge of the crop (0 = an uncropped image)."),
        .parameter("crop_top", .int, default: .int(0), min: 0, max: 16384, doc: "SDXL crop conditioning: the top edge."),
        .parameter("target_width", .int, optional: true, min: 8, max: 16384,
                   doc: "SDXL size conditioning: the target width (default: the output width)."),
        .parameter("target_height", .int, optional: true, min: 8, max: 16384,
                   doc: "SDXL size conditioning: the target height (default: the output height)."),
    ]

    /// The added conditioning (pooled text and time ids, the same sizes for
    /// both prompts, as diffusers' SDXL pipelines default to) when the UNet
    /// takes it; nil for families without it.
    static func addedConditioning(_ inputs: NodeInputs, unet: UNetPayload, conditioning: ConditioningPayload,
                                  latentHeight: Int, latentWidth: Int) throws -> PromptPair<AddedConditioning>? {
        guard let addition = unet.unet.config.addition else { return nil }
        guard let positive = conditioning.pooledPositive, let negative = conditioning.pooledNegative else {
            throw NodeError("the UNet takes pooled text embeddings (an SDXL-family model), but the conditioning has none: "
                            + "encode the prompt with the same checkpoint's clip")
        }
        guard positive.shape == [1, addition.textEmbedDim] else {
            throw NodeError("the UNet takes pooled text embeddings [1, \(addition.textEmbedDim)], the conditioning has \(positive.shape): "
                            + "encode the prompt with the same checkpoint's clip")
        }
        func size(_ name: String, _ fallback: Int) throws -> Int { inputs.has(name) ? try inputs.int(name) : fallback }
        let height = 8 * latentHeight, width = 8 * latentWidth
        let ids = AddedConditioning.timeIds(
            originalSize: (try size("original_height", height), try size("original_width", width)),
            cropTopLeft: (try inputs.int("crop_top"), try inputs.int("crop_left")),
            targetSize: (try size("target_height", height), try size("target_width", width)))
        return PromptPair(negative: AddedConditioning(textEmbeds: negative, timeIds: ids),
                          positive: AddedConditioning(textEmbeds: positive, timeIds: ids))
    }

    /// PILOT's masks for a pixel mask over a source latent; sizes must agree.
    static func masks(_ mask: Mask, for source: Tensor, soft: Bool = false) throws -> InpaintingMasks {
        guard source.rank == 4, mask.width == source.dim(3) * 8, mask.height == source.dim(2) * 8 else {
            throw NodeError("mask is \(mask.width)×\(mask.height) but the source latent \(source.shape) is an image of \(source.dim(-1) * 8)×\(source.dim(-2) * 8)")
        }
        let pixels = Tensor(shape: [mask.height, mask.width], values: mask.values)
        return soft ? try InpaintingMasks(softPixelMask: pixels) : try InpaintingMasks(pixelMask: pixels)
    }

    /// How a sampling node uses a soft mask: `hard` (the reference's rule,
    /// results equal to it) or `soft` (averaged keep-mask, differential blending).
    static let maskModeType = PortType.enumeration(name: "MaskMode", cases: ["hard", "soft"])

    static let maskModeInput: PortSpec = .parameter("mask_mode", maskModeType, default: .string("hard"), doc: """
        How the mask is read. hard (default, the reference's rule): binarised at 0.5, each latent cell takes \
        its top-left pixel. soft: each cell keeps 1 − its pixels' mean (a feathered edge stays soft); the \
        background loss weighs cells by it, and blending is differential: a cell is re-imposed from the \
        source until the step where the schedule passes its keep value, then left to the model.
        """)

    /// Forwards PILOT progress (with losses) to the node context; false cancels.
    static func progress(_ context: NodeContext) -> (PILOTProgress) -> Bool {
        { p in
            var extra: [String: Double] = [:]
            if let inner = p.inner { extra["inner"] = Double(inner) }
            if let loss = p.totalLoss { extra["loss"] = Double(loss) }
            if let loss = p.backgroundLoss { extra["loss_bg"] = Double(loss) }
            if let loss = p.centralisationLoss { extra["loss_sc"] = Double(loss) }
            context.report(step: p.step, total: p.total, extra: extra)
            return !context.isCancelled
        }
    }
}
