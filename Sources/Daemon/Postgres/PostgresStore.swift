import Foundation
import Workflow

/// The front's side of the PostgreSQL queue: the same ``DaemonStore`` as
/// `JobStore`, so `pilot serve --queue postgresql://…` answers every request
/// as the single-machine daemon does, from a database that many fronts and
/// workers share. Input blob bytes go in with the job row (one
/// transaction: acknowledged means durable), and output bytes before the
/// finish that names them, so any front can return any job's results.
extension PostgresJobQueue: DaemonStore {
    public func insert(id: String, idempotencyKey: String?, priority: Int, template: String?, templateFile: String?,
                       workflow: String, parameters: JSONValue, inputs: JSONValue, client: String?, owner: String,
                       templateVersion: (number: Int, sha256: String)?, nestedTemplates: JSONValue?, preview: JSONValue?,
                       blobs: [String: Data], models: [String], now: Date) throws -> JobStore.Insertion {
        try pool.with { db in
            try db.transaction {
                if let idempotencyKey, let existing = try Self.jobRow(db, "owner = $1 AND idempotency_key = $2", [owner, idempotencyKey]) {
                    return .duplicate(existing)
                }
                for (sha, data) in blobs.sorted(by: { $0.key < $1.key }) {
                    try Self.putBlob(db, sha, data, now: now)
                }
                let added = try db.query("""
                    INSERT INTO job (id, owner, idempotency_key, state, priority, template, template_file, workflow, parameters,
                                     inputs, client, created, template_version, template_sha256, nested_templates, preview, models)
                    VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::text[])
                    ON CONFLICT (owner, idempotency_key) DO NOTHING RETURNING *
                    """, [id, owner, idempotencyKey, String(priority), template, templateFile, workflow, parameters.compact,
                          inputs.compact, client, Self.time(now), templateVersion.map { String($0.number) }, templateVersion?.sha256,
                          nestedTemplates?.compact, preview?.compact, Self.textArray(models)])
                guard !added.rows.isEmpty else {
                    // Another front inserted the same key between the look and the insert.
                    guard let idempotencyKey, let existing = try Self.jobRow(db, "owner = $1 AND idempotency_key = $2",
                                                                             [owner, idempotencyKey]) else {
                        throw DaemonError(.internal, "job queue: the insert of job \(id) added no row")
                    }
                    return .duplicate(existing)
                }
                try db.query("INSERT INTO transition (job, state, time, note) VALUES ($1, 'queued', $2, NULL)", [id, Self.time(now)])
                return .inserted(try Self.record(added, 0))
            }
        }
    }

    public func job(idempotencyKey key: String, owner: String) throws -> JobRecord? {
        try pool.with { db in try Self.jobRow(db, "owner = $1 AND idempotency_key = $2", [owner, key]) }
    }

    public func jobs(states: [JobState]?, template: String?, owner: String?, worker: String?, limit: Int) throws -> [JobRecord] {
        try pool.with { db in
            var clauses: [String] = [], parameters: [String?] = []
            if let owner {
                parameters.append(owner)
                clauses.append("owner = $\(parameters.count)")
            }
            if let states {
                parameters.append(Self.textArray(states.map(\.rawValue)))
                clauses.append("state = ANY($\(parameters.count)::text[])")
            }
            if let template {
                parameters.append(template)
                clauses.append("template = $\(parameters.count)")
            }
            if let worker {
                parameters.append(worker)
                clauses.append("worker = $\(parameters.count)")
            }
            parameters.append(String(limit))
            let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let rows = try db.query("SELECT * FROM job \(filter) ORDER BY seq DESC LIMIT $\(parameters.count)", parameters)
            return try rows.rows.indices.map { try Self.record(rows, $0) }
        }
    }

    public func counts() throws -> [JobState: Int] {
        try pool.with { db in
            let rows = try db.query("SELECT state, count(*) AS n FROM job GROUP BY state")
            var counts: [JobState: Int] = [:]
            for r in rows.rows.indices {
                if let state = rows.value(r, "state").flatMap(JobState.init(rawValue:)) { counts[state] = Int(rows.value(r, "n") ?? "") }
            }
            return counts
        }
    }

    public func activeJobs(owner: String) throws -> Int {
        try pool.with { db in
            Int(try db.query("SELECT count(*) AS n FROM job WHERE owner = $1 AND state IN ('queued', 'running')", [owner])
                .value(0, "n") ?? "0") ?? 0
        }
    }

