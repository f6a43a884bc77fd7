import Foundation

/// The size classes of the device caching allocator, kept apart from the
/// driver so their arithmetic is tested without a GPU.
///
/// Requests round up to 512 bytes below 1 MiB and to 2 MiB from there (the
/// driver's own granularity for large blocks); a freed block goes back to a
/// free list of its rounded size and serves the next request of that size.
/// All work runs on one stream, so a block freed by the host is reused only
/// by kernels queued after the ones that read it: no events are needed.
public struct DeviceSizeClasses: Sendable {
    public static let smallGranule = 512
    public static let largeGranule = 2 << 20
    public static let largeFrom = 1 << 20

    /// The block size a request of `bytes` gets.
    public static func rounded(_ bytes: Int) -> Int {
        let b = Swift.max(bytes, 1)
        let g = b < largeFrom ? smallGranule : largeGranule
        return (b + g - 1) / g * g
    }
}

/// Bookkeeping of the caching allocator: which blocks are cached free, by
/// size, and how many bytes are live, cached and at peak. The device calls
/// (`allocate`, `release`) are supplied by the owner, so the policy runs and
/// is tested on the host.
public final class DeviceBlockCache: @unchecked Sendable {
    public struct Statistics: Sendable, Equatable {
        /// Bytes in blocks handed out and not yet returned.
        public var live = 0
        /// Bytes in free blocks kept for reuse.
        public var cached = 0
        /// The largest `live` seen since the last reset.
        public var peakLive = 0
        /// The largest `live + cached` (what the device really held).
        public var peakReserved = 0
        /// Requests served from the cache, and by a fresh allocation.
        public var hits = 0, misses = 0
    }

    private let lock = NSLock()
    private var free: [Int: [UInt64]] = [:]
    private var stats = Statistics()
    private let allocateBlock: (Int) -> UInt64?
    private let releaseBlock: (UInt64) -> Void

    /// `allocate` returns a device address (nil when the device is out of
    /// memory); `release` frees one.
    public init(allocate: @escaping (Int) -> UInt64?, release: @escaping (UInt64) -> Void) {
        allocateBlock = allocate
        releaseBlock = release
    }

    /// A block of at least `bytes` (its rounded size is returned too), or nil
    /// when the device has no room even after the cache is emptied.
    public func take(_ bytes: Int) -> (address: UInt64, size: Int)? {
        let size = DeviceSizeClasses.rounded(bytes)
        lock.lock()
        if let address = free[size]?.popLast() {
            stats.cached -= size
            stats.live += size
            stats.hits += 1
            stats.peakLive = Swift.max(stats.peakLive, stats.live)
            lock.unlock()
            return (address, size)
        }
        lock.unlock()
        var address = allocateBlock(size)
        if address == nil {
            // Out of memory: give every cached block back and try once more.
            emptyCache()
            address = allocateBlock(size)
        }
        guard let address else { return nil }
        lock.lock()
        stats.live += size
        stats.misses += 1
        stats.peakLive = Swift.max(stats.peakLive, stats.live)
        stats.peakReserved = Swift.max(stats.peakReserved, stats.live + stats.cached)
        lock.unlock()
        return (address, size)
    }

    /// Returns a block taken with `take` (by its rounded `size`).
    public func give(_ address: UInt64, size: Int) {
        lock.lock()
        free[size, default: []].append(address)
        stats.live -= size
        stats.cached += size
        lock.unlock()
    }

    /// Frees every cached block on the device.
    public func emptyCache() {
        lock.lock()
        let blocks = free
        free.removeAll()
        stats.cached = 0
        lock.unlock()
        for (_, list) in blocks { for a in list { releaseBlock(a) } }
    }

    public var statistics: Statistics {
        lock.lock()
        defer { lock.unlock() }
        return stats
    }

    /// Starts peak tracking afresh from the present use.
    public func resetPeak() {
        lock.lock()
        stats.peakLive = stats.live
        stats.peakReserved = stats.live + stats.cached
        lock.unlock()
    }
}

/// One block of device memory owned by a tensor's storage: back to the
/// cache when the last tensor using it goes.
final class DeviceBlock {
    let address: UInt64
    let size: Int
    let cache: DeviceBlockCache

    init(address: UInt64, size: Int, cache: DeviceBlockCache) {
        self.address = address
        self.size = size
        self.cache = cache
    }

    deinit { cache.give(address, size: size) }
}
