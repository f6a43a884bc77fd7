@testable import Daemon
import Foundation
import Workflow
import XCTest

/// The ``JobQueue`` contract: claiming order, attempts, fencing by attempt,
/// exactly one final state, no double claims under concurrency. Run here
/// against `JobStore` (SQLite); another queue implementation subclasses
/// this case and overrides `makeQueue()`.
class JobQueueContractTests: XCTestCase {
    /// A fresh, empty queue, and how the front enqueues a job (id, priority) on it.
    func makeQueue() throws -> (queue: any JobQueue, enqueue: (String, Int) throws -> Void) {
        let folder = DaemonFixture.temporaryFolder("queue")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let store = try JobStore(path: folder.appendingPathComponent("jobs.sqlite").path)
        return (store, { id, priority in try store.enqueue(id, priority: priority) })
    }

    func testClaimsTakeTheHighestPriorityThenTheOldestAndCountAnAttempt() throws {
        let (queue, enqueue) = try makeQueue()
        try enqueue("low", 0)
        try enqueue("high", 5)
        try enqueue("low-later", 0)
        let order = try (0..<3).map { _ in try XCTUnwrap(queue.claimNext(note: nil)) }
        XCTAssertEqual(order.map(\.id), ["high", "low", "low-later"], "expected priority first, then submission order")
        XCTAssertEqual(order.map(\.attempts), [1, 1, 1], "expected each claim to count attempt 1")
        XCTAssertEqual(order.map(\.state), [.running, .running, .running], "expected claimed jobs to be running")
        XCTAssertNil(try queue.claimNext(note: nil), "expected nothing left to claim")
    }

    func testAWorkerWhoseAttemptNoLongerHoldsTheJobCannotWriteIt() throws {
        let (queue, enqueue) = try makeQueue()
        try enqueue("job", 0)
        let first = try XCTUnwrap(queue.claimNext(note: "worker A"))
        // Worker A is presumed dead: its job is requeued and worker B takes it.
        XCTAssertTrue(try queue.requeue(first, note: "worker A lost"), "expected the holding attempt to requeue the job")
        let second = try XCTUnwrap(queue.claimNext(note: "worker B"))
        XCTAssertEqual(second.attempts, 2, "expected the rerun to be attempt 2")
        XCTAssertFalse(try queue.finish(first, state: .finished, outputs: .array([.string("late")])),
                       "expected worker A's late result to be refused by the fence")
        XCTAssertFalse(try queue.requeue(first, note: "worker A again"), "expected worker A's late requeue to be refused")
        XCTAssertEqual(try queue.job("job")?.state, .running, "expected the job still running under attempt 2")
        XCTAssertTrue(try queue.finish(second, state: .finished, outputs: .array([.string("b.png")])),
                      "expected the holding attempt to finish the job")
        XCTAssertFalse(try queue.finish(second, state: .failed), "expected a second final state to be refused (exactly once)")
        let done = try XCTUnwrap(queue.job("job"))
        XCTAssertEqual(done.state, .finished, "expected the job finished once")
        XCTAssertEqual(done.outputs, .array([.string("b.png")]), "expected attempt 2's outputs, not worker A's")
        XCTAssertNil(try queue.claimNext(note: nil), "expected a finished job never to be claimed again")
    }

    func testALeaseThatRunsOutRequeuesTheJobAndFencesItsWorker() throws {
        let (queue, enqueue) = try makeQueue()
        try enqueue("kept", 0)
        try enqueue("lost", 0)
        let start = Date()
        let kept = try XCTUnwrap(queue.claimNext(now: start, note: "worker A", lease: 30))
        let lost = try XCTUnwrap(queue.claimNext(now: start, note: "worker B", lease: 30))
        XCTAssertTrue(try queue.renewLease(kept.id, attempt: kept.attempts, until: start.addingTimeInterval(90)),
                      "expected the holding attempt to renew its lease")
        XCTAssertFalse(try queue.renewLease(kept.id, attempt: kept.attempts + 1, until: start.addingTimeInterval(90)),
                       "expected another attempt's renewal to be refused")
        let early = try queue.expireLeases(now: start.addingTimeInterval(20), maxAttempts: 3)
        XCTAssertEqual(early.requeued + early.lost, [], "expected no lease to have run out after 20 s")
        // Worker B stopped renewing (frozen): after 60 s its lease is over, A's renewed one is not.
        let swept = try queue.expireLeases(now: start.addingTimeInterval(60), maxAttempts: 3)
        XCTAssertEqual(swept.requeued, ["lost"], "expected only the job whose lease ran out to be requeued")
        XCTAssertEqual(swept.lost, [], "expected no job failed after one attempt of three")
        XCTAssertEqual(try queue.job("kept")?.state, .running, "expected the renewed job to keep running")
        XCTAssertFalse(try queue.finish(lost, state: .finished), "expected the frozen worker's late result to be refused")
        let again = try XCTUnwrap(queue.claimNext(now: start.addingTimeInterval(61), note: "worker C", lease: 30))
        XCTAssertEqual(again.id, "lost", "expected the requeued job to be claimed again")
        XCTAssertEqual(again.attempts, 2, "expected the rerun to be attempt 2")
    }

