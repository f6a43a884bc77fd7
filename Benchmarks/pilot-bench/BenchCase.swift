/// What one call of a case does, so its time becomes a rate.
enum Work {
    /// Floating-point operations (a fused multiply-add counts as two).
    case flops(Double)
    /// Bytes read plus bytes written, each element counted once.
    case bytes(Double)
}

/// The rates every other row is a percentage of: what this machine's BLAS
/// does on a large square product, and what its memory does on a plain copy.
enum Yardstick: String {
    case sgemm, copy
}

/// One timed operation.
struct BenchCase {
    /// Stable identifier, shared with the peer script and the driver.
    let op: String
    /// Human-readable shapes and options.
    let shape: String
    let work: Work
    let reference: Yardstick
    /// Target rate as a percentage of `reference`; nil for report-only rows.
    let targetPercent: Double?
    /// Makes the inputs and returns the call to time. Inputs live only as long
    /// as the returned closure, so a case never shares memory or cache with
    /// the buffers of another.
    let prepare: () -> () -> Void
}
