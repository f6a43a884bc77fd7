/// What fills a tokenized prompt after its end token, and so which token is
/// the tokenizer's pad token.
///
/// transformers never splits a special token, and the pad token is one: with
/// SD2's pad token "!", every "!" in a prompt is cut out as its own token
/// (id 0) before BPE, where SD1 would merge "!!!" into one token. The
/// padding choice therefore affects the prompt's ids too, not only the tail.
public enum PromptPadding: Sendable, Hashable {
    /// Pad with the end token `<|endoftext|>` (49407), as SD1's tokenizer does.
    case endToken
    /// Pad with this token id; its vocabulary string becomes a special token.
    case id(Int32)

    /// Stable Diffusion 1.x (`openai/clip-vit-large-patch14`): pads with `<|endoftext|>`.
    public static let sd1 = PromptPadding.endToken
    /// Stable Diffusion 2.x (OpenCLIP ViT-H/14 tokenizer config): pads with "!", id 0.
    public static let sd2 = PromptPadding.id(0)
}
