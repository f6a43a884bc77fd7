import Daemon
import Foundation
import Workflow
import XCTest

/// `queue` (pause, resume, the queue's order) and `move` (to the front, or
/// to another priority) over the wire, with who may do what.
final class QueueControlTests: XCTestCase {
    private func code(_ body: () throws -> Any) -> String? {
        do { _ = try body(); return nil } catch { return (error as? DaemonError)?.code.rawValue ?? "\(error)" }
    }

    func testAPausedQueueHoldsJobsInTheOrderMovesGiveThemAndRunsThemOnResume() throws {
        let server = try TestDaemon(label: "queue")
        defer { server.stop() }
        let owner = try server.client()
        let copy: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])]
        func submit(_ client: DaemonClient) throws -> String {
            try client.request("submit", copy, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        }
        XCTAssertEqual(try owner.request("queue", ["action": .string("pause")]).content["paused"], .bool(true),
                       "expected the reply to say the queue is paused")
        let a = try submit(owner), b = try submit(owner), c = try submit(owner)
        let status = try owner.request("status", ["job": .string(a)]).content["job"]!
        XCTAssertEqual(status["state"]?.stringValue, "queued", "expected a job of a paused queue to wait")
        XCTAssertEqual(status["queue_paused"], .bool(true), "expected status to say why it waits")
        XCTAssertEqual(try owner.request("info").content["paused"], .bool(true), "expected info to show the pause")

        XCTAssertEqual(try owner.request("move", ["job": .string(c), "to": .string("front")]).content["position"], .int(0),
                       "expected the moved job first")
        XCTAssertEqual(try owner.request("move", ["job": .string(b), "priority": .int(5)]).content["position"], .int(1),
                       "expected the raised job after the one moved to the front")

        // A user client: sees and moves only its own jobs, within its priority cap; cannot pause.
        let issued = try owner.request("client_add", ["name": .string("alice")]).content
        let alice = try DaemonClient(connection: ConnectionInfo.read(json: issued["connection"]!, source: "client_add"), timeout: 60)
        XCTAssertEqual(code { try alice.request("queue", ["action": .string("resume")]) }, "forbidden",
                       "expected a user client not to resume the queue")
        XCTAssertEqual(code { try alice.request("move", ["job": .string(a), "priority": .int(-1)]) }, "not_found",
                       "expected another client's job to read as missing")
        let d = try submit(alice)
        XCTAssertEqual(code { try alice.request("move", ["job": .string(d), "to": .string("front")]) }, "forbidden",
                       "expected moving to the front to be for admins")
        XCTAssertEqual(code { try alice.request("move", ["job": .string(d), "priority": .int(3)]) }, "quota_exceeded",
                       "expected a priority above the client's cap (0) to be refused")
        XCTAssertNotNil(try alice.request("move", ["job": .string(d), "priority": .int(-3)]).content["position"])
        let seen = try alice.request("queue").content
        XCTAssertEqual(seen["queued"], .int(4), "expected the queue's length")
        XCTAssertEqual(seen["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [d], "expected alice to see her job only")
        XCTAssertEqual(seen["jobs"]?.arrayValue?.first?["position"], .int(3), "expected her lowered job last")
        let order = try owner.request("queue").content["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
        XCTAssertEqual(order, [c, b, a, d], "expected the owner to see the whole queue in order")

        XCTAssertEqual(try owner.request("queue", ["action": .string("resume")]).content["paused"], .bool(false))
        var started: [String: String] = [:]
        for job in [a, b, c, d] {
            let final = try waitForFinalState(owner, job: job)
            XCTAssertEqual(final["state"]?.stringValue, "finished", "expected \(job) to run once the queue resumed")
            started[job] = final["started"]?.stringValue
        }
        let ran = [a, b, c, d].sorted { started[$0]! < started[$1]! }
        XCTAssertEqual(ran, [c, b, a, d], "expected the jobs to start in the queue's order")
        XCTAssertEqual(code { try owner.request("move", ["job": .string(a), "to": .string("front")]) }, "not_queued",
                       "expected a finished job not to be moved")
    }

    func testThePilotQueueCommandPausesMovesAndResumes() throws {
        let server = try TestDaemon(label: "qcli")
        defer { server.stop() }
        let state = server.folder.appendingPathComponent("state").path
        let paused = try runPilot(["queue", "pause", "--state", state])
        XCTAssertEqual(paused.status, 0, "expected `pilot queue pause` to succeed: \(paused.stderr)")
        XCTAssertTrue(paused.stderr.contains("queue: paused, 0 queued"), "expected the pause printed: \(paused.stderr)")
        let owner = try server.client()
        let copy: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])]
        let first = try owner.request("submit", copy, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        let second = try owner.request("submit", copy, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        let moved = try runPilot(["queue", "move", second, "--front", "--state", state])
        XCTAssertEqual(moved.status, 0, "expected `pilot queue move --front` to succeed: \(moved.stderr)")
        XCTAssertTrue(moved.stderr.contains("\(second): position 0"), "expected the new position printed: \(moved.stderr)")
        let shown = try runPilot(["queue", "--state", state])
        XCTAssertTrue(shown.stderr.contains("0  \(second)") && shown.stderr.contains("1  \(first)"),
                      "expected `pilot queue` to list the jobs in order: \(shown.stderr)")
        let both = try runPilot(["queue", "move", first, "--front", "--priority", "3", "--state", state])
        XCTAssertNotEqual(both.status, 0, "expected --front with --priority to be refused")
        let resumed = try runPilot(["queue", "resume", "--state", state])
        XCTAssertEqual(resumed.status, 0, "expected `pilot queue resume` to succeed: \(resumed.stderr)")
        XCTAssertEqual(try waitForFinalState(owner, job: first)["state"]?.stringValue, "finished",
                       "expected the queue to run its jobs once resumed")
    }
}
