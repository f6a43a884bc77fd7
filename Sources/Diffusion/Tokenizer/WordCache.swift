import Foundation

/// A thread-safe memo of word → token ids, so a word is merged once.
///
/// transformers' cache grows without bound; ours is cleared when it reaches
/// `capacity` words, so a long-running daemon fed endless novel text keeps a
/// bounded footprint. Clearing only costs recomputation.
final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    private let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// The cached ids of `word`, or `compute(word)` remembered.
    func ids(for word: [UInt8], compute: ([UInt8]) -> [Int32]) -> [Int32] {
        if let hit = lock.withLock({ entries[word] }) { return hit }
        let ids = compute(word)
        lock.withLock {
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[word] = ids
        }
        return ids
    }
}
