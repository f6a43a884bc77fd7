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
        return (store, { id, priority in
            _ = try store.insert(id: id, idempotencyKey: nil, priority: priority, template: nil, templateFile: nil,
                                 workflow: "version: 1", parameters: .object([:]), inputs: .object([:]), client: nil)
        })
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

    func testConcurrentClaimsNeverTakeTheSameJob() throws {
        let (queue, enqueue) = try makeQueue()
        let count = 60
        for i in 0..<count { try enqueue("job\(i)", i % 3) }
        let claims = Claims()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            while true {
                do {
                    guard let job = try queue.claimNext(now: Date(), note: nil) else { return }
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
