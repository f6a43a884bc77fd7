import CZeroMQ
import Daemon
import Foundation
import Workflow
import XCTest

/// Bad input of every kind gets the documented error reply, and the daemon keeps serving.
final class ProtocolTests: XCTestCase {
    func testEveryKindOfBadMessageGetsItsErrorReplyAndTheDaemonKeepsServing() throws {
        let server = try TestDaemon(label: "bad") { $0.maxMessageBytes = 1 << 20 }
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        let signer = server.connection.signer
        let protocolFrame = Data(pilotProtocolID.utf8)

        func signed(_ header: Data, _ content: Data, _ extra: [Data] = []) -> [Data] {
            [protocolFrame, Data(signer.signature(of: [header, content] + extra).utf8), header, content] + extra
        }
        func header(_ type: String, time: String = WireTime.format(Date())) -> Data {
            JSONValue.object(["id": .string(UUID().uuidString), "type": .string(type), "time": .string(time)]).data
        }
        let replay = WireMessage(type: "ping").encoded(signer: signer)
        let cases: [(String, [Data], ErrorCode)] = [
            ("unsigned", [protocolFrame, Data(), header("ping"), Data("{}".utf8)], .unsigned),
            ("wrongly signed", WireMessage(type: "ping").encoded(signer: MessageSigner(key: Data("other".utf8))), .badSignature),
            ("replayed (first)", replay, .replayed),  // first use succeeds below; the second is the replay
            ("truncated", Array(WireMessage(type: "ping").encoded(signer: signer).prefix(3)), .malformedMessage),
            ("non-JSON content", signed(header("ping"), Data("{oops".utf8)), .invalidJSON),
            ("non-JSON header", signed(Data("[1,".utf8), Data("{}".utf8)), .invalidJSON),
            ("unknown type", WireMessage(type: "launch_missiles").encoded(signer: signer), .unknownType),
            ("stale", signed(header("ping", time: WireTime.format(Date().addingTimeInterval(-3600))), Data("{}".utf8)), .stale),
            ("oversized", WireMessage(type: "ping", frames: [Data(count: (1 << 20) + 1)]).encoded(signer: signer), .tooLarge),
            ("invalid graph", WireMessage(type: "submit", content: .object(["workflow": .string(
                "version: 1\nnodes:\n  a: {type: NoSuchNode}\n")])).encoded(signer: signer), .invalidWorkflow),
            ("wrong protocol", [Data("other/2".utf8)] + WireMessage(type: "ping").encoded(signer: signer).dropFirst(), .unsupportedProtocol),
        ]
        for (label, frames, code) in cases {
            if label == "replayed (first)" {
                try client.sendRaw(frames)
                let first = try client.awaitReply(to: nil)
                XCTAssertEqual(first.content["status"]?.stringValue, "ok", "expected the first use of a message to be served")
            }
            try client.sendRaw(frames)
            let reply = try client.awaitReply(to: nil)
            XCTAssertEqual(reply.content["status"]?.stringValue, "error", "\(label): expected an error reply, got \(reply.content.compact)")
            XCTAssertEqual(reply.content["error"]?["code"]?.stringValue, code.rawValue,
                           "\(label): expected error code \(code.rawValue), got \(reply.content.compact)")
            // Still serving.
            XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok", "\(label): expected ping to work after it")
        }
        let refused = server.daemon.refusals
        XCTAssertEqual(refused.values.reduce(0, +), cases.count, "expected every refusal counted, got \(refused)")
    }

