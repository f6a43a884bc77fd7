/// Byte-pair encoding over a fixed vocabulary and ranked merges, on
/// interned symbols rather than strings.
///
/// Every string that can occur during BPE (a byte's character, the same with
/// `</w>`, each merge's two sides and their concatenation) is interned once
/// to a symbol number, so merging compares integers. The result is the same
/// as transformers' string-based `CLIPTokenizer.bpe`: repeatedly take the
/// adjacent pair with the lowest merge rank and merge all its occurrences,
/// left to right, until no pair has a rank.
struct BytePairModel: Sendable {
    /// One merge rule: `rank` orders rules, `merged` is the joined symbol.
    private struct Merge: Sendable {
        let rank: Int32
        let merged: Int32
    }

    /// The vocabulary: token string → id.
    let vocabulary: [String: Int32]
    /// The id of the unknown token, used for symbols not in the vocabulary.
    let unknownID: Int32
    /// Token id of each interned symbol.
    private let symbolIDs: [Int32]
    /// Symbol of each byte inside a word, and at a word's end (`</w>`).
    private let byteSymbols: [Int32], finalByteSymbols: [Int32]
    /// Merge rules keyed by `left << 32 | right`.
    private let merges: [UInt64: Merge]

    /// Builds the model. `merges` are in rank order; like Python's
    /// `dict(zip(merges, range(n)))`, a repeated pair keeps its last rank.
    init(vocabulary: [String: Int32], merges: [(String, String)], unknownID: Int32) {
        var symbols: [String: Int32] = [:]
        var names: [String] = []
        // Strings are interned by `==`, which is canonical equivalence; the
        // byte-level alphabet (U+0021…U+0143) holds no combining marks, so
        // for BPE symbols that is plain scalar equality.
        func intern(_ name: String) -> Int32 {
            if let symbol = symbols[name] { return symbol }
            let symbol = Int32(names.count)
            symbols[name] = symbol
            names.append(name)
            return symbol
        }

        byteSymbols = ByteLevelAlphabet.characters.map { intern(String($0)) }
        finalByteSymbols = ByteLevelAlphabet.characters.map { intern(String($0) + "</w>") }
        var rules: [UInt64: Merge] = [:]
        rules.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            let key = Self.key(intern(left), intern(right))
            rules[key] = Merge(rank: Int32(rank), merged: intern(left + right))
        }
        self.vocabulary = vocabulary
        self.unknownID = unknownID
        self.merges = rules
        symbolIDs = names.map { vocabulary[$0] ?? unknownID }
    }

    /// The token ids of one word, given as UTF-8 bytes (not empty).
    func encode(word: [UInt8]) -> [Int32] {
        var symbols = word.dropLast().map { byteSymbols[Int($0)] }
        symbols.append(finalByteSymbols[Int(word.last!)])

        while symbols.count > 1 {
            var best: (rank: Int32, left: Int32, right: Int32, merged: Int32)?
            for position in 0 ..< symbols.count - 1 {
                guard let rule = merges[Self.key(symbols[position], symbols[position + 1])] else { continue }
                if best == nil || rule.rank < best!.rank {
                    best = (rule.rank, symbols[position], symbols[position + 1], rule.merged)
                }
            }
            guard let pair = best else { break }
            var merged: [Int32] = []
            merged.reserveCapacity(symbols.count - 1)
            var position = 0
            while position < symbols.count {
                if position + 1 < symbols.count, symbols[position] == pair.left, symbols[position + 1] == pair.right {
                    merged.append(pair.merged)
                    position += 2
                } else {
                    merged.append(symbols[position])
                    position += 1
                }
            }
            symbols = merged
        }
        return symbols.map { symbolIDs[Int($0)] }
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }
}
