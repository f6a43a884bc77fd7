@testable import Daemon
import Foundation
import Workflow
import XCTest

/// Many machines behind one queue, as real processes on loopback: a
/// PostgreSQL cluster the test starts, a front (`pilot serve --queue`, no
/// workers of its own) and `pilot worker --queue` processes, each with its
/// own cache folder, so outputs reach the front only through the queue.
final class SharedQueueProcessTests: XCTestCase {
    private var cluster: PostgresCluster!
    private var folder: URL!
    private var processes: [Process] = []

    override func setUpWithError() throws {
        cluster = try PostgresCluster()
        folder = DaemonFixture.temporaryFolder("sq")
    }

    override func tearDown() {
        for process in processes {
            kill(process.processIdentifier, SIGCONT)
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        cluster?.stop()
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    private func startFront(_ database: String) throws -> DaemonClient {
        let state = folder.appendingPathComponent("front")
        let front = try startServe(state: state, folder: folder, arguments: ["--queue", database, "--lease", "2"])
        processes.append(front)
        return try DaemonClient(connectionFile: state.appendingPathComponent(ConnectionInfo.fileName), timeout: 30)
    }

    private func startWorker(_ database: String, name: String, environment: [String: String] = [:]) throws -> Process {
        let process = try startQueueWorker(queue: database, name: name, folder: folder, lease: 2, environment: environment)
        processes.append(process)
        return process
    }

    private var copy: (content: [String: JSONValue], frames: [Data]) { DaemonFixture.copySubmit }

    /// Whether `pid` is stopped (SIGSTOP): state `T` in /proc/PID/stat.
    private func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] == "T"
    }

    private func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("expected \(what) within \(Int(timeout)) s")
        throw DaemonError(.internal, "timed out waiting for \(what)")
    }

    /// The job's transitions straight from PostgreSQL, not through the front.
    private func storedStates(_ database: String, job: String) throws -> [String] {
        let connection = try PostgresConnection(database)
        return try connection.query("SELECT state FROM transition WHERE job = $1 ORDER BY seq", [job]).rows.compactMap { $0.first ?? nil }
    }

    func testAWorkerKilledMidJobLosesItsLeaseAndAnotherFinishesTheJobExactlyOnce() throws {
        let database = try cluster.newDatabase()
        let client = try startFront(database)
        let doomed = try startWorker(database, name: "doomed", environment: ["PILOT_FAULT": "worker-freeze-at-node:save"])
        let job = try client.request("submit", copy.content, frames: copy.frames).content["job"]!.stringValue!
        try waitUntil("the first worker to stop itself at node 'save'") { isStopped(doomed.processIdentifier) }
        kill(doomed.processIdentifier, SIGKILL)
        doomed.waitUntilExit()
        _ = try startWorker(database, name: "rescuer")

        let status = try waitForFinalState(client, job: job, timeout: 60)
        XCTAssertEqual(status["state"]?.stringValue, "finished", "expected the second worker to finish the job: \(status.compact)")
        XCTAssertEqual(status["attempts"]?.intValue, 2, "expected the rerun to be attempt 2")
        let notes = status["transitions"]?.arrayValue?.compactMap { $0["note"]?.stringValue } ?? []
        XCTAssertTrue(notes.contains("requeued: the lease of attempt 1 ran out"), "expected the lease expiry in the transitions: \(notes)")
        XCTAssertEqual(try storedStates(database, job: job), ["queued", "running", "queued", "running", "finished"],
                       "expected exactly one finish, recorded in PostgreSQL")
        // The worker's cache is gone with the job: the image comes from the queue.
        let result = try client.request("result", ["job": .string(job)])
        XCTAssertEqual(result.frames.count, 1, "expected one output image")
        XCTAssertEqual(result.frames.first.map(Digest.sha256Hex), result.content["outputs"]?.arrayValue?.first?["sha256"]?.stringValue,
                       "expected the output's bytes to match its recorded SHA-256")
    }

    func testAFrozenWorkersLateResultIsRefusedByTheFence() throws {
        let database = try cluster.newDatabase()
        let client = try startFront(database)
        let frozen = try startWorker(database, name: "frozen", environment: ["PILOT_FAULT": "worker-freeze-at-node:save"])
        let job = try client.request("submit", copy.content, frames: copy.frames).content["job"]!.stringValue!
        try waitUntil("the first worker to freeze at node 'save'") { isStopped(frozen.processIdentifier) }
        // Its lease (2 s) runs out and a front's sweep requeues the job.
        try waitUntil("the job requeued") {
            try client.request("status", ["job": .string(job)]).content["job"]?["state"]?.stringValue == "queued"
        }
        _ = try startWorker(database, name: "second")
        let status = try waitForFinalState(client, job: job, timeout: 60)
        XCTAssertEqual(status["state"]?.stringValue, "finished")
        XCTAssertEqual(status["attempts"]?.intValue, 2)
        let outputs = status["outputs"]

        // The frozen worker wakes and finishes its copy: the fence refuses it.
        kill(frozen.processIdentifier, SIGCONT)
        Thread.sleep(forTimeInterval: 3)
        XCTAssertTrue(frozen.isRunning, "expected the woken worker to carry on")
        let after = try client.request("status", ["job": .string(job)]).content["job"]!
        XCTAssertEqual(after["attempts"]?.intValue, 2)
        XCTAssertEqual(after["outputs"], outputs, "expected the late result not to replace the recorded one")
        XCTAssertEqual(try storedStates(database, job: job).filter { $0 == "finished" }.count, 1, "expected one finish")
    }

    func testCancelReachesAJobRunningOnAnotherMachinesWorker() throws {
        let database = try cluster.newDatabase()
        let client = try startFront(database)
        _ = try startWorker(database, name: "remote")
        let parameters: [String: JSONValue] = ["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("1000"),
                                               "inner_steps": .string("0"), "name": .string("long")]
        let submit: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                           "inputs": .object(["image": .int(0), "mask": .int(1)])]
        let job = try client.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask])
            .content["job"]!.stringValue!
        // Progress reaches the front through LISTEN/NOTIFY.
        try waitUntil("progress relayed from the worker") {
            try client.request("status", ["job": .string(job)]).content["job"]?["progress"] != nil
        }
        let running = try client.request("status", ["job": .string(job)]).content["job"]!
        XCTAssertEqual(running["models"], .array([.string("tiny")]), "expected the job to name the checkpoint it reads")
        XCTAssertEqual(running["worker"], .string("remote"))
        let listed = try client.request("list", ["worker": .string("remote")]).content["jobs"]?.arrayValue ?? []
        XCTAssertEqual(listed.compactMap { $0["id"]?.stringValue }, [job], "expected the list by worker to show its job")
        XCTAssertEqual(try client.request("list", ["worker": .string("nobody")]).content["jobs"]?.arrayValue?.count, 0)
        XCTAssertEqual(try client.request("cancel", ["job": .string(job)]).content["state"], .string("cancelling"))
        let status = try waitForFinalState(client, job: job, timeout: 30)
        XCTAssertEqual(status["state"]?.stringValue, "cancelled", "expected the remote worker to stop the job")
        XCTAssertLessThan(status["progress"]?["step"]?.intValue ?? 0, 1000)
    }
}