    public func owner(ofJob id: String) throws -> String? {
        try pool.with { db in
            let rows = try db.query("SELECT owner FROM job WHERE id = $1", [id])
            return rows.rows.isEmpty ? nil : rows.value(0, "owner")
        }
    }

    public func transitions(_ id: String) throws -> [JobTransition] {
        try pool.with { db in
            let rows = try db.query("SELECT state, time, note FROM transition WHERE job = $1 ORDER BY seq", [id])
            return rows.rows.indices.map { r in
                JobTransition(state: rows.value(r, "state") ?? "", time: Date(timeIntervalSince1970: Double(rows.value(r, "time") ?? "") ?? 0),
                              note: rows.value(r, "note"))
            }
        }
    }

    public func cancelQueued(_ id: String, now: Date) throws -> Bool {
        try pool.with { db in
            try db.query("""
                WITH done AS (UPDATE job SET state = 'cancelled', finished = $2 WHERE id = $1 AND state = 'queued' RETURNING id)
                INSERT INTO transition (job, state, time, note) SELECT id, 'cancelled', $2, 'cancelled while queued' FROM done
                """, [id, Self.time(now)]).affected == 1
        }
    }

    public func requestCancel(_ id: String) throws -> Bool {
        try pool.with { db in
            try db.query("UPDATE job SET cancel_requested = true WHERE id = $1 AND state = 'running'", [id]).affected == 1
        }
    }

    public func isCancelRequested(_ id: String) throws -> Bool {
        try pool.with { db in
            try db.query("SELECT cancel_requested FROM job WHERE id = $1", [id]).value(0, "cancel_requested") == "t"
        }
    }

    // MARK: queue controls

    public func queuePosition(_ id: String) throws -> Int? {
        try pool.with { db in
            let rows = try db.query("""
                SELECT position FROM (
                    SELECT id, row_number() OVER (ORDER BY \(JobQueueOrder.sql)) - 1 AS position FROM job WHERE state = 'queued') q
                WHERE id = $1
                """, [id])
            return rows.rows.isEmpty ? nil : rows.value(0, "position").flatMap { Int($0) }
        }
    }

    public func queueOrder(limit: Int) throws -> [QueuedJob] {
        try pool.with { db in
            let rows = try db.query("SELECT id, owner, priority, template FROM job WHERE state = 'queued' ORDER BY \(JobQueueOrder.sql) LIMIT $1",
                                    [String(limit)])
            return rows.rows.indices.map { r in
                QueuedJob(id: rows.value(r, "id") ?? "", owner: rows.value(r, "owner") ?? "",
                          priority: Int(rows.value(r, "priority") ?? "") ?? 0, template: rows.value(r, "template"))
            }
        }
    }

    public func isQueuePaused() throws -> Bool {
        try pool.with { db in try db.query("SELECT value FROM setting WHERE name = 'queue_paused'").rows.first?.first == "true" }
    }

    public func moveToFront(_ id: String, now: Date) throws -> Bool {
        try pool.with { db in
            try db.query("""
                WITH moved AS (UPDATE job SET front = $2 WHERE id = $1 AND state = 'queued' RETURNING id)
                INSERT INTO transition (job, state, time, note) SELECT id, 'queued', $2, 'moved to the front of the queue' FROM moved
                """, [id, Self.time(now)]).affected == 1
        }
    }

    public func setPriority(_ id: String, _ priority: Int, now: Date) throws -> Bool {
        try pool.with { db in
            try db.query("""
                WITH moved AS (UPDATE job SET priority = $2, front = NULL WHERE id = $1 AND state = 'queued' RETURNING id)
                INSERT INTO transition (job, state, time, note) SELECT id, 'queued', $3, 'priority set to ' || $2 FROM moved
                """, [id, String(priority), Self.time(now)]).affected == 1
        }
    }

    // MARK: saved templates

