import Workflow

/// Encodes a prompt and a negative prompt with CLIP.
struct TextEncode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "TextEncode", category: "conditioning",
        doc: """
            Encodes a prompt and a negative prompt with the checkpoint's CLIP text encoder (77 tokens, longer \
            prompts are truncated). The conditioning also carries the prompt's word-token positions, which \
            PILOT's attention loss uses.
            """,
        inputs: [
            .connection("clip", .clip, doc: "The text encoder (LoadCheckpoint.clip)."),
            .parameter("prompt", .string, doc: "What to draw."),
            .parameter("negative", .string, default: .string(""), doc: "What to steer away from (\"\" for none)."),
        ],
        outputs: [.output("conditioning", .conditioning, doc: "Positive and negative embeddings with word tokens.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let clip = try inputs.object("clip", as: CLIPPayload.self)
        let positive = clip.encode(try inputs.string("prompt"))
        let negative = clip.encode(try inputs.string("negative"))
        let conditioning = ConditioningPayload(positive: positive.embedding, negative: negative.embedding,
                                               wordTokens: positive.tokens.wordTokenIndices)
        return ["conditioning": .object(conditioning, type: .conditioning)]
    }
}
