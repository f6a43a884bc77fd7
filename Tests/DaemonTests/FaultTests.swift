import Daemon
import Foundation
import Workflow
import XCTest

/// Faults against a real `pilot serve` process: crashes at the worst
/// moments of a submit (armed with `PILOT_FAULT`), a full disk, a damaged
/// store, a read-only state folder, clients that vanish mid-message and a
/// subscriber that never reads. In each: what the client sees, what the
/// store holds after, and nothing acknowledged lost or duplicated.
final class FaultTests: XCTestCase {
    private var folder: URL!
    private var state: URL { folder.appendingPathComponent("state") }

    override func setUp() {
        folder = DaemonFixture.temporaryFolder("fault")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
        folder = nil   // XCTest keeps every test case until the process exits
    }

    private func client(timeout: TimeInterval = 30) throws -> DaemonClient {
        try DaemonClient(connectionFile: state.appendingPathComponent(ConnectionInfo.fileName), timeout: timeout)
    }

    /// A submit of the model-free copy workflow with one PNG frame.
    private func copySubmit(key: String? = nil) -> (content: [String: JSONValue], frames: [Data]) {
        var content: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow),
                                            "inputs": .object(["image": .int(0)])]
        if let key { content["idempotency_key"] = .string(key) }
        return (content, [DaemonFixture.examplePNG])
    }

    private func stop(_ process: Process) {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    private func storedBlobFiles() -> [String] {
        BlobStore(directory: state.appendingPathComponent("blobs")).files().hashes
    }

    // MARK: kill -9 during submit

    func testKillNineAfterTheBlobsAreStoredAcknowledgesNothingAndLeavesNothingStored() throws {
        let first = try startServe(state: state, folder: folder, environment: ["PILOT_FAULT": "submit-after-blobs"])
        let (content, frames) = copySubmit()
        XCTAssertThrowsError(try client(timeout: 5).request("submit", content, frames: frames),
                             "expected no acknowledgement from a daemon killed before the job was stored")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationReason, .uncaughtSignal, "expected the armed fault to kill the daemon")
        XCTAssertEqual(storedBlobFiles().count, 1, "the input frame was written before the crash")

        let second = try startServe(state: state, folder: folder)
        defer { stop(second) }
        let again = try client()
        XCTAssertEqual(try again.request("list").content["jobs"]?.arrayValue?.count, 0, "expected no job from an unacknowledged submit")
        XCTAssertEqual(storedBlobFiles(), [], "expected the orphaned input blob removed at restart")
        // The client retries and the job runs once.
        let job = try again.request("submit", content, frames: frames).content["job"]!.stringValue!
        XCTAssertEqual(try waitForFinalState(again, job: job)["state"]?.stringValue, "finished")
        XCTAssertEqual(storedBlobFiles().count, 1)
    }

    func testKillNineAfterTheCommitKeepsTheJobAndTheRetriedSubmitGetsItOnce() throws {
        let first = try startServe(state: state, folder: folder, environment: ["PILOT_FAULT": "submit-after-commit"])
        let (content, frames) = copySubmit(key: "retry-after-crash")
        XCTAssertThrowsError(try client(timeout: 5).request("submit", content, frames: frames),
                             "expected no acknowledgement from a daemon killed before replying")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationReason, .uncaughtSignal)

        let second = try startServe(state: state, folder: folder)
        defer { stop(second) }
        let again = try client()
        // The client did not get an answer, so it retries with its key: the stored job, not a second one.
        let reply = try again.request("submit", content, frames: frames).content
        XCTAssertEqual(reply["duplicate"], .bool(true), "expected the retry to find the committed job: \(reply.compact)")
        let job = try XCTUnwrap(reply["job"]?.stringValue)
        XCTAssertEqual(try waitForFinalState(again, job: job)["state"]?.stringValue, "finished")
        let jobs = try again.request("list").content["jobs"]?.arrayValue ?? []
        XCTAssertEqual(jobs.count, 1, "expected exactly one job after a crash and a retry, found \(jobs.count)")
    }

    // MARK: full disk

    func testAFullDiskWhileWritingAnOutputFailsTheJobClearlyAndTheDaemonKeepsServing() throws {
        let daemon = try startServe(state: state, folder: folder, environment: ["PILOT_FAULT": "disk-full"])
        defer { stop(daemon) }
        let client = try client()
        let (content, frames) = copySubmit()
        for _ in 0..<2 {
            let job = try client.request("submit", content, frames: frames).content["job"]!.stringValue!
            let status = try waitForFinalState(client, job: job)
            XCTAssertEqual(status["state"]?.stringValue, "failed", "expected the job to fail: \(status.compact)")
            let message = status["error"]?["message"]?.stringValue ?? ""
            XCTAssertTrue(message.contains("No space left on device") && message.contains("copy.png"),
                          "expected the error to name the output and the full disk, got: \(message)")
            XCTAssertEqual(status["outputs"]?.arrayValue?.count ?? 0, 0, "a failed job reports no outputs")
            let outputs = state.appendingPathComponent("jobs/\(job)/outputs")
            XCTAssertFalse(FileManager.default.fileExists(atPath: outputs.path),
                           "expected nothing half-written left in \(outputs.path)")
        }
        XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok")
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: damaged store

    func testADamagedOrTruncatedJobStoreStopsTheDaemonWithAdviceAndIsLeftAsItWas() throws {
        // A real store with jobs in it.
        let daemon = try startServe(state: state, folder: folder)
        let client = try client()
        let (content, frames) = copySubmit()
        for _ in 0..<30 { _ = try client.request("submit", content, frames: frames) }
        stop(daemon)
        let store = state.appendingPathComponent("jobs.sqlite")
        let whole = try Data(contentsOf: store)
        XCTAssertGreaterThan(whole.count, 8192)

        var garbage = Data(count: 4096)
        for i in garbage.indices { garbage[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        for (label, bytes) in [("truncated", whole.prefix(whole.count / 2)), ("garbage", garbage)] {
            try Data(bytes).write(to: store)
            let (status, stderr) = try runPilot(["serve", "--state", state.path, "--models", DaemonFixture.models.path,
                                                 "--requests", "ipc://\(folder.path)/r", "--events", "ipc://\(folder.path)/e"])
            XCTAssertNotEqual(status, 0, "\(label): expected pilot serve to refuse the store")
            XCTAssertTrue(stderr.contains(store.path) && stderr.contains("is damaged") && stderr.contains("Move it aside"),
                          "\(label): expected the error to name \(store.path) and what to do, got: \(stderr)")
            XCTAssertEqual(try Data(contentsOf: store), Data(bytes), "\(label): the damaged store must be left as it was")
        }
    }

    // MARK: read-only state folder

    func testAStateFolderOnAReadOnlyFileSystemIsRefusedClearlyAndLosesNothing() throws {
        let mountPoint = folder.appendingPathComponent("fs")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        guard shell("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mountPoint.path) == 0 else {
            throw XCTSkip("mounting a tmpfs needs CAP_SYS_ADMIN, which this machine does not give the tests")
        }
        defer { _ = shell("umount", "-l", mountPoint.path) }
        let state = mountPoint.appendingPathComponent("state")
        let daemon = try startServe(state: state, folder: folder)
        let connection = state.appendingPathComponent(ConnectionInfo.fileName)
        let (content, frames) = copySubmit()
        let job = try DaemonClient(connectionFile: connection).request("submit", content, frames: frames).content["job"]!.stringValue!
        XCTAssertEqual(try waitForFinalState(DaemonClient(connectionFile: connection), job: job)["state"]?.stringValue, "finished")
        stop(daemon)

        XCTAssertEqual(shell("mount", "-o", "remount,ro", mountPoint.path), 0)
        let (status, stderr) = try runPilot(["serve", "--state", state.path, "--models", DaemonFixture.models.path,
                                             "--requests", "ipc://\(folder.path)/r", "--events", "ipc://\(folder.path)/e"])
        XCTAssertNotEqual(status, 0, "expected pilot serve to refuse a read-only state folder")
        XCTAssertTrue(stderr.contains(state.path) && stderr.contains("Read-only file system"),
                      "expected the error to name the state folder and the read-only file system, got: \(stderr)")

        XCTAssertEqual(shell("mount", "-o", "remount,rw", mountPoint.path), 0)
        let again = try startServe(state: state, folder: folder)
        defer { stop(again) }
        let status2 = try DaemonClient(connectionFile: connection).request("status", ["job": .string(job)]).content["job"]
        XCTAssertEqual(status2?["state"]?.stringValue, "finished", "expected the finished job kept: \(status2?.compact ?? "")")
        XCTAssertEqual(try DaemonClient(connectionFile: connection).request("result", ["job": .string(job)]).frames.count, 1)
    }

    // MARK: clients

    /// 50 peers connect to the request socket and vanish mid-message: half
    /// in the ZMTP greeting, half inside a multi-frame request whose last
    /// frame never comes; 10 more send a whole request and leave without
    /// reading the reply.
    func testFiftyClientsThatVanishMidMessageCostTheDaemonNothing() throws {
        let daemon = try startServe(state: state, folder: folder)
        defer { stop(daemon) }
        let path = folder.appendingPathComponent("r").path
        for i in 0..<50 {
            let fd = try unixConnect(path)
            var bytes = ZMTP.greeting
            if i % 2 == 0 {
                bytes = Array(bytes.prefix(1 + i % 40))
            } else {
                bytes += ZMTP.ready(socketType: "DEALER")
                bytes += ZMTP.frame(Array("pilot/1".utf8), more: true)
                bytes += [0x03] + withUnsafeBytes(of: UInt64(1_000_000).bigEndian, Array.init) + Array(repeating: 0x41, count: 100)
            }
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        for _ in 0..<10 {
            let leaving = try client(timeout: 1)
            try leaving.sendRaw(WireMessage(type: "list", content: .object([:])).encoded(signer: leaving.connection.signer))
        }
        let client = try client()
        XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "expected the daemon to answer after the vanished clients")
        let (content, frames) = copySubmit()
        let job = try client.request("submit", content, frames: frames).content["job"]!.stringValue!
        XCTAssertEqual(try waitForFinalState(client, job: job)["state"]?.stringValue, "finished")
        XCTAssertTrue(daemon.isRunning)
    }

    func testASubscriberThatNeverReadsDoesNotHoldUpTheWorker() throws {
        let daemon = try startServe(state: state, folder: folder)
        defer { stop(daemon) }
        let connection = try ConnectionInfo.read(from: state.appendingPathComponent(ConnectionInfo.fileName))
        // Subscribed to every event and never read.
        let stuck = try EventSubscriber(connection: connection, topics: [""])
        let client = try client()
        let submit: [String: JSONValue] = [
            "template": .string("text-inpaint"),
            "parameters": .object(["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("400"), "inner_steps": .string("0")]),
            "inputs": .object(["image": .int(0), "mask": .int(1)]),
        ]
        var jobs: [String] = []
        for _ in 0..<2 {
            jobs.append(try client.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!)
        }
        var events = 0
        let followed = try client.follow(job: jobs[1], timeout: 300) { _ in events += 1 }
        XCTAssertEqual(followed["state"]?.stringValue, "finished", "expected both jobs to run past the stuck subscriber")
        XCTAssertEqual(try waitForFinalState(client, job: jobs[0])["state"]?.stringValue, "finished")
        XCTAssertGreaterThan(events, 0, "a reading subscriber still gets the events")
        withExtendedLifetime(stuck) {}
    }

    // MARK: helpers

    private func shell(_ arguments: String...) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    private func unixConnect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { close(fd); throw DaemonError(.internal, "cannot connect to \(path): errno \(errno)") }
        return fd
    }
}

/// Just enough ZMTP 3.0 (rfc.zeromq.org/spec/23) to start a conversation
/// and break it off.
enum ZMTP {
    /// Signature, version 3.0, the NULL mechanism, as-server 0, filler: 64 bytes.
    static let greeting: [UInt8] = [0xFF] + Array(repeating: 0, count: 8) + [0x7F, 3, 0]
        + Array("NULL".utf8) + Array(repeating: 0, count: 16) + [0] + Array(repeating: 0, count: 31)

    /// The READY command with one property, Socket-Type.
    static func ready(socketType: String) -> [UInt8] {
        let name = Array("Socket-Type".utf8), value = Array(socketType.utf8)
        let body: [UInt8] = [5] + Array("READY".utf8) + [UInt8(name.count)] + name
            + withUnsafeBytes(of: UInt32(value.count).bigEndian, Array.init) + value
        return [0x04, UInt8(body.count)] + body
    }

    /// A short message frame.
    static func frame(_ body: [UInt8], more: Bool) -> [UInt8] {
        [more ? 0x01 : 0x00, UInt8(body.count)] + body
    }
}
