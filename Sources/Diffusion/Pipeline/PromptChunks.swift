import Foundation
import SafeTensors
import Tensors

/// A textual-inversion embedding: `k` learned token vectors per text
/// encoder, used in a prompt as `embedding:NAME`.
///
/// Files: `.safetensors` holding `emb_params` `[k, D]` (SD 1.x, D = 768;
/// SD 2.x, D = 1024), or `clip_l` `[k, 768]` and `clip_g` `[k, 1280]` (SDXL).
public struct TextualInversion {
    public let name: String
    /// One `[k, D]` matrix per text-encoder role of the family, in role order.
    public let vectors: [Tensor]
    public var tokenCount: Int { vectors[0].dim(0) }

    public init(name: String, vectors: [Tensor]) {
        self.name = name
        self.vectors = vectors
    }

    /// Reads `path` for `encoders` (the family's, in role order), checking
    /// each matrix's width against its encoder.
    public static func load(path: String, name: String, encoders: [CLIPTextModel]) throws -> TextualInversion {
        let file = try SafeTensorsFile(path: path)
        let keys: [String] = encoders.count == 1 ? ["emb_params"] : ["clip_l", "clip_g"]
        guard keys.count == encoders.count else {
            throw PromptError("embedding '\(name)' (\(path)): textual inversion supports one or two text encoders, "
                              + "the model has \(encoders.count)")
        }
        var vectors: [Tensor] = []
        for (key, encoder) in zip(keys, encoders) {
            let width = encoder.config.hiddenSize
            guard file.contains(key) else {
                throw PromptError("embedding '\(name)' (\(path)) has no tensor '\(key)'; expected \(keys.joined(separator: " and ")) "
                                  + "(found \(file.names.prefix(8).joined(separator: ", ")))")
            }
            let shape = try file.info(key).shape
            guard shape.count == 2, shape[1] == width, (1...PromptChunker.chunkLength).contains(shape[0]) else {
                throw PromptError("embedding '\(name)' (\(path)): '\(key)' is \(shape), expected [k, \(width)] with k in "
                                  + "1...\(PromptChunker.chunkLength) for this model's text encoder")
            }
            vectors.append(Tensor(shape: shape, values: try file.floats(key)))
        }
        guard Set(vectors.map { $0.dim(0) }).count == 1 else {
            throw PromptError("embedding '\(name)' (\(path)): its tensors have different token counts \(vectors.map { $0.dim(0) })")
        }
        return TextualInversion(name: name, vectors: vectors)
    }
}

/// A prompt could not be encoded: the message says why.
public struct PromptError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One 77-token row of a long prompt, as one text encoder reads it.
public struct PromptChunk: Sendable, Equatable {
    /// BOS, 75 content or padding tokens, EOS (and padding after the first EOS).
    public var ids: [Int32]
    /// The emphasis weight of each position (1 for BOS, EOS and padding).
    public var multipliers: [Float]
    /// Positions whose token vector comes from a textual inversion:
    /// position → (index into the prompt's embeddings, row of its matrix).
    public var injected: [Int: EmbeddingRow]
    /// Positions of the prompt's own tokens (words and embedding vectors).
    public var content: [Int]

    public struct EmbeddingRow: Sendable, Equatable {
        public let embedding: Int
        public let row: Int
    }

    public var isWeighted: Bool { multipliers.contains { $0 != 1 } }
}

/// Splits a prompt into 77-token chunks the way AUTOMATIC1111's web UI does
/// (its default settings), so long prompts and `(word:1.2)` weights mean
/// the same here:
///
/// - the prompt is parsed for emphasis (``PromptEmphasis``); each run of
///   text is tokenized on its own, so its tokens carry its weight;
/// - tokens fill chunks of 75; a full chunk is closed and a new one begun.
///   When a chunk fills and a comma stood among its last 20 tokens, the
///   tokens after that comma move to the next chunk, so a phrase is not cut
///   in two ("comma padding backtrack" 20);
/// - an `embedding:NAME` is never split: if its vectors do not fit in the
///   current chunk, the chunk is closed first;
/// - `BREAK` closes the current chunk;
/// - each chunk is `BOS + 75 + EOS`, short ones padded with EOS, then every
///   position after the first EOS set to the family's pad token.
public struct PromptChunker {
    public static let chunkLength = 75
    /// How far back a comma may stand for a full chunk to break after it.
    public static let commaBacktrack = 20

    let tokenizer: CLIPTokenizer
    let padding: PromptPadding
    let commaID: Int32?

    public init(tokenizer: CLIPTokenizer, padding: PromptPadding) {
        self.tokenizer = tokenizer
        self.padding = padding
        commaID = tokenizer.id(of: ",</w>")
    }

    /// One token of a chunk under construction.
    enum Piece: Equatable {
        case id(Int32)
        case vector(embedding: Int, row: Int)
    }

