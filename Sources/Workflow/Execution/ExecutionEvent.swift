/// What the executor tells its observer while a workflow runs; the daemon
/// turns these into its event stream.
public enum ExecutionEvent: Sendable {
    /// A node is about to run (not sent for cache hits).
    case nodeStarted(nodeID: String, nodeType: String)
    /// A node reported progress.
    case progress(NodeProgress)
    /// A node ran or was served from the cache.
    case nodeFinished(NodeRun)
    /// A node made a preview image (only when the run asked for previews).
    case preview(NodePreview)
}

/// Progress within one node.
public struct NodeProgress: Sendable, Equatable {
    public var nodeID: String
    public var nodeType: String
    public var step: Int
    public var total: Int
    /// Named numbers a node wants shown (losses, learning rate).
    public var extra: [String: Double]

    public init(nodeID: String, nodeType: String, step: Int, total: Int, extra: [String: Double] = [:]) {
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.step = step
        self.total = total
        self.extra = extra
    }
}

/// How one node fared in a run.
public struct NodeRun: Sendable, Equatable {
    public var nodeID: String
    public var nodeType: String
    /// Wall time of `run`, in milliseconds; 0 for a cache hit.
    public var milliseconds: Double
    public var cacheHit: Bool
    /// The node's cache key (SHA-256 hex).
    public var cacheKey: String

    public init(nodeID: String, nodeType: String, milliseconds: Double, cacheHit: Bool, cacheKey: String) {
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.milliseconds = milliseconds
        self.cacheHit = cacheHit
        self.cacheKey = cacheKey
    }
}
