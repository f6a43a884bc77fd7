import Workflow

/// Encodes a prompt and a negative prompt with the family's text encoders.
struct TextEncode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "TextEncode", category: "conditioning",
        doc: """
            Encodes a prompt and a negative prompt with the checkpoint's text encoders (77 tokens, longer \
            prompts are truncated): CLIP's final states for SD 1.x/2.x; for SDXL both encoders' penultimate \
            states side by side plus the pooled embedding, and an empty negative prompt as zeros (diffusers' \
            force_zeros_for_empty_prompt). The conditioning also carries the prompt's word-token positions, \
            which PILOT's attention loss uses.
            """,
        inputs: [
            .connection("clip", .clip, doc: "The text encoder (LoadCheckpoint.clip)."),
            .parameter("prompt", .string, max: Double(PromptLimit.maxBytes), doc: "What to draw."),
            .parameter("negative", .string, default: .string(""), max: Double(PromptLimit.maxBytes),
                       doc: "What to steer away from (\"\" for none)."),
            .parameter("clip_skip", .int, default: .int(0), min: 0, max: 12,
                       doc: "CLIP skip: leave out this many final encoder layers (0 = all; 1 is A1111's \"clip skip 2\"), on top of what the family already skips."),
        ],
        outputs: [.output("conditioning", .conditioning, doc: "Positive and negative embeddings with word tokens.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let clip = try inputs.object("clip", as: CLIPPayload.self)
        let pair = clip.encoder.encode(prompt: try inputs.string("prompt"), negative: try inputs.string("negative"),
                                       skipLastLayers: try inputs.int("clip_skip"))
        let conditioning = ConditioningPayload(positive: pair.positive.embedding, negative: pair.negative.embedding,
                                               wordTokens: pair.positive.tokens.wordTokenIndices,
                                               pooledPositive: pair.positive.pooled, pooledNegative: pair.negative.pooled)
        return ["conditioning": .object(conditioning, type: .conditioning)]
    }
}
