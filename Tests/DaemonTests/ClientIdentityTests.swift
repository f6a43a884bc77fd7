import CZeroMQ
import Daemon
import Foundation
import Workflow
import XCTest

/// Client identities against a real `pilot serve`: keys issued with `pilot
/// keys add`, jobs owned by the client that submitted them, per-client caps,
/// revocation, and (under CURVE) the allow-list that keeps requests and
/// events from anyone without an issued key.
final class ClientIdentityTests: XCTestCase {
    private var folder: URL!
    private var state: URL { folder.appendingPathComponent("state") }
    private var ownerFile: URL { state.appendingPathComponent(ConnectionInfo.fileName) }

    override func setUp() {
        folder = DaemonFixture.temporaryFolder("ident")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
        folder = nil   // XCTest keeps every test case until the process exits
    }

    private func stop(_ process: Process) {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    private var copy: (content: [String: JSONValue], frames: [Data]) { DaemonFixture.copySubmit }

    /// Issues client `name` with `pilot keys add` and returns its connection file.
    private func issue(_ name: String, _ options: [String] = []) throws -> ConnectionInfo {
        let file = folder.appendingPathComponent("\(name).json")
        let run = try runPilot(["keys", "add", name, "--connection", ownerFile.path, "--output", file.path] + options)
        XCTAssertEqual(run.status, 0, "expected `pilot keys add \(name)` to succeed: \(run.stderr)")
        var info = stat()
        XCTAssertEqual(stat(file.path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "expected the issued connection file private (0600)")
        return try ConnectionInfo.read(from: file)
    }

    /// Starts the owner's long job (1,000 sampler steps on the tiny model)
    /// and returns once it is running: jobs submitted after it stay queued
    /// until it is cancelled, and it publishes a progress event every step.
    private func holdQueue(_ owner: DaemonClient) throws -> String {
        let parameters: [String: JSONValue] = ["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("1000"),
                                               "inner_steps": .string("0"), "name": .string("long")]
        let submit: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                           "priority": .int(1000), "inputs": .object(["image": .int(0), "mask": .int(1)])]
        let job = try owner.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask])
            .content["job"]!.stringValue!
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try owner.request("status", ["job": .string(job)]).content["job"]?["progress"] == nil {
            Thread.sleep(forTimeInterval: 0.05)
        }
        return job
    }

    private func code(_ body: () throws -> Any) -> String? {
        do { _ = try body() } catch let error as DaemonError { return error.code.rawValue } catch { return "\(error)" }
        return nil
    }

    func testASecondClientCannotReadCancelListOrReuseTheFirstClientsJob() throws {
        let daemon = try startServe(state: state, folder: folder)
        defer { stop(daemon) }
        let alice = try DaemonClient(connection: try issue("alice"), timeout: 30)
        let bob = try DaemonClient(connection: try issue("bob"), timeout: 30)
        let owner = try DaemonClient(connectionFile: ownerFile, timeout: 30)
        XCTAssertEqual(try alice.request("ping").content["client"]?["name"]?.stringValue, "alice",
                       "expected the daemon to know the client by its key")

        var content = copy.content
        content["idempotency_key"] = .string("k1")
        let job = try alice.request("submit", content, frames: copy.frames).content["job"]!.stringValue!
        for request in ["status", "result", "cancel"] {
            XCTAssertEqual(code { try bob.request(request, ["job": .string(job)]) }, "not_found",
                           "expected Bob's \(request) of Alice's job to read as a missing job")
        }
        XCTAssertEqual(try bob.request("list").content["jobs"]?.arrayValue?.count, 0, "expected Bob to list none of Alice's jobs")
        // The same idempotency key from Bob is Bob's own job, not Alice's.
        let bobs = try bob.request("submit", content, frames: copy.frames).content
        XCTAssertEqual(bobs["duplicate"]?.boolValue, false, "expected idempotency keys scoped to each client")
        XCTAssertNotEqual(bobs["job"]?.stringValue, job)
        XCTAssertEqual(try alice.request("submit", content, frames: copy.frames).content["job"]?.stringValue, job,
                       "expected Alice's retry with her key to return her job")

        // Alice sees hers; the owner sees both and who owns them.
        XCTAssertEqual(try alice.request("list").content["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [job])
        let all = try owner.request("list").content["jobs"]?.arrayValue ?? []
        XCTAssertEqual(Set(all.compactMap { $0["owner"]?.stringValue }), ["alice", "bob"])
        XCTAssertEqual(try waitForFinalState(alice, job: job)["state"]?.stringValue, "finished")
        XCTAssertEqual(try owner.request("status", ["job": .string(job)]).content["job"]?["owner"]?.stringValue, "alice")

        // Only admins prune, list and issue clients.
        XCTAssertEqual(code { try alice.request("prune", ["older_than": .int(0)]) }, "forbidden")
        XCTAssertEqual(code { try alice.request("clients") }, "forbidden")
        XCTAssertEqual(code { try alice.request("client_add", ["name": .string("mallory")]) }, "forbidden")
    }

    func testCapsOnPriorityAndQueuedJobsAndRevocationTakeEffectAtOnce() throws {
        let daemon = try startServe(state: state, folder: folder)
        defer { stop(daemon) }
        let owner = try DaemonClient(connectionFile: ownerFile, timeout: 30)
        let carol = try DaemonClient(connection: try issue("carol", ["--max-queued", "2", "--max-priority", "5"]), timeout: 30)
        let long = try holdQueue(owner)
        var content = copy.content
        content["priority"] = .int(6)
        XCTAssertEqual(code { try carol.request("submit", content, frames: self.copy.frames) }, "quota_exceeded",
                       "expected a priority above the client's cap refused")
        content["priority"] = .int(5)
        for _ in 0..<2 { _ = try carol.request("submit", content, frames: copy.frames) }
        XCTAssertEqual(code { try carol.request("submit", content, frames: self.copy.frames) }, "quota_exceeded",
                       "expected a third queued job refused by the client's cap of 2")
        XCTAssertNoThrow(try owner.request("submit", copy.content, frames: copy.frames), "expected the owner uncapped")
        _ = try owner.request("cancel", ["job": .string(long)])

        let listed = try runPilot(["keys", "list", "--connection", ownerFile.path])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stderr.contains("carol") && listed.stderr.contains("active"), "expected carol listed active: \(listed.stderr)")
        let revoked = try runPilot(["keys", "revoke", "carol", "--connection", ownerFile.path])
        XCTAssertEqual(revoked.status, 0, revoked.stderr)
        XCTAssertEqual(code { try carol.request("ping") }, "bad_signature", "expected a revoked key refused at once")
        let again = try runPilot(["keys", "add", "carol", "--connection", ownerFile.path,
                                  "--output", folder.appendingPathComponent("c2").path])
        XCTAssertNotEqual(again.status, 0, "expected a revoked name not reissued")
    }

    /// Revoking a client under CURVE cuts its open event connection: the
    /// subscription it was granted delivers nothing more, while other
    /// subscribers reconnect by themselves and go on receiving.
    func testUnderCurveARevokedClientsOpenEventConnectionIsCut() throws {
        let daemon = try startServe(state: state, folder: folder, arguments: ["--curve"])
        defer { stop(daemon) }
        let ownerInfo = try ConnectionInfo.read(from: ownerFile)
        let owner = try DaemonClient(connection: ownerInfo, timeout: 30)
        let erin = try issue("erin")
        let long = try holdQueue(owner)
        let job = try DaemonClient(connection: erin, timeout: 30).request("submit", copy.content, frames: copy.frames)
            .content["job"]!.stringValue!
        let erinEvents = try EventSubscriber(connection: erin, topics: [job], timeout: 10)
        let ownerEvents = try EventSubscriber(connection: ownerInfo, topics: [job], timeout: 10)
        XCTAssertEqual(try owner.request("client_revoke", ["name": .string("erin")]).content["revoked"], .bool(true))
        // The owner's subscriber reconnects and subscribes again by itself: its welcome comes back.
        XCTAssertEqual(try ownerEvents.next(timeout: 10)?.type, "welcome", "expected the owner's subscriber to reconnect")
        _ = try owner.request("cancel", ["job": .string(long)])
        XCTAssertEqual(try waitForFinalState(owner, job: job)["state"]?.stringValue, "finished")
        var ownerSaw: [String] = []
        while let event = try ownerEvents.next(timeout: 2) { ownerSaw.append(event.type) }
        XCTAssertTrue(ownerSaw.contains("finished"), "expected the owner's subscription to survive the reconnection: \(ownerSaw)")
        XCTAssertNil(try erinEvents.next(timeout: 1), "expected no event to reach the revoked client")
    }

    func testUnderCurveNeitherRequestsNorEventsReachAClientWithoutAnIssuedKey() throws {
        let daemon = try startServe(state: state, folder: folder, arguments: ["--curve"])
        defer { stop(daemon) }
        let ownerInfo = try ConnectionInfo.read(from: ownerFile)
        XCTAssertNotNil(ownerInfo.curveServerKey, "expected --curve to encrypt")
        let owner = try DaemonClient(connection: ownerInfo, timeout: 30)
        let dave = try issue("dave")
        XCTAssertNotNil(dave.curvePublicKey, "expected an issued client to get its own CURVE pair")

        // A stranger who holds the server's public key (and even the HMAC key)
        // but no allowed CURVE key: the handshake fails, nothing comes back.
        var stranger = ownerInfo
        stranger.curvePublicKey = nil
        stranger.curveSecretKey = nil
        XCTAssertThrowsError(try DaemonClient(connection: stranger, timeout: 2).request("ping"),
                             "expected no reply over a connection whose CURVE key is not allowed")
        XCTAssertThrowsError(try EventSubscriber(connection: stranger, topics: [""], timeout: 2),
                             "expected no welcome (so no events) without an allowed CURVE key")

        // The owner's long job publishes progress every step. Dave's key is
        // allowed, but his subscriptions to every event and to the owner's
        // job are not granted (he is no admin); one to his own job is.
        let long = try holdQueue(owner)
        let daveClient = try DaemonClient(connection: dave, timeout: 30)
        let everything = try EventSubscriber(connection: dave, topics: ["", long], timeout: 10)
        XCTAssertNil(try everything.next(timeout: 1), "expected none of the owner's events to reach a user client")
        let admin = try EventSubscriber(connection: ownerInfo, topics: [long], timeout: 10)
        XCTAssertNotNil(try admin.next(timeout: 10), "expected the owner to receive its job's progress")

        let davesJob = try daveClient.request("submit", copy.content, frames: copy.frames).content["job"]!.stringValue!
        let own = try EventSubscriber(connection: dave, topics: [davesJob], timeout: 10)
        _ = try owner.request("cancel", ["job": .string(long)])
        XCTAssertEqual(try own.next(timeout: 30)?.type, "started", "expected Dave's subscription to his own job granted")
        XCTAssertEqual(try waitForFinalState(daveClient, job: davesJob)["state"]?.stringValue, "finished")

        // Dave's messages must be signed with Dave's key over Dave's connection.
        var mixed = dave
        mixed.key = ownerInfo.key
        mixed.client = nil
        XCTAssertEqual(code { try DaemonClient(connection: mixed, timeout: 10).request("ping") }, "bad_signature",
                       "expected the owner's key refused over Dave's CURVE connection")
    }
}
