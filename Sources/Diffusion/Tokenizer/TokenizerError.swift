/// Why a tokenizer could not be loaded. Every case names the file at fault.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist or cannot be read; `reason` is the system's.
    case unreadable(path: String, reason: String)
    /// The file is gzip (by name or magic bytes) but does not decompress.
    case corruptGzip(path: String, problem: GunzipError)
    /// The file's bytes are not UTF-8 text.
    case notUTF8(path: String)
    /// `vocab.json` is not a JSON object mapping token strings to integer ids.
    case malformedVocabulary(path: String, detail: String)
    /// A line of a merges file is not two symbols separated by a space
    /// (`fields`: how many it has; its text is not repeated, as the file
    /// may not be the user's to show).
    case malformedMerge(path: String, line: Int, fields: Int)
    /// The merges file has no merge rules after its header line.
    case noMerges(path: String)
    /// A token the tokenizer needs is missing from the vocabulary.
    case missingToken(path: String, token: String)
    /// The BPE file bundled with the `Diffusion` module is not in its bundle.
    case missingResource(name: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "\(path): cannot read the file: \(reason)"
        case .corruptGzip(let path, let problem):
            return "\(path): \(problem)"
        case .notUTF8(let path):
            return "\(path): not UTF-8 text"
        case .malformedVocabulary(let path, let detail):
            return "\(path): expected a JSON object of token → integer id, \(detail)"
        case .malformedMerge(let path, let line, let fields):
            return "\(path): line \(line): expected two symbols separated by a space, found \(fields) field(s)"
        case .noMerges(let path):
            return "\(path): no merge rules after the header line"
        case .missingToken(let path, let token):
            return "\(path): the vocabulary has no \(token) token"
        case .missingResource(let name):
            return "the Diffusion module's bundle has no resource \(name)"
        }
    }
}
