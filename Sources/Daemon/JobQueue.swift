import Foundation
import Workflow

/// Where workers take jobs and report them back: the worker's side of a
/// job's life, separate from how and where jobs are kept.
///
/// `JobStore` (SQLite through GRDB, one machine) is today's queue; a queue
/// shared by many machines implements the same contract, which
/// `JobQueueContractTests` checks against every implementation:
///
/// - **Claiming** takes the queued job of highest priority, oldest first,
///   marks it running and counts an attempt; two claims never take the
///   same attempt.
/// - **Fencing**: every write a worker makes about a job names the attempt
///   it claimed (job id + attempt is the fencing token). Once the job was
///   requeued, cancelled or finished, that attempt no longer holds it and
///   the write changes nothing (it returns false), so a worker presumed
///   dead (killed, frozen, cut off) cannot overwrite a rerun.
/// - **Exactly once**: a job reaches one final state, once.
/// - **Leases**: a claim holds the job until `now + lease`; the worker
///   extends it while it runs (`renewLease`). A job whose lease ran out
///   (its worker died, froze or lost the network) is requeued by
///   `expireLeases`, or failed as `worker_lost` once it has had
///   `maxAttempts` attempts.
public protocol JobQueue: AnyObject, Sendable {
    /// Marks the next queued job (highest priority, then oldest) running,
    /// counting an attempt, leased until `now + lease`, and returns it (its
    /// `attempts` is the attempt this claim holds); nil when nothing is
    /// queued. `note` goes to the job's transition log (which device took it).
    func claimNext(now: Date, note: String?, lease: TimeInterval) throws -> JobRecord?

    /// Extends attempt `attempt`'s lease on running job `id` to `until`.
    /// False, writing nothing, when that attempt no longer holds the job.
    func renewLease(_ id: String, attempt: Int, until: Date) throws -> Bool

    /// Requeues every running job whose lease ended before `now` (its next
    /// claim is attempt + 1), or fails it as `worker_lost` when it has had
    /// `maxAttempts` attempts; the ids of each.
    func expireLeases(now: Date, maxAttempts: Int) throws -> (requeued: [String], lost: [String])

    /// Records a final state (`finished`, `failed`, `cancelled`) for
    /// attempt `attempt` of running job `id`. False, writing nothing, when
    /// that attempt no longer holds the job.
    func finish(_ id: String, attempt: Int, state: JobState, error: JSONValue?, outputs: JSONValue?, now: Date) throws -> Bool

    /// Puts attempt `attempt` of running job `id` back in the queue (its
    /// worker is stopping). False, writing nothing, when that attempt no
    /// longer holds the job.
    func requeue(_ id: String, attempt: Int, note: String, now: Date) throws -> Bool

    /// The job, or nil when there is none of that id.
    func job(_ id: String) throws -> JobRecord?

    /// Whether someone asked to cancel running job `id` (the worker's
    /// heartbeat looks; a front on another machine cannot reach it otherwise).
    func isCancelRequested(_ id: String) throws -> Bool

    /// The bytes of blob `sha256` when the queue keeps blob bytes (nil when
    /// it does not have them: a single-machine store keeps them in files).
    func blob(_ sha256: String) throws -> Data?

    /// Keeps output files' bytes, by SHA-256, where every front can read
    /// them (before the finish that names them is recorded); a store whose
    /// fronts read the worker's own folder keeps nothing.
    func putBlobs(_ blobs: [String: Data], now: Date) throws

    /// Whether ``putBlobs(_:now:)`` keeps anything (workers skip reading
    /// their outputs back otherwise).
    var keepsBlobBytes: Bool { get }
}

/// The order jobs leave a queue in: those an admin moved to the front (the
/// latest move first), then by priority, then the oldest. The same SQL for
/// SQLite and PostgreSQL.
enum JobQueueOrder {
    static let sql = sql(preferring: nil)

    /// The order, with jobs for which `preferred` (an SQL condition) holds
    /// first within a priority (a shared queue's model affinity).
    static func sql(preferring preferred: String?) -> String {
        "front IS NULL, front DESC, priority DESC, " + (preferred.map { "(\($0)) DESC, " } ?? "") + "seq ASC"
    }
}

/// A queued job as the `queue` request lists it.
public struct QueuedJob: Sendable, Equatable {
    public var id: String
    public var owner: String
    public var priority: Int
    public var template: String?
}

/// How long a claim holds a job before it must be renewed, by default.
public enum JobLease {
    public static let seconds: TimeInterval = 60
}

extension JobQueue {
    func claimNext(note: String?) throws -> JobRecord? { try claimNext(now: Date(), note: note, lease: JobLease.seconds) }

    @discardableResult
    func finish(_ job: JobRecord, state: JobState, error: JSONValue? = nil, outputs: JSONValue? = nil) throws -> Bool {
        try finish(job.id, attempt: job.attempts, state: state, error: error, outputs: outputs, now: Date())
    }

    @discardableResult
    func requeue(_ job: JobRecord, note: String) throws -> Bool {
        try requeue(job.id, attempt: job.attempts, note: note, now: Date())
    }
}
