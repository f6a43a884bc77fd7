import Diffusion
import Foundation
import Workflow

/// Encodes a prompt and a negative prompt with the family's text encoders.
struct TextEncode: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "TextEncode", category: "conditioning",
        doc: """
            Encodes a prompt and a negative prompt with the checkpoint's text encoders: CLIP's final states for \
            SD 1.x/2.x; for SDXL both encoders' penultimate states side by side plus the pooled embedding (from \
            the first chunk), and an empty negative prompt as zeros (diffusers' force_zeros_for_empty_prompt). \
            Prompts are read as AUTOMATIC1111's web UI reads them: `(text)` weighs text 1.1×, `[text]` 1/1.1×, \
            `(text:1.3)` 1.3× (the chunk's states are then rescaled to their unweighted mean), `\\(` is a \
            literal bracket; prompts longer than 75 tokens are encoded in chunks of 75 (broken after a comma \
            within the last 20 tokens, or at BREAK) concatenated along the sequence, at most \
            \(PromptEncoder.maxChunks) chunks; the shorter of prompt and negative is extended with empty \
            chunks. `embedding:NAME` inserts a textual inversion from the `embeddings` folder. The \
            conditioning carries the prompt's word-token positions across all chunks, which PILOT's \
            attention loss uses; the emphasis syntax is not part of them.
            """,
        inputs: [
            .connection("clip", .clip, doc: "The text encoder (LoadCheckpoint.clip)."),
            .parameter("prompt", .string, max: Double(PromptLimit.maxBytes), doc: "What to draw."),
            .parameter("negative", .string, default: .string(""), max: Double(PromptLimit.maxBytes),
                       doc: "What to steer away from (\"\" for none)."),
            .parameter("clip_skip", .int, default: .int(0), min: 0, max: 12,
                       doc: "CLIP skip: leave out this many final encoder layers (0 = all; 1 is A1111's \"clip skip 2\"), on top of what the family already skips."),
            .file("embeddings", optional: true,
                  doc: """
                      Folder of textual-inversion embeddings: `embedding:NAME` in a prompt reads NAME.safetensors \
                      there (`emb_params` [k, 768] for SD 1.x, [k, 1024] for SD 2.x; `clip_l` and `clip_g` for SDXL).
                      """),
        ],
        outputs: [.output("conditioning", .conditioning, doc: "Positive and negative embeddings with word tokens.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let clip = try inputs.object("clip", as: CLIPPayload.self)
        let prompt = try inputs.string("prompt"), negative = try inputs.string("negative")
        let embeddings = try Self.embeddings(for: [prompt, negative], folder: inputs.has("embeddings") ? try inputs.path("embeddings") : nil,
                                             encoders: clip.encoder.encoders)
        let pair: PromptPair<EncodedPrompt>
        do {
            pair = try clip.encoder.encode(prompt: prompt, negative: negative, skipLastLayers: try inputs.int("clip_skip"),
                                           embeddings: embeddings)
        } catch let error as PromptError {
            throw NodeError(error.description)
        }
        let conditioning = ConditioningPayload(positive: pair.positive.embedding, negative: pair.negative.embedding,
                                               wordTokens: pair.positive.wordTokenIndices,
                                               pooledPositive: pair.positive.pooled, pooledNegative: pair.negative.pooled)
        return ["conditioning": .object(conditioning, type: .conditioning)]
    }

    /// The textual inversions the prompts name, read from `folder`.
    static func embeddings(for prompts: [String], folder: URL?, encoders: [CLIPTextModel]) throws -> [TextualInversion] {
        var names: [String] = []
        for prompt in prompts {
            for reference in PromptChunker.references(in: prompt) where !names.contains(reference.name) {
                names.append(reference.name)
            }
        }
        guard !names.isEmpty else { return [] }
        guard let folder else {
            throw NodeError("the prompt names embedding:\(names[0]) but 'embeddings' (the folder of textual inversions) is not set")
        }
        guard names.count <= 64 else { throw NodeError("the prompts name \(names.count) embeddings; at most 64") }
        let root = folder.resolvingSymlinksInPath().standardizedFileURL
        return try names.map { name in
            let file = root.appendingPathComponent(name + ".safetensors").resolvingSymlinksInPath().standardizedFileURL
            // A link inside the folder must not lead out of it (the folder itself passed the read policy).
            guard file.deletingLastPathComponent().path == root.path else {
                throw NodeError("embedding:\(name): \(file.path) lies outside the embeddings folder \(root.path)")
            }
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw NodeError("embedding:\(name): no file \(name).safetensors in \(root.path)")
            }
            do {
                return try TextualInversion.load(path: file.path, name: name, encoders: encoders)
            } catch let error as PromptError {
                throw NodeError(error.description)
            } catch {
                throw NodeError("embedding:\(name): \(file.path): \(error)")
            }
        }
    }
}
