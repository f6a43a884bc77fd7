import CZeroMQ
import Daemon
import Foundation
import Workflow
import XCTest

/// The daemon as a separate process: crashes and signals.
final class ProcessTests: XCTestCase {
    private func startDaemon(state: URL, folder: URL) throws -> Process {
        try startServe(state: state, folder: folder)
    }

    private func client(_ state: URL) throws -> DaemonClient {
        try DaemonClient(connectionFile: state.appendingPathComponent(ConnectionInfo.fileName), timeout: 30)
    }

    /// One signed submit of a workflow nested 50,000 levels deep used to
    /// overflow the parser's stack and kill the daemon.
    func testADeeplyNestedWorkflowIsRefusedAndTheDaemonAnswersAPingRightAfter() throws {
        let folder = DaemonFixture.temporaryFolder("deep")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let daemon = try startDaemon(state: state, folder: folder)
        defer { daemon.terminate(); daemon.waitUntilExit() }
        let client = try client(state)
        let n = 50_000
        for workflow in ["version: 1\nnodes:\n  a: {type: Constant, params: {value: " + String(repeating: "[", count: n) + "]}}\n",
                         "{\"version\": 1, \"nodes\": " + String(repeating: "{\"a\": ", count: n) + "1" + String(repeating: "}", count: n) + "}"] {
            XCTAssertThrowsError(try client.request("submit", ["workflow": .string(workflow)])) { error in
                let e = error as? DaemonError
                XCTAssertEqual(e?.code, .invalidWorkflow, "expected invalid_workflow, got \(error)")
                XCTAssertTrue("\(error)".contains("nesting deeper than 64 levels") && "\(error)".contains("workflow:"),
                              "the reply must name the depth limit and the place: \(error)")
            }
            let start = Date()
            XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "the daemon must still answer")
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the ping must be answered at once")
        }
        XCTAssertTrue(daemon.isRunning, "the daemon must survive")
    }

    /// Jobs run in a supervised `pilot worker`: a crash inside a kernel (a
    /// zero-sized latent once did it) kills the worker, not the daemon. The
    /// job is retried once, then failed as `crashed` with the node it died
    /// at; the daemon answers throughout and runs the next job.
    func testAWorkerCrashInAKernelFailsOneJobAndTheDaemonStaysUp() throws {
        let folder = DaemonFixture.temporaryFolder("wcrash")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let daemon = try startServe(state: state, folder: folder, environment: ["PILOT_FAULT": "worker-crash-at-node:boom"])
        defer { daemon.terminate(); daemon.waitUntilExit() }
        let client = try client(state)
        let firstWorker = try client.request("info").content["worker"]
        XCTAssertEqual(firstWorker?["mode"]?.stringValue, "process", "pilot serve must run jobs in a worker process: \(firstWorker?.compact ?? "nil")")
        XCTAssertNotEqual(firstWorker?["pid"]?.intValue, Int(daemon.processIdentifier), "the worker must be a process of its own")

        let crashing = DaemonFixture.copyWorkflow.replacingOccurrences(of: "load", with: "boom")
        let job = try client.request("submit", ["workflow": .string(crashing), "inputs": .object(["image": .int(0)])],
                                     frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        let status = try waitForFinalState(client, job: job, timeout: 60)
        XCTAssertEqual(status["state"]?.stringValue, "failed", "expected the job failed: \(status.compact)")
        XCTAssertEqual(status["error"]?["code"]?.stringValue, "crashed", "expected code crashed: \(status.compact)")
        XCTAssertEqual(status["error"]?["details"]?["last_node"]?.stringValue, "boom", "expected the node it died at: \(status.compact)")
        // SIGSEGV, or under AddressSanitizer (which catches it and exits) status 1.
        let message = status["error"]?["message"]?.stringValue ?? ""
        XCTAssertTrue(message.contains("the worker process died with signal 11") || message.contains("the worker process died with exit status"),
                      "expected the message to say how the worker died: \(status.compact)")
        let states = status["transitions"]?.arrayValue?.compactMap { $0["state"]?.stringValue } ?? []
        XCTAssertEqual(states, ["queued", "running", "queued", "running", "failed"], "expected one retry, then failed")

        XCTAssertTrue(daemon.isRunning, "the daemon must not die with its worker")
        let info = try client.request("info").content
        XCTAssertEqual(info["pid"]?.intValue, Int(daemon.processIdentifier), "the same daemon must answer")
        let good = try client.request("submit", ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])],
                                      frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        XCTAssertEqual(try waitForFinalState(client, job: good, timeout: 60)["state"]?.stringValue, "finished",
                       "a new worker must run the next job")
        let worker = try client.request("info").content["worker"]
        XCTAssertGreaterThanOrEqual(worker?["restarts"]?.intValue ?? 0, 2, "expected two restarts: \(worker?.compact ?? "nil")")
        XCTAssertNotEqual(worker?["pid"]?.intValue, firstWorker?["pid"]?.intValue, "expected a new worker process")
    }

    /// Floods from peers without the key, against a real `pilot serve` with
    /// a 1 MiB message limit: every refusal is answered, a ping after each
    /// flood is answered, and the daemon's peak memory grows by less than
    /// 48 MiB in all. libzmq hands over a multipart message only once it has
    /// all of it, so the largest message sent (32 MiB here) is held once;
    /// the daemon copies and parses nothing of it. (That any peer that can
    /// connect can make libzmq hold one message of any size is why the
    /// default endpoints are ipc:// in the 0700 state folder; see
    /// docs/protocol.md.)
    func testUnauthenticatedFloodsLeaveThePingAnsweredAndTheDaemonsMemoryBounded() throws {
        let folder = DaemonFixture.temporaryFolder("flood")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let daemon = try startServe(state: state, folder: folder, arguments: ["--max-message-size", "1M"])
        defer { daemon.terminate(); daemon.waitUntilExit() }
        func memory(_ field: String) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(daemon.processIdentifier)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        let client = try client(state)
        _ = try client.request("ping")
        let before = try memory("VmRSS")
        let protocolFrame = Data(pilotProtocolID.utf8)
        let header = JSONValue.object(["id": .string(String(repeating: "x", count: 900_000)), "type": .string("ping"),
                                       "time": .string(WireTime.format(Date()))]).data
        let floods: [(String, Int, [Data])] = [
            ("unsigned 900 kB headers", 40, [protocolFrame, Data(), header, Data("{}".utf8)]),
            ("badly signed 900 kB headers", 40, [protocolFrame, Data("00".utf8), header, Data("{}".utf8)]),
            ("10,000 frames", 5, [protocolFrame, Data("00".utf8)] + [Data](repeating: Data("{}".utf8), count: 10_000)),
            ("32 MiB in 1 MiB frames", 5, [protocolFrame, Data("00".utf8), Data("{}".utf8), Data("{}".utf8)]
                + [Data](repeating: Data(count: 1 << 20), count: 32)),
        ]
        for (label, count, frames) in floods {
            for _ in 0..<count { try client.sendRaw(frames) }
            for _ in 0..<count {
                let reply = try client.awaitReply(to: nil)
                XCTAssertEqual(reply.content["status"]?.stringValue, "error", "\(label): expected a refusal")
                XCTAssertNil(reply.header.parent, "\(label): nothing of an unauthenticated message may be echoed")
            }
            XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "\(label): expected the ping answered after it")
        }
        let peak = try memory("VmHWM")
        print("flood: resident \(before >> 10) KiB before, peak \(peak >> 10) KiB after 90 refused messages (\(32 * 5 + 80 * 900 / 1024) MiB sent)")
        // AddressSanitizer keeps freed memory in quarantine (256 MiB): the bound holds for the plain build.
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil {
            XCTAssertLessThan(peak - before, 48 << 20,
                              "expected the daemon's peak memory to grow by less than 48 MiB (from \(before >> 20) MiB to a peak of \(peak >> 20) MiB)")
        }
        XCTAssertTrue(daemon.isRunning, "the daemon must survive")
    }

    /// The security review's findings, replayed against a real `pilot serve`:
    /// a planted state folder, subscription and unread-reply floods, an image
    /// whose header declares 10 gigapixels, a 30-link chain out of the allowed
    /// folders and a model folder whose tokenizer links to a secret.
    func testTheSecurityFindingsAgainstARealDaemon() throws {
        let folder = DaemonFixture.temporaryFolder("review")
        defer { try? FileManager.default.removeItem(at: folder) }

        // A state folder others can write to: refused before any key is written.
        let planted = folder.appendingPathComponent("planted")
        try FileManager.default.createDirectory(at: planted, withIntermediateDirectories: true)
        chmod(planted.path, 0o777)
        let refusal = try runPilot(["serve", "--state", planted.path, "--models", DaemonFixture.models.path,
                                    "--requests", "ipc://\(folder.path)/pr", "--events", "ipc://\(folder.path)/pe"])
        XCTAssertEqual(refusal.status, 1, "expected pilot serve to refuse a planted state folder: \(refusal.stderr)")
        XCTAssertTrue(refusal.stderr.contains("writable by group or others"), "expected the reason: \(refusal.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: planted.appendingPathComponent(ConnectionInfo.fileName).path))

        // Shared inputs: a 30-link chain to a secret, and a model whose tokenizer files link to it.
        let shared = folder.appendingPathComponent("shared")
        let secret = folder.appendingPathComponent("secret.txt")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        try Data("#version: 0.2\nTOP SECRET LINE\n".utf8).write(to: secret)
        var target = secret.path
        for i in (0..<30).reversed() {
            let link = shared.appendingPathComponent("l\(i).png").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            target = link
        }
        let model = shared.appendingPathComponent("linked")
        try FileManager.default.createDirectory(at: model.appendingPathComponent("tokenizer"), withIntermediateDirectories: true)
        for item in try FileManager.default.contentsOfDirectory(atPath: DaemonFixture.tinyModel) {
            try FileManager.default.createSymbolicLink(atPath: model.appendingPathComponent(item).path,
                                                       withDestinationPath: DaemonFixture.models.appendingPathComponent("tiny/\(item)").path)
        }
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.createSymbolicLink(atPath: model.appendingPathComponent("tokenizer/\(name)").path,
                                                       withDestinationPath: secret.path)
        }

        let state = folder.appendingPathComponent("state")
        let daemon = try startServe(state: state, folder: folder, arguments: ["--allow-read", shared.path])
        defer { daemon.terminate(); daemon.waitUntilExit() }
        let client = try client(state)

        // Floods: 3 peers × 40 subscriptions of 60 KB, and 2,000 badly signed requests whose replies are never read.
        var peers: [ZMQSocket] = []
        for _ in 0..<3 {
            let socket = try ZMQSocket(.sub)
            try socket.connect("ipc://\(folder.path)/e")
            for i in 0..<40 { try socket.setOption(ZMQ_SUBSCRIBE, "\(i)" + String(repeating: "z", count: 60_000)) }
            peers.append(socket)
        }
        let silent = try ZMQSocket(.dealer)
        try silent.connect("ipc://\(folder.path)/r")
        let forged = WireMessage(type: "ping").encoded(signer: MessageSigner(key: Data("not the key".utf8)))
        for _ in 0..<2_000 { try silent.send(forged) }
        XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "expected the ping answered during the floods")

        func failure(_ content: [String: JSONValue], _ frames: [Data]) throws -> String {
            let job = try client.request("submit", content, frames: frames).content["job"]!.stringValue!
            let status = try waitForFinalState(client, job: job)
            XCTAssertEqual(status["state"]?.stringValue, "failed", "expected the job failed: \(status.compact)")
            return status.compact
        }
        // A PNG header declaring 100,000 × 100,000 pixels behind 33 bytes.
        var header = Data(DaemonFixture.examplePNG.prefix(33))
        header.replaceSubrange(16..<24, with: [0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0])
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(DaemonFixture.copyWorkflow),
                                                           "inputs": .object(["image": .int(0)])], frames: [header])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .tooLarge, "expected too_large before any decoding, got \(error)")
        }
        // The link chain, named as a path input.
        let chain = try failure(["workflow": .string(DaemonFixture.copyWorkflow),
                                 "parameters": .object(["image": .string(shared.appendingPathComponent("l0.png").path)])], [])
        XCTAssertTrue(chain.contains("path_not_allowed"), "expected path_not_allowed: \(chain)")
        // The model whose tokenizer links out.
        var parameters = JobTests.inpaintSettings.mapValues(JSONValue.string)
        parameters["checkpoint"] = .string(model.path)
        let linked = try failure(["template": .string("text-inpaint"), "parameters": .object(parameters),
                                  "inputs": .object(["image": .int(0), "mask": .int(1)])],
                                 [DaemonFixture.examplePNG, DaemonFixture.exampleMask])
        XCTAssertTrue(linked.contains("not readable by this job"), "expected the tokenizer file refused: \(linked)")
        for text in [chain, linked] {
            XCTAssertFalse(text.contains("TOP SECRET") || text.contains(secret.path), "nothing may quote or locate the secret: \(text)")
        }
        peers.forEach { $0.close() }
        silent.close()
        XCTAssertTrue(daemon.isRunning, "the daemon must survive")
    }

    func testKillNineMidJobThenRestartCompletesTheJobAndLosesNothing() throws {
        let folder = DaemonFixture.temporaryFolder("kill")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let first = try startDaemon(state: state, folder: folder)
        let client = try client(state)
        let parameters: [String: JSONValue] = ["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("300"),
                                               "interval": .string("2"), "inner_steps": .string("1")]
        let submit: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                           "inputs": .object(["image": .int(0), "mask": .int(1)])]
        let frames = [DaemonFixture.examplePNG, DaemonFixture.exampleMask]
        let running = try client.request("submit", submit, frames: frames).content["job"]!.stringValue!
        let waiting = try client.request("submit", submit, frames: frames).content["job"]!.stringValue!
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try client.request("status", ["job": .string(running)]).content["job"]?["progress"] == nil {
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTAssertEqual(try client.request("status", ["job": .string(running)]).content["job"]?["state"], .string("running"))
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationReason, .uncaughtSignal)

        let second = try startDaemon(state: state, folder: folder)
        defer { second.terminate(); second.waitUntilExit() }
        let again = try self.client(state)
        for job in [running, waiting] {
            let status = try waitForFinalState(again, job: job)
            XCTAssertEqual(status["state"]?.stringValue, "finished", "job \(job) after the crash: \(status.compact)")
            XCTAssertEqual(status["outputs"]?.arrayValue?.first?["name"]?.stringValue, "text-inpaint.png")
        }
        let transitions = try again.request("status", ["job": .string(running)]).content["job"]?["transitions"]?.arrayValue ?? []
        XCTAssertEqual(transitions.compactMap { $0["state"]?.stringValue }, ["queued", "running", "queued", "running", "finished"],
                       "expected the interrupted job requeued once and run again")
        XCTAssertEqual(try again.request("status", ["job": .string(running)]).content["job"]?["attempts"], .int(2))
        XCTAssertEqual(try again.request("list").content["jobs"]?.arrayValue?.count, 2, "expected no job lost or added")
    }

    func testSigtermRequeuesTheRunningJobRemovesTheConnectionFileAndExitsZero() throws {
        let folder = DaemonFixture.temporaryFolder("term")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let daemon = try startDaemon(state: state, folder: folder)
        let client = try client(state)
        let connection = state.appendingPathComponent(ConnectionInfo.fileName)
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: connection.path)[.posixPermissions] as? NSNumber)
        XCTAssertEqual(mode.intValue & 0o777, 0o600, "expected connection.json to be owner-only")
        let job = try client.request("submit", [
            "template": .string("text-inpaint"),
            "parameters": .object(["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("1000"), "inner_steps": .string("0")]),
            "inputs": .object(["image": .int(0), "mask": .int(1)]),
        ], frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try client.request("status", ["job": .string(job)]).content["job"]?["progress"] == nil {
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        XCTAssertEqual(daemon.terminationStatus, 0, "expected exit 0 after SIGTERM")
        XCTAssertFalse(FileManager.default.fileExists(atPath: connection.path), "expected the connection file removed")
        let store = try JobStore(path: state.appendingPathComponent("jobs.sqlite").path)
        XCTAssertEqual(try store.job(job)?.state, .queued, "expected the running job requeued, not lost")
    }
}
