/// CLIP's byte-level BPE tokenizer, as Stable Diffusion uses it.
///
/// Produces the same ids as transformers' slow `CLIPTokenizer` (4.57) when
/// `ftfy` is not installed, which is what diffusers pipelines run:
///
/// 1. special tokens written literally in the text (`<|startoftext|>`,
///    `<|endoftext|>`, and the pad token) are cut out first, exact match;
/// 2. each remaining piece is cleaned (``CLIPTextCleaner``: control
///    characters, whitespace, CJK spacing, NFC, lowercase);
/// 3. split into words by CLIP's pattern (``CLIPWordSplitter``);
/// 4. each word's UTF-8 bytes are mapped to the byte-level alphabet and
///    merged by BPE (``BytePairModel``), its last symbol marked `</w>`.
///
/// Loading: ``init(vocabularyPath:mergesPath:)`` for a diffusers
/// `tokenizer/` folder's files, ``init(mergesPath:)`` for OpenAI's merges
/// file alone, ``bundled()`` for the copy shipped with this module.
/// Instances are immutable apart from an internal word cache and safe to
/// share between threads.
public final class CLIPTokenizer: Sendable {
    /// The start-of-text token, prepended to every prompt.
    public static let startToken = "<|startoftext|>"
    /// The end-of-text token: closes every prompt; also the unknown token
    /// and SD1's pad token.
    public static let endToken = "<|endoftext|>"
    /// The sequence length of Stable Diffusion's text encoders.
    public static let defaultLength = 77

    /// The id of ``startToken`` (49406 in CLIP's vocabulary).
    public let startTokenID: Int32
    /// The id of ``endToken`` (49407 in CLIP's vocabulary).
    public let endTokenID: Int32
    /// The number of entries in the vocabulary.
    public var vocabularySize: Int { model.vocabulary.count }

    private let model: BytePairModel
    /// Token strings by id, for the pad token's string and for ``token(for:)``.
    private let tokensByID: [Int32: String]
    private let cleaner = CLIPTextCleaner()
    private let cache = WordCache()

    /// Builds a tokenizer from a vocabulary and ranked merges; `source`
    /// names the vocabulary's origin in errors.
    init(vocabulary: [String: Int32], merges: [(String, String)], source: String) throws(TokenizerError) {
        guard let start = vocabulary[Self.startToken] else { throw .missingToken(path: source, token: Self.startToken) }
        guard let end = vocabulary[Self.endToken] else { throw .missingToken(path: source, token: Self.endToken) }
        startTokenID = start
        endTokenID = end
        model = BytePairModel(vocabulary: vocabulary, merges: merges, unknownID: end)
        var tokens: [Int32: String] = [:]
        for (token, id) in vocabulary { tokens[id] = tokens[id].map { min($0, token) } ?? token }
        tokensByID = tokens
    }

    /// The id of a vocabulary entry (`"cat</w>"`, `"!"`), if present.
    public func id(of token: String) -> Int32? {
        model.vocabulary[token]
    }

    /// The vocabulary entry with this id, if any.
    public func token(for id: Int32) -> String? {
        tokensByID[id]
    }

    /// The token ids of `text`, without start, end or padding tokens.
    ///
    /// `padding` names the pad token, which transformers never splits (see
    /// ``PromptPadding``); the default suits SD1 and plain CLIP.
    public func encode(_ text: String, padding: PromptPadding = .endToken) -> [Int32] {
        var ids: [Int32] = []
        let specials = specialTokens(padding: padding)
        for piece in SpecialTokenSplitter.split(Array(text.unicodeScalars), on: specials.map(\.scalars)) {
            switch piece {
            case .special(let index):
                ids.append(specials[index].id)
            case .text(let scalars):
                ids += encodeText(scalars)
            }
        }
        return ids
    }

    /// `prompt` as a row of exactly `length` ids: start token, the prompt's
    /// tokens (the first `length - 2` of them), end token, then padding.
    /// This equals transformers' `tokenizer(prompt, padding="max_length",
    /// max_length=length, truncation=True).input_ids`.
    public func tokenize(_ prompt: String, length: Int = defaultLength, padding: PromptPadding = .endToken)
        -> TokenizedPrompt
    {
        precondition(length >= 2, "a tokenized prompt needs room for its start and end tokens: length \(length) < 2")
        let content = encode(prompt, padding: padding)
        let kept = content.prefix(length - 2)
        var ids = [startTokenID] + kept + [endTokenID]
        let padID: Int32 = switch padding {
        case .endToken: endTokenID
        case .id(let id): id
        }
        ids += repeatElement(padID, count: length - ids.count)
        let words = kept.indices.filter { kept[$0] != startTokenID && kept[$0] != endTokenID }.map { $0 + 1 }
        return TokenizedPrompt(ids: ids, wordTokenIndices: words, endTokenIndex: kept.count + 1,
                               truncated: content.count > kept.count)
    }

    /// The tokens that are cut out of text before cleaning, with their ids:
    /// start, end (also the unknown token) and the pad token.
    private func specialTokens(padding: PromptPadding) -> [(scalars: [Unicode.Scalar], id: Int32)] {
        var specials = [(Array(Self.startToken.unicodeScalars), startTokenID),
                        (Array(Self.endToken.unicodeScalars), endTokenID)]
        if case .id(let id) = padding, let token = tokensByID[id], !token.isEmpty,
           token != Self.startToken, token != Self.endToken
        {
            specials.append((Array(token.unicodeScalars), id))
        }
        return specials
    }

    /// Clean, split and BPE-encode a piece of text holding no special token.
    private func encodeText(_ scalars: [Unicode.Scalar]) -> [Int32] {
        let text = cleaner.clean(scalars)
        var ids: [Int32] = []
        for range in CLIPWordSplitter.words(in: text) {
            let word = text[range]
            // transformers' BPE cache is seeded with the two special tokens,
            // so a word that is exactly one of them (say "<|ENDOFTEXT|>",
            // lowercased by cleaning) becomes that token, not BPE pieces.
            if word.elementsEqual(Self.startToken.unicodeScalars) {
                ids.append(startTokenID)
                continue
            }
            if word.elementsEqual(Self.endToken.unicodeScalars) {
                ids.append(endTokenID)
                continue
            }
            var bytes: [UInt8] = []
            for scalar in word { bytes += UTF8.encode(scalar)! }
            ids += cache.ids(for: bytes) { model.encode(word: $0) }
        }
        return ids
    }
}
