import Foundation
import Workflow

// `status`, `list`, `cancel`, `prune`, `result`.
extension Daemon {
    /// The job the request names, if the caller may see it: its own, or
    /// any for an admin. Another client's job reads as missing.
    func requireJob(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> JobRecord {
        guard let id = content["job"]?.stringValue else {
            throw DaemonError(.invalidRequest, "expected 'job': a job id (string)")
        }
        guard let job = try storeCall({ try store.job(id) }), caller.isAdmin || job.owner == caller.name else {
            throw DaemonError(.notFound, caller.isAdmin ? "no job '\(id.prefix(80))'"
                              : "no job '\(id.prefix(80))' among client '\(caller.name)''s jobs")
        }
        return job
    }

    func requireAdmin(_ caller: ClientRecord, _ what: String) throws(DaemonError) {
        guard caller.isAdmin else {
            throw DaemonError(.forbidden, "client '\(caller.name)' has role '\(caller.role.rawValue)'; \(what) needs an admin client")
        }
    }

    func status(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        var object = job.json.objectValue ?? [:]
        object["transitions"] = .array(try storeCall { try store.transitions(job.id) }.map(\.json))
        if let progress = worker.lastProgress(of: job.id) ?? relay?.lastProgress(of: job.id) { object["progress"] = progress }
        if job.state == .queued, let position = try? store.queuePosition(job.id) {
            object["position"] = .int(position)
            object["queue_paused"] = .bool((try? store.isQueuePaused()) ?? false)
        }
        object["last_event"] = .int(publisher.lastSequence(job: job.id))
        return (["job": .object(object)], [])
    }

    func list(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        var states: [JobState]?
        switch content["state"] {
        case nil: break
        case let .string(text)?:
            guard let state = JobState(rawValue: text) else { throw badState(text) }
            states = [state]
        case let .array(items)?:
            states = try items.map { item throws(DaemonError) in
                guard let text = item.stringValue, let state = JobState(rawValue: text) else { throw badState(item.compact) }
                return state
            }
        case let other?:
            throw DaemonError(.invalidRequest, "'state' must be a state or a list of states, found \(other.typeName)")
        }
        let limit = min(max(try optionalInt(content, "limit") ?? 100, 1), 10_000)
        let template = try optionalString(content, "template")
        // Clients see their own jobs; admins every job, or one client's with 'owner'.
        let owner = caller.isAdmin ? try optionalString(content, "owner") : caller.name
        let worker = try optionalString(content, "worker")
        let jobs = try storeCall { try store.jobs(states: states, template: template, owner: owner, worker: worker, limit: limit) }
        return (["jobs": .array(jobs.map { job in
            var summary: [String: JSONValue] = ["id": .string(job.id), "state": .string(job.state.rawValue),
                                                "priority": .int(job.priority), "created": .string(WireTime.format(job.created))]
            if let template = job.template { summary["template"] = .string(template) }
            if let client = job.client { summary["client"] = .string(client) }
            summary["owner"] = .string(job.owner)
            if let worker = job.worker { summary["worker"] = .string(worker) }
            return .object(summary)
        })], [])
    }

    func badState(_ text: String) -> DaemonError {
        DaemonError(.invalidRequest, "unknown state '\(text.prefix(40))'; expected one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }

    func cancel(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        if job.state == .queued, try storeCall({ try store.cancelQueued(job.id, now: Date()) }) {
            publisher.publish(job: job.id, type: "cancelled", content: ["node": .null])
            publisher.forget(job: job.id)
            return (["job": .string(job.id), "state": .string("cancelled")], [])
        }
        // The worker running it: one of this daemon's, or (a shared queue) one
        // elsewhere, which sees the request at its next heartbeat.
        var cancelling = worker.cancel(job.id)
        if !cancelling, job.state == .running { cancelling = try storeCall { try store.requestCancel(job.id) } }
        if cancelling {
            return (["job": .string(job.id), "state": .string("cancelling")], [])
        }
        let now = try storeCall { try store.job(job.id) }?.state ?? job.state
        throw DaemonError(.notCancellable, "job \(job.id) is \(now.rawValue); only queued or running jobs can be cancelled")
    }

    /// Removes finished, failed and cancelled jobs that ended more than
    /// `older_than` seconds ago: their store rows, their folders (inputs and
    /// outputs) and the input blobs no remaining job references.
    func prune(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "prune")
        guard let value = content["older_than"], let seconds = value.doubleValue, seconds.isFinite, seconds >= 0 else {
            throw DaemonError(.invalidRequest, "expected 'older_than': seconds since a job ended (a number ≥ 0)")
        }
        let removed = try pruneJobs(olderThan: seconds)
        return (["jobs": .int(removed.jobs.count), "blobs": .int(removed.blobs.count), "bytes": .int(removed.bytes)], [])
    }

    /// The store's prune, then the files it no longer references.
    func pruneJobs(olderThan seconds: Double) throws(DaemonError) -> (jobs: [String], blobs: [String], bytes: Int) {
        let result = try storeCall { try store.prune(finishedBefore: Date(timeIntervalSinceNow: -seconds)) }
        var bytes = result.blobBytes
        for id in result.jobs {
            let folder = paths.job(id)
            if let size = try? FileManager.default.allocatedSizeOfFiles(in: folder) { bytes += size }
            try? FileManager.default.removeItem(at: folder)
            publisher.forget(job: id)
        }
        for sha in result.blobs { blobs.remove(sha) }
        if !result.jobs.isEmpty || !result.blobs.isEmpty {
            logger.info("pruned \(result.jobs.count) job(s) and \(result.blobs.count) blob(s), \(bytes) bytes")
        }
        // Measured again at the next submit.
        stateLock.withLock { diskUsage.measured = .distantPast }
        return (result.jobs, result.blobs, bytes)
    }

    func result(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        guard job.state == .finished else {
            throw DaemonError(.notFinished, "job \(job.id) is \(job.state.rawValue); results exist once it is finished",
                              details: .object(["state": .string(job.state.rawValue), "error": job.error ?? .null]))
        }
        var described: [JSONValue] = [], frames: [Data] = []
        for output in job.outputs?.arrayValue ?? [] {
            guard let name = output["name"]?.stringValue else { continue }
            let url = paths.outputs(job.id).appendingPathComponent(name)
            // Written here, or (a shared queue) kept in the queue by the worker that ran it.
            let kept = { () -> Data? in output["sha256"]?.stringValue.flatMap { try? self.store.blob($0) } }
            guard let data = (try? Data(contentsOf: url)) ?? kept() else {
                throw DaemonError(.notFound, "output \(name) of job \(job.id) is missing from \(url.path)")
            }
            var object = output.objectValue ?? [:]
            object["frame"] = .int(frames.count)
            described.append(.object(object))
            frames.append(data)
        }
        return (["job": .string(job.id), "outputs": .array(described)], frames)
    }
}