    public func saveTemplate(name: String, text: String, client: String, now: Date) throws -> JobStore.TemplateVersion {
        let sha256 = Digest.sha256Hex(Data(text.utf8))
        return try pool.with { db in
            try db.transaction {
                // Versions of one name are numbered in turn, whichever front saves them.
                try db.query("SELECT pg_advisory_xact_lock(7236072, hashtext($1))", [name])
                let last = Int(try db.query("SELECT max(version) AS v FROM template WHERE name = $1", [name]).value(0, "v") ?? "") ?? 0
                try db.query("INSERT INTO template (name, version, text, sha256, client, created) VALUES ($1, $2, $3, $4, $5, $6)",
                             [name, String(last + 1), text, sha256, client, Self.time(now)])
                return JobStore.TemplateVersion(name: name, version: last + 1, text: text, sha256: sha256, client: client, created: now)
            }
        }
    }

    public func deleteTemplate(name: String, now: Date) throws -> Bool {
        try pool.with { db in
            try db.query("UPDATE template SET deleted = $1 WHERE name = $2 AND deleted IS NULL", [Self.time(now), name]).affected > 0
        }
    }

    public func template(name: String, version: Int?) throws -> JobStore.TemplateVersion? {
        try pool.with { db in
            let rows = try version.map {
                try db.query("SELECT * FROM template WHERE name = $1 AND version = $2", [name, String($0)])
            } ?? db.query("SELECT * FROM template WHERE name = $1 AND deleted IS NULL ORDER BY version DESC LIMIT 1", [name])
            return rows.rows.isEmpty ? nil : Self.templateVersion(rows, 0)
        }
    }

    public func templateHistory(name: String) throws -> [JobStore.TemplateVersion] {
        try pool.with { db in
            let rows = try db.query("SELECT * FROM template WHERE name = $1 ORDER BY version", [name])
            return rows.rows.indices.map { Self.templateVersion(rows, $0) }
        }
    }

    public func savedTemplates() throws -> [JobStore.TemplateVersion] {
        try pool.with { db in
            let rows = try db.query("""
                SELECT t.* FROM template t
                WHERE t.deleted IS NULL AND t.version = (SELECT max(version) FROM template WHERE name = t.name AND deleted IS NULL)
                ORDER BY t.name
                """)
            return rows.rows.indices.map { Self.templateVersion(rows, $0) }
        }
    }

    private static func templateVersion(_ rows: PostgresRows, _ r: Int) -> JobStore.TemplateVersion {
        JobStore.TemplateVersion(name: rows.value(r, "name") ?? "", version: Int(rows.value(r, "version") ?? "") ?? 0,
                                 text: rows.value(r, "text") ?? "", sha256: rows.value(r, "sha256") ?? "",
                                 client: rows.value(r, "client") ?? "",
                                 created: Date(timeIntervalSince1970: Double(rows.value(r, "created") ?? "") ?? 0),
                                 deleted: rows.value(r, "deleted").flatMap(Double.init).map(Date.init(timeIntervalSince1970:)))
    }

    // MARK: clients and secrets

