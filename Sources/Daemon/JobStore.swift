import Foundation
import GRDB
import Workflow

/// Where a job is in its life.
public enum JobState: String, Sendable, CaseIterable {
    case queued, running, finished, failed, cancelled

    /// Finished, failed or cancelled: nothing more will happen to it.
    public var isFinal: Bool { self == .finished || self == .failed || self == .cancelled }
}

/// One job as the store keeps it.
public struct JobRecord: Sendable, Equatable {
    public var id: String
    /// Submission order (SQLite rowid); ties in priority run in this order.
    public var sequence: Int64
    public var idempotencyKey: String?
    public var state: JobState
    public var priority: Int
    /// The template's name, when submitted by name.
    public var template: String?
    /// The template's file (relative paths resolve against its folder), when submitted by name.
    public var templateFile: String?
    /// The workflow text as submitted (or the template's text at submission).
    public var workflow: String
    /// Template inputs given as values, by name (JSON object of scalars).
    public var parameters: JSONValue
    /// Template inputs given as frames: name → {"sha256", "filename"}.
    public var inputs: JSONValue
    public var client: String?
    /// The client that submitted it (``ClientRecord/name``; `owner` for the daemon's own key).
    public var owner: String = ClientRecord.ownerName
    public var created: Date
    public var started: Date?
    public var finished: Date?
    /// Times it was started (more than 1 after a restart requeued it).
    public var attempts: Int
    public var error: JSONValue?
    /// What it wrote: [{"name", "sha256", "bytes"}].
    public var outputs: JSONValue?
    /// The saved template's version and the SHA-256 of its text, when it ran one from the store.
    public var templateVersion: Int?
    public var templateSHA256: String?
    /// The templates its template nodes resolved to at submission, texts
    /// included (a ``TemplateSnapshot``'s JSON): it runs these, whatever is
    /// saved or edited later. Nil when it has no template nodes.
    public var nestedTemplates: JSONValue?
    /// The previews it asked for (``PreviewRequest/json``), nil for none.
    public var preview: JSONValue? = nil
    /// The models folder entries the job reads (a shared queue's affinity; nil on one machine).
    public var models: [String]? = nil
    /// The worker that claimed it last (a shared queue's; nil on one machine).
    public var worker: String? = nil

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "state": .string(state.rawValue), "priority": .int(priority),
            "created": .string(WireTime.format(created)), "attempts": .int(attempts),
            "parameters": parameters, "inputs": inputs,
        ]
        if let template { object["template"] = .string(template) }
        if let templateVersion { object["template_version"] = .int(templateVersion) }
        if let templateSHA256 { object["template_sha256"] = .string(templateSHA256) }
        if let snapshot = nestedTemplates.flatMap(TemplateSnapshot.init(json:)) {
            // Which templates, not their texts (`template` with a version shows one).
            object["nested_templates"] = .array(snapshot.texts.map(\.summary))
        }
        if let idempotencyKey { object["idempotency_key"] = .string(idempotencyKey) }
        if let client { object["client"] = .string(client) }
        object["owner"] = .string(owner)
        if let started { object["started"] = .string(WireTime.format(started)) }
        if let finished { object["finished"] = .string(WireTime.format(finished)) }
        if let error { object["error"] = error }
        if let outputs { object["outputs"] = outputs }
        if let preview { object["preview"] = preview }
        if let models { object["models"] = .array(models.map(JSONValue.string)) }
        if let worker { object["worker"] = .string(worker) }
        return .object(object)
    }
}

/// A recorded change of state.
public struct JobTransition: Sendable, Equatable {
    public var state: String
    public var time: Date
    public var note: String?

    public var json: JSONValue {
        var object: [String: JSONValue] = ["state": .string(state), "time": .string(WireTime.format(time))]
        if let note { object["note"] = .string(note) }
        return .object(object)
    }
}