    /// Nothing of an unauthenticated message is parsed or echoed, and a
    /// message over the frame or byte bounds is refused without being read.
    func testUnauthenticatedAndOversizedMessagesCostNothingAndEchoNothing() throws {
        let server = try TestDaemon(label: "flood") { $0.maxMessageBytes = 1 << 20 }
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        let protocolFrame = Data(pilotProtocolID.utf8)
        let longID = String(repeating: "x", count: 900_000)
        let bigHeader = JSONValue.object(["id": .string(longID), "type": .string("ping"), "time": .string(WireTime.format(Date()))]).data
        let cases: [(String, [Data], ErrorCode)] = [
            ("bad signature, 900 kB header", [protocolFrame, Data("00".utf8), bigHeader, Data("{}".utf8)], .badSignature),
            ("unsigned, 900 kB header", [protocolFrame, Data(), bigHeader, Data("{}".utf8)], .unsigned),
            ("10,000 frames", [protocolFrame, Data("00".utf8)] + [Data](repeating: Data("{}".utf8), count: 10_000), .tooLarge),
            ("8 MiB in frames", [protocolFrame, Data("00".utf8), Data("{}".utf8), Data("{}".utf8)]
                + [Data](repeating: Data(count: 1 << 20), count: 8), .tooLarge),
        ]
        for (label, frames, code) in cases {
            try client.sendRaw(frames)
            let reply = try client.awaitReply(to: nil)
            XCTAssertEqual(reply.content["error"]?["code"]?.stringValue, code.rawValue, "\(label): expected \(code.rawValue), got \(reply.content.compact.prefix(200))")
            XCTAssertNil(reply.header.parent, "\(label): nothing of an unauthenticated message may be echoed")
            let start = Date()
            XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok")
            XCTAssertLessThan(Date().timeIntervalSince(start), 1, "\(label): a ping right after must be answered at once")
        }
        // An authenticated request with a long id gets at most 128 characters of it back.
        let signed = WireMessage(header: MessageHeader(id: String(repeating: "y", count: 5000), type: "ping", time: WireTime.format(Date())))
        try client.sendRaw(signed.encoded(signer: server.connection.signer))
        XCTAssertEqual(try client.awaitReply(to: nil).header.parent?.count, 128, "echoed ids are bounded")
    }

    /// Subscriptions of 60 KB from peers without the
    /// key: dropped unread, and a legitimate ping is still answered at once.
    func testASubscriptionFloodDoesNotDelayRequests() throws {
        let server = try TestDaemon(label: "subs")
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        var floods: [ZMQSocket] = []
        for _ in 0..<3 {
            let socket = try ZMQSocket(.sub)
            try socket.connect(server.connection.events)
            let big = String(repeating: "z", count: 60_000)
            // (libzmq's own subscription trie makes many more slow to set up on the client side.)
            for i in 0..<40 { try socket.setOption(ZMQ_SUBSCRIBE, "\(i)" + big) }
            floods.append(socket)
        }
        Thread.sleep(forTimeInterval: 0.2)
        for _ in 0..<5 {
            let start = Date()
            XCTAssertEqual(try client.request("ping").content["status"]?.stringValue, "ok")
            XCTAssertLessThan(Date().timeIntervalSince(start), 0.1, "a ping during a subscription flood must be answered within 100 ms")
        }
        // A real subscriber still gets its welcome.
        XCTAssertNoThrow(try EventSubscriber(connection: server.connection, topics: ["job"], timeout: 5))
        floods.forEach { $0.close() }
    }

