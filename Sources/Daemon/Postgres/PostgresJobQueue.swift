import Foundation
import Workflow

/// The job queue in PostgreSQL, for workers on many machines: the same
/// ``JobQueue`` contract as `JobStore` (claims, attempts, fencing, exactly
/// one final state), with claims that concurrent workers make safely
/// through `FOR UPDATE SKIP LOCKED`. Every operation is one statement
/// (state change and transition together, in a CTE), so it commits whole
/// or not at all.
///
/// The front's side (``DaemonStore``) is in PostgresStore.swift; events
/// between machines in PostgresEvents.swift (docs/queue.md).
public final class PostgresJobQueue: JobQueue, @unchecked Sendable {
    let pool: PostgresPool
    /// The name claims record as the job's worker (`host/pid`, or a front's
    /// own workers' name): `requeueInterrupted` takes back what this name held.
    public let workerName: String?
    /// The connection string, for connections of its own (LISTEN).
    let conninfo: String

    /// Connects (a libpq connection string or `postgresql://` URL) and
    /// creates the schema if it is missing. `worker` names the claims it makes.
    public init(connection: String, worker: String? = nil) throws {
        conninfo = connection
        workerName = worker
        pool = try PostgresPool(connection)
        try pool.with { db in
            try db.transaction {
                // One creator at a time: IF NOT EXISTS alone races between processes.
                try db.query("SELECT pg_advisory_xact_lock(7236071)")
                // A current schema is left alone: its DDL (even IF NOT EXISTS)
                // would lock tables that running fronts and workers are using.
                if try db.query("SELECT to_regclass('pilot_schema') AS t").value(0, "t") != nil,
                   Int(try db.query("SELECT max(version) AS v FROM pilot_schema").value(0, "v") ?? "") == Self.schemaVersion {
                    return
                }
                for statement in Self.schema { try db.query(statement) }
                try db.query("CREATE TABLE IF NOT EXISTS pilot_schema (version INTEGER NOT NULL)")
                try db.query("DELETE FROM pilot_schema")
                try db.query("INSERT INTO pilot_schema (version) VALUES ($1)", [String(Self.schemaVersion)])
            }
        }
    }

    /// Bumped whenever `schema` changes: a store at an older version gets the statements again (each is idempotent).
    static let schemaVersion = 3

    /// What a worker of this queue takes and prefers (``setAffinity(_:)``).
    public struct Affinity: Sendable {
        /// The models folder's entries now (asked at each claim: models added while it runs count).
        public var available: @Sendable () -> [String]
        /// Prefer, within a priority, jobs for the models of the last job claimed.
        public var preferLoaded: Bool
        /// A job waiting longer than this is preferred like one for the loaded model, so none waits forever.
        public var ageLimit: TimeInterval

        public init(available: @escaping @Sendable () -> [String], preferLoaded: Bool = true, ageLimit: TimeInterval = 300) {
            self.available = available
            self.preferLoaded = preferLoaded
            self.ageLimit = ageLimit
        }
    }

    private let affinityLock = NSLock()
    private var affinity: Affinity?
    private var loaded: [String]?

