@testable import Daemon
import Foundation
import Workflow
import XCTest

/// Model affinity in a shared queue's claims (PostgreSQL, a cluster the
/// test starts): a worker takes only jobs whose models it has, prefers
/// within a priority those of the model it loaded last, and an age limit
/// keeps that preference from starving anyone.
final class ModelAffinityTests: XCTestCase {
    private let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A queue with jobs `name` → models, submitted a second apart in order.
    private func queue(_ jobs: [(String, [String])], priority: [String: Int] = [:]) throws -> PostgresJobQueue {
        let queue = try PostgresJobQueue(connection: try SharedTestQueue.newDatabase(), worker: "w")
        for (i, (id, models)) in jobs.enumerated() {
            try queue.enqueue(id, priority: priority[id] ?? 0, models: models, now: start.addingTimeInterval(Double(i)))
        }
        return queue
    }

    /// Claims (finishing each) until none is left; the ids in claim order.
    private func drain(_ queue: PostgresJobQueue, at now: Date) throws -> [String] {
        var order: [String] = []
        while let job = try queue.claimNext(now: now, note: nil, lease: 60) {
            order.append(job.id)
            XCTAssertTrue(try queue.finish(job.id, attempt: job.attempts, state: .finished, error: nil, outputs: nil, now: now))
        }
        return order
    }

    func testAWorkerTakesOnlyJobsWhoseModelsItHas() throws {
        let queue = try queue([("a1", ["sd15"]), ("b1", ["sdxl"]), ("none", []), ("ab", ["sd15", "sdxl"])])
        queue.setAffinity(.init(available: { ["sd15", "vae-ft"] }))
        XCTAssertEqual(try drain(queue, at: start.addingTimeInterval(10)), ["a1", "none"],
                       "expected only the jobs whose models are all in the worker's folder")
        XCTAssertEqual(try queue.job("b1")?.state, .queued, "expected the sdxl job left for a worker that has sdxl")
        XCTAssertEqual(try queue.job("a1")?.models, ["sd15"])
        XCTAssertEqual(try queue.job("a1")?.worker, "w")
    }

    func testTheLoadedModelsJobsComeFirstWithinAPriority() throws {
        let jobs = [("a1", ["sd15"]), ("b1", ["sdxl"]), ("a2", ["sd15"]), ("b2", ["sdxl"]), ("a3", ["sd15"])]
        let preferring = try queue(jobs, priority: ["b2": 5])
        preferring.setAffinity(.init(available: { ["sd15", "sdxl"] }, ageLimit: 3600))
        // b2's priority wins first; then sdxl is loaded, so b1; then sd15 once none is left for sdxl.
        XCTAssertEqual(try drain(preferring, at: start.addingTimeInterval(10)), ["b2", "b1", "a1", "a2", "a3"])

        let plain = try queue(jobs, priority: ["b2": 5])
        plain.setAffinity(.init(available: { ["sd15", "sdxl"] }, preferLoaded: false))
        XCTAssertEqual(try drain(plain, at: start.addingTimeInterval(10)), ["b2", "a1", "b1", "a2", "a3"],
                       "expected the plain queue order without the preference")
    }

    func testAJobOlderThanTheAgeLimitIsNotPassedOverForTheLoadedModel() throws {
        let queue = try queue([("a1", ["sd15"]), ("b1", ["sdxl"]), ("a2", ["sd15"]), ("a3", ["sd15"])])
        queue.setAffinity(.init(available: { ["sd15", "sdxl"] }, ageLimit: 2))
        // At start + 3.5 s, a1 (0 s) and b1 (1 s) have waited past the limit, a2 (2 s) and a3 (3 s) not:
        // after a1, the overdue b1 goes before the loaded model's a2.
        XCTAssertEqual(try drain(queue, at: start.addingTimeInterval(3.5)), ["a1", "b1", "a2", "a3"])
    }
}
