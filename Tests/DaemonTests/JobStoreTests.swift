import Daemon
import Foundation
import Workflow
import XCTest

final class JobStoreTests: XCTestCase {
    var folder: URL!
    var store: JobStore!

    override func setUpWithError() throws {
        folder = DaemonFixture.temporaryFolder("store")
        store = try JobStore(path: folder.appendingPathComponent("jobs.sqlite").path)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    private func insert(_ id: String, priority: Int = 0, key: String? = nil) throws -> JobStore.Insertion {
        try store.insert(id: id, idempotencyKey: key, priority: priority, template: nil, templateFile: nil,
                         workflow: "version: 1", parameters: .object([:]), inputs: .object([:]), client: nil)
    }

    func testSchemaIsMigratedFromTheFirstVersion() throws {
        XCTAssertEqual(try store.appliedMigrations(), ["v1: jobs, transitions, blobs, model hashes"])
        // Opening again applies nothing twice.
        XCTAssertEqual(try JobStore(path: store.path).appliedMigrations().count, 1)
    }

    func testJobsRunByPriorityThenSubmissionOrder() throws {
        _ = try insert("a")
        _ = try insert("b", priority: 5)
        _ = try insert("c")
        XCTAssertEqual(try store.queuePosition("c"), 2)
        XCTAssertEqual(try store.claimNext()?.id, "b")
        XCTAssertEqual(try store.claimNext()?.id, "a")
        XCTAssertEqual(try store.claimNext()?.id, "c")
        XCTAssertNil(try store.claimNext(), "expected an empty queue")
    }

    /// A job the daemon dies under twice is failed as crashed, not requeued a third time.
    func testAJobTheDaemonDiesUnderTwiceFailsAsCrashed() throws {
        _ = try insert("poison")
        _ = try store.claimNext()
        XCTAssertEqual(try JobStore(path: store.path).requeueInterrupted(), ["poison"], "the first death requeues")
        let second = try JobStore(path: store.path)
        _ = try second.claimNext()
        var crashed: [String] = []
        XCTAssertEqual(try JobStore(path: store.path).requeueInterrupted(crashed: &crashed), [], "the second death must not requeue")
        XCTAssertEqual(crashed, ["poison"])
        let job = try XCTUnwrap(try second.job("poison"))
        XCTAssertEqual(job.state, .failed)
        XCTAssertEqual(job.error?["code"]?.stringValue, "crashed", "expected the error code crashed, got \(String(describing: job.error))")
        XCTAssertNil(try second.claimNext(), "a crashed job must not run again")
    }

    func testACleanStopDoesNotCountAsACrash() throws {
        _ = try insert("a")
        _ = try store.claimNext()
        try store.requeue("a", note: "daemon stopping")
        _ = try store.claimNext()
        XCTAssertEqual(try JobStore(path: store.path).requeueInterrupted(), ["a"], "one crash after a clean stop still requeues")
    }

    func testTheRunningTransitionRecordsTheDevice() throws {
        _ = try insert("a")
        _ = try store.claimNext(note: "device cuda:0 (fp16): NVIDIA H200 (sm_90)")
        let running = try XCTUnwrap(try store.transitions("a").first { $0.state == "running" })
        XCTAssertEqual(running.note, "device cuda:0 (fp16): NVIDIA H200 (sm_90)", "the job record must say which device ran it")
    }

    func testIdempotencyKeyReturnsTheFirstJob() throws {
        guard case .inserted = try insert("first", key: "k1") else { return XCTFail("expected the first insert to insert") }
        guard case let .duplicate(existing) = try insert("second", key: "k1") else {
            return XCTFail("expected the same key to give the first job")
        }
        XCTAssertEqual(existing.id, "first")
        XCTAssertNil(try store.job("second"), "expected no second job")
    }

    func testRunningJobsAreRequeuedWhenTheStoreIsReopened() throws {
        _ = try insert("a")
        _ = try store.claimNext()
        let reopened = try JobStore(path: store.path)
        XCTAssertEqual(try reopened.requeueInterrupted(), ["a"])
        let job = try XCTUnwrap(try reopened.job("a"))
        XCTAssertEqual(job.state, .queued)
        XCTAssertEqual(try reopened.transitions("a").map(\.state), ["queued", "running", "queued"])
        XCTAssertEqual(try reopened.claimNext()?.attempts, 2, "expected the second start to count as attempt 2")
    }

    func testFinalStatesAndCancelOfQueuedJobs() throws {
        _ = try insert("a")
        _ = try insert("b")
        XCTAssertTrue(try store.cancelQueued("b"))
        XCTAssertFalse(try store.cancelQueued("b"), "expected a cancelled job not to cancel again")
        _ = try store.claimNext()
        XCTAssertFalse(try store.cancelQueued("a"), "expected a running job not to be cancelled as queued")
        try store.finish("a", state: .finished, outputs: .array([.object(["name": .string("x.png")])]))
        XCTAssertEqual(try store.job("a")?.outputs?.arrayValue?.count, 1)
        XCTAssertEqual(try store.counts(), [.finished: 1, .cancelled: 1])
    }
}

final class LogTextTests: XCTestCase {
    func testClientTextCannotForgeALogLineOrDriveTheTerminal() {
        XCTAssertEqual(LogText.escaped("a.png\n2026-12-04T00:00:00 critical : forged"), "a.png\\u{a}2026-12-04T00:00:00 critical : forged")
        XCTAssertEqual(LogText.escaped("\u{1b}[2Jred"), "\\u{1b}[2Jred", "escape sequences must not reach the terminal")
        XCTAssertEqual(LogText.escaped("prompt: a red ball, ünïcode"), "prompt: a red ball, ünïcode", "ordinary text is unchanged")
        XCTAssertEqual(LogText.escaped(String(repeating: "x", count: 1000), limit: 10), String(repeating: "x", count: 10) + "…")
    }
}
