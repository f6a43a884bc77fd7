import Foundation
import Workflow

/// Records which node ids ran, independently of what the executor reports.
final class RunLog: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [String] = []

    func record(_ id: String) {
        lock.withLock { ids.append(id) }
    }

    /// Node ids in the order they ran.
    var runs: [String] { lock.withLock { ids } }

    func count(_ id: String) -> Int { runs.filter { $0 == id }.count }

    func reset() { lock.withLock { ids.removeAll() } }
}

/// What the Fail node throws.
struct TestFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A payload of a declared size, for the cache's byte budget.
struct Blob: EstimatedByteSize, Sendable {
    var bytes: Int
    var tag: String
    var estimatedBytes: Int { bytes }
}

/// A tiny stand-in for an image.
struct Picture: Sendable, ContentFingerprinting {
    var width: Int
    var height: Int
    var contentFingerprint: String { "\(width)x\(height)" }
}
