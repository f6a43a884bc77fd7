import Foundation
import SafeTensors

/// Reading the files a CLIP tokenizer is made from: a vocabulary
/// (`vocab.json`) and merge rules (`merges.txt`, or OpenAI's
/// `bpe_simple_vocab_16e6.txt[.gz]`), each optionally gzipped.
enum BPEFiles {
    /// How many merge lines CLIP uses: `49152 - 256 - 2`, the vocabulary size
    /// less the 256 byte tokens and the 2 special tokens (the merges file
    /// holds many more). Both OpenAI and transformers read lines
    /// `1 ..< 49152 - 256 - 2 + 1` after the header line 0.
    static let mergeCount = 49152 - 256 - 2

    /// The file's text; gunzipped first when its name ends in `.gz` or it
    /// starts with the gzip magic bytes.
    static func text(at path: String) throws(TokenizerError) -> String {
        let data: Data
        do {
            try ReadConfinement.check(path)
        } catch {
            throw .unreadable(path: path, reason: "not readable by this job (it, or a link in it, leads outside the folders it may read)")
        }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: reason(for: error, path: path))
        }
        var bytes = data
        if path.hasSuffix(".gz") || data.starts(with: [0x1f, 0x8b]) {
            do {
                bytes = try Gunzip.decompress(data)
            } catch {
                throw .corruptGzip(path: path, problem: error)
            }
        }
        guard let text = String(data: bytes, encoding: .utf8) else { throw .notUTF8(path: path) }
        return text
    }

    /// A `vocab.json`: token string → id.
    static func vocabulary(at path: String) throws(TokenizerError) -> [String: Int32] {
        let text = try text(at: path)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw .malformedVocabulary(path: path, detail: "but it is not valid JSON: \(reason)")
        }
        guard let entries = object as? [String: Any] else {
            throw .malformedVocabulary(path: path, detail: "found \(jsonKind(of: object)) at the top level")
        }
        guard !entries.isEmpty else { throw .malformedVocabulary(path: path, detail: "found an empty object") }
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(entries.count)
        for (token, value) in entries {
            guard let id = integerID(value) else {
                throw .malformedVocabulary(path: path, detail: "but an entry (a token of \(token.count) characters) maps to \(jsonKind(of: value))")
            }
            vocabulary[token] = id
        }
        return vocabulary
    }

    /// `value` as a non-negative Int32 id, if it is a JSON integer in range.
    private static func integerID(_ value: Any) -> Int32? {
        // Booleans arrive as NSNumber too; their Objective-C type is "c".
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        guard let id = Int32(exactly: number.doubleValue), id >= 0 else { return nil }
        return id
    }

    private static func jsonKind(of value: Any) -> String {
        switch value {
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is String: return "a string"
        case is NSNull: return "null"
        case let number as NSNumber where String(cString: number.objCType) == "c": return "a boolean"
        case is NSNumber: return "a number that is not an id (a whole number ≥ 0)"
        default: return "a value"
        }
    }

    /// The merge rules of a merges file, in rank order. Like Python's
    /// `text.strip().split("\n")[1 : mergeCount + 1]`: the text is stripped,
    /// line 0 (the header) skipped, and at most `mergeCount` lines read, each
    /// "left right".
    static func merges(at path: String) throws(TokenizerError) -> [(String, String)] {
        var scalars = Array(try text(at: path).unicodeScalars)
        while let last = scalars.last, PythonText.isSpace(last) { scalars.removeLast() }
        let leading = scalars.firstIndex { !PythonText.isSpace($0) } ?? scalars.count
        let lines = scalars[leading...].split(separator: "\n", omittingEmptySubsequences: false)
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeCount)
        for (number, line) in lines.enumerated().dropFirst().prefix(mergeCount) {
            let parts = line.split(whereSeparator: PythonText.isSpace)
            guard parts.count == 2 else {
                throw .malformedMerge(path: path, line: number + 1, fields: parts.count)
            }
            merges.append((string(parts[0]), string(parts[1])))
        }
        guard !merges.isEmpty else { throw .noMerges(path: path) }
        return merges
    }

    /// The vocabulary OpenAI's `SimpleTokenizer` derives from the merges:
    /// the 256 byte characters, the same with `</w>`, each merge joined,
    /// then `<|startoftext|>` and `<|endoftext|>`.
    static func derivedVocabulary(merges: [(String, String)]) -> [String: Int32] {
        let bytes = ByteLevelAlphabet.vocabularyOrder.map { String(ByteLevelAlphabet.characters[Int($0)]) }
        let tokens = bytes + bytes.map { $0 + "</w>" } + merges.map { $0.0 + $0.1 }
            + [CLIPTokenizer.startToken, CLIPTokenizer.endToken]
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(tokens.count)
        // A repeated token keeps its last index, as dict(zip(vocab, range(n))) does.
        for (id, token) in tokens.enumerated() { vocabulary[token] = Int32(id) }
        return vocabulary
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    private static func reason(for error: Error, path: String) -> String {
        var isFolder: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) { return "no such file" }
        if isFolder.boolValue { return "it is a folder, not a file" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return (error as NSError).localizedDescription
    }
}
