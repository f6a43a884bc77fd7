import Foundation

/// Resident-set and CPU-time readings for the model cases. Linux-only in
/// part: elsewhere `current` is nil and the peak cannot be reset.
enum ResidentMemory {
    /// The peak resident set of this process, in bytes: `getrusage`'s
    /// `ru_maxrss` (KiB on Linux), since the process started or since the
    /// last successful `resetPeak()`. It counts file-backed pages too
    /// (mapped weights that were touched), as the peer's reading does.
    static func peak() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss   // bytes on Darwin
        #endif
    }

    /// User plus system CPU time of the whole process (all threads), in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The resident set now (`VmRSS` of /proc/self/status), in bytes.
    static func current() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }

    /// Sets the peak back to the current resident set (Linux ≥ 4.0: "5" to
    /// /proc/self/clear_refs), so that `peak()` afterwards is the peak of
    /// what ran since, not of loading the weights. False when not possible;
    /// `peak()` then stays the whole process's peak.
    static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }
}
