/// A prompt as the text encoder takes it: a fixed-length row of token ids.
public struct TokenizedPrompt: Sendable, Hashable {
    /// `<|startoftext|>`, the prompt's tokens (cut to fit), `<|endoftext|>`,
    /// then padding up to the requested length.
    public let ids: [Int32]
    /// The positions in `ids` of the prompt's own tokens: not the start or
    /// end token (nor a literal `<|startoftext|>` / `<|endoftext|>` written
    /// in the prompt), not padding. These are the tokens whose cross-attention
    /// maps PILOT's semantic losses use.
    public let wordTokenIndices: [Int]
    /// The position of the end token that closes the prompt.
    public let endTokenIndex: Int
    /// Whether the prompt had more tokens than fit and its tail was dropped.
    public let truncated: Bool
}
