import Daemon
import Foundation
import Imaging
import Workflow
import XCTest

final class PreviewTests: XCTestCase {
    /// text-inpaint on the tiny model: 6 steps, only the first optimised
    /// (interval 8), previews every 2 steps.
    static let parameters: [String: JSONValue] = [
        "checkpoint": .string(DaemonFixture.tinyModel), "steps": .string("6"), "interval": .string("8"),
        "inner_steps": .string("1"), "prompt": .string("a red ball"), "seed": .string("5"), "name": .string("previewed"),
    ]

    static func submit(_ client: DaemonClient, preview: JSONValue?, parameters: [String: JSONValue] = parameters) throws -> String {
        var content: [String: JSONValue] = ["template": .string("text-inpaint"), "parameters": .object(parameters),
                                            "inputs": .object(["image": .int(0), "mask": .int(1)])]
        if let preview { content["preview"] = preview }
        let reply = try client.request("submit", content, frames: [DaemonFixture.examplePNG, DaemonFixture.exampleMask])
        return try XCTUnwrap(reply.content["job"]?.stringValue)
    }

    func testAJobAskingForPreviewsEveryTwoStepsReceivesSignedPNGFramesInOrder() throws {
        let server = try TestDaemon(label: "prev")
        defer { server.stop() }
        let client = try server.client()
        let events = try EventSubscriber(connection: server.connection, topics: [""])
        let job = try Self.submit(client, preview: .object(["every": .int(2), "max_side": .int(32)]))
        var received: [EventSubscriber.Event] = []
        while let event = try events.next(timeout: 120) {
            guard event.topic == job else { continue }
            received.append(event)
            if ["finished", "failed", "cancelled"].contains(event.type) { break }
        }
        XCTAssertEqual(received.last?.type, "finished", "expected the job to finish; events: \(received.map(\.type))")
        let previews = received.filter { $0.type == "preview" }
        // Step 1 is PILOT's one optimisation step; 2, 4 and 6 are every second step (6 the last).
        XCTAssertEqual(previews.compactMap { $0.content["step"]?.intValue }, [1, 2, 4, 6],
                       "expected previews of steps 1 (optimised), 2, 4 and 6")
        XCTAssertEqual(Set(previews.compactMap { $0.content["node"]?.stringValue }), ["pilot"])
        var lastSeq = 0
        for preview in previews {
            let seq = try XCTUnwrap(preview.content["seq"]?.intValue)
            XCTAssertGreaterThan(seq, lastSeq, "expected previews in sequence order")
            lastSeq = seq
            XCTAssertEqual(preview.message.frames.count, 1, "expected one binary frame, the PNG")
            let png = try XCTUnwrap(preview.message.frames.first)
            let image = try ImageFile.decode(png, source: "preview")
            XCTAssertEqual(image.width, preview.content["width"]?.intValue, "expected the PNG's width in the content")
            XCTAssertEqual(image.height, preview.content["height"]?.intValue)
            XCTAssertLessThanOrEqual(max(image.width, image.height), 32, "expected max_side 32 to bound the preview")
            XCTAssertEqual(preview.content["method"]?.stringValue, "latent2rgb")
            XCTAssertEqual(preview.content["total"]?.intValue, 6)
        }
        // The subscriber only returns events whose signature checks out; the
        // signature covers the frame: a changed byte is refused.
        let first = try XCTUnwrap(previews.first)
        var frames = first.message.encoded(signer: server.connection.eventSigner)
        XCTAssertNoThrow(try WireMessage.decode(frames[...], signer: server.connection.eventSigner))
        frames[frames.count - 1][40] ^= 1
        XCTAssertThrowsError(try WireMessage.decode(frames[...], signer: server.connection.eventSigner),
                             "expected a preview frame changed in transit to fail the signature")
        // The job records what it asked for.
        let status = try client.request("status", ["job": .string(job)]).content["job"]
        XCTAssertEqual(status?["preview"], .object(["every": .int(2), "method": .string("latent2rgb"), "max_side": .int(32)]))
    }

