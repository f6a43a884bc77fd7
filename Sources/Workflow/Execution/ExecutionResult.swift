/// What a run produced and how each node fared.
public struct ExecutionResult: Sendable {
    /// The workflow's named outputs.
    public var outputs: [String: Value]
    /// Every node that ran or was served from the cache, in execution order.
    /// Nodes not needed (or needed only by a cached node) are absent.
    public var nodes: [NodeRun]
    /// Wall time of the whole run, in milliseconds.
    public var milliseconds: Double
    /// The files the run's Save* nodes wrote (``NodeContext/recordOutput(_:data:)``), in order.
    public var files: [OutputFile] = []

    /// How node `id` fared, or nil when it was not needed.
    public func node(_ id: String) -> NodeRun? {
        nodes.first { $0.nodeID == id }
    }

    /// Ids of the nodes that really ran (not cache hits), in order.
    public var ranNodes: [String] {
        nodes.filter { !$0.cacheHit }.map(\.nodeID)
    }
}

/// A run stopped before the workflow's outputs were made.
public enum ExecutionError: Error, Sendable, CustomStringConvertible {
    /// Node `nodeID` threw, returned the wrong outputs, or named a file that
    /// could not be read or is not allowed.
    case nodeFailed(nodeID: String, nodeType: String, underlying: any Error)
    /// The run was cancelled before or during node `nodeID`.
    case cancelled(nodeID: String)

    public var description: String {
        switch self {
        case let .nodeFailed(id, type, underlying): "node '\(id)' (\(type)) failed: \(underlying)"
        case let .cancelled(id): "cancelled at node '\(id)'"
        }
    }

    /// The node the run stopped at.
    public var nodeID: String {
        switch self {
        case let .nodeFailed(id, _, _), let .cancelled(id): id
        }
    }
}

/// A node broke its declaration.
public struct NodeContractError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
