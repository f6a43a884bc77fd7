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
public protocol JobQueue: AnyObject, Sendable {
    /// Marks the next queued job (highest priority, then oldest) running,
    /// counting an attempt, and returns it (its `attempts` is the attempt
    /// this claim holds); nil when nothing is queued. `note` goes to the
    /// job's transition log (which device took it).
    func claimNext(now: Date, note: String?) throws -> JobRecord?

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
}

extension JobQueue {
    func claimNext(note: String?) throws -> JobRecord? { try claimNext(now: Date(), note: note) }

    @discardableResult
    func finish(_ job: JobRecord, state: JobState, error: JSONValue? = nil, outputs: JSONValue? = nil) throws -> Bool {
        try finish(job.id, attempt: job.attempts, state: state, error: error, outputs: outputs, now: Date())
    }

    @discardableResult
    func requeue(_ job: JobRecord, note: String) throws -> Bool {
        try requeue(job.id, attempt: job.attempts, note: note, now: Date())
    }
}
