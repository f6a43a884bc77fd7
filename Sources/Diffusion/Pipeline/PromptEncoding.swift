import Foundation
import Tensors

extension StableDiffusionModel {
    /// The family's pad convention: SD1 pads with the end token, SD2 with "!".
    public var promptPadding: PromptPadding { family == .sd1 ? .sd1 : .sd2 }

    /// The model's own tokenizer files when its folder has them, else the
    /// bundled CLIP BPE (the same vocabulary for SD 1.x and 2.x).
    public func tokenizer() throws -> CLIPTokenizer {
        if let folder = tokenizerFolder,
           FileManager.default.fileExists(atPath: folder.appendingPathComponent("vocab.json").path),
           FileManager.default.fileExists(atPath: folder.appendingPathComponent("merges.txt").path) {
            return try CLIPTokenizer(folder: folder.path)
        }
        return try CLIPTokenizer.bundled()
    }

    /// Text conditioning `[1, 77, hidden]` for `prompt`, with its tokens
    /// (PILOT's attention loss needs the word-token positions).
    public func encode(prompt: String, tokenizer: CLIPTokenizer) -> (embedding: Tensor, tokens: TokenizedPrompt) {
        let tokens = tokenizer.tokenize(prompt, length: textEncoder.config.maxPositions, padding: promptPadding)
        return (textEncoder(ids: [tokens.ids]), tokens)
    }
}
