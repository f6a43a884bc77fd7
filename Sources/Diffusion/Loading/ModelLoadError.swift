/// Why a model could not be loaded. Every case names the file and key.
public enum ModelLoadError: Error, CustomStringConvertible, Equatable {
    case missingFile(path: String, what: String)
    case missingTensor(key: String, source: String)
    case shapeMismatch(key: String, source: String, expected: [Int], found: [Int])
    case unexpectedTensors(keys: [String], source: String)
    case badConfig(path: String, reason: String)
    case unrecognised(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let path, let what):
            return "\(path): missing \(what)"
        case .missingTensor(let key, let source):
            return "\(source): missing tensor \(key)"
        case .shapeMismatch(let key, let source, let expected, let found):
            return "\(source): tensor \(key) has shape \(found), expected \(expected)"
        case .unexpectedTensors(let keys, let source):
            let shown = keys.prefix(8).joined(separator: ", ")
            return "\(source): \(keys.count) unexpected tensor(s): \(shown)\(keys.count > 8 ? ", …" : "")"
        case .badConfig(let path, let reason):
            return "\(path): \(reason)"
        case .unrecognised(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}
