import Foundation
import Workflow

// `queue` (the queue's state, pause and resume) and `move` (a queued job to
// the front, or to another priority).
extension Daemon {
    /// Most queued jobs a `queue` reply lists in order.
    static let maxQueueListed = 100

    func queue(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        switch try optionalString(content, "action") ?? "status" {
        case "status": break
        case "pause":
            try requireAdmin(caller, "pausing the queue")
            try storeCall { try store.setQueuePaused(true) }
            logger.notice("queue paused by client '\(caller.name)': no job starts until it resumes")
        case "resume":
            try requireAdmin(caller, "resuming the queue")
            try storeCall { try store.setQueuePaused(false) }
            logger.notice("queue resumed by client '\(caller.name)'")
            wakeWorkers()
        case let other:
            throw DaemonError(.invalidRequest, "'action' must be status, pause or resume, found '\(other.prefix(40))'")
        }
        let paused = try storeCall { try store.isQueuePaused() }
        let order = try storeCall { try store.queueOrder(limit: 10_000) }
        // Clients see where their own jobs stand; admins the whole queue.
        var listed: [JSONValue] = []
        for (position, job) in order.enumerated() where caller.isAdmin || job.owner == caller.name {
            guard listed.count < Self.maxQueueListed else { break }
            listed.append(.object(["id": .string(job.id), "position": .int(position), "priority": .int(job.priority),
                                   "owner": .string(job.owner), "template": job.template.map(JSONValue.string) ?? .null]))
        }
        return (["paused": .bool(paused), "queued": .int(order.count),
                 "running": worker.runningJob.map(JSONValue.string) ?? .null, "jobs": .array(listed)], [])
    }

    func move(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        let moved: Bool
        switch (try optionalString(content, "to"), try optionalInt(content, "priority")) {
        case let (to?, nil):
            guard to == "front" else { throw DaemonError(.invalidRequest, "'to' must be \"front\", found '\(to.prefix(40))'") }
            try requireAdmin(caller, "moving a job to the front of the queue")
            moved = try storeCall { try store.moveToFront(job.id, now: Date()) }
        case let (nil, priority?):
            try Self.checkPriorityRange(priority)
            guard priority <= caller.maxPriority || caller.isAdmin else {
                throw DaemonError(.quotaExceeded, "client '\(caller.name)' may give priority at most \(caller.maxPriority), asked for \(priority)")
            }
            moved = try storeCall { try store.setPriority(job.id, priority, now: Date()) }
        default:
            throw DaemonError(.invalidRequest, "expected either 'to': \"front\" or 'priority': an integer")
        }
        guard moved else {
            throw DaemonError(.notQueued, "job \(job.id) is \(job.state.rawValue); only a queued job can be moved",
                              details: .object(["state": .string(job.state.rawValue)]))
        }
        let position = try storeCall { try store.queuePosition(job.id) }
        publisher.publish(job: job.id, type: "queued", content: ["position": position.map(JSONValue.int) ?? .null])
        return (["job": .string(job.id), "position": position.map(JSONValue.int) ?? .null], [])
    }
}
