import Foundation
import Tensors

/// A prompt encoded for the UNet: the cross-attention context `[1, 77·k, D]`
/// (k chunks of 77 tokens), the pooled text embedding `[1, P]` for families
/// that take one (SDXL), and where the prompt's own tokens are (PILOT's
/// attention loss needs the word positions).
public struct EncodedPrompt {
    public var embedding: Tensor
    public var pooled: Tensor?
    /// The first chunk as the first encoder's tokenizer saw it.
    public var tokens: TokenizedPrompt
    /// Positions of the prompt's own tokens (words and textual-inversion
    /// vectors) in the whole sequence: chunk c's position j is 77·c + j.
    public var wordTokenIndices: [Int]

    public init(embedding: Tensor, pooled: Tensor?, tokens: TokenizedPrompt, wordTokenIndices: [Int]? = nil) {
        self.embedding = embedding
        self.pooled = pooled
        self.tokens = tokens
        self.wordTokenIndices = wordTokenIndices ?? tokens.wordTokenIndices
    }

    /// How many 77-token chunks the context holds.
    public var chunkCount: Int { embedding.dim(1) / tokens.ids.count }
}

/// A family's text encoders with their tokenizer, encoding prompts the way
/// the family's pipeline does: one encoder's final-norm states (SD 1.x/2.x),
/// or several encoders' penultimate states concatenated on features plus the
/// pooled projection (SDXL). Prompts longer than 75 tokens are encoded in
/// chunks and concatenated along the sequence, and `(text:1.2)` emphasis
/// weights the states, as AUTOMATIC1111's web UI does (``PromptChunker``,
/// ``PromptEmphasis``); a prompt of at most 75 tokens without emphasis is
/// encoded exactly as diffusers encodes it.
public final class PromptEncoder {
    public let family: ModelFamily
    public let encoders: [CLIPTextModel]
    public let tokenizer: CLIPTokenizer

    /// At most this many chunks (1,200 tokens): each costs a text-encoder
    /// pass and widens every cross-attention.
    public static let maxChunks = 16

    public init(family: ModelFamily, encoders: [CLIPTextModel], tokenizer: CLIPTokenizer) {
        precondition(encoders.count == family.textEncoders.count, "one text encoder per role of \(family)")
        self.family = family
        self.encoders = encoders
        self.tokenizer = tokenizer
    }

    /// The first encoder's token budget (77 for CLIP).
    public var maxTokens: Int { encoders[0].config.maxPositions }

    /// `prompt` through every encoder. `skipLastLayers` is "CLIP skip" on
    /// top of what the family already skips; `embeddings` are the textual
    /// inversions `embedding:NAME` may name.
    public func encode(_ prompt: String, skipLastLayers: Int = 0,
                       embeddings: [TextualInversion] = []) throws -> EncodedPrompt {
        let lookup: (String) -> (index: Int, tokens: Int)? = { name in
            embeddings.firstIndex { $0.name == name }.map { ($0, embeddings[$0].tokenCount) }
        }
        var perRole: [[PromptChunk]] = try family.textEncoders.map { role in
            try PromptChunker(tokenizer: tokenizer, padding: role.padding)
                .chunks(prompt, maxChunks: Self.maxChunks, embedding: lookup)
        }
        // Tokenizers that differ (SD2's '!' pad) may chunk differently: pad the shorter with empty chunks.
        let count = perRole.map(\.count).max()!
        for r in perRole.indices where perRole[r].count < count {
            let empty = try PromptChunker(tokenizer: tokenizer, padding: family.textEncoders[r].padding)
                .chunks("", maxChunks: 1, embedding: { _ in nil })[0]
            perRole[r] += Array(repeating: empty, count: count - perRole[r].count)
        }
        var states: [Tensor] = []
        var pooled: Tensor?
        for (r, (encoder, role)) in zip(encoders, family.textEncoders).enumerated() {
            var chunkStates: [Tensor] = []
            for (c, chunk) in perRole[r].enumerated() {
                var injected: [Int: [Float]] = [:]
                for (position, source) in chunk.injected {
                    let matrix = embeddings[source.embedding].vectors[r], width = matrix.dim(1)
                    injected[position] = Array(matrix.scalars[(source.row * width)..<((source.row + 1) * width)])
                }
                let out = encoder.encode(ids: [chunk.ids], skipLastLayers: skipLastLayers + (role.penultimate ? 1 : 0),
                                         normalised: !role.penultimate, pooled: role.pooled && c == 0, injected: injected)
                chunkStates.append(chunk.isWeighted ? Self.emphasised(out.hidden, chunk.multipliers) : out.hidden)
                if role.pooled, c == 0 { pooled = out.pooled }
            }
            states.append(chunkStates.count == 1 ? chunkStates[0] : concat(chunkStates, axis: 1))
        }
        let first = perRole[0]
        let length = first[0].ids.count
        let words = first.enumerated().flatMap { c, chunk in chunk.content.map { c * length + $0 } }
        let tokens = TokenizedPrompt(ids: first[0].ids, wordTokenIndices: first[0].content,
                                     endTokenIndex: first[0].ids.firstIndex(of: tokenizer.endTokenID) ?? length - 1,
                                     truncated: false)
        return EncodedPrompt(embedding: states.count == 1 ? states[0] : concat(states, axis: 2), pooled: pooled,
                             tokens: tokens, wordTokenIndices: words)
    }