    /// Model affinity for this queue's claims: only jobs whose models are
    /// all `available`, those for the last claimed job's models first
    /// within a priority, unless older than `ageLimit`. Nil: any job.
    public func setAffinity(_ affinity: Affinity?) {
        affinityLock.withLock { self.affinity = affinity }
    }

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS job (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            owner TEXT NOT NULL DEFAULT 'owner',
            idempotency_key TEXT,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            front DOUBLE PRECISION,
            template TEXT,
            template_file TEXT,
            workflow TEXT NOT NULL,
            parameters TEXT NOT NULL,
            inputs TEXT NOT NULL,
            client TEXT,
            created DOUBLE PRECISION NOT NULL,
            started DOUBLE PRECISION,
            finished DOUBLE PRECISION,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            outputs TEXT,
            template_version INTEGER,
            template_sha256 TEXT,
            nested_templates TEXT,
            preview TEXT,
            UNIQUE (owner, idempotency_key)
        )
        """,
        "CREATE INDEX IF NOT EXISTS job_queue ON job (state, priority DESC, seq)",
        """
        CREATE TABLE IF NOT EXISTS transition (
            seq BIGSERIAL PRIMARY KEY,
            job TEXT NOT NULL REFERENCES job(id),
            state TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            note TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS transition_job ON transition (job, seq)",
        "CREATE TABLE IF NOT EXISTS setting (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "ALTER TABLE job ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION",
        "ALTER TABLE job ADD COLUMN IF NOT EXISTS worker TEXT",
        "ALTER TABLE job ADD COLUMN IF NOT EXISTS cancel_requested BOOLEAN NOT NULL DEFAULT false",
        "CREATE INDEX IF NOT EXISTS job_owner ON job (owner, state)",
        "ALTER TABLE job ADD COLUMN IF NOT EXISTS models TEXT[]",
        "CREATE INDEX IF NOT EXISTS job_worker ON job (worker, seq)",
        """
        CREATE TABLE IF NOT EXISTS client (
            name TEXT PRIMARY KEY, key TEXT NOT NULL, curve_public TEXT, role TEXT NOT NULL, max_priority INTEGER NOT NULL,
            max_queued BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION)
        """,
        "CREATE TABLE IF NOT EXISTS secret (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS template (
            name TEXT NOT NULL, version INTEGER NOT NULL, text TEXT NOT NULL, sha256 TEXT NOT NULL, client TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL, deleted DOUBLE PRECISION, PRIMARY KEY (name, version))
        """,
        "CREATE TABLE IF NOT EXISTS blob (sha256 TEXT PRIMARY KEY, bytes BIGINT NOT NULL, data BYTEA, created DOUBLE PRECISION NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS model_hash (
            path TEXT PRIMARY KEY, bytes BIGINT NOT NULL, modified DOUBLE PRECISION NOT NULL, sha256 TEXT NOT NULL)
        """,
    ]

    /// Pauses or resumes the queue (no claim while paused).
    public func setQueuePaused(_ paused: Bool) throws {
        try pool.with { db in
            try db.query("""
                INSERT INTO setting (name, value) VALUES ('queue_paused', $1)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value
                """, [paused ? "true" : "false"])
        }
    }

    public func claimNext(now: Date, note: String?, lease: TimeInterval) throws -> JobRecord? {
        try pool.with { db in
            let rows = try db.query("""
                WITH next AS (
                    SELECT id FROM job
                    WHERE state = 'queued'
                      AND NOT EXISTS (SELECT 1 FROM setting WHERE name = 'queue_paused' AND value = 'true')
                      AND ($5::text[] IS NULL OR models IS NULL OR models <@ $5::text[])
                    ORDER BY \(JobQueueOrder.sql(preferring: Self.preferLoaded)) LIMIT 1 FOR UPDATE SKIP LOCKED),
                claimed AS (
                    UPDATE job SET state = 'running', started = $1, attempts = attempts + 1, lease_until = $3, worker = $4,
                        cancel_requested = false
                    FROM next WHERE job.id = next.id RETURNING job.*),
                logged AS (INSERT INTO transition (job, state, time, note) SELECT id, 'running', $1, $2 FROM claimed)
                SELECT * FROM claimed
                """, [Self.time(now), note, String(now.timeIntervalSince1970 + lease), workerName] + affinityParameters(now: now))
            let claimed = try rows.rows.indices.first.map { try Self.record(rows, $0) }
            if let models = claimed?.models, !models.isEmpty { affinityLock.withLock { loaded = models } }
            return claimed
        }
    }

    /// Jobs for the loaded models, or waiting past the age limit ($6, $7).
    static let preferLoaded = "coalesce($6::text[] IS NOT NULL AND (models <@ $6::text[] OR created < $7::double precision), false)"

    /// $5 (the models this worker has), $6 (those it loaded last), $7 (the age cutoff).
    private func affinityParameters(now: Date) -> [String?] {
        let (affinity, loaded) = affinityLock.withLock { (self.affinity, self.loaded) }
        guard let affinity else { return [nil, nil, "0"] }
        return [Self.textArray(affinity.available()), affinity.preferLoaded ? loaded.map(Self.textArray) : nil,
                Self.time(now.addingTimeInterval(-affinity.ageLimit))]
    }

    public func finish(_ id: String, attempt: Int, state: JobState, error: JSONValue?, outputs: JSONValue?,
                       now: Date) throws -> Bool {
        precondition(state.isFinal)
        return try pool.with { db in
            let rows = try db.query("""
                WITH done AS (
                    UPDATE job SET state = $1, finished = $2, error = $3, outputs = $4
                    WHERE id = $5 AND state = 'running' AND attempts = $6 RETURNING id),
                logged AS (INSERT INTO transition (job, state, time, note) SELECT id, $1, $2, $7 FROM done)
                SELECT count(*) AS n FROM done
                """, [state.rawValue, Self.time(now), error?.compact, outputs?.compact, id, String(attempt),
                      error?["message"]?.stringValue])
            return rows.value(0, "n") == "1"
        }
    }

    public func renewLease(_ id: String, attempt: Int, until: Date) throws -> Bool {
        try pool.with { db in
            try db.query("UPDATE job SET lease_until = $1 WHERE id = $2 AND state = 'running' AND attempts = $3",
                         [Self.time(until), id, String(attempt)]).affected == 1
        }
    }

    public func expireLeases(now: Date, maxAttempts: Int) throws -> (requeued: [String], lost: [String]) {
        try pool.with { db in
            // Locked rows are skipped: a job another sweeper is expiring right now is its to handle.
            let rows = try db.query("""
                WITH expired AS (
                    SELECT id, attempts FROM job
                    WHERE state = 'running' AND lease_until IS NOT NULL AND lease_until < $1
                    FOR UPDATE SKIP LOCKED),
                lost AS (
                    UPDATE job SET state = 'failed', finished = $1, lease_until = NULL,
                        error = json_build_object('code', 'worker_lost',
                            'message', 'its lease ran out on each of its ' || job.attempts
                                || ' attempt(s) (the worker died, froze or was cut off): not retried again',
                            'details', json_build_object('attempts', job.attempts))::text
                    FROM expired WHERE job.id = expired.id AND expired.attempts >= $2 RETURNING job.id, job.error),
                back AS (
                    UPDATE job SET state = 'queued', started = NULL, lease_until = NULL
                    FROM expired WHERE job.id = expired.id AND expired.attempts < $2 RETURNING job.id, job.attempts),
                logged AS (
                    INSERT INTO transition (job, state, time, note)
                    SELECT id, 'failed', $1, error::json->>'message' FROM lost
                    UNION ALL
                    SELECT id, 'queued', $1, 'requeued: the lease of attempt ' || attempts || ' ran out' FROM back)
                SELECT id, 'lost' AS outcome FROM lost UNION ALL SELECT id, 'requeued' FROM back
                """, [Self.time(now), String(maxAttempts)])
            var requeued: [String] = [], lost: [String] = []
            for r in rows.rows.indices {
                guard let id = rows.value(r, "id") else { continue }
                if rows.value(r, "outcome") == "lost" { lost.append(id) } else { requeued.append(id) }
            }
            return (requeued.sorted(), lost.sorted())
        }
    }

    public func requeue(_ id: String, attempt: Int, note: String, now: Date) throws -> Bool {
        try pool.with { db in
            let rows = try db.query("""
                WITH back AS (
                    UPDATE job SET state = 'queued', started = NULL
                    WHERE id = $1 AND state = 'running' AND attempts = $2 RETURNING id),
                logged AS (INSERT INTO transition (job, state, time, note) SELECT id, 'queued', $3, $4 FROM back)
                SELECT count(*) AS n FROM back
                """, [id, String(attempt), Self.time(now), note])
            return rows.value(0, "n") == "1"
        }
    }

    public func job(_ id: String) throws -> JobRecord? {
        try pool.with { db in
            let rows = try db.query("SELECT * FROM job WHERE id = $1", [id])
            return try rows.rows.indices.first.map { try Self.record(rows, $0) }
        }
    }

    static func time(_ date: Date) -> String { String(date.timeIntervalSince1970) }

    /// A text[] in PostgreSQL's text form (`{a,"b c"}`) as its elements.
    static func parseTextArray(_ text: String) -> [String] {
        var items: [String] = [], current = "", quoted = false, escaped = false, any = false
        for character in text.dropFirst().dropLast() {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
                any = true
            } else if character == ",", !quoted {
                items.append(current)
                current = ""
                any = false
            } else {
                current.append(character)
                any = true
            }
        }
        if any || !current.isEmpty { items.append(current) }
        return items
    }

    static func record(_ rows: PostgresRows, _ r: Int) throws -> JobRecord {
        func text(_ column: String) -> String? { rows.value(r, column) }
        func required(_ column: String) throws -> String {
            guard let value = text(column) else { throw DaemonError(.internal, "job queue: column '\(column)' is missing or NULL") }
            return value
        }
        func json(_ column: String) -> JSONValue? { text(column).flatMap { try? JSONValue(parsing: Data($0.utf8)) } }
        func date(_ column: String) -> Date? { text(column).flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) }
        let stateText = try required("state")
        guard let state = JobState(rawValue: stateText) else { throw DaemonError(.internal, "job queue: unknown state '\(stateText)'") }
        guard let sequence = Int64(try required("seq")), let priority = Int(try required("priority")),
              let attempts = Int(try required("attempts")), let created = date("created") else {
            throw DaemonError(.internal, "job queue: a job row has unreadable numbers")
        }
        return JobRecord(
            id: try required("id"), sequence: sequence, idempotencyKey: text("idempotency_key"), state: state,
            priority: priority, template: text("template"), templateFile: text("template_file"),
            workflow: try required("workflow"), parameters: json("parameters") ?? .object([:]),
            inputs: json("inputs") ?? .object([:]), client: text("client"), owner: try required("owner"),
            created: created, started: date("started"), finished: date("finished"), attempts: attempts,
            error: json("error"), outputs: json("outputs"), templateVersion: text("template_version").flatMap(Int.init),
            templateSHA256: text("template_sha256"), nestedTemplates: json("nested_templates"), preview: json("preview"),
            models: text("models").map(parseTextArray), worker: text("worker"))
    }
}
