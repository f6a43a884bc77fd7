import Diffusion
import Imaging
import Tensors
import Workflow

/// PILOT's first stage: latent optimisation.
struct PILOTOptimize: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "PILOTOptimize", category: "pilot",
        doc: """
            PILOT's first stage. Runs DDIM steps from the initial noise while t ≥ 1000·(1 − coherence), and at \
            every `interval`-th step optimises the latent for `inner_steps` heavy-ball iterations against the \
            background loss (keep the unmasked region equal to the source) plus the attention-centralisation \
            loss (draw the prompt's words inside the hole), with semantic-based conditioning (`sbc`) in every \
            cross-attention layer. Its `state` goes to Blend, which finishes the remaining steps. Adapters \
            attached to the UNet (ApplyControlNet, ApplyT2IAdapter, ApplyIPAdapter) act in every UNet call, the \
            gradient pass included (ControlNet residuals are differentiated through); PILOT's reference settings \
            with a ControlNet are coherence 0.8, lr 0.03, lr_warmup 0.01. With `batch` N it optimises N \
            candidates at once (seeds seed … seed + N − 1), each against its own losses, so candidate i is the \
            run of seed + i; Blend finishes them all.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet, or an Apply* or LoadLoRA node's, carrying its adapters)."),
            .connection("conditioning", .conditioning, doc: "Prompt embeddings with word tokens (TextEncode)."),
            .connection("source", .latent, doc: "The encoded source image (VAEEncode)."),
            .connection("mask", .mask, doc: "White = inpaint; the same size as the source image."),
            .connection("noise", .latent, optional: true, doc: "Initial noise [1, C, h, w] (standard normal); seeded noise when absent."),
            .parameter("steps", .int, default: .int(100), min: 1, max: 1000, doc: "DDIM steps in all (both stages)."),
            .parameter("cfg", .float, default: .float(7.5), min: 0, max: 100, doc: "Classifier-free guidance scale."),
            .parameter("strength", .float, default: .float(1), min: 0, max: 1,
                       doc: """
                           Denoise strength: below 1 the run starts at step steps − ⌊steps × strength⌋ from the source \
                           noised to it (image to image), so the hole keeps the source's layout; 1 (the paper) starts \
                           from noise.
                           """),
            .parameter("interval", .int, default: .int(10), min: 1, max: 1000, doc: "Optimise at every interval-th step (τ)."),
            .parameter("inner_steps", .int, default: .int(10), min: 0, max: 1000, doc: "Optimisation iterations per optimised step (K)."),
            .parameter("coherence", .float, default: .float(1.0), min: 0, max: 1,
                       doc: "γ: the share of the schedule that optimises; 0 = blended latent diffusion."),
            .parameter("lr", .float, default: .float(0.025), min: 0, max: 10, doc: "Learning rate."),
            .parameter("lr_warmup", .float, default: .float(0.007), min: 0, max: 10, doc: "Learning rate at the first step."),
            .parameter("coef", .float, default: .float(150), min: 0, max: 100_000, doc: "Weight of the centralisation loss (λ scale)."),
            .parameter("momentum", .float, default: .float(0.7), min: 0, max: 1, doc: "Heavy-ball momentum."),
            .parameter("sbc", .bool, default: .bool(true), doc: "Semantic-based conditioning: mask cross-attention to the hole."),
            PILOTNodeSupport.maskModeInput,
            .parameter("seed", .int, default: .int(0), doc: "Seed of the initial noise (when `noise` is absent) and of the blend noise."),
            PILOTNodeSupport.batchInput,
            NoiseSourceKind.input,
        ] + PILOTNodeSupport.sizeConditioningInputs,
        outputs: [.output("state", .samplerState, doc: "The optimised state (every candidate's); Blend finishes it.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let conditioning = try inputs.object("conditioning", as: ConditioningPayload.self)
        guard let source = try inputs.singleLatent("source") else { throw NodeError("missing input source") }
        let mask = try inputs.object("mask", as: Mask.self)
        var random = try NoiseSource(inputs)
        var parameters = PILOTParameters()
        parameters.steps = try inputs.int("steps")
        parameters.guidanceScale = Float(try inputs.float("cfg"))
        parameters.interval = try inputs.int("interval")
        parameters.innerSteps = try inputs.int("inner_steps")
        parameters.coherence = Float(try inputs.float("coherence"))
        parameters.learningRate = Float(try inputs.float("lr"))
        parameters.warmupLearningRate = Float(try inputs.float("lr_warmup"))
        parameters.coef = Float(try inputs.float("coef"))
        parameters.momentum = Float(try inputs.float("momentum"))
        parameters.sbc = try inputs.bool("sbc")
        let soft = try inputs.string("mask_mode") == "soft"
        parameters.differential = soft
        let noise: Tensor
        if let given = try inputs.singleLatent("noise") {
            try PILOTNodeSupport.checkGivenNoise(random, port: "noise")
            noise = given
        } else {
            noise = random.initial([1, source.dim(1), source.dim(2), source.dim(3)])
        }
        let candidates = noise.dim(0)
        let optimisedSteps = (parameters.steps + parameters.interval - 1) / parameters.interval
        try WorkLimit.check(node: "PILOTOptimize", guidedSteps: parameters.steps, batch: 2 * candidates,
                            gradientPasses: candidates * optimisedSteps * parameters.innerSteps,
                            height: source.dim(2), width: source.dim(3))
        let masks = try PILOTNodeSupport.masks(mask, for: source, soft: soft)
        let sampler = PILOTSampler(unet: unet.unet, schedule: unet.schedule, parameters: parameters)
        sampler.candidatesPerCall = BatchMemory.candidatesPerCall(unet: unet.unet, latentHeight: source.dim(2),
                                                                  latentWidth: source.dim(3), gradient: parameters.innerSteps > 0)
        sampler.adapters = try unet.adapterStack(latentHeight: source.dim(2), latentWidth: source.dim(3))
        sampler.added = try PILOTNodeSupport.addedConditioning(inputs, unet: unet, conditioning: conditioning,
                                                               latentHeight: source.dim(2), latentWidth: source.dim(3))
        do {
            let firstStep = try DenoiseStrength.firstStep(steps: parameters.steps, strength: try inputs.float("strength"))
            let start = try sampler.start(noise: noise, source: source, masks: masks, positive: conditioning.positive,
                                          negative: conditioning.negative, wordTokens: conditioning.wordTokens, firstStep: firstStep)
            let state = try sampler.optimise(start, progress: PILOTNodeSupport.progress(context),
                                             preview: LatentPreview.hook(context, unet: unet.unet))
            return ["state": .object(PILOTStatePayload(state: state, sampler: sampler, random: random), type: .samplerState)]
        } catch is CancelledError {
            throw CancellationError()
        }
    }
}