    /// The chunks of `prompt`, at most `maxChunks` of them. `lookup` finds
    /// the textual inversion an `embedding:NAME` names: its index (the one
    /// ``PromptChunk/EmbeddingRow`` records) and its token count, nil when
    /// there is none by that name.
    public func chunks(_ prompt: String, maxChunks: Int,
                       embedding lookup: (String) throws -> (index: Int, tokens: Int)?) throws -> [PromptChunk] {
        var done: [[(Piece, Float)]] = []
        var current: [(Piece, Float)] = []
        var lastComma = -1
        func close() throws {
            done.append(current)
            current = []
            lastComma = -1
            guard done.count <= maxChunks else {
                throw PromptError("the prompt needs more than \(maxChunks) chunks of \(Self.chunkLength) tokens; "
                                  + "at most \(maxChunks * Self.chunkLength) tokens are encoded")
            }
        }
        for fragment in PromptEmphasis.parse(prompt) {
            guard case let .text(text, weight) = fragment else {
                try close()
                continue
            }
            for unit in try units(of: text, lookup: lookup) {
                switch unit {
                case let .tokens(ids):
                    for id in ids {
                        if id == commaID {
                            lastComma = current.count
                        } else if current.count == Self.chunkLength, lastComma != -1,
                                  current.count - lastComma <= Self.commaBacktrack {
                            let moved = Array(current[(lastComma + 1)...])
                            current.removeSubrange((lastComma + 1)...)
                            try close()
                            current = moved
                        }
                        if current.count == Self.chunkLength { try close() }
                        current.append((.id(id), weight))
                    }
                case let .embedding(index, count):
                    if current.count == Self.chunkLength { try close() }
                    if current.count + count > Self.chunkLength { try close() }
                    current += (0..<count).map { (.vector(embedding: index, row: $0), weight) }
                }
            }
        }
        if !current.isEmpty || done.isEmpty { try close() }
        return done.map(row)
    }

    enum Unit {
        case tokens([Int32])
        case embedding(index: Int, count: Int)
    }

    /// `text` as token runs and embedding references.
    func units(of text: String, lookup: (String) throws -> (index: Int, tokens: Int)?) throws -> [Unit] {
        var units: [Unit] = []
        var next = text.startIndex
        for reference in Self.references(in: text) {
            guard let found = try lookup(reference.name) else {
                throw PromptError("the prompt names embedding:\(reference.name), which is not loaded")
            }
            if next < reference.range.lowerBound {
                units.append(.tokens(tokenizer.encode(String(text[next..<reference.range.lowerBound]), padding: padding)))
            }
            units.append(.embedding(index: found.index, count: found.tokens))
            next = reference.range.upperBound
        }
        if next < text.endIndex || units.isEmpty { units.append(.tokens(tokenizer.encode(String(text[next...]), padding: padding))) }
        return units
    }

    /// The `embedding:NAME` references in `text`: NAME is letters, digits,
    /// `_`, `-` and `.` (trailing dots and a `.safetensors` suffix are not
    /// part of it); `embedding:` inside a word or with no name is text.
    public static func references(in text: String) -> [(range: Range<String.Index>, name: String)] {
        var found: [(range: Range<String.Index>, name: String)] = []
        var searchFrom = text.startIndex
        while let range = text.range(of: "embedding:", range: searchFrom..<text.endIndex) {
            searchFrom = range.upperBound
            var nameEnd = range.upperBound
            while nameEnd < text.endIndex, isNameCharacter(text[nameEnd]) { nameEnd = text.index(after: nameEnd) }
            var name = String(text[range.upperBound..<nameEnd])
            while name.hasSuffix(".") { name.removeLast(); nameEnd = text.index(before: nameEnd) }
            let startsWord = range.lowerBound == text.startIndex || !isNameCharacter(text[text.index(before: range.lowerBound)])
            guard startsWord, !name.isEmpty else { continue }
            if name.hasSuffix(".safetensors") { name.removeLast(".safetensors".count) }
            guard !name.isEmpty else { continue }
            found.append((range.lowerBound..<nameEnd, name))
            searchFrom = nameEnd
        }
        return found
    }

    static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-" || c == ".")
    }

    /// A finished chunk as BOS + 75 + EOS with padding.
    private func row(_ pieces: [(Piece, Float)]) -> PromptChunk {
        let padID: Int32 = switch padding {
        case .endToken: tokenizer.endTokenID
        case .id(let id): id
        }
        var ids: [Int32] = [tokenizer.startTokenID]
        var multipliers: [Float] = [1]
        var injected: [Int: PromptChunk.EmbeddingRow] = [:]
        var content: [Int] = []
        for (piece, weight) in pieces {
            let position = ids.count
            switch piece {
            case let .id(id):
                ids.append(id)
                if id != tokenizer.startTokenID, id != tokenizer.endTokenID { content.append(position) }
            case let .vector(embedding, row):
                // The id under an injected vector is never looked up (A1111 puts 0 there too).
                ids.append(0)
                injected[position] = .init(embedding: embedding, row: row)
                content.append(position)
            }
            multipliers.append(weight)
        }
        let firstEnd = ids.count
        ids += [Int32](repeating: tokenizer.endTokenID, count: Self.chunkLength + 2 - ids.count)
        multipliers += [Float](repeating: 1, count: Self.chunkLength + 2 - multipliers.count)
        for i in (firstEnd + 1)..<ids.count { ids[i] = padID }
        return PromptChunk(ids: ids, multipliers: multipliers, injected: injected, content: content)
    }
}
