import Foundation

/// Wall-clock timing for the benchmark cases.
enum Stopwatch {
    /// Seconds on `CLOCK_MONOTONIC`: never stepped by NTP or the user, so a
    /// difference of two readings is elapsed time even across a clock change.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Runs `body` `warmups` times untimed (first-touch page faults, the
    /// allocator's thresholds, OpenBLAS and Dispatch thread start-up), then
    /// `reps` times timed; returns each timed run in milliseconds.
    static func samples(reps: Int, warmups: Int = 1, _ body: () -> Void) -> [Double] {
        for _ in 0..<warmups { body() }
        return (0..<reps).map { _ in
            let start = now()
            body()
            return (now() - start) * 1e3
        }
    }
}

/// The median: the middle sample, or the mean of the two middle ones. Robust
/// to the occasional run that a neighbour on the shared cores slowed down.
func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty, "median of no samples")
    let s = xs.sorted()
    let mid = s.count / 2
    return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
