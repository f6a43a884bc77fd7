import Daemon
import Diffusion
import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

final class JobTests: XCTestCase {
    /// Small settings for text-inpaint on the tiny model.
    static let inpaintSettings: [String: String] = [
        "steps": "4", "interval": "2", "inner_steps": "1", "prompt": "a red ball", "seed": "3",
    ]

    func testTemplateRoundTripStreamsOrderedEventsAndReturnsTheLocalRunsImage() throws {
        let server = try TestDaemon(label: "rt")
        defer { server.stop() }
        let client = try server.client()
        let events = try EventSubscriber(connection: server.connection, topics: [""])
        var parameters = Self.inpaintSettings.mapValues(JSONValue.string)
        parameters["checkpoint"] = .string(DaemonFixture.tinyModel)
        let reply = try client.request("submit", [
            "template": .string("text-inpaint"), "parameters": .object(parameters),
            "inputs": .object(["image": .object(["frame": .int(0), "filename": .string("source.png")]), "mask": .int(1)]),
        ], frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask])
        let job = try XCTUnwrap(reply.content["job"]?.stringValue)
        XCTAssertEqual(reply.header.type, "submit_reply")
        XCTAssertEqual(reply.content["duplicate"], .bool(false))

        var received: [EventSubscriber.Event] = []
        while let event = try events.next(timeout: 120) {
            guard event.topic == job else { continue }
            received.append(event)
            if ["finished", "failed", "cancelled"].contains(event.type) { break }
        }
        let types = received.map(\.type)
        XCTAssertEqual(types.first, "queued")
        XCTAssertEqual(types.dropFirst().first, "started")
        XCTAssertEqual(types.last, "finished", "expected the job to finish; events: \(types)")
        // `queued` is 1; the attempt's events are consecutive from its first
        // (2 here; attempt × 1,000,000 + 1 when a worker of a shared queue runs it).
        let seqs = received.map { $0.content["seq"]?.intValue ?? 0 }
        let first = seqs.dropFirst().first ?? 0
        XCTAssertTrue(first == 2 || first == 1_000_001, "expected the attempt's first event to be seq 2 or 1000001, found \(first)")
        XCTAssertEqual(seqs, [1] + Array(first..<(first + received.count - 1)), "expected seq 1, then consecutive numbers in order")
        // Every node starts before it finishes, and PILOT reports its steps and losses.
        let started = received.filter { $0.type == "node_started" }.compactMap { $0.content["node"]?.stringValue }
        let finished = received.filter { $0.type == "node_finished" }.compactMap { $0.content["node"]?.stringValue }
        XCTAssertEqual(started, finished, "expected each node_started matched by its node_finished in order")
        let progress = received.filter { $0.type == "progress" && $0.content["node"]?.stringValue == "pilot" }
        XCTAssertFalse(progress.isEmpty, "expected progress events from the PILOT node")
        XCTAssertTrue(progress.contains { !($0.content["values"]?.objectValue ?? [:]).isEmpty }, "expected loss values in PILOT progress")

        let result = try client.request("result", ["job": .string(job)])
        let outputs = try XCTUnwrap(result.content["outputs"]?.arrayValue)
        XCTAssertEqual(outputs.compactMap { $0["name"]?.stringValue }, ["text-inpaint.png"])
        let folder = DaemonFixture.temporaryFolder("rt-out")
        defer { try? FileManager.default.removeItem(at: folder) }
        let remote = folder.appendingPathComponent("remote.png")
        try result.frames[0].write(to: remote)

