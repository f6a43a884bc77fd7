import Foundation

/// Node outputs kept across runs, by cache key, within a byte budget.
///
/// When an insert takes the total over the budget, the least recently used
/// entries go first (a model loaded for the last job outlives one loaded
/// three jobs ago). Sizes come from ``Value/estimatedBytes``. An entry larger
/// than the whole budget is not kept. Safe to share between threads.
public final class OutputCache: @unchecked Sendable {
    private struct Entry {
        var outputs: [String: Value]
        var bytes: Int
        var lastUse: UInt64
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    private var bytes = 0
    private var evicted = 0
    private var budget: Int

    /// The default budget: 8 GiB, about two SD 1.5 checkpoints at fp32.
    public static let defaultBudget = 8 << 30

    public init(budgetBytes: Int = OutputCache.defaultBudget) {
        budget = budgetBytes
    }

    /// The outputs stored under `key`, now the most recently used.
    public func lookup(_ key: String) -> [String: Value]? {
        lock.withLock {
            guard entries[key] != nil else { return nil }
            clock += 1
            entries[key]!.lastUse = clock
            return entries[key]!.outputs
        }
    }

    /// Stores `outputs` under `key`, evicting least recently used entries
    /// to stay within the budget.
    public func store(_ key: String, _ outputs: [String: Value]) {
        let size = outputs.values.reduce(0) { $0 + $1.estimatedBytes }
        lock.withLock {
            if let old = entries.removeValue(forKey: key) { bytes -= old.bytes }
            guard size <= budget else { return }
            clock += 1
            entries[key] = Entry(outputs: outputs, bytes: size, lastUse: clock)
            bytes += size
            shrink(to: budget)
        }
    }

    /// Evicts least recently used entries until `bytes` more would fit in
    /// the budget (called before a node loads files of that size).
    public func makeRoom(for bytes: Int) {
        lock.withLock { shrink(to: Swift.max(0, budget - bytes)) }
    }

    /// Whether `key` is stored (does not count as a use).
    public func contains(_ key: String) -> Bool {
        lock.withLock { entries[key] != nil }
    }

    /// The byte budget; lowering it evicts at once.
    public var budgetBytes: Int {
        get { lock.withLock { budget } }
        set { lock.withLock { budget = newValue; shrink(to: newValue) } }
    }

    /// Estimated bytes held.
    public var totalBytes: Int { lock.withLock { bytes } }
    /// Entries held.
    public var count: Int { lock.withLock { entries.count } }
    /// Entries evicted since creation.
    public var evictionCount: Int { lock.withLock { evicted } }

    public func removeAll() {
        lock.withLock {
            entries.removeAll()
            bytes = 0
        }
    }

    /// Call with the lock held.
    private func shrink(to limit: Int) {
        while bytes > limit, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries.removeValue(forKey: oldest.key)
            bytes -= oldest.value.bytes
            evicted += 1
        }
    }
}