    /// A1111's emphasis: each position's state times its weight, then the
    /// whole chunk rescaled so its mean is what it was before weighting.
    static func emphasised(_ z: Tensor, _ multipliers: [Float]) -> Tensor {
        let d = z.dim(2), values = z.scalars
        let before = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        var weighted = values
        for (p, m) in multipliers.enumerated() {
            for i in (p * d)..<((p + 1) * d) { weighted[i] *= m }
        }
        let after = weighted.reduce(0.0) { $0 + Double($1) } / Double(weighted.count)
        let scale = Float(before / after)
        return Tensor(shape: z.shape, values: weighted.map { $0 * scale })
    }

    /// The positive and negative prompts for guidance. For families with
    /// `zeroEmptyNegative` (SDXL), an empty negative prompt is zeros, as
    /// diffusers' `force_zeros_for_empty_prompt` makes it. When one prompt
    /// has more chunks than the other, the shorter is extended with the
    /// empty prompt's encoding (as A1111 pads the unconditional side).
    public func encode(prompt: String, negative: String, skipLastLayers: Int = 0,
                       embeddings: [TextualInversion] = []) throws -> PromptPair<EncodedPrompt> {
        var positive = try encode(prompt, skipLastLayers: skipLastLayers, embeddings: embeddings)
        if family.zeroEmptyNegative, negative.isEmpty {
            let zeros = EncodedPrompt(embedding: Tensor.zeros(positive.embedding.shape),
                                      pooled: positive.pooled.map { Tensor.zeros($0.shape) },
                                      tokens: tokenizer.tokenize("", length: maxTokens, padding: family.textEncoders[0].padding),
                                      wordTokenIndices: [])
            return PromptPair(negative: zeros, positive: positive)
        }
        var other = try encode(negative, skipLastLayers: skipLastLayers, embeddings: embeddings)
        let difference = positive.chunkCount - other.chunkCount
        if difference != 0 {
            let empty = try encode("", skipLastLayers: skipLastLayers).embedding
            func extended(_ e: EncodedPrompt, by n: Int) -> EncodedPrompt {
                var e = e
                e.embedding = concat([e.embedding] + Array(repeating: empty, count: n), axis: 1)
                return e
            }
            if difference > 0 { other = extended(other, by: difference) } else { positive = extended(positive, by: -difference) }
        }
        return PromptPair(negative: other, positive: positive)
    }
}

extension StableDiffusionModel {
    /// The first encoder's pad convention (SD1 pads with the end token, SD2 with "!").
    public var promptPadding: PromptPadding { family.textEncoders[0].padding }

    /// The model's own tokenizer files when its folder has them, else the
    /// bundled CLIP BPE (the same vocabulary for every CLIP text encoder;
    /// each role's padding is applied when tokenizing).
    public func tokenizer() throws -> CLIPTokenizer {
        if let folder = tokenizerFolders[0],
           FileManager.default.fileExists(atPath: folder.appendingPathComponent("vocab.json").path),
           FileManager.default.fileExists(atPath: folder.appendingPathComponent("merges.txt").path) {
            return try CLIPTokenizer(folder: folder.path)
        }
        return try CLIPTokenizer.bundled()
    }

    /// The text encoders with the tokenizer.
    public func promptEncoder() throws -> PromptEncoder {
        PromptEncoder(family: family, encoders: textEncoders, tokenizer: try tokenizer())
    }

    /// Text conditioning `[1, 77·k, hidden]` for `prompt`, with its first chunk's tokens.
    public func encode(prompt: String, tokenizer: CLIPTokenizer) throws -> (embedding: Tensor, tokens: TokenizedPrompt) {
        let out = try PromptEncoder(family: family, encoders: textEncoders, tokenizer: tokenizer).encode(prompt)
        return (out.embedding, out.tokens)
    }
}
