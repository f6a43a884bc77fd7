import CBLAS
import Dispatch
import Foundation

/// The number of threads used by every parallel loop and by OpenBLAS.
///
/// One setting governs both so they never oversubscribe the cores: OpenBLAS
/// itself is kept single-threaded, and our pool of `count` threads runs
/// both our loops and the panels large products are split into (`sgemm`),
/// or independent single-threaded products side by side (attention heads).
public enum ComputeThreads {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var value: Int = {
        let env = ProcessInfo.processInfo.environment["PILOT_THREADS"].flatMap { Int($0) }
        let n = Swift.max(1, env ?? ProcessInfo.processInfo.activeProcessorCount)
        // OpenBLAS's own threads would run inside our workers' calls: 2 × 2 threads on 2 cores.
        openblas_set_num_threads(1)
        return n
    }()

    /// Threads used by compute; defaults to `PILOT_THREADS` or all cores.
    public static var count: Int {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set {
            let n = Swift.max(1, newValue)
            lock.lock(); defer { lock.unlock() }
            value = n
            openblas_set_num_threads(1)
        }
    }
}

/// Splits `0..<count` into at most `ComputeThreads.count` contiguous ranges of
/// at least `grain` items and runs `body` on each, in parallel.
@inline(__always)
func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = ComputeThreads.count
    let chunks = Swift.min(threads, Swift.max(1, count / Swift.max(grain, 1)))
    if chunks <= 1 {
        body(0..<count)
        return
    }
    withoutActuallyEscaping(body) { body in
        let box = UnsafeSendableBox(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks
            let hi = count * (c + 1) / chunks
            box.value(lo..<hi)
        }
    }
}

/// Carries a non-Sendable closure or pointer into `concurrentPerform`, whose
/// workers only touch disjoint index ranges.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
