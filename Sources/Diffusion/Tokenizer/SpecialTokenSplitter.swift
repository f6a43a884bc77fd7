/// Cuts special tokens written literally in text out of it, before any
/// cleaning, as transformers' added-tokens trie does (`Trie.split`):
/// scanning left to right, the earliest occurrence wins and, among tokens
/// starting there, the longest. Matching is exact (case-sensitive); text
/// pieces between tokens are encoded separately and empty ones dropped.
enum SpecialTokenSplitter {
    /// A piece of the split text.
    enum Piece: Equatable {
        /// Ordinary text, to be cleaned and BPE-encoded.
        case text([Unicode.Scalar])
        /// The special token at this index of the token list.
        case special(Int)
    }

    /// `text` split around occurrences of `tokens` (none may be empty).
    static func split(_ text: [Unicode.Scalar], on tokens: [[Unicode.Scalar]]) -> [Piece] {
        var pieces: [Piece] = []
        var pieceStart = 0
        var index = 0
        while index < text.count {
            var match: (token: Int, length: Int)?
            for (number, token) in tokens.enumerated()
            where token.count > (match?.length ?? 0) && text[index...].starts(with: token) {
                match = (number, token.count)
            }
            guard let found = match else {
                index += 1
                continue
            }
            if pieceStart < index { pieces.append(.text(Array(text[pieceStart ..< index]))) }
            pieces.append(.special(found.token))
            index += found.length
            pieceStart = index
        }
        if pieceStart < text.count { pieces.append(.text(Array(text[pieceStart...]))) }
        return pieces
    }
}
