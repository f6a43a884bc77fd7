/// Implemented by object payloads so the output cache can keep its byte
/// budget: a loaded UNet reports its weights, a latent its elements × 4.
/// Payloads that do not conform count as ``Value/defaultObjectBytes``.
public protocol EstimatedByteSize {
    var estimatedBytes: Int { get }
}

/// Implemented by object payloads that can name their content, so that a
/// template input bound to such an object (an image given with `--input`)
/// gets a cache key that survives across runs. Without it, each binding of an
/// object counts as new.
public protocol ContentFingerprinting {
    /// A digest of the content, e.g. SHA-256 hex of the pixels and shape.
    var contentFingerprint: String { get }
}

extension Value {
    /// What an object payload counts when it does not report its size.
    public static let defaultObjectBytes = 1024

    /// Bytes this value holds, for the cache's budget.
    public var estimatedBytes: Int {
        switch self {
        case .int, .float, .bool: 8
        case let .string(text): 16 + text.utf8.count
        case let .object(payload, _):
            (payload as? any EstimatedByteSize)?.estimatedBytes ?? Value.defaultObjectBytes
        }
    }
}
