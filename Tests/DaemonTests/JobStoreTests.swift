@testable import Daemon
import GRDB
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
        // XCTest keeps every test case until the process exits: close the store.
        store = nil
        try? FileManager.default.removeItem(at: folder)
    }

    private func insert(_ id: String, priority: Int = 0, key: String? = nil) throws -> JobStore.Insertion {
        try store.insert(id: id, idempotencyKey: key, priority: priority, template: nil, templateFile: nil,
                         workflow: "version: 1", parameters: .object([:]), inputs: .object([:]), client: nil)
    }

    /// 200 finished jobs, each with its own input blob and every tenth
    /// sharing one more; the 180 oldest are pruned. What stays is exactly
    /// the 20 recent jobs and the blobs they reference (the shared blob
    /// included), and a queued job older than the cutoff is never removed.
    func testPruneKeepsExactlyTheBlobsTheRemainingJobsReference() throws {
        let old = Date(timeIntervalSinceNow: -10 * 86400), recent = Date(timeIntervalSinceNow: -3600)
        let shared = String(repeating: "ab", count: 32)
        try store.recordBlob(sha256: shared, bytes: 7, now: old)
        var kept = Set<String>()
        for i in 0..<200 {
            let sha = String(format: "%064x", i + 1)
            let time = i < 180 ? old : recent
            try store.recordBlob(sha256: sha, bytes: 100, now: time)
            var inputs: [String: JSONValue] = ["image": .object(["sha256": .string(sha), "file": .string("a.png"), "bytes": .int(100)])]
            if i % 10 == 0 { inputs["mask"] = .object(["sha256": .string(shared), "file": .string("m.png"), "bytes": .int(7)]) }
            _ = try store.insert(id: "job\(i)", idempotencyKey: nil, priority: 0, template: nil, templateFile: nil,
                                 workflow: "version: 1", parameters: .object([:]), inputs: .object(inputs), client: nil,
                                 now: time)
            XCTAssertEqual(try store.claimNext(now: time)?.id, "job\(i)")
            try store.finish("job\(i)", state: i % 7 == 0 ? .failed : .finished, now: time)
            if i >= 180 {
                kept.insert(sha)
                if i % 10 == 0 { kept.insert(shared) }
            }
        }
        _ = try store.insert(id: "waiting", idempotencyKey: nil, priority: 0, template: nil, templateFile: nil,
                             workflow: "version: 1", parameters: .object([:]), inputs: .object([:]), client: nil, now: old)

        let result = try store.prune(finishedBefore: Date(timeIntervalSinceNow: -86400))
        XCTAssertEqual(result.jobs.count, 180, "the 180 jobs that ended ten days ago")
        XCTAssertEqual(Set(result.jobs), Set((0..<180).map { "job\($0)" }))
        XCTAssertEqual(result.blobs.count, 180, "their own blobs; the shared one is still referenced")
        XCTAssertEqual(result.blobBytes, 180 * 100)
        XCTAssertEqual(try store.blobHashes(), kept, "exactly the blobs the 20 remaining jobs reference")
        XCTAssertEqual(try store.jobs(limit: 1000).count, 21, "the 20 recent jobs and the queued one")
        XCTAssertNotNil(try store.job("waiting"), "a queued job is never pruned, however old")
        XCTAssertEqual(try store.transitions("job0"), [], "transitions go with their job")
        XCTAssertEqual(try store.transitions("job190").count, 3, "queued, running, final")

        // When the last job sharing a blob goes, the blob goes too.
        let all = try store.prune(finishedBefore: Date())
        XCTAssertEqual(all.jobs.count, 20)
        XCTAssertTrue(all.blobs.contains(shared), "the shared blob goes with the last job that used it")
        XCTAssertEqual(try store.blobHashes(), [], "no job references any blob now")
    }

    func testAgesParseWithUnitsAndRefuseNonsense() {
        XCTAssertEqual(AgeText.seconds(parsing: "7d"), 7 * 86400)
        XCTAssertEqual(AgeText.seconds(parsing: "12h"), 12 * 3600)
        XCTAssertEqual(AgeText.seconds(parsing: "30m"), 1800)
        XCTAssertEqual(AgeText.seconds(parsing: "90"), 90)
        XCTAssertEqual(AgeText.seconds(parsing: "1.5d"), 1.5 * 86400)
        for bad in ["", "d", "-1d", "7w", "nan", "inf", "7 days"] {
            XCTAssertNil(AgeText.seconds(parsing: bad), "'\(bad)' is not an age")
        }
    }

    func testSchemaIsMigratedFromTheFirstVersion() throws {
        XCTAssertEqual(try store.appliedMigrations(),
                       ["v1: jobs, transitions, blobs, model hashes", "v2: clients, job owners, secrets", "v3: saved templates",
                        "v4: templates a job's template nodes resolved to", "v5: the previews a job asked for",
                        "v6: queue controls", "v7: leases"])
        // Opening again applies nothing twice.
        XCTAssertEqual(try JobStore(path: store.path).appliedMigrations().count, 7)
    }

    func testAVersionOneStoreKeepsItsJobsAsTheOwnersWhenMigrated() throws {
        // A store as the first schema left it, with a job, its transition and an idempotency key.
        let path = folder.appendingPathComponent("v1.sqlite").path
        do {
            let queue = try DatabaseQueue(path: path)
            try JobStore.migrator.migrate(queue, upTo: "v1: jobs, transitions, blobs, model hashes")
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO job (id, idempotency_key, state, priority, workflow, parameters, inputs, created)
                    VALUES ('old-job', 'k', 'finished', 3, 'version: 1', '{}', '{}', 1000);
                    INSERT INTO transition (job, state, time) VALUES ('old-job', 'queued', 1000);
                    """)
            }
        }
        let migrated = try JobStore(path: path)
        let job = try XCTUnwrap(try migrated.job("old-job"), "expected the job kept through the migration")
        XCTAssertEqual(job.owner, ClientRecord.ownerName, "expected jobs from before clients existed to be the owner's")
        XCTAssertEqual(job.priority, 3)
        XCTAssertEqual(try migrated.transitions("old-job").map(\.state), ["queued"])
        XCTAssertEqual(try migrated.job(idempotencyKey: "k")?.id, "old-job", "expected the owner's idempotency key kept")
        XCTAssertNil(try migrated.job(idempotencyKey: "k", owner: "alice"), "expected keys scoped to their owner")
        // Another owner may now use the same key.
        guard case .inserted = try migrated.insert(id: "new", idempotencyKey: "k", priority: 0, template: nil, templateFile: nil,
                                                   workflow: "version: 1", parameters: .object([:]), inputs: .object([:]),
                                                   client: nil, owner: "alice") else {
            return XCTFail("expected alice's job with the same key inserted")
        }
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

    func testAPausedQueueClaimsNothingAndStaysPausedAcrossARestart() throws {
        _ = try insert("a")
        try store.setQueuePaused(true)
        XCTAssertNil(try store.claimNext(), "expected a paused queue to give no job")
        XCTAssertTrue(try JobStore(path: store.path).isQueuePaused(), "expected the pause kept across a reopen")
        XCTAssertEqual(try store.queuePosition("a"), 0, "expected the job still first in the queue")
        try store.setQueuePaused(false)
        XCTAssertEqual(try store.claimNext()?.id, "a", "expected the resumed queue to give its job")
    }

    func testMovesToTheFrontAndPriorityChangesReorderTheQueue() throws {
        for id in ["a", "b", "c", "d"] { _ = try insert(id) }
        XCTAssertTrue(try store.moveToFront("c", now: Date(timeIntervalSinceNow: 1)))
        XCTAssertTrue(try store.moveToFront("d", now: Date(timeIntervalSinceNow: 2)))
        XCTAssertTrue(try store.setPriority("b", 10))
        XCTAssertEqual(try store.queueOrder().map(\.id), ["d", "c", "b", "a"],
                       "expected the latest move first, then the earlier one, then priority, then age")
        XCTAssertEqual(try store.queuePosition("b"), 2, "expected the position to follow the same order")
        XCTAssertTrue(try store.setPriority("d", -5), "expected a priority change to undo a move to the front")
        XCTAssertEqual(try (0..<4).map { _ in try XCTUnwrap(store.claimNext()).id }, ["c", "b", "a", "d"],
                       "expected claims in the queue's order")
        XCTAssertFalse(try store.moveToFront("a"), "expected a running job not to be moved")
        XCTAssertFalse(try store.setPriority("a", 3), "expected a running job's priority not to change")
        XCTAssertTrue(try store.transitions("c").contains { $0.note == "moved to the front of the queue" },
                      "expected the move in the job's transitions")
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