    public func clients() throws -> [ClientRecord] {
        try pool.with { db in
            let rows = try db.query("SELECT * FROM client ORDER BY name")
            return rows.rows.indices.compactMap { r in
                guard let role = rows.value(r, "role").flatMap(ClientRole.init(rawValue:)) else { return nil }
                return ClientRecord(name: rows.value(r, "name") ?? "", key: rows.value(r, "key") ?? "",
                                    curvePublicKey: rows.value(r, "curve_public"), role: role,
                                    maxPriority: Int(rows.value(r, "max_priority") ?? "") ?? 0,
                                    maxQueued: Int(rows.value(r, "max_queued") ?? "") ?? 0,
                                    created: Date(timeIntervalSince1970: Double(rows.value(r, "created") ?? "") ?? 0),
                                    revoked: rows.value(r, "revoked").flatMap(Double.init).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    public func addClient(_ client: ClientRecord) throws -> Bool {
        try pool.with { db in
            try db.query("""
                INSERT INTO client (name, key, curve_public, role, max_priority, max_queued, created)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING
                """, [client.name, client.key, client.curvePublicKey, client.role.rawValue, String(client.maxPriority),
                      String(client.maxQueued), Self.time(client.created)]).affected == 1
        }
    }

    public func revokeClient(_ name: String, now: Date) throws -> Bool {
        try pool.with { db in
            try db.query("UPDATE client SET revoked = $1, key = '' WHERE name = $2 AND revoked IS NULL", [Self.time(now), name]).affected == 1
        }
    }

    public func secret(_ name: String) throws -> String? {
        try pool.with { db in try db.query("SELECT value FROM secret WHERE name = $1", [name]).rows.first?.first ?? nil }
    }

    public func setSecret(_ name: String, _ value: String) throws {
        try pool.with { db in
            try db.query("INSERT INTO secret (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                         [name, value])
        }
    }

    // MARK: retention and blobs

    /// Removes jobs that ended before `cutoff` with their transitions, and
    /// the blobs (inputs and outputs) no remaining job names that were
    /// stored before `cutoff`; one transaction.
    public func prune(finishedBefore cutoff: Date) throws -> JobStore.PruneResult {
        try pool.with { db in
            try db.transaction {
                var result = JobStore.PruneResult()
                let time = Self.time(cutoff)
                let ids = try db.query("""
                    SELECT id FROM job WHERE state IN ('finished', 'failed', 'cancelled') AND finished IS NOT NULL AND finished < $1
                    ORDER BY seq
                    """, [time])
                result.jobs = ids.rows.compactMap { $0.first ?? nil }
                if !result.jobs.isEmpty {
                    let list = Self.textArray(result.jobs)
                    try db.query("DELETE FROM transition WHERE job = ANY($1::text[])", [list])
                    try db.query("DELETE FROM job WHERE id = ANY($1::text[])", [list])
                }
                let referenced = try Self.referencedBlobs(db)
                let candidates = try db.query("SELECT sha256, bytes FROM blob WHERE created < $1 ORDER BY sha256", [time])
                var removed: [String] = []
                for r in candidates.rows.indices {
                    guard let sha = candidates.value(r, "sha256"), !referenced.contains(sha) else { continue }
                    removed.append(sha)
                    result.blobBytes += Int(candidates.value(r, "bytes") ?? "") ?? 0
                }
                if !removed.isEmpty { try db.query("DELETE FROM blob WHERE sha256 = ANY($1::text[])", [Self.textArray(removed)]) }
                result.blobs = removed
                return result
            }
        }
    }

    /// Blobs no job names, stored over an hour ago. Younger ones are left:
    /// another front may be between storing a job's outputs and recording
    /// the finish that names them.
    @discardableResult
    public func removeUnreferencedBlobs() throws -> [String] {
        try pool.with { db in
            try db.transaction {
                let referenced = try Self.referencedBlobs(db)
                let old = try db.query("SELECT sha256 FROM blob WHERE created < $1", [Self.time(Date(timeIntervalSinceNow: -3600))])
                let orphans = old.rows.compactMap { $0.first ?? nil }.filter { !referenced.contains($0) }.sorted()
                if !orphans.isEmpty { try db.query("DELETE FROM blob WHERE sha256 = ANY($1::text[])", [Self.textArray(orphans)]) }
                return orphans
            }
        }
    }

    /// What the remaining jobs' inputs and outputs name.
    private static func referencedBlobs(_ db: PostgresConnection) throws -> Set<String> {
        var referenced = Set<String>()
        let rows = try db.query("SELECT inputs, outputs FROM job")
        for row in rows.rows {
            for text in row.compactMap({ $0 }) {
                guard let value = try? JSONValue(parsing: Data(text.utf8)) else { continue }
                let items = value.objectValue.map { Array($0.values) } ?? value.arrayValue ?? []
                for item in items { if let sha = item["sha256"]?.stringValue { referenced.insert(sha) } }
            }
        }
        return referenced
    }

    public func blobHashes() throws -> Set<String> {
        try pool.with { db in Set(try db.query("SELECT sha256 FROM blob").rows.compactMap { $0.first ?? nil }) }
    }

    /// Nothing to do: the bytes go in with the job row (``insert``).
    public func recordBlob(sha256: String, bytes: Int, now: Date) throws {}

    public func blob(_ sha256: String) throws -> Data? {
        try pool.with { db in
            try db.query("SELECT data FROM blob WHERE sha256 = $1 AND data IS NOT NULL", [sha256]).rows.first?.first?
                .flatMap(Self.decodeBytea)
        }
    }

    public var keepsBlobBytes: Bool { true }

    public func putBlobs(_ blobs: [String: Data], now: Date) throws {
        guard !blobs.isEmpty else { return }
        try pool.with { db in
            try db.transaction {
                for (sha, data) in blobs.sorted(by: { $0.key < $1.key }) { try Self.putBlob(db, sha, data, now: now) }
            }
        }
    }

    private static func putBlob(_ db: PostgresConnection, _ sha: String, _ data: Data, now: Date) throws {
        try db.query("""
            INSERT INTO blob (sha256, bytes, data, created) VALUES ($1, $2, decode($3, 'hex'), $4)
            ON CONFLICT (sha256) DO UPDATE SET created = greatest(blob.created, excluded.created)
            """, [sha, String(data.count), Digest.hex(Array(data)), time(now)])
    }

    /// bytea in text form: `\x` and hex digits.
    static func decodeBytea(_ text: String) -> Data? {
        guard text.hasPrefix("\\x") else { return nil }
        let digits = Array(text.utf8.dropFirst(2))
        guard digits.count % 2 == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: digits.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        for i in bytes.indices {
            guard let high = nibble(digits[2 * i]), let low = nibble(digits[2 * i + 1]) else { return nil }
            bytes[i] = high << 4 | low
        }
        return Data(bytes)
    }

    // MARK: model hashes

    public func modelHash(path: String, bytes: Int64, modified: Double) throws -> String? {
        try pool.with { db in
            try db.query("SELECT sha256 FROM model_hash WHERE path = $1 AND bytes = $2 AND modified = $3",
                         [path, String(bytes), String(modified)]).rows.first?.first ?? nil
        }
    }

    public func rememberModelHash(path: String, bytes: Int64, modified: Double, sha256: String) throws {
        try pool.with { db in
            try db.query("""
                INSERT INTO model_hash (path, bytes, modified, sha256) VALUES ($1, $2, $3, $4)
                ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, modified = excluded.modified, sha256 = excluded.sha256
                """, [path, String(bytes), String(modified), sha256])
        }
    }

    // MARK: interrupted jobs

    /// The jobs this queue's worker name holds (a front's own workers, which
    /// died with it: it holds its state folder's lock again): requeued, or
    /// failed as `crashed` once their process died under them `maxCrashes` times.
    public func requeueInterrupted(now: Date, maxCrashes: Int, cause: String, lastNode: [String: String],
                                   crashed: inout [String]) throws -> [String] {
        guard let worker = workerName else { return [] }
        return try pool.with { db in
            try db.transaction {
                let rows = try db.query("SELECT id FROM job WHERE state = 'running' AND worker = $1 ORDER BY seq FOR UPDATE", [worker])
                var requeued: [String] = []
                for id in rows.rows.compactMap({ $0.first ?? nil }) {
                    let earlier = Int(try db.query("SELECT count(*) AS n FROM transition WHERE job = $1 AND note IN ($2, $3)",
                                                   [id, JobStore.crashRequeueNote, JobStore.legacyCrashRequeueNote])
                        .value(0, "n") ?? "0") ?? 0
                    if earlier + 1 >= maxCrashes {
                        let message = "\(cause) while this job ran, \(earlier + 1) times: not retried again"
                        let error = JSONValue.object(["code": .string(ErrorCode.crashed.rawValue), "message": .string(message),
                                                      "details": .object(["crashes": .int(earlier + 1)])])
                        try db.query("UPDATE job SET state = 'failed', finished = $2, error = $3, lease_until = NULL WHERE id = $1",
                                     [id, Self.time(now), error.compact])
                        try db.query("INSERT INTO transition (job, state, time, note) VALUES ($1, 'failed', $2, $3)",
                                     [id, Self.time(now), message])
                        crashed.append(id)
                    } else {
                        try db.query("UPDATE job SET state = 'queued', started = NULL, lease_until = NULL WHERE id = $1", [id])
                        try db.query("INSERT INTO transition (job, state, time, note) VALUES ($1, 'queued', $2, $3)",
                                     [id, Self.time(now), JobStore.crashRequeueNote])
                        requeued.append(id)
                    }
                }
                return requeued
            }
        }
    }

    // MARK: rows

    private static func jobRow(_ db: PostgresConnection, _ filter: String, _ parameters: [String?]) throws -> JobRecord? {
        let rows = try db.query("SELECT * FROM job WHERE \(filter)", parameters)
        return try rows.rows.indices.first.map { try record(rows, $0) }
    }

    /// A PostgreSQL array literal of plain words (job ids, hashes, state names).
    static func textArray(_ items: [String]) -> String {
        "{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
