@testable import Daemon
import Foundation
import Workflow
import XCTest

/// The shared queue under fire, as real processes on loopback: 4 workers,
/// one front, 400 jobs from 20 clients (half of them submitted twice with
/// their idempotency key), while workers are killed (`kill -9`, 10 times,
/// each time one that holds a job), one worker is frozen (SIGSTOP) past its
/// lease, the front is killed and restarted, and PostgreSQL itself is
/// killed and restarted. Afterwards, checked with `psql` and not through the
/// code under test: every acknowledged job is finished, exactly once, each
/// idempotency key made one job, and every output's bytes are in the queue.
/// The figures (reruns, attempts, recovery times) are printed; none is asserted.
final class ChaosTests: XCTestCase, @unchecked Sendable {
    private var cluster: PostgresCluster!
    private var folder: URL!
    private let lock = NSLock()
    private var workers: [String: Process] = [:]
    private var front: Process?
    private var retired: [Process] = []
    /// Job id by idempotency key, once acknowledged; keys whose second submit named another job.
    private var acknowledged: [String: String] = [:]
    private var mismatches: [String] = []

    static let clients = 20
    static let jobsPerClient = 20
    static let lease = 2.0

    override func setUpWithError() throws {
        cluster = try PostgresCluster()
        folder = DaemonFixture.temporaryFolder("chaos")
    }

