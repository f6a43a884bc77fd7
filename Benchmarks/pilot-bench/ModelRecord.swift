import Foundation

/// One run of one model case, ours or the peer's: the JSON both print with
/// `models … --json` (snake_case keys) and that `pilot-bench models report`
/// merges. One case per process, so each record's peak RSS is that case's.
struct ModelRecord: SchemaRecord {
    /// Schema tag; bump when a field changes meaning.
    static let currentSchema = "pilot-bench-models/1"

    var schema: String
    /// "pilot" or the peer's name ("pytorch").
    var implementation: String
    /// What does the arithmetic: OpenBLAS's config string, or torch's version and BLAS.
    var library: String
    var threads: Int
    /// The diffusers folder the weights were loaded from.
    var model: String
    var results: [ModelCaseResult]
}

/// A named sub-step of a call and its time.
struct Phase: Codable {
    var name: String
    var ms: Double
}

/// One model case of one run.
struct ModelCaseResult: Codable {
    /// Stable identifier shared with the peer ("unet", "pilot_inner", …).
    var name: String
    var shape: String
    /// Untimed calls before the timed ones.
    var warmups: Int
    var reps: Int
    var medianMs: Double
    var samplesMs: [Double]
    /// CPU time (user + system, all threads) of each timed call: less moved
    /// by neighbours on shared cores than wall time, though it also counts
    /// the thread pools' spin-waiting.
    var cpuMedianMs: Double
    var cpuSamplesMs: [Double]
    /// Sub-steps of the last timed call, where the case reports them.
    var phases: [Phase]?
    /// Target for ours ÷ the peer's time (ours only; absent: report only).
    var timeRatioTarget: Double?
    /// Target for ours ÷ the peer's process peak RSS (ours only).
    var rssRatioTarget: Double?
    /// Loading the whole folder (text encoder, UNet, VAE), not timed in the case.
    var loadMs: Double
    /// Resident set right after loading and making the inputs.
    var loadedRssBytes: Int?
    /// Peak resident set up to then (the loader's own peak).
    var loadPeakRssBytes: Int
    /// Peak resident set while the case ran (warm-ups included), from the
    /// resident set it started at; equal to the process peak when the
    /// peak could not be reset (`peakReset` false).
    var runPeakRssBytes: Int
    var peakReset: Bool
    /// The process's peak resident set: what `ru_maxrss` says at exit.
    var peakRssBytes: Int

    enum CodingKeys: String, CodingKey {
        // "case" in the JSON; the others follow the snake_case strategy.
        case name = "case"
        case shape, warmups, reps, medianMs, samplesMs, cpuMedianMs, cpuSamplesMs, phases, timeRatioTarget, rssRatioTarget
        case loadMs, loadedRssBytes, loadPeakRssBytes, runPeakRssBytes, peakReset, peakRssBytes
    }
}
