import Foundation
import Tensors

/// A prompt encoded for the UNet: the cross-attention context `[1, 77, D]`,
/// the pooled text embedding `[1, P]` for families that take one (SDXL), and
/// the tokens (PILOT's attention loss needs the word positions).
public struct EncodedPrompt {
    public var embedding: Tensor
    public var pooled: Tensor?
    public var tokens: TokenizedPrompt

    public init(embedding: Tensor, pooled: Tensor?, tokens: TokenizedPrompt) {
        self.embedding = embedding
        self.pooled = pooled
        self.tokens = tokens
    }
}

/// A family's text encoders with their tokenizer, encoding prompts the way
/// the family's pipeline does: one encoder's final-norm states (SD 1.x/2.x),
/// or several encoders' penultimate states concatenated on features plus the
/// pooled projection (SDXL).
public final class PromptEncoder {
    public let family: ModelFamily
    public let encoders: [CLIPTextModel]
    public let tokenizer: CLIPTokenizer

    public init(family: ModelFamily, encoders: [CLIPTextModel], tokenizer: CLIPTokenizer) {
        precondition(encoders.count == family.textEncoders.count, "one text encoder per role of \(family)")
        self.family = family
        self.encoders = encoders
        self.tokenizer = tokenizer
    }

    /// The first encoder's token budget (77 for CLIP).
    public var maxTokens: Int { encoders[0].config.maxPositions }

    /// `prompt` through every encoder. `skipLastLayers` is "CLIP skip" on
    /// top of what the family already skips.
    public func encode(_ prompt: String, skipLastLayers: Int = 0) -> EncodedPrompt {
        var states: [Tensor] = []
        var pooled: Tensor?
        var first: TokenizedPrompt?
        for (encoder, role) in zip(encoders, family.textEncoders) {
            let tokens = tokenizer.tokenize(prompt, length: encoder.config.maxPositions, padding: role.padding)
            if first == nil { first = tokens }
            let out = encoder.encode(ids: [tokens.ids], skipLastLayers: skipLastLayers + (role.penultimate ? 1 : 0),
                                     normalised: !role.penultimate, pooled: role.pooled)
            states.append(out.hidden)
            if role.pooled { pooled = out.pooled }
        }
        return EncodedPrompt(embedding: states.count == 1 ? states[0] : concat(states, axis: 2), pooled: pooled,
                             tokens: first!)
    }

    /// The positive and negative prompts for guidance. For families with
    /// `zeroEmptyNegative` (SDXL), an empty negative prompt is zeros, as
    /// diffusers' `force_zeros_for_empty_prompt` makes it.
    public func encode(prompt: String, negative: String, skipLastLayers: Int = 0) -> PromptPair<EncodedPrompt> {
        let positive = encode(prompt, skipLastLayers: skipLastLayers)
        if family.zeroEmptyNegative, negative.isEmpty {
            let zeros = EncodedPrompt(embedding: Tensor.zeros(positive.embedding.shape),
                                      pooled: positive.pooled.map { Tensor.zeros($0.shape) },
                                      tokens: tokenizer.tokenize("", length: maxTokens, padding: family.textEncoders[0].padding))
            return PromptPair(negative: zeros, positive: positive)
        }
        return PromptPair(negative: encode(negative, skipLastLayers: skipLastLayers), positive: positive)
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

    /// Text conditioning `[1, 77, hidden]` for `prompt`, with its tokens.
    public func encode(prompt: String, tokenizer: CLIPTokenizer) -> (embedding: Tensor, tokens: TokenizedPrompt) {
        let out = PromptEncoder(family: family, encoders: textEncoders, tokenizer: tokenizer).encode(prompt)
        return (out.embedding, out.tokens)
    }
}