    func testSubmitBoundsKeysPrioritiesParametersAndDiagnostics() throws {
        let server = try TestDaemon(label: "bounds")
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        let workflow = JSONValue.string("version: 1\nnodes:\n  a: {type: Constant, params: {value: 1}}\noutputs:\n  r: a.value\n")
        let refusals: [(String, [String: JSONValue], String)] = [
            ("long key", ["workflow": workflow, "idempotency_key": .string(String(repeating: "k", count: 5000))], "at most 128"),
            ("huge priority", ["workflow": workflow, "priority": .int(Int.max)], "'priority' must be in -1000...1000"),
            ("many parameters", ["workflow": workflow, "parameters": .object(Dictionary(uniqueKeysWithValues: (0..<300).map { ("p\($0)", JSONValue.int($0)) }))],
             "at most 256"),
        ]
        for (label, content, expected) in refusals {
            XCTAssertThrowsError(try client.request("submit", content)) { error in
                XCTAssertEqual((error as? DaemonError)?.code, .invalidRequest, "\(label): \(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(label): expected '\(expected)' in \(error)")
            }
        }
        // 400 unknown node types: the reply carries 50 diagnostics and says how many more.
        let many = "version: 1\nnodes:\n" + (0..<400).map { "  n\($0): {type: NoSuchNode\($0)}\n" }.joined()
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(many)])) { error in
            let e = error as? DaemonError
            XCTAssertEqual(e?.code, .invalidWorkflow)
            XCTAssertEqual(e?.details?.arrayValue?.count, 50, "at most 50 diagnostics travel in a reply")
            XCTAssertTrue("\(error)".contains("and 350 more"), "the reply must say how many were left out: \(String(describing: e?.message.suffix(80)))")
        }
    }

    /// A message captured before a clean restart is refused after it, even
    /// one dated ahead of the daemon's clock: an issued client's key
    /// outlives restarts (the owner's is renewed at a clean stop), so its
    /// signatures are saved at the stop and remembered at the start.
    func testAClientMessageCapturedBeforeARestartIsRefusedAfterIt() throws {
        let folder = DaemonFixture.temporaryFolder("replay")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        func start() throws -> TestDaemon {
            try TestDaemon(label: "replay") { $0.stateDirectory = state }
        }
        var server = try start()
        let issued = try server.client(timeout: 10).request("client_add", ["name": .string("alice")]).content["connection"]!
        let alice = try ConnectionInfo.read(json: issued, source: "client_add reply")
        let now = WireMessage(type: "ping").encoded(signer: alice.signer)
        var header = WireMessage(type: "ping").header
        header.time = WireTime.format(Date().addingTimeInterval(20))
        let ahead = WireMessage(header: header, content: .object([:])).encoded(signer: alice.signer)
        func aliceClient() throws -> DaemonClient {
            var info = alice
            (info.requests, info.events) = (server.connection.requests, server.connection.events)
            return try DaemonClient(connection: info, timeout: 10)
        }
        var client = try aliceClient()
        for frames in [now, ahead] {
            try client.sendRaw(frames)
            XCTAssertEqual(try client.awaitReply(to: nil).content["status"]?.stringValue, "ok", "expected the first use served")
        }
        server.stop()
        server = try start()
        defer { server.stop() }
        client = try aliceClient()
        for (label, frames, code) in [("dated before the start", now, ErrorCode.stale), ("dated ahead, saved at the stop", ahead, .replayed)] {
            try client.sendRaw(frames)
            let reply = try client.awaitReply(to: nil)
            XCTAssertEqual(reply.content["error"]?["code"]?.stringValue, code.rawValue, "\(label): expected \(code.rawValue), got \(reply.content.compact)")
        }
    }

    /// A 65 KB PNG once decoded into 1.5 GB on the request thread: the
    /// pixels all input frames declare are summed from their headers first.
    func testInputImagesDeclaringTooManyPixelsAreRefusedBeforeAnyIsDecoded() throws {
        let server = try TestDaemon(label: "pixels") { $0.maxSubmitPixels = 128 * 128 + 100 }
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        let copy: [String: JSONValue] = ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])]
        // One 128×128 image fits.
        _ = try client.request("submit", copy, frames: [DaemonFixture.examplePNG])
        // A header declaring 100,000 × 100,000 behind 33 bytes: refused, not decoded.
        var forged = Data(DaemonFixture.examplePNG.prefix(33))
        forged.replaceSubrange(16..<24, with: [0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0])
        for (label, frames) in [("forged header", [forged]), ("two real images", [DaemonFixture.examplePNG, DaemonFixture.examplePNG])] {
            var content = copy
            if frames.count == 2 { content["inputs"] = .object(["image": .int(0), "name": .int(1)]) }
            XCTAssertThrowsError(try client.request("submit", content, frames: frames), label) { error in
                XCTAssertEqual((error as? DaemonError)?.code, .tooLarge, "\(label): expected too_large, got \(error)")
                XCTAssertTrue("\(error)".contains("over the limit of 16484 per submit"), "\(label): expected the limit named: \(error)")
            }
        }
        XCTAssertEqual(try client.request("list").content["jobs"]?.arrayValue?.count, 1, "expected only the first submit stored")
    }

    /// A job's Save* nodes write at most `maxOutputPixels` in all.
    func testAJobWritingPastItsOutputPixelsFailsWithTooLargeAndKeepsNoOutput() throws {
        let server = try TestDaemon(label: "outpx") { $0.maxOutputPixels = 128 * 128 - 1 }
        defer { server.stop() }
        let client = try server.client(timeout: 30)
        let job = try client.request("submit", ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])],
                                     frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        let status = try waitForFinalState(client, job: job)
        XCTAssertEqual(status["state"]?.stringValue, "failed", "expected the job failed: \(status.compact)")
        XCTAssertEqual(status["error"]?["code"]?.stringValue, "too_large", "expected too_large: \(status.compact)")
        XCTAssertTrue(status["error"]?["message"]?.stringValue?.contains("output limit of 16383 pixels") == true,
                      "expected the limit named: \(status.compact)")
        XCTAssertNil(status["outputs"]?.arrayValue?.first, "a failed job has no outputs")
    }

    /// Past `diskQuota`, submits are refused with the figures; a prune makes room.
    func testSubmitsPastTheStateFolderQuotaAreRefusedWithTheFigures() throws {
        let server = try TestDaemon(label: "quota") { $0.diskQuota = 1 }
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(DaemonFixture.copyWorkflow), "inputs": .object(["image": .int(0)])],
                                                frames: [DaemonFixture.examplePNG])) { error in
            let e = error as? DaemonError
            XCTAssertEqual(e?.code, .quotaExceeded, "expected quota_exceeded, got \(error)")
            XCTAssertEqual(e?.details?["quota"]?.intValue, 1, "expected the quota in the details: \(error)")
            XCTAssertEqual(e?.details?["incoming"]?.intValue, 2 * DaemonFixture.examplePNG.count,
                           "expected the submit counted twice (blob and job copy): \(error)")
            XCTAssertGreaterThan(e?.details?["used"]?.intValue ?? 0, 0, "expected the store's own size counted: \(error)")
        }
        XCTAssertEqual(try client.request("list").content["jobs"]?.arrayValue?.count, 0, "expected nothing stored")
    }

    func testInvalidWorkflowErrorCarriesLineColumnNodeAndPort() throws {
        let server = try TestDaemon(label: "inv")
        defer { server.stop() }
        let text = "version: 1\nnodes:\n  load: {type: LoadImage, params: {path: 3, bogus: 1}}\n"
        XCTAssertThrowsError(try server.client().request("submit", ["workflow": .string(text)])) { error in
            guard let error = error as? DaemonError else { return XCTFail("expected a DaemonError, got \(error)") }
            XCTAssertEqual(error.code, .invalidWorkflow)
            let details = error.details?.arrayValue ?? []
            XCTAssertTrue(details.contains { $0["node"]?.stringValue == "load" && $0["port"]?.stringValue == "bogus" && $0["line"]?.intValue == 3 },
                          "expected a diagnostic for node 'load' port 'bogus' on line 3, got \(details.map(\.compact))")
        }
    }

    func testQueriesAnswerTemplatesNodesModelsAndUnknownJobs() throws {
        let server = try TestDaemon(label: "q")
        defer { server.stop() }
        let client = try server.client()
        let templates = try client.request("templates").content["templates"]?.arrayValue ?? []
        XCTAssertTrue(templates.contains { $0["name"]?.stringValue == "text-inpaint" }, "expected text-inpaint among \(templates.count) templates")
        let one = try client.request("template", ["name": .string("text-inpaint")]).content["template"]
        XCTAssertTrue(one?["text"]?.stringValue?.contains("PILOTOptimize") ?? false, "expected the template's YAML text")
        XCTAssertThrowsError(try client.request("template", ["name": .string("../etc/passwd")])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .unknownTemplate)
        }
        let nodes = try client.request("nodes").content["catalog"]?["nodes"]?.arrayValue ?? []
        XCTAssertTrue(nodes.contains { $0["type"]?.stringValue == "PILOTOptimize" }, "expected the node catalog")
        server.daemon.catalog.hashAll()
        let models = try client.request("models").content["models"]?.arrayValue ?? []
        let tiny = try XCTUnwrap(models.first { $0["name"]?.stringValue == "tiny" }, "expected the tiny model listed")
        XCTAssertEqual(tiny["kind"]?.stringValue, "diffusers")
        XCTAssertEqual(tiny["sha256"]?.stringValue, try ModelCatalog.hash(URL(fileURLWithPath: DaemonFixture.tinyModel)))
        for type in ["status", "cancel", "result"] {
            XCTAssertThrowsError(try client.request(type, ["job": .string("nope")])) { error in
                XCTAssertEqual((error as? DaemonError)?.code, .notFound, "\(type): expected not_found")
            }
        }
        XCTAssertThrowsError(try client.request("status", [:])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidRequest, "expected invalid_request without a job id")
        }
    }

    func testObjectInputsMustComeAsFramesAndPathsOutsideAllowedFoldersAreRefused() throws {
        let server = try TestDaemon(label: "path")
        defer { server.stop() }
        let client = try server.client()
        let leaky = DaemonFixture.copyWorkflow
        let job = try client.request("submit", ["workflow": .string(leaky), "parameters": .object(["image": .string("/etc/passwd")])])
            .content["job"]!.stringValue!
        let status = try waitForFinalState(client, job: job)
        XCTAssertEqual(status["state"]?.stringValue, "failed")
        XCTAssertEqual(status["error"]?["code"]?.stringValue, "path_not_allowed", "expected path_not_allowed, got \(status.compact)")
        XCTAssertEqual(status["error"]?["details"]?["node"]?.stringValue, "load")

        let typed = "version: 1\ninputs:\n  picture: {type: Image}\nnodes:\n  save: {type: SaveImage, inputs: {image: $picture}}\n"
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(typed), "parameters": .object(["picture": .string("/etc/hosts")])])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidParameters, "expected an Image given as text to be refused")
        }
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(typed), "inputs": .object(["picture": .int(0)])],
                                                frames: [Data("not a png".utf8)])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidParameters, "expected a broken PNG frame to be refused at submit")
        }
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(typed), "inputs": .object(["picture": .int(3)])])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidRequest, "expected a missing frame to be refused")
        }
    }

    func testParametersBindAsTheirJSONTypesAndStringsAsText() throws {
        let server = try TestDaemon(label: "typed")
        defer { server.stop() }
        let client = try server.client()
        let workflow = """
            version: 1
            inputs:
              width: {type: Int, default: 8, min: 1, max: 64}
              scale: {type: Float, default: 1}
              flip:  {type: Bool, default: false}
            nodes:
              shape: {type: LoadMask, params: {path: "\(DaemonFixture.examples.path)/mask.png", invert: $flip}}
              grown: {type: GrowMask, inputs: {mask: shape.mask}, params: {pixels: $width}}
              soft:  {type: FeatherMask, inputs: {mask: grown.mask}, params: {sigma: $scale}}
            outputs: {mask: soft.mask}
            """
        func submit(_ parameters: [String: JSONValue]) throws -> String? {
            try client.request("submit", ["workflow": .string(workflow), "parameters": .object(parameters)]).content["job"]?.stringValue
        }
        XCTAssertNotNil(try submit(["width": .int(16), "scale": .int(2), "flip": .bool(true)]),
                        "expected an integer for Int and Float inputs and a boolean for Bool to bind")
        XCTAssertNotNil(try submit(["width": .string("16"), "scale": .string("0.5"), "flip": .string("yes")]),
                        "expected strings to be read as the inputs' types, as pilot run --set reads them")
        for (name, value, found) in [("width", JSONValue.float(16.5), "Float 16.5"), ("flip", .int(1), "Int 1"),
                                     ("width", .int(65), "65")] {
            XCTAssertThrowsError(try submit([name: value]), "\(name) = \(value.compact) must be refused") { error in
                let daemonError = error as? DaemonError
                XCTAssertEqual(daemonError?.code, .invalidParameters, "expected invalid_parameters for \(name) = \(value.compact)")
                XCTAssertTrue("\(daemonError?.message ?? "")".contains(name) && "\(daemonError?.message ?? "")".contains(found),
                              "expected the error to name the parameter and what was found: \(error)")
            }
        }
    }

    func testCurveIsRequiredOffLoopbackAndWorksWhenOn() throws {
        XCTAssertThrowsError(try TestDaemon(label: "nc") {
            $0.requestEndpoint = "tcp://0.0.0.0:*"
            $0.curve = false
        }) { error in
            XCTAssertTrue("\(error)".contains("CURVE"), "expected a refusal naming CURVE, got \(error)")
        }
        let server = try TestDaemon(label: "curve") { $0.curve = true }
        defer { server.stop() }
        XCTAssertNotNil(server.connection.curveServerKey, "expected the connection file to carry the server key")
        XCTAssertEqual(try server.client().request("ping").content["status"]?.stringValue, "ok")
        var plain = server.connection
        plain.curveServerKey = nil
        let client = try DaemonClient(connection: plain, timeout: 1)
        XCTAssertThrowsError(try client.request("ping"), "expected an unencrypted client to get no reply")
    }
}