    override func tearDown() {
        let all = lock.withLock { Array(workers.values) + retired + (front.map { [$0] } ?? []) }
        for process in all {
            kill(process.processIdentifier, SIGCONT)
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        cluster?.stop()
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    private var frontState: URL { folder.appendingPathComponent("front") }

    private func startFront(_ database: String) throws {
        let process = try startServe(state: frontState, folder: folder,
                                     arguments: ["--queue", database, "--lease", "\(Self.lease)", "--max-attempts", "20"])
        lock.withLock { front = process }
    }

    @discardableResult
    private func startWorker(_ database: String, name: String) throws -> Process {
        let process = try startQueueWorker(queue: database, name: name, folder: folder, lease: Self.lease, logLevel: "critical")
        lock.withLock { workers[name] = process }
        return process
    }

    private func client() throws -> DaemonClient {
        try DaemonClient(connectionFile: frontState.appendingPathComponent(ConnectionInfo.fileName), timeout: 5)
    }

    /// Submits until acknowledged (a reply with a job id), through front
    /// restarts and a database outage; the same key every time.
    private func submitAcknowledged(key: String, deadline: Date) -> String? {
        let content: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)]),
                                            "idempotency_key": .string(key), "parameters": .object(["name": .string(key)])]
        while Date() < deadline {
            if let reply = try? client().request("submit", content, frames: [DaemonFixture.examplePNG]),
               let job = reply.content["job"]?.stringValue {
                return job
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return nil
    }

    func testEveryAcknowledgedJobFinishesExactlyOnceThroughKillsOfWorkersTheFrontAndPostgreSQL() throws {
        let database = try cluster.newDatabase()
        try startFront(database)
        for i in 1...4 { try startWorker(database, name: "w\(i)") }
        let started = Date()
        let deadline = started.addingTimeInterval(240)

        // 20 clients, a job every 1.5 s each; every other job submitted twice.
        let clientsDone = DispatchGroup()
        // (Threads of their own: concurrentPerform would run only as many as there are cores.)
        for c in 0..<Self.clients {
            clientsDone.enter()
            Thread.detachNewThread { [self] in
                for j in 0..<Self.jobsPerClient {
                    let key = "c\(c)-j\(j)"
                    guard let job = submitAcknowledged(key: key, deadline: deadline) else { continue }
                    if j % 2 == 0, let again = submitAcknowledged(key: key, deadline: deadline), again != job {
                        lock.withLock { mismatches.append("\(key): \(job) then \(again)") }
                    }
                    lock.withLock { acknowledged[key] = job }
                    Thread.sleep(forTimeInterval: 1.5)
                }
                clientsDone.leave()
            }
        }

        // The chaos, spread over the submits.
        var kills: [(what: String, time: Date, job: String?)] = []
        var frontRecovery: TimeInterval = 0, databaseRecovery: TimeInterval = 0, restarted = Date.distantFuture
        var next = 100
        func runningJob(of name: String) -> String? {
            (try? cluster.psql(database, "SELECT id FROM job WHERE state = 'running' AND worker = '\(name)' LIMIT 1"))?.first
        }
        /// A worker holding a job (waiting up to a second for one), else any.
        func busyWorker() -> String {
            let names = lock.withLock { workers.keys.sorted() }
            let until = Date().addingTimeInterval(1)
            while Date() < until {
                if let busy = (try? cluster.psql(database, "SELECT DISTINCT worker FROM job WHERE state = 'running'"))?
                    .first(where: names.contains) { return busy }
            }
            return names.randomElement()!
        }
        Thread.sleep(forTimeInterval: 1.5)
        for round in 0..<13 {
            switch round {
            case 6:
                // One worker frozen past its lease, then woken.
                let name = busyWorker()
                let job = runningJob(of: name)
                let process = lock.withLock { workers[name]! }
                kill(process.processIdentifier, SIGSTOP)
                kills.append(("SIGSTOP worker", Date(), job))
                Thread.sleep(forTimeInterval: 2.5 * Self.lease)
                kill(process.processIdentifier, SIGCONT)
            case 3:
                let process = lock.withLock { front! }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let killed = Date()
                kills.append(("kill -9 front", killed, nil))
                lock.withLock { retired.append(process) }
                try startFront(database)
                frontRecovery = Date().timeIntervalSince(killed)
            case 1:
                try cluster.crash()
                let killed = Date()
                kills.append(("kill PostgreSQL", killed, nil))
                Thread.sleep(forTimeInterval: 1)
                try cluster.start()
                databaseRecovery = Date().timeIntervalSince(killed)
                restarted = Date()
            default:
                // kill -9 of a worker holding a job (any, if none holds one), and a replacement.
                let name = busyWorker()
                let job = runningJob(of: name)
                let process = lock.withLock { workers.removeValue(forKey: name)! }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                kills.append(("kill -9 worker", Date(), job))
                lock.withLock { retired.append(process) }
                try startWorker(database, name: "w\(next)")
                next += 1
            }
            Thread.sleep(forTimeInterval: 1.2)
        }
        XCTAssertEqual(kills.filter { $0.what == "kill -9 worker" }.count, 10)
        clientsDone.wait()
        let submitted = Date()

        // Every acknowledged job ends.
        let ids = lock.withLock { Set(acknowledged.values) }
        XCTAssertEqual(lock.withLock { acknowledged.count }, Self.clients * Self.jobsPerClient, "expected every submit acknowledged")
        XCTAssertEqual(mismatches, [], "expected a resubmitted key to return its first job")
        var unfinished = ids
        while !unfinished.isEmpty, Date() < deadline {
            let open = Set(try cluster.psql(database, "SELECT id FROM job WHERE state IN ('queued', 'running')"))
            unfinished = unfinished.intersection(open)
            if !unfinished.isEmpty { Thread.sleep(forTimeInterval: 0.25) }
        }
        let ended = Date()

        // Checked through psql.
        XCTAssertEqual(try cluster.psql(database, "SELECT count(*) FROM job"), ["\(ids.count)"],
                       "expected one job per idempotency key, no more")
        XCTAssertEqual(Set(try cluster.psql(database, "SELECT id FROM job WHERE state = 'finished'")), ids,
                       "expected every acknowledged job finished")
        XCTAssertEqual(try cluster.psql(database, """
            SELECT count(*) FROM (SELECT job FROM transition WHERE state = 'finished' GROUP BY job HAVING count(*) <> 1) twice
            """), ["0"], "expected each job recorded finished exactly once")
        XCTAssertEqual(try cluster.psql(database, """
            SELECT count(*) FROM job j, json_array_elements(j.outputs::json) o
            WHERE NOT EXISTS (SELECT 1 FROM blob b WHERE b.sha256 = o->>'sha256' AND b.data IS NOT NULL)
            """), ["0"], "expected every output's bytes in the queue")
        XCTAssertEqual(try cluster.psql(database, "SELECT count(*) FROM job WHERE json_array_length(outputs::json) <> 1"), ["0"],
                       "expected one output per job (no duplicate outputs)")

        // The figures.
        let attempts = try cluster.psql(database, "SELECT sum(attempts) - count(*), max(attempts) FROM job").first ?? "?"
        var lines = ["chaos: \(ids.count) jobs from \(Self.clients) clients (\(Self.clients * Self.jobsPerClient / 2) submitted twice), 4 workers, lease \(Self.lease) s",
                     "chaos: reruns | max attempts = \(attempts.replacingOccurrences(of: "|", with: " | "))",
                     String(format: "chaos: submits took %.1f s; all ended %.1f s after the last submit; %.2f jobs/s overall",
                            submitted.timeIntervalSince(started), ended.timeIntervalSince(submitted),
                            Double(ids.count) / ended.timeIntervalSince(started)),
                     String(format: "chaos: kill -9 front: answering again after %.2f s (restart included)", frontRecovery),
                     String(format: "chaos: kill PostgreSQL: down %.2f s (crash, 1 s pause, recovery start)", databaseRecovery)]
        let afterRestart = try cluster.psql(database, String(format: "SELECT min(time) FROM transition WHERE state = 'finished' AND time > %.3f",
                                                             restarted.timeIntervalSince1970))
        if let first = afterRestart.first.flatMap(Double.init) {
            lines.append(String(format: "chaos: first job finished %.2f s after PostgreSQL was back", first - restarted.timeIntervalSince1970))
        } else {
            lines.append("chaos: no job finished after PostgreSQL was back (\(afterRestart))")
        }
        for kill in kills {
            guard let job = kill.job else { continue }
            let finished = try cluster.psql(database, "SELECT max(time) FROM transition WHERE job = '\(job)' AND state = 'finished'").first
            guard let time = finished.flatMap(Double.init) else { continue }
            let delay = time - kill.time.timeIntervalSince1970
            lines.append(delay < 0 ? "chaos: \(kill.what): its job was finished just before the signal landed"
                         : String(format: "chaos: %@: its job finished elsewhere %.2f s later", kill.what, delay))
        }
        print(lines.joined(separator: "\n"))
    }
}