    func testAJobWhoseLeaseRunsOutOnEveryAttemptFailsAsWorkerLost() throws {
        let (queue, enqueue) = try makeQueue()
        try enqueue("doomed", 0)
        var now = Date()
        for attempt in 1...2 {
            let job = try XCTUnwrap(queue.claimNext(now: now, note: nil, lease: 10), "expected attempt \(attempt) to be claimed")
            XCTAssertEqual(job.attempts, attempt, "expected attempt \(attempt)")
            now = now.addingTimeInterval(11)
            let swept = try queue.expireLeases(now: now, maxAttempts: 2)
            XCTAssertEqual(attempt == 1 ? swept.requeued : swept.lost, ["doomed"],
                           "expected attempt \(attempt) of 2 to be \(attempt == 1 ? "requeued" : "failed as worker_lost")")
        }
        let failed = try XCTUnwrap(queue.job("doomed"))
        XCTAssertEqual(failed.state, .failed, "expected the job failed once its attempts are spent")
        XCTAssertEqual(failed.error?["code"]?.stringValue, "worker_lost", "expected the worker_lost error code")
        XCTAssertEqual(failed.error?["details"]?["attempts"], .int(2), "expected the attempts in the error's details")
        XCTAssertNil(try queue.claimNext(now: now, note: nil, lease: 10), "expected a failed job never to be claimed again")
        let later = try queue.expireLeases(now: now.addingTimeInterval(100), maxAttempts: 2)
        XCTAssertEqual(later.requeued + later.lost, [], "expected a failed job not to be swept again")
    }

    func testConcurrentClaimsNeverTakeTheSameJob() throws {
        let (queue, enqueue) = try makeQueue()
        let count = 60
        for i in 0..<count { try enqueue("job\(i)", i % 3) }
        let claims = Claims()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            while true {
                do {
                    guard let job = try queue.claimNext(now: Date(), note: nil, lease: 60) else { return }
                    claims.add(job.id)
                    _ = try queue.finish(job, state: .finished)
                } catch {
                    claims.fail("\(error)")
                    return
                }
            }
        }
        XCTAssertEqual(claims.failures, [], "expected no claim or finish to fail")
        XCTAssertEqual(claims.ids.count, count, "expected every job claimed once")
        XCTAssertEqual(Set(claims.ids).count, count, "expected no job claimed twice")
        for i in 0..<count {
            let job = try XCTUnwrap(queue.job("job\(i)"))
            XCTAssertEqual(job.state, .finished, "expected job\(i) finished")
            XCTAssertEqual(job.attempts, 1, "expected job\(i) run in one attempt")
        }
    }
}

/// What concurrent claimers took, under a lock.
private final class Claims: @unchecked Sendable {
    private let lock = NSLock()
    private var taken: [String] = []
    private var errors: [String] = []

    func add(_ id: String) { lock.withLock { taken.append(id) } }
    func fail(_ error: String) { lock.withLock { errors.append(error) } }
    var ids: [String] { lock.withLock { taken } }
    var failures: [String] { lock.withLock { errors } }
}

extension DaemonStore {
    /// Queues a bare job as a front's submit would (the queue tests' jobs):
    /// an id, a priority, the models it reads and when it was submitted.
    func enqueue(_ id: String, priority: Int = 0, models: [String] = [], now: Date = Date()) throws {
        _ = try insert(id: id, idempotencyKey: nil, priority: priority, template: nil, templateFile: nil, workflow: "version: 1",
                       parameters: .object([:]), inputs: .object([:]), client: nil, owner: ClientRecord.ownerName,
                       templateVersion: nil, nestedTemplates: nil, preview: nil, blobs: [:], models: models, now: now)
    }
}
