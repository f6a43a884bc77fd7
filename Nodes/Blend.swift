import Diffusion
import Workflow

/// PILOT's second stage: blending.
struct Blend: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "Blend", category: "pilot",
        doc: """
            PILOT's second stage: the steps PILOTOptimize left (t < 1000·(1 − coherence)), each after blending \
            the source background, re-noised to that step with seeded noise (the state's seed), into the \
            unmasked region. With coherence 1 only the final blend-free steps remain, if any.
            """,
        inputs: [.connection("state", .samplerState, doc: "The state from PILOTOptimize.")],
        outputs: [.output("latent", .latent, doc: "The final (scaled) latent; VAEDecode makes it an image.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let payload = try inputs.object("state", as: PILOTStatePayload.self)
        do {
            let latent = try payload.sampler.blend(
                payload.state, noise: PILOTNodeSupport.blendNoise(seed: payload.seed, shape: payload.state.source.shape),
                progress: PILOTNodeSupport.progress(context))
            return ["latent": .object(LatentPayload(latent), type: .latent)]
        } catch is CancelledError {
            throw CancellationError()
        }
    }
}