        // The same workflow run locally (`pilot run` does this).
        let localInputs = folder.appendingPathComponent("in", isDirectory: true)
        try FileManager.default.createDirectory(at: localInputs, withIntermediateDirectories: true)
        try DaemonFixture.examplePNG.write(to: localInputs.appendingPathComponent("source.png"))
        try DaemonFixture.exampleMask.write(to: localInputs.appendingPathComponent("mask.png"))
        let runner = WorkflowRunner()
        let file = DaemonFixture.templates.appendingPathComponent("text-inpaint.yaml")
        var set = Self.inpaintSettings
        set["checkpoint"] = DaemonFixture.tinyModel
        _ = try runner.run(try runner.validate(file), file: file, set: set,
                           inputs: ["image": localInputs.appendingPathComponent("source.png").path,
                                    "mask": localInputs.appendingPathComponent("mask.png").path],
                           outputDirectory: folder.appendingPathComponent("local"))
        let local = try PNG.read(path: folder.appendingPathComponent("local/text-inpaint.png").path).image
        XCTAssertEqual(try PNG.read(path: remote.path).image, local, "expected the daemon's image to equal a local run's")
    }

    func testTwentyClientsSubmitAHundredJobsWithNoneLostOrDuplicated() throws {
        let server = try TestDaemon(label: "many")
        defer { server.stop() }
        let connection = server.connection
        let collected = Collected()
        // Real threads, all 20 at once (Dispatch would run only as many as there are cores).
        let group = DispatchGroup()
        for clientIndex in 0..<20 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let client = try DaemonClient(connection: connection, timeout: 60)
                    for jobIndex in 0..<5 {
                        let reply = try client.request("submit", [
                            "workflow": .string(DaemonFixture.copyWorkflow),
                            "parameters": .object(["name": .string("c\(clientIndex)-j\(jobIndex)")]),
                            "inputs": .object(["image": .int(0)]), "client": .string("client-\(clientIndex)"),
                            "idempotency_key": .string("c\(clientIndex)-j\(jobIndex)"),
                        ], frames: [DaemonFixture.examplePNG])
                        guard reply.content["duplicate"] == .bool(false), let id = reply.content["job"]?.stringValue else {
                            throw DaemonError(.internal, "unexpected reply \(reply.content.compact)")
                        }
                        collected.add(id: id)
                    }
                } catch {
                    collected.add(failure: "client \(clientIndex): \(error)")
                }
            }
        }
        group.wait()
        XCTAssertEqual(collected.failures, [], "expected every submit acknowledged")
        let unique = Set(collected.ids)
        XCTAssertEqual(unique.count, 100, "expected 100 distinct job ids")
        let client = try server.client()
        for id in unique {
            let status = try waitForFinalState(client, job: id)
            XCTAssertEqual(status["state"]?.stringValue, "finished", "job \(id): \(status.compact)")
            let name = try XCTUnwrap(status["parameters"]?["name"]?.stringValue)
            XCTAssertEqual(status["outputs"]?.arrayValue?.first?["name"]?.stringValue, "\(name).png",
                           "expected each job to write its own file")
        }
        let listed = try client.request("list", ["limit": .int(1000)]).content["jobs"]?.arrayValue ?? []
        XCTAssertEqual(listed.count, 100, "expected the store to hold exactly 100 jobs")
    }

    func testRetriedSubmitWithTheSameIdempotencyKeyReturnsTheFirstJob() throws {
        let server = try TestDaemon(label: "idem")
        defer { server.stop() }
        let client = try server.client()
        let content: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)]),
                                            "idempotency_key": .string("retry-me")]
        let first = try client.request("submit", content, frames: [DaemonFixture.examplePNG]).content
        let second = try client.request("submit", content, frames: [DaemonFixture.examplePNG]).content
        XCTAssertEqual(second["job"], first["job"], "expected the retry to return the first job id")
        XCTAssertEqual(second["duplicate"], .bool(true))
        XCTAssertEqual(try client.request("list").content["jobs"]?.arrayValue?.count, 1, "expected one job, not two")
    }

    /// `prune` removes a finished job's row, folder and input blob (blobs
    /// shared with remaining jobs: JobStoreTests), and refuses a missing,
    /// textual or negative age.
    /// A model folder inside the models directory passes the path check, but
    /// a link in it once let the tokenizer loader read (and an error message
    /// quote) a file outside every allowed folder. Every file a loader opens
    /// is checked now, and the error names only the path given.
    func testALinkInsideAModelFolderCannotReadOutsideTheAllowedFolders() throws {
        let folder = DaemonFixture.temporaryFolder("linkmodel")
        defer { try? FileManager.default.removeItem(at: folder) }
        let models = folder.appendingPathComponent("models")
        let model = models.appendingPathComponent("linked")
        _ = try TinyModel.create(at: model.path)
        let secret = folder.appendingPathComponent("secret.txt")
        try Data("#version: 0.2\nTOP SECRET LINE\n".utf8).write(to: secret)
        let tokenizer = model.appendingPathComponent("tokenizer")
        try FileManager.default.createDirectory(at: tokenizer, withIntermediateDirectories: true)
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.createSymbolicLink(atPath: tokenizer.appendingPathComponent(name).path, withDestinationPath: secret.path)
        }
        let server = try TestDaemon(label: "linkmodel") { $0.modelsDirectory = models }
        defer { server.stop() }
        let client = try server.client()
        var parameters = Self.inpaintSettings.mapValues(JSONValue.string)
        parameters["checkpoint"] = .string(model.path)
        let job = try client.request("submit", ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                                "inputs": .object(["image": .int(0), "mask": .int(1)])],
                                     frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
        let status = try waitForFinalState(client, job: job)
        let text = status.compact
        XCTAssertEqual(status["state"]?.stringValue, "failed", "expected the job refused: \(text)")
        XCTAssertTrue(text.contains("not readable by this job"), "expected the file named as not readable: \(text)")
        XCTAssertTrue(text.contains(tokenizer.path), "expected the path as given (inside the model folder): \(text)")
        XCTAssertFalse(text.contains("TOP SECRET") || text.contains(secret.path), "the error must not quote or locate the target: \(text)")
    }

    func testPruneRemovesOldJobsTheirFilesAndUnsharedBlobs() throws {
        let server = try TestDaemon(label: "prune")
        defer { server.stop() }
        let client = try server.client()
        func submit(_ frame: Data) throws -> String {
            try client.request("submit", ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])],
                               frames: [frame]).content["job"]!.stringValue!
        }
        let first = try submit(DaemonFixture.examplePNG)
        XCTAssertEqual(try waitForFinalState(client, job: first)["state"]?.stringValue, "finished")
        let state = server.folder.appendingPathComponent("state")
        let jobFolder = state.appendingPathComponent("jobs/\(first)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: jobFolder.path), "the job has a folder before pruning")
        let blobs = try FileManager.default.subpathsOfDirectory(atPath: state.appendingPathComponent("blobs").path)
            .filter { $0.split(separator: "/").last?.count == 64 }
        XCTAssertEqual(blobs.count, 1, "one input blob stored")

        for bad: JSONValue in [.string("7d"), .int(-1)] {
            XCTAssertThrowsError(try client.request("prune", ["older_than": bad]), "older_than \(bad.compact) is refused")
        }
        XCTAssertThrowsError(try client.request("prune"), "older_than is required")

        let reply = try client.request("prune", ["older_than": .int(0)]).content
        XCTAssertEqual(reply["jobs"]?.intValue, 1, "the finished job is pruned: \(reply)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: jobFolder.path), "its folder is removed")
        XCTAssertThrowsError(try client.request("status", ["job": .string(first)]), "the job is gone from the store")
        let left = try FileManager.default.subpathsOfDirectory(atPath: state.appendingPathComponent("blobs").path)
            .filter { $0.split(separator: "/").last?.count == 64 }
        XCTAssertEqual(left, [], "its input blob, used by no other job, is removed")
        XCTAssertGreaterThan(reply["bytes"]?.intValue ?? 0, DaemonFixture.examplePNG.count - 1, "freed bytes counted")
        XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "the daemon keeps serving")
    }

    func testAJobPastTheTimeLimitIsStoppedAndFailsWithTimeout() throws {
        let server = try TestDaemon(label: "timeout") { $0.jobTimeLimit = 1 }
        defer { server.stop() }
        let client = try server.client()
        let parameters: [String: JSONValue] = ["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("1000"),
                                               "inner_steps": .string("0")]
        let submit: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                           "inputs": .object(["image": .int(0), "mask": .int(1)])]
        let job = try client.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
        let status = try waitForFinalState(client, job: job)
        XCTAssertEqual(status["state"]?.stringValue, "failed")
        XCTAssertEqual(status["error"]?["code"]?.stringValue, "timeout", "expected a timeout error, got \(status["error"]?.compact ?? "none")")
        XCTAssertTrue(status["error"]?["message"]?.stringValue?.contains("time limit of 1 s") ?? false)
        XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "the daemon keeps serving")
    }

    func testCancelStopsARunningJobAtAStepAndAQueuedJobAtOnce() throws {
        let server = try TestDaemon(label: "cancel")
        defer { server.stop() }
        let client = try server.client()
        var parameters: [String: JSONValue] = ["checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("1000"),
                                               "inner_steps": .string("0")]
        parameters["name"] = .string("long")
        let submit: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                           "inputs": .object(["image": .int(0), "mask": .int(1)])]
        let long = try client.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
        let queued = try client.request("submit", submit, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
        XCTAssertEqual(try client.request("cancel", ["job": .string(queued)]).content["state"], .string("cancelled"))
        // Wait until the long job is inside its sampler.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try client.request("status", ["job": .string(long)]).content["job"]?["progress"] == nil {
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertEqual(try client.request("cancel", ["job": .string(long)]).content["state"], .string("cancelling"))
        let status = try waitForFinalState(client, job: long)
        XCTAssertEqual(status["state"]?.stringValue, "cancelled")
        XCTAssertLessThan(status["progress"]?["step"]?.intValue ?? 0, 1000, "expected it to stop before the last step")
        XCTAssertThrowsError(try client.request("cancel", ["job": .string(long)])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .notCancellable)
        }
        XCTAssertThrowsError(try client.request("result", ["job": .string(long)])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .notFinished)
        }
    }

    func testAClientThatDisconnectsMidJobDoesNotStopTheDaemon() throws {
        let server = try TestDaemon(label: "gone")
        defer { server.stop() }
        var job = ""
        do {
            let client = try server.client()
            var parameters = Self.inpaintSettings.mapValues(JSONValue.string)
            parameters["checkpoint"] = .string(DaemonFixture.tinyModel)
            job = try client.request("submit", ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                                "inputs": .object(["image": .int(0), "mask": .int(1)])],
                                     frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
            // Ask for something and leave before the reply.
            try client.sendRaw(WireMessage(type: "status", content: .object(["job": .string(job)])).encoded(signer: server.connection.signer))
        }
        let other = try server.client()
        XCTAssertEqual(try other.request("ping").content["status"]?.stringValue, "ok")
        XCTAssertEqual(try waitForFinalState(other, job: job)["state"]?.stringValue, "finished")
    }

    func testModelCacheKeepsTheCheckpointAcrossJobsWithinTheBudget() throws {
        let server = try TestDaemon(label: "cache")
        defer { server.stop() }
        let client = try server.client()
        var parameters = Self.inpaintSettings.mapValues(JSONValue.string)
        parameters["checkpoint"] = .string(DaemonFixture.tinyModel)
        let events = try EventSubscriber(connection: server.connection, topics: [""])
        var cachedModel: [Bool] = []
        for prompt in ["a red ball", "a blue cube"] {
            parameters["prompt"] = .string(prompt)
            let job = try client.request("submit", ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                                    "inputs": .object(["image": .int(0), "mask": .int(1)])],
                                         frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask]).content["job"]!.stringValue!
            while let event = try events.next(timeout: 120), !(event.topic == job && event.type == "finished") {
                if event.topic == job, event.type == "node_finished", event.content["node"]?.stringValue == "model" {
                    cachedModel.append(event.content["cached"]?.boolValue ?? false)
                }
            }
        }
        XCTAssertEqual(cachedModel, [false, true], "expected the second job to reuse the loaded checkpoint")
    }

    func testAStoppedAndDroppedDaemonFreesItsJobStore() throws {
        weak var store: (any DaemonStore)?
        do {
            let server = try TestDaemon(label: "free")
            store = server.daemon.store
            XCTAssertEqual(try server.client().request("ping").content["status"]?.stringValue, "ok")
            server.stop()
        }
        // The request and worker threads let go of the daemon just after stop() returns.
        let deadline = Date().addingTimeInterval(10)
        while store != nil, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertNil(store, "expected the job store (and the worker that holds it) to be freed once the stopped daemon is dropped")
    }
}

/// Results gathered from concurrent clients.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var idList: [String] = [], failureList: [String] = []
    func add(id: String) { lock.withLock { idList.append(id) } }
    func add(failure: String) { lock.withLock { failureList.append(failure) } }
    var ids: [String] { lock.withLock { idList } }
    var failures: [String] { lock.withLock { failureList } }
}
