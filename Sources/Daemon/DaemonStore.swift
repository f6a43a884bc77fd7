import Foundation
import Workflow

/// Everything a front (the daemon answering requests) keeps: jobs and
/// their transitions, saved templates, clients and secrets, the queue's
/// controls, blob records and model hashes. Two implementations behave the
/// same (the daemon tests run against both, `PILOT_TEST_QUEUE`):
///
/// - ``JobStore``: SQLite in the state folder, one machine (`pilot serve`).
/// - ``PostgresJobQueue``: PostgreSQL shared by fronts and `pilot worker`
///   processes on many machines (`pilot serve --queue postgresql://…`).
///
/// Where they differ is where blob *bytes* live: SQLite records that a
/// blob exists and the bytes stay in the state folder's ``BlobStore``;
/// PostgreSQL keeps the bytes too (``JobQueue/putBlobs(_:now:)``), in the
/// same transaction as the job row that names them, so a worker on another
/// machine can fetch them (``JobQueue/blob(_:)``).
public protocol DaemonStore: JobQueue, ModelHashCache {
    /// Inserts a queued job (and its first transition) in one transaction,
    /// unless its idempotency key is already known. `blobs` are the bytes of
    /// the inputs it names, by SHA-256: a store that keeps blob bytes writes
    /// them in the same transaction.
    func insert(id: String, idempotencyKey: String?, priority: Int, template: String?, templateFile: String?,
                workflow: String, parameters: JSONValue, inputs: JSONValue, client: String?, owner: String,
                templateVersion: (number: Int, sha256: String)?, nestedTemplates: JSONValue?, preview: JSONValue?,
                blobs: [String: Data], models: [String], now: Date) throws -> JobStore.Insertion
    func job(idempotencyKey key: String, owner: String) throws -> JobRecord?
    /// Newest first; `worker`: only those a worker of that name claimed last.
    func jobs(states: [JobState]?, template: String?, owner: String?, worker: String?, limit: Int) throws -> [JobRecord]
    func counts() throws -> [JobState: Int]
    func activeJobs(owner: String) throws -> Int
    func owner(ofJob id: String) throws -> String?
    func transitions(_ id: String) throws -> [JobTransition]
    func cancelQueued(_ id: String, now: Date) throws -> Bool

    // Queue controls.
    func queuePosition(_ id: String) throws -> Int?
    func queueOrder(limit: Int) throws -> [QueuedJob]
    func isQueuePaused() throws -> Bool
    func setQueuePaused(_ paused: Bool) throws
    func moveToFront(_ id: String, now: Date) throws -> Bool
    func setPriority(_ id: String, _ priority: Int, now: Date) throws -> Bool

    // Saved templates.
    func saveTemplate(name: String, text: String, client: String, now: Date) throws -> JobStore.TemplateVersion
    func deleteTemplate(name: String, now: Date) throws -> Bool
    func template(name: String, version: Int?) throws -> JobStore.TemplateVersion?
    func templateHistory(name: String) throws -> [JobStore.TemplateVersion]
    func savedTemplates() throws -> [JobStore.TemplateVersion]

    // Clients and secrets.
    func clients() throws -> [ClientRecord]
    func addClient(_ client: ClientRecord) throws -> Bool
    func revokeClient(_ name: String, now: Date) throws -> Bool
    func secret(_ name: String) throws -> String?
    func setSecret(_ name: String, _ value: String) throws

    // Retention and blobs.
    func prune(finishedBefore cutoff: Date) throws -> JobStore.PruneResult
    @discardableResult func removeUnreferencedBlobs() throws -> [String]
    func blobHashes() throws -> Set<String>
    func recordBlob(sha256: String, bytes: Int, now: Date) throws

    /// Requeues the jobs this front's own workers were running when it
    /// stopped (it holds the state folder's lock, so they are dead), or
    /// fails those its process has died under `maxCrashes` times.
    func requeueInterrupted(now: Date, maxCrashes: Int, cause: String, lastNode: [String: String],
                            crashed: inout [String]) throws -> [String]

    /// Asks the worker running job `id` to stop at its next step (it sees the
    /// request at its next heartbeat); false when the job is not running.
    func requestCancel(_ id: String) throws -> Bool
}

/// Model hashes remembered by path, size and modification time (``ModelCatalog``).
public protocol ModelHashCache: AnyObject, Sendable {
    func modelHash(path: String, bytes: Int64, modified: Double) throws -> String?
    func rememberModelHash(path: String, bytes: Int64, modified: Double, sha256: String) throws
}

extension DaemonStore {
    func template(name: String) throws -> JobStore.TemplateVersion? { try template(name: name, version: nil) }
}
