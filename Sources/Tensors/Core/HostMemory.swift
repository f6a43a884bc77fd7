import Foundation

/// Host allocations for tensors and kernel scratch.
///
/// Small buffers come from `posix_memalign` (64-byte aligned). Large ones
/// (`hugeThreshold` and up, when rounding to whole 2 MiB pages wastes at
/// most 1/16 of them) are mapped directly, 2 MiB aligned, and marked
/// `MADV_HUGEPAGE`: where transparent huge pages are on for advised regions
/// (Debian's default, `madvise`), the first touch of each 2 MiB faults one
/// huge page instead of 512 small ones. Fresh buffers are faulted in on
/// every large allocation the buffer cache cannot serve (the Winograd
/// arena when it changes size, 40 MiB activations), and per-page fault
/// overhead was the larger part of that cost. Where huge pages are off the
/// advice is ignored and the mapping behaves as any other.
enum HostMemory {
    static let hugePage = 2 << 20
    static let hugeThreshold = 8 << 20
    /// `PILOT_HUGE_PAGES=0` keeps every buffer on `posix_memalign`.
    static let hugePagesEnabled = ProcessInfo.processInfo.environment["PILOT_HUGE_PAGES"] != "0"

    /// Whether `bytes` goes to a huge-page mapping (the same answer for
    /// `allocate` and `deallocate`).
    @inline(__always)
    static func usesHugePages(_ bytes: Int) -> Bool {
        hugePagesEnabled && bytes >= hugeThreshold && (rounded(bytes) - bytes) * 16 <= bytes
    }

    @inline(__always)
    private static func rounded(_ bytes: Int) -> Int { (bytes + hugePage - 1) / hugePage * hugePage }

    /// At least `bytes`, 64-byte aligned, uninitialised; nil when out of memory.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer? {
        guard usesHugePages(bytes) else {
            var p: UnsafeMutableRawPointer?
            return posix_memalign(&p, 64, Swift.max(bytes, 1)) == 0 ? p : nil
        }
        let size = rounded(bytes)
        // Map one huge page more, then trim to a 2 MiB aligned range.
        let span = size + hugePage
        guard let base = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              base != MAP_FAILED else { return nil }
        let address = Int(bitPattern: base)
        let aligned = (address + hugePage - 1) / hugePage * hugePage
        let head = aligned - address, tail = span - head - size
        if head > 0 { munmap(base, head) }
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + size), tail) }
        let p = UnsafeMutableRawPointer(bitPattern: aligned)!
        _ = madvise(p, size, Int32(MADV_HUGEPAGE))
        return p
    }

    /// Frees what `allocate(bytes:)` returned for the same `bytes`.
    static func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if usesHugePages(bytes) {
            munmap(pointer, rounded(bytes))
        } else {
            free(pointer)
        }
    }
}