    func testAJobWithoutAPreviewFieldGetsNoPreviewsAndTaesdWithoutWeightsFallsBackWithANote() throws {
        let server = try TestDaemon(label: "prev2")
        defer { server.stop() }
        let client = try server.client()
        let events = try EventSubscriber(connection: server.connection, topics: [""])
        let plain = try Self.submit(client, preview: nil)
        let tiny = try Self.submit(client, preview: .object(["method": .string("taesd"), "every": .int(3)]))
        var previews: [String: [EventSubscriber.Event]] = [:]
        var ended = 0
        while ended < 2, let event = try events.next(timeout: 120) {
            if event.type == "preview" { previews[event.topic, default: []].append(event) }
            if ["finished", "failed", "cancelled"].contains(event.type) { ended += 1 }
        }
        XCTAssertNil(previews[plain], "expected no previews for a job that asked for none")
        let fallback = try XCTUnwrap(previews[tiny], "expected previews for the taesd job")
        XCTAssertEqual(fallback.compactMap { $0.content["step"]?.intValue }, [1, 3, 6])
        XCTAssertTrue(fallback.allSatisfy { $0.content["method"]?.stringValue == "latent2rgb" },
                      "expected latent2rgb when the models folder has no taesd/")
        XCTAssertTrue(fallback.first?.content["note"]?.stringValue?.contains("taesd") ?? false,
                      "expected a note naming the missing taesd folder, got \(fallback.first?.content["note"]?.compact ?? "none")")
    }

    func testABadPreviewFieldIsRefusedNamingTheField() throws {
        let server = try TestDaemon(label: "prev3")
        defer { server.stop() }
        let client = try server.client()
        let cases: [(JSONValue, String)] = [
            (.int(3), "'preview' must be an object"),
            (.object(["every": .int(0)]), "'preview.every' must be an integer in 1...1000"),
            (.object(["every": .string("2")]), "'preview.every' must be an integer"),
            (.object(["method": .string("vae")]), "'preview.method' must be one of latent2rgb, taesd"),
            (.object(["max_side": .int(100_000)]), "'preview.max_side' must be an integer in 16...1024"),
            (.object(["evry": .int(2)]), "unknown field 'evry'"),
        ]
        for (field, expected) in cases {
            XCTAssertThrowsError(try Self.submit(client, preview: field)) { error in
                let daemonError = error as? DaemonError
                XCTAssertEqual(daemonError?.code, .invalidRequest, "expected invalid_request for preview \(field.compact)")
                XCTAssertTrue(daemonError?.message.contains(expected) ?? false,
                              "expected '\(expected)' for preview \(field.compact), got \(daemonError?.message ?? "\(error)")")
            }
        }
        XCTAssertEqual(try client.request("list").content["jobs"]?.arrayValue?.count, 0, "expected no job made by a refused submit")
    }

    func testPilotWatchWritesTheJobsPreviews() throws {
        let folder = DaemonFixture.temporaryFolder("prevw")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state", isDirectory: true)
        let serve = try startServe(state: state, folder: folder)
        defer { serve.terminate(); serve.waitUntilExit() }
        let client = try DaemonClient(connectionFile: state.appendingPathComponent(ConnectionInfo.fileName), timeout: 60)
        // A long job keeps the previewed one queued until the watcher follows it.
        var long = Self.parameters
        long["steps"] = .string("1000")
        long["inner_steps"] = .string("0")
        let blocker = try Self.submit(client, preview: nil, parameters: long)
        let job = try Self.submit(client, preview: .object(["every": .int(2)]))

        let previews = folder.appendingPathComponent("previews", isDirectory: true)
        let watch = Process()
        watch.executableURL = DaemonFixture.pilotExecutable
        watch.arguments = ["watch", job, "--state", state.path, "--previews", previews.path]
        let pipe = Pipe()
        watch.standardOutput = FileHandle.nullDevice
        watch.standardError = pipe
        try watch.run()
        // Once it says it follows the job, no event of it can be missed.
        var said = ""
        while !said.contains("following job"), case let chunk = pipe.fileHandleForReading.availableData, !chunk.isEmpty {
            said += String(decoding: chunk, as: UTF8.self)
        }
        XCTAssertTrue(said.contains("following job \(job) (queued)"), "expected the watcher to follow the queued job, said: \(said)")
        _ = try client.request("cancel", ["job": .string(blocker)])
        let rest = pipe.fileHandleForReading.readDataToEndOfFile()
        watch.waitUntilExit()
        XCTAssertEqual(watch.terminationStatus, 0, "expected pilot watch to exit 0: \(said)\(String(decoding: rest, as: UTF8.self))")
        let files = try FileManager.default.contentsOfDirectory(atPath: previews.path).sorted()
        XCTAssertEqual(files.map { String($0.drop { $0 != "-" }.dropFirst()) },
                       ["pilot-step0001.png", "pilot-step0002.png", "pilot-step0004.png", "pilot-step0006.png"],
                       "expected SEQ-NODE-stepNNNN.png for steps 1, 2, 4, 6; found \(files)")
        for file in files {
            XCTAssertNoThrow(try PNG.read(path: previews.appendingPathComponent(file).path), "expected \(file) to be a PNG")
        }
    }
}
