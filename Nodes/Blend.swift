import Diffusion
import Tensors
import Workflow

/// PILOT's second stage: blending.
struct Blend: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "Blend", category: "pilot",
        doc: """
            PILOT's second stage: the steps PILOTOptimize left (t < 1000·(1 − coherence)), each after blending \
            the source background, re-noised to that step with seeded noise (the state's seed and noise source), into the \
            unmasked region. With coherence 1 only the final blend-free steps remain, if any. With `noise` \
            (recorded noise, [k, N, 4, h, w] for a state of N candidates) the k-th step Blend runs uses its k-th \
            slice instead, so a run of another implementation can be reproduced from what it drew.
            """,
        inputs: [
            .connection("state", .samplerState, doc: "The state from PILOTOptimize."),
            .connection("noise", .latent, optional: true,
                        doc: "Recorded blend noise [k, N, 4, h, w] (LoadLatent): slice k for the k-th step Blend runs; seeded noise when absent."),
        ],
        outputs: [.output("latent", .latent, doc: "The final (scaled) latent, a row per candidate; VAEDecode makes it an image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let payload = try inputs.object("state", as: PILOTStatePayload.self)
        let candidate = payload.state.source.shape    // one candidate's [1, C, h, w]
        var noise = payload.random.steps(stream: SeededNoise.blendStream, shape: candidate)
        if let recorded = try inputs.optionalObject("noise", as: LatentPayload.self)?.latent {
            let shape = [payload.state.candidates] + candidate.dropFirst()
            let remaining = payload.state.scheduler.integerTimesteps.count - payload.state.nextStep
            guard recorded.rank == 5, Array(recorded.shape.dropFirst()) == shape, recorded.dim(0) >= remaining else {
                throw NodeError("noise has shape \(recorded.shape), expected [k, \(shape.map(String.init).joined(separator: ", "))] "
                                + "with k ≥ \(remaining), the steps Blend runs")
            }
            let first = payload.state.nextStep, plane = shape.reduce(1, *), values = recorded.scalars
            noise = { i in Tensor(shape: shape, values: Array(values[((i - first) * plane)..<((i - first + 1) * plane)])) }
        }
        do {
            let latent = try payload.sampler.blend(payload.state, noise: noise, progress: PILOTNodeSupport.progress(context),
                                                   preview: LatentPreview.hook(context, unet: payload.sampler.unet))
            return ["latent": .object(LatentPayload(latent), type: .latent)]
        } catch is CancelledError {
            throw CancellationError()
        }
    }
}