/// The daemon's durable memory: jobs, their transitions, input blobs and
/// model hashes, in SQLite (through GRDB) with `synchronous = FULL`, so a
/// job acknowledged to a client survives a crash of the daemon (and of the
/// machine). Safe to use from several threads.
public final class JobStore: DaemonStore, Sendable {
    private let database: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(10)
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
            // A damaged file must stop the daemon with advice, not pass for an
            // empty queue or fail later in the middle of a job.
            let check = try database.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            guard check == ["ok"] else {
                throw DaemonError(.internal, Self.damaged(path, "SQLite's quick_check reports: "
                                                          + check.prefix(3).joined(separator: "; ")))
            }
            try Self.migrator.migrate(database)
        } catch let error as DaemonError {
            throw error
        } catch {
            throw DaemonError(.internal, Self.damaged(path, "\(error)"))
        }
    }

    /// What to say about a job store that cannot be read.
    static func damaged(_ path: String, _ reason: String) -> String {
        "the job store \(path) is damaged or not a job store (\(reason)); the daemon will not start on it. "
            + "Move it aside (mv \(path) \(path).damaged) to start with an empty queue, or restore a backup; "
            + "sqlite3's .recover command may save the jobs it holds"
    }

    /// Versioned schema changes, applied in order, each once.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: jobs, transitions, blobs, model hashes") { db in
            try db.execute(sql: """
                CREATE TABLE job (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    idempotency_key TEXT UNIQUE,
                    state TEXT NOT NULL,
                    priority INTEGER NOT NULL DEFAULT 0,
                    template TEXT,
                    template_file TEXT,
                    workflow TEXT NOT NULL,
                    parameters TEXT NOT NULL,
                    inputs TEXT NOT NULL,
                    client TEXT,
                    created REAL NOT NULL,
                    started REAL,
                    finished REAL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    error TEXT,
                    outputs TEXT
                );
                CREATE INDEX job_queue ON job(state, priority DESC, seq);
                CREATE TABLE transition (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    job TEXT NOT NULL REFERENCES job(id),
                    state TEXT NOT NULL,
                    time REAL NOT NULL,
                    note TEXT
                );
                CREATE INDEX transition_job ON transition(job, seq);
                CREATE TABLE blob (
                    sha256 TEXT PRIMARY KEY,
                    bytes INTEGER NOT NULL,
                    created REAL NOT NULL
                );
                CREATE TABLE model_hash (
                    path TEXT PRIMARY KEY,
                    bytes INTEGER NOT NULL,
                    modified REAL NOT NULL,
                    sha256 TEXT NOT NULL
                );
                """)
        }
        // Jobs gain their owner (the client that submitted them), and
        // idempotency keys become unique per owner, so one client cannot
        // reach another's job by guessing its key. SQLite cannot change a
        // constraint in place: the table is rebuilt (foreign keys checked
        // once the copy is complete).
        migrator.registerMigration("v2: clients, job owners, secrets", foreignKeyChecks: .deferred) { db in
            try db.execute(sql: """
                CREATE TABLE client (
                    name TEXT PRIMARY KEY,
                    key TEXT NOT NULL,
                    curve_public TEXT,
                    role TEXT NOT NULL,
                    max_priority INTEGER NOT NULL,
                    max_queued INTEGER NOT NULL,
                    created REAL NOT NULL,
                    revoked REAL
                );
                CREATE TABLE secret (
                    name TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                );
                CREATE TABLE job_v2 (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    owner TEXT NOT NULL DEFAULT 'owner',
                    idempotency_key TEXT,
                    state TEXT NOT NULL,
                    priority INTEGER NOT NULL DEFAULT 0,
                    template TEXT,
                    template_file TEXT,
                    workflow TEXT NOT NULL,
                    parameters TEXT NOT NULL,
                    inputs TEXT NOT NULL,
                    client TEXT,
                    created REAL NOT NULL,
                    started REAL,
                    finished REAL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    error TEXT,
                    outputs TEXT,
                    UNIQUE (owner, idempotency_key)
                );
                INSERT INTO job_v2 (seq, id, owner, idempotency_key, state, priority, template, template_file, workflow,
                                    parameters, inputs, client, created, started, finished, attempts, error, outputs)
                    SELECT seq, id, 'owner', idempotency_key, state, priority, template, template_file, workflow,
                           parameters, inputs, client, created, started, finished, attempts, error, outputs FROM job;
                DROP TABLE job;
                ALTER TABLE job_v2 RENAME TO job;
                CREATE INDEX job_queue ON job(state, priority DESC, seq);
                CREATE INDEX job_owner ON job(owner, state);
                """)
        }
        // v3: templates saved over the wire, every version kept (a deleted
        // name keeps its history; a later save continues its numbering), and
        // the version each job ran.
        migrator.registerMigration("v3: saved templates") { db in
            try db.execute(sql: """
                CREATE TABLE template (
                    name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    text TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    client TEXT NOT NULL,
                    created REAL NOT NULL,
                    deleted REAL,
                    PRIMARY KEY (name, version)
                );
                ALTER TABLE job ADD COLUMN template_version INTEGER;
                ALTER TABLE job ADD COLUMN template_sha256 TEXT;
                """)
        }
        migrator.registerMigration("v4: templates a job's template nodes resolved to") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN nested_templates TEXT")
        }
        migrator.registerMigration("v5: the previews a job asked for") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN preview TEXT")
        }
        // v6: queue controls. `front` is when an admin moved a queued job to
        // the front (the latest move first, ahead of any priority); `setting`
        // keeps the queue's pause across restarts.
        migrator.registerMigration("v6: queue controls") { db in
            try db.execute(sql: """
                ALTER TABLE job ADD COLUMN front REAL;
                CREATE TABLE setting (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
        // v7: leases. A claim holds its job until `lease_until`; the worker renews it.
        migrator.registerMigration("v7: leases") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN lease_until REAL")
        }
        return migrator
    }

    /// The applied migrations' identifiers.
    public func appliedMigrations() throws -> [String] {
        try database.read { db in try Self.migrator.appliedIdentifiers(db).sorted() }
    }

    // MARK: jobs

    /// What ``insert(_:)`` did.
    public enum Insertion: Sendable, Equatable {
        case inserted(JobRecord)
        /// A job with the same idempotency key exists; nothing was inserted.
        case duplicate(JobRecord)
    }

    /// Inserts a queued job (and its first transition) in one transaction,
    /// unless its idempotency key is already known.
    public func insert(id: String, idempotencyKey: String?, priority: Int, template: String?, templateFile: String?,
                       workflow: String, parameters: JSONValue, inputs: JSONValue, client: String?,
                       owner: String = ClientRecord.ownerName, templateVersion: (number: Int, sha256: String)? = nil,
                       nestedTemplates: JSONValue? = nil, preview: JSONValue? = nil, blobs: [String: Data] = [:],
                       models: [String] = [], now: Date = Date()) throws -> Insertion {
        try database.write { db in
            if let idempotencyKey,
               let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE owner = ? AND idempotency_key = ?",
                                          arguments: [owner, idempotencyKey]) {
                return .duplicate(try Self.record(row))
            }
            try db.execute(sql: """
                INSERT INTO job (id, owner, idempotency_key, state, priority, template, template_file, workflow, parameters,
                                 inputs, client, created, template_version, template_sha256, nested_templates, preview)
                VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, owner, idempotencyKey, priority, template, templateFile, workflow, parameters.compact,
                                 inputs.compact, client, now.timeIntervalSince1970, templateVersion?.number, templateVersion?.sha256,
                                 nestedTemplates?.compact, preview?.compact])
            try Self.addTransition(db, job: id, state: "queued", time: now, note: nil)
            return .inserted(try Self.record(try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id])!))
        }
    }

    // MARK: saved templates

    /// One saved version of a template.
    public struct TemplateVersion: Sendable, Equatable {
        public var name: String
        public var version: Int
        public var text: String
        public var sha256: String
        public var client: String
        public var created: Date
        public var deleted: Date?

        public var json: JSONValue {
            var object: [String: JSONValue] = ["name": .string(name), "version": .int(version), "sha256": .string(sha256),
                                               "client": .string(client), "time": .string(WireTime.format(created))]
            if let deleted { object["deleted"] = .string(WireTime.format(deleted)) }
            return .object(object)
        }
    }

    /// Saves `text` as the next version of template `name`; returns it.
    public func saveTemplate(name: String, text: String, client: String, now: Date = Date()) throws -> TemplateVersion {
        let sha256 = Digest.sha256Hex(Data(text.utf8))
        return try database.write { db in
            let last = try Int.fetchOne(db, sql: "SELECT MAX(version) FROM template WHERE name = ?", arguments: [name]) ?? 0
            try db.execute(sql: "INSERT INTO template (name, version, text, sha256, client, created) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [name, last + 1, text, sha256, client, now.timeIntervalSince1970])
            return TemplateVersion(name: name, version: last + 1, text: text, sha256: sha256, client: client, created: now)
        }
    }

    /// Marks every version of `name` deleted; false if it has no live version.
    public func deleteTemplate(name: String, now: Date = Date()) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE template SET deleted = ? WHERE name = ? AND deleted IS NULL",
                           arguments: [now.timeIntervalSince1970, name])
            return db.changesCount > 0
        }
    }

    /// Version `version` of `name` (deleted or not), or its latest live one.
    public func template(name: String, version: Int? = nil) throws -> TemplateVersion? {
        try database.read { db in
            let row = try version.map {
                try Row.fetchOne(db, sql: "SELECT * FROM template WHERE name = ? AND version = ?", arguments: [name, $0])
            } ?? Row.fetchOne(db, sql: "SELECT * FROM template WHERE name = ? AND deleted IS NULL ORDER BY version DESC LIMIT 1",
                              arguments: [name])
            return row.map(Self.templateVersion)
        }
    }

    /// Every version of `name`, oldest first.
    public func templateHistory(name: String) throws -> [TemplateVersion] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM template WHERE name = ? ORDER BY version", arguments: [name]).map(Self.templateVersion)
        }
    }

    /// The latest live version of every saved template, by name.
    public func savedTemplates() throws -> [TemplateVersion] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT t.* FROM template t
                WHERE t.deleted IS NULL AND t.version = (SELECT MAX(version) FROM template WHERE name = t.name AND deleted IS NULL)
                ORDER BY t.name
                """).map(Self.templateVersion)
        }
    }

    private static func templateVersion(_ row: Row) -> TemplateVersion {
        TemplateVersion(name: row["name"], version: row["version"], text: row["text"], sha256: row["sha256"], client: row["client"],
                        created: Date(timeIntervalSince1970: row["created"]),
                        deleted: (row["deleted"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }

    public func job(_ id: String) throws -> JobRecord? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    /// The job `owner` submitted with idempotency key `key`, if any.
    public func job(idempotencyKey key: String, owner: String = ClientRecord.ownerName) throws -> JobRecord? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE owner = ? AND idempotency_key = ?", arguments: [owner, key])
                .map(Self.record)
        }
    }

    /// Jobs newest first, optionally only in `states`, of `template`, of `owner`.
    public func jobs(states: [JobState]? = nil, template: String? = nil, owner: String? = nil, worker: String? = nil,
                     limit: Int = 100) throws -> [JobRecord] {
        // One machine runs its jobs itself: no job ran on a named worker.
        if worker != nil { return [] }
        return try database.read { db in
            var clauses: [String] = [], arguments: StatementArguments = []
            if let owner {
                clauses.append("owner = ?")
                arguments += [owner]
            }
            if let states {
                clauses.append("state IN (\(states.map { _ in "?" }.joined(separator: ",")))")
                for state in states { arguments += [state.rawValue] }
            }
            if let template {
                clauses.append("template = ?")
                arguments += [template]
            }
            let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [limit]
            return try Row.fetchAll(db, sql: "SELECT * FROM job \(filter) ORDER BY seq DESC LIMIT ?", arguments: arguments)
                .map(Self.record)
        }
    }

    /// How many jobs are in each state.
    public func counts() throws -> [JobState: Int] {
        try database.read { db in
            var counts: [JobState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job GROUP BY state") {
                if let state = JobState(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// How many of `owner`'s jobs are queued or running.
    public func activeJobs(owner: String) throws -> Int {
        try database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job WHERE owner = ? AND state IN ('queued', 'running')",
                             arguments: [owner]) ?? 0
        }
    }

    /// The owner of job `id`, if it exists.
    public func owner(ofJob id: String) throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: "SELECT owner FROM job WHERE id = ?", arguments: [id]) }
    }

    // MARK: clients and secrets

    /// Every client ever issued, revoked ones included, by name.
    public func clients() throws -> [ClientRecord] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM client ORDER BY name").compactMap { row in
                guard let role = ClientRole(rawValue: row["role"]) else { return nil }
                return ClientRecord(name: row["name"], key: row["key"], curvePublicKey: row["curve_public"], role: role,
                                    maxPriority: row["max_priority"], maxQueued: row["max_queued"],
                                    created: Date(timeIntervalSince1970: row["created"]),
                                    revoked: (row["revoked"] as Double?).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    /// Records a new client; false if the name was ever used (a revoked name is not reissued).
    public func addClient(_ client: ClientRecord) throws -> Bool {
        try database.write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM client WHERE name = ?", arguments: [client.name]) == 0 else {
                return false
            }
            try db.execute(sql: """
                INSERT INTO client (name, key, curve_public, role, max_priority, max_queued, created)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [client.name, client.key, client.curvePublicKey, client.role.rawValue, client.maxPriority,
                                 client.maxQueued, client.created.timeIntervalSince1970])
            return true
        }
    }

    /// Marks client `name` revoked (its key is erased); false if there is no such active client.
    public func revokeClient(_ name: String, now: Date = Date()) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE client SET revoked = ?, key = '' WHERE name = ? AND revoked IS NULL",
                           arguments: [now.timeIntervalSince1970, name])
            return db.changesCount > 0
        }
    }

    /// A value the daemon keeps between runs (its CURVE secret key).
    public func secret(_ name: String) throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: "SELECT value FROM secret WHERE name = ?", arguments: [name]) }
    }

    public func setSecret(_ name: String, _ value: String) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO secret (name, value) VALUES (?, ?)", arguments: [name, value])
        }
    }

    /// The position of queued job `id` in the queue (0 = next), or nil.
    public func queuePosition(_ id: String) throws -> Int? {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM job WHERE state = 'queued' ORDER BY \(JobQueueOrder.sql)").firstIndex(of: id)
        }
    }

    /// The queued jobs in the order they will run (at most `limit`), without their texts.
    public func queueOrder(limit: Int = 100) throws -> [QueuedJob] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, owner, priority, template FROM job WHERE state = 'queued' ORDER BY \(JobQueueOrder.sql) LIMIT ?
                """, arguments: [limit]).map { QueuedJob(id: $0["id"], owner: $0["owner"], priority: $0["priority"], template: $0["template"]) }
        }
    }

    static let pausedSetting = "queue_paused"

    /// Whether the queue is paused: no job is claimed until it resumes (a
    /// running job runs on). Kept across restarts.
    public func isQueuePaused() throws -> Bool {
        try database.read { db in try Self.isPaused(db) }
    }

    private static func isPaused(_ db: Database) throws -> Bool {
        try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = ?", arguments: [pausedSetting]) == "true"
    }

    /// Pauses or resumes the queue.
    public func setQueuePaused(_ paused: Bool) throws {
        try database.write { db in
            try db.execute(sql: "INSERT INTO setting (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                           arguments: [Self.pausedSetting, paused ? "true" : "false"])
        }
    }

    /// Moves queued job `id` to the front of the queue (ahead of every
    /// priority; of several moved, the latest goes first); false when it is
    /// not queued.
    public func moveToFront(_ id: String, now: Date = Date()) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET front = ? WHERE id = ? AND state = 'queued'", arguments: [now.timeIntervalSince1970, id])
            guard db.changesCount > 0 else { return false }
            try Self.addTransition(db, job: id, state: "queued", time: now, note: "moved to the front of the queue")
            return true
        }
    }

    /// Sets queued job `id`'s priority (and undoes a move to the front);
    /// false when it is not queued.
    public func setPriority(_ id: String, _ priority: Int, now: Date = Date()) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET priority = ?, front = NULL WHERE id = ? AND state = 'queued'", arguments: [priority, id])
            guard db.changesCount > 0 else { return false }
            try Self.addTransition(db, job: id, state: "queued", time: now, note: "priority set to \(priority)")
            return true
        }
    }

    /// Marks the next queued job (``JobQueueOrder``) running and returns it;
    /// nil when none is queued or the queue is paused.
    public func claimNext(now: Date = Date(), note: String? = nil, lease: TimeInterval = JobLease.seconds) throws -> JobRecord? {
        try database.write { db in
            guard try !Self.isPaused(db), let row = try Row.fetchOne(db, sql: """
                SELECT id FROM job WHERE state = 'queued' ORDER BY \(JobQueueOrder.sql) LIMIT 1
                """) else { return nil }
            let id: String = row["id"]
            try db.execute(sql: "UPDATE job SET state = 'running', started = ?, attempts = attempts + 1, lease_until = ? WHERE id = ?",
                           arguments: [now.timeIntervalSince1970, now.timeIntervalSince1970 + lease, id])
            try Self.addTransition(db, job: id, state: "running", time: now, note: note)
            return try Self.record(try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id])!)
        }
    }

    /// Records a final state (`finished`, `failed`, `cancelled`) of a running job,
    /// whichever attempt holds it (the daemon's own records: a crashed worker's job).
    public func finish(_ id: String, state: JobState, error: JSONValue? = nil, outputs: JSONValue? = nil,
                       now: Date = Date()) throws {
        precondition(state.isFinal)
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = ?, finished = ?, error = ?, outputs = ? WHERE id = ? AND state = 'running'",
                           arguments: [state.rawValue, now.timeIntervalSince1970, error?.compact, outputs?.compact, id])
            guard db.changesCount > 0 else { return }
            try Self.addTransition(db, job: id, state: state.rawValue, time: now,
                                   note: error?["message"]?.stringValue)
        }
    }

    /// ``JobQueue/finish(_:attempt:state:error:outputs:now:)``: fenced by the attempt.
    public func finish(_ id: String, attempt: Int, state: JobState, error: JSONValue?, outputs: JSONValue?,
                       now: Date) throws -> Bool {
        precondition(state.isFinal)
        return try database.write { db in
            try db.execute(sql: """
                UPDATE job SET state = ?, finished = ?, error = ?, outputs = ? WHERE id = ? AND state = 'running' AND attempts = ?
                """, arguments: [state.rawValue, now.timeIntervalSince1970, error?.compact, outputs?.compact, id, attempt])
            guard db.changesCount > 0 else { return false }
            try Self.addTransition(db, job: id, state: state.rawValue, time: now, note: error?["message"]?.stringValue)
            return true
        }
    }

    /// Cancels `id` if it is still queued; true if it was.
    public func cancelQueued(_ id: String, now: Date = Date()) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                           arguments: [now.timeIntervalSince1970, id])
            guard db.changesCount > 0 else { return false }
            try Self.addTransition(db, job: id, state: "cancelled", time: now, note: "cancelled while queued")
            return true
        }
    }

    /// Puts running job `id` back in the queue (daemon stopping), whichever attempt holds it.
    public func requeue(_ id: String, note: String, now: Date = Date()) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = 'queued', started = NULL WHERE id = ? AND state = 'running'",
                           arguments: [id])
            if db.changesCount > 0 { try Self.addTransition(db, job: id, state: "queued", time: now, note: note) }
        }
    }

    /// ``JobQueue/renewLease(_:attempt:until:)``: fenced by the attempt.
    public func renewLease(_ id: String, attempt: Int, until: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET lease_until = ? WHERE id = ? AND state = 'running' AND attempts = ?",
                           arguments: [until.timeIntervalSince1970, id, attempt])
            return db.changesCount > 0
        }
    }

    /// ``JobQueue/expireLeases(now:maxAttempts:)``.
    public func expireLeases(now: Date, maxAttempts: Int) throws -> (requeued: [String], lost: [String]) {
        try database.write { db in
            let expired = try Row.fetchAll(db, sql: """
                SELECT id, attempts FROM job WHERE state = 'running' AND lease_until IS NOT NULL AND lease_until < ? ORDER BY seq
                """, arguments: [now.timeIntervalSince1970])
            var requeued: [String] = [], lost: [String] = []
            for row in expired {
                let id: String = row["id"], attempts: Int = row["attempts"]
                if attempts >= maxAttempts {
                    let message = "its lease ran out on each of its \(attempts) attempt(s) (the worker died, froze or was cut off): not retried again"
                    try Self.failInterrupted(db, id, code: .workerLost, message: message, details: ["attempts": .int(attempts)], now: now)
                    lost.append(id)
                } else {
                    try Self.requeueInterrupted(db, id, note: "requeued: the lease of attempt \(attempts) ran out", now: now)
                    requeued.append(id)
                }
            }
            return (requeued, lost)
        }
    }

    /// ``JobQueue/requeue(_:attempt:note:now:)``: fenced by the attempt.
    public func requeue(_ id: String, attempt: Int, note: String, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = 'queued', started = NULL WHERE id = ? AND state = 'running' AND attempts = ?",
                           arguments: [id, attempt])
            guard db.changesCount > 0 else { return false }
            try Self.addTransition(db, job: id, state: "queued", time: now, note: note)
            return true
        }
    }

    /// How many deaths of the daemon a job may be running at before it is
    /// failed (`crashed`) instead of requeued again.
    public static let defaultMaxCrashes = 2
    static let crashRequeueNote = "requeued: its process stopped while it ran"
    /// The same note as stores before the worker process wrote it.
    static let legacyCrashRequeueNote = "requeued: the daemon stopped while it ran"

    /// Requeues every job found running (the process running it died under
    /// it); returns their ids. A job its process has now died under
    /// `maxCrashes` times is failed as `crashed` instead (its id goes to
    /// `crashed`), so a job that kills the process cannot do it forever.
    /// Clean stops (`requeue`) do not count. `cause` says what died;
    /// `lastNode` is where each job was when it did, if known (the
    /// supervisor follows a worker process's events).
    public func requeueInterrupted(now: Date = Date(), maxCrashes: Int = JobStore.defaultMaxCrashes,
                                   cause: String = "the daemon stopped", lastNode: [String: String] = [:],
                                   crashed: inout [String]) throws -> [String] {
        try database.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT id FROM job WHERE state = 'running' ORDER BY seq")
            var requeued: [String] = []
            for id in ids {
                let earlier = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transition WHERE job = ? AND note IN (?, ?)",
                                               arguments: [id, Self.crashRequeueNote, Self.legacyCrashRequeueNote]) ?? 0
                let crashes = earlier + 1
                let node = lastNode[id]
                if crashes >= maxCrashes {
                    let at = node.map { " (last at node '\(LogText.escaped($0, limit: 100))')" } ?? ""
                    let message = "\(cause) while this job ran\(at), \(crashes) times: not retried again"
                    var details: [String: JSONValue] = ["crashes": .int(crashes)]
                    if let node { details["last_node"] = .string(node) }
                    try Self.failInterrupted(db, id, code: .crashed, message: message, details: details, now: now)
                    crashed.append(id)
                } else {
                    try Self.requeueInterrupted(db, id, note: Self.crashRequeueNote, now: now)
                    requeued.append(id)
                }
            }
            return requeued
        }
    }

    /// `requeueInterrupted` without the list of crashed jobs.
    public func requeueInterrupted(now: Date = Date(), maxCrashes: Int = JobStore.defaultMaxCrashes) throws -> [String] {
        var crashed: [String] = []
        return try requeueInterrupted(now: now, maxCrashes: maxCrashes, crashed: &crashed)
    }

    public func transitions(_ id: String) throws -> [JobTransition] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT state, time, note FROM transition WHERE job = ? ORDER BY seq", arguments: [id])
                .map { JobTransition(state: $0["state"], time: Date(timeIntervalSince1970: $0["time"]), note: $0["note"]) }
        }
    }

    // MARK: retention

    /// What `prune(finishedBefore:)` removed from the store.
    public struct PruneResult: Sendable, Equatable {
        /// Jobs removed (with their transitions); their folders are the caller's to delete.
        public var jobs: [String] = []
        /// Blobs no remaining job references (rows removed; the caller deletes the files).
        public var blobs: [String] = []
        /// Their bytes, as recorded.
        public var blobBytes = 0
    }

    /// Removes the jobs in a final state (finished, failed, cancelled) that
    /// ended before `cutoff`, their transitions, and the blobs no remaining
    /// job references and that were recorded before `cutoff` (a blob shared
    /// by several jobs stays until the last of them goes). One transaction:
    /// a crash leaves the store as it was. Queued and running jobs are never
    /// removed.
    public func prune(finishedBefore cutoff: Date) throws -> PruneResult {
        try database.write { db in
            var result = PruneResult()
            let time = cutoff.timeIntervalSince1970
            result.jobs = try String.fetchAll(db, sql: """
                SELECT id FROM job WHERE state IN ('finished', 'failed', 'cancelled') AND finished IS NOT NULL
                AND finished < ? ORDER BY seq
                """, arguments: [time])
            for chunk in stride(from: 0, to: result.jobs.count, by: 500) {
                let ids = Array(result.jobs[chunk..<min(chunk + 500, result.jobs.count)])
                let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
                try db.execute(sql: "DELETE FROM transition WHERE job IN (\(marks))", arguments: StatementArguments(ids))
                try db.execute(sql: "DELETE FROM job WHERE id IN (\(marks))", arguments: StatementArguments(ids))
            }
            let referenced = try Self.referencedBlobs(db)
            for row in try Row.fetchAll(db, sql: "SELECT sha256, bytes FROM blob WHERE created < ? ORDER BY sha256",
                                        arguments: [time]) {
                let sha: String = row["sha256"]
                guard !referenced.contains(sha) else { continue }
                try db.execute(sql: "DELETE FROM blob WHERE sha256 = ?", arguments: [sha])
                result.blobs.append(sha)
                result.blobBytes += row["bytes"] as Int
            }
            return result
        }
    }

    /// Removes the rows of blobs no job references, of any age: a submit
    /// refused after its frames were stored, or cut short by a crash, leaves
    /// them. Call it when no submit is in flight (the daemon does, at
    /// start). Returns their hashes, for the files to go too.
    @discardableResult
    public func removeUnreferencedBlobs() throws -> [String] {
        try database.write { db in
            let referenced = try Self.referencedBlobs(db)
            let orphans = try String.fetchAll(db, sql: "SELECT sha256 FROM blob ORDER BY sha256").filter { !referenced.contains($0) }
            for sha in orphans { try db.execute(sql: "DELETE FROM blob WHERE sha256 = ?", arguments: [sha]) }
            return orphans
        }
    }

    /// The blobs the jobs' inputs name (`{"name": {"sha256": …}}`).
    private static func referencedBlobs(_ db: Database) throws -> Set<String> {
        var referenced = Set<String>()
        for text in try String.fetchAll(db, sql: "SELECT inputs FROM job") {
            guard let inputs = json(text)?.objectValue else { continue }
            for input in inputs.values {
                if let sha = input["sha256"]?.stringValue { referenced.insert(sha) }
            }
        }
        return referenced
    }

    /// The recorded blobs' hashes.
    public func blobHashes() throws -> Set<String> {
        try database.read { db in Set(try String.fetchAll(db, sql: "SELECT sha256 FROM blob")) }
    }

    // MARK: blobs and model hashes

    /// Records that blob `sha256` (already written to disk) exists.
    public func recordBlob(sha256: String, bytes: Int, now: Date = Date()) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO blob (sha256, bytes, created) VALUES (?, ?, ?)",
                           arguments: [sha256, bytes, now.timeIntervalSince1970])
        }
    }

    /// A remembered model hash, valid while the size and modification time match.
    public func modelHash(path: String, bytes: Int64, modified: Double) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT sha256 FROM model_hash WHERE path = ? AND bytes = ? AND modified = ?",
                                arguments: [path, bytes, modified])
        }
    }

    public func rememberModelHash(path: String, bytes: Int64, modified: Double, sha256: String) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO model_hash (path, bytes, modified, sha256) VALUES (?, ?, ?, ?)",
                           arguments: [path, bytes, modified, sha256])
        }
    }

    // MARK: what only a shared queue does

    /// The daemon's own worker is cancelled directly (``JobRunning/cancel(_:)``): nothing to ask for.
    public func requestCancel(_ id: String) throws -> Bool { false }

    public func isCancelRequested(_ id: String) throws -> Bool { false }

    /// Blob bytes stay in the state folder's ``BlobStore``.
    public func blob(_ sha256: String) throws -> Data? { nil }

    /// Outputs stay in the job's folder, which the daemon reads.
    public func putBlobs(_ blobs: [String: Data], now: Date) throws {}

    public var keepsBlobBytes: Bool { false }

    // MARK: rows

    /// Fails running job `id` whose holder is gone (a crashed worker, a lost lease), with its error.
    private static func failInterrupted(_ db: Database, _ id: String, code: ErrorCode, message: String,
                                        details: [String: JSONValue], now: Date) throws {
        let error = JSONValue.object(["code": .string(code.rawValue), "message": .string(message), "details": .object(details)])
        try db.execute(sql: "UPDATE job SET state = 'failed', finished = ?, error = ?, lease_until = NULL WHERE id = ?",
                       arguments: [now.timeIntervalSince1970, error.compact, id])
        try addTransition(db, job: id, state: "failed", time: now, note: message)
    }

    /// Puts running job `id` whose holder is gone back in the queue.
    private static func requeueInterrupted(_ db: Database, _ id: String, note: String, now: Date) throws {
        try db.execute(sql: "UPDATE job SET state = 'queued', started = NULL, lease_until = NULL WHERE id = ?", arguments: [id])
        try addTransition(db, job: id, state: "queued", time: now, note: note)
    }

    private static func addTransition(_ db: Database, job: String, state: String, time: Date, note: String?) throws {
        try db.execute(sql: "INSERT INTO transition (job, state, time, note) VALUES (?, ?, ?, ?)",
                       arguments: [job, state, time.timeIntervalSince1970, note])
    }

    private static func json(_ text: String?) -> JSONValue? {
        guard let text else { return nil }
        return try? JSONValue(parsing: Data(text.utf8))
    }

    private static func record(_ row: Row) throws -> JobRecord {
        let stateText: String = row["state"]
        guard let state = JobState(rawValue: stateText) else {
            throw DaemonError(.internal, "job store: unknown state '\(stateText)'")
        }
        return JobRecord(
            id: row["id"], sequence: row["seq"], idempotencyKey: row["idempotency_key"], state: state,
            priority: row["priority"], template: row["template"], templateFile: row["template_file"],
            workflow: row["workflow"], parameters: json(row["parameters"]) ?? .object([:]),
            inputs: json(row["inputs"]) ?? .object([:]), client: row["client"], owner: row["owner"],
            created: Date(timeIntervalSince1970: row["created"]),
            started: (row["started"] as Double?).map(Date.init(timeIntervalSince1970:)),
            finished: (row["finished"] as Double?).map(Date.init(timeIntervalSince1970:)),
            attempts: row["attempts"], error: json(row["error"]), outputs: json(row["outputs"]),
            templateVersion: row["template_version"], templateSHA256: row["template_sha256"],
            nestedTemplates: json(row["nested_templates"]), preview: json(row["preview"]))
    }
}

/// Content-addressed files: `DIR/ab/abcdef…` named by their SHA-256.
public struct BlobStore: Sendable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    public func url(for sha256: String) -> URL {
        directory.appendingPathComponent(String(sha256.prefix(2)), isDirectory: true).appendingPathComponent(sha256)
    }

    /// Writes `data` (durably: temporary file, fsync, rename) unless present; returns its SHA-256.
    @discardableResult
    public func put(_ data: Data) throws -> String {
        let sha = Digest.sha256Hex(data)
        let target = url(for: sha)
        if FileManager.default.fileExists(atPath: target.path) { return sha }
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(sha).\(UUID().uuidString).tmp")
        try data.write(to: temporary)
        let fd = open(temporary.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(temporary.path, target.path) == 0 else {
            unlink(temporary.path)
            throw DaemonError(.internal, "cannot store input blob at \(target.path) (errno \(errno))")
        }
        return sha
    }

    public func contains(_ sha256: String) -> Bool { FileManager.default.fileExists(atPath: url(for: sha256).path) }

    /// The hashes of the blob files on disk, and the leftover temporary files
    /// of writes a crash cut short.
    public func files() -> (hashes: [String], temporary: [URL]) {
        var hashes: [String] = [], temporary: [URL] = []
        let manager = FileManager.default
        for prefix in (try? manager.contentsOfDirectory(atPath: directory.path)) ?? [] {
            let folder = directory.appendingPathComponent(prefix, isDirectory: true)
            for name in (try? manager.contentsOfDirectory(atPath: folder.path)) ?? [] {
                if name.hasPrefix(".") && name.hasSuffix(".tmp") {
                    temporary.append(folder.appendingPathComponent(name))
                } else if name.count == 64, name.allSatisfy(\.isHexDigit) {
                    hashes.append(name)
                }
            }
        }
        return (hashes.sorted(), temporary)
    }

    /// Deletes blob `sha256`'s file; true if it existed. Only hex names are
    /// accepted, so nothing outside the folder can be named.
    @discardableResult
    public func remove(_ sha256: String) -> Bool {
        guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else { return false }
        return unlink(url(for: sha256).path) == 0
    }
}
