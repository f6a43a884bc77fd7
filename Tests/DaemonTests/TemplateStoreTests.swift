import Daemon
import Foundation
import Imaging
import Workflow
import XCTest

/// Templates saved over the wire: validated, versioned, shadowing files
/// visibly, and recorded per job.
final class TemplateStoreTests: XCTestCase {
    /// The copy workflow as a template whose output is named by `name`'s default.
    private func copyTemplate(_ name: String) -> String {
        DaemonFixture.copyWorkflow.replacingOccurrences(of: "default: copy}", with: "default: \(name)}")
    }

    func testSaveListSubmitUpdateHistoryAndAJobKeepsTheVersionItRan() throws {
        let server = try TestDaemon(label: "tpl")
        defer { server.stop() }
        let client = try server.client()
        let saved = try client.request("template_save", ["name": .string("my-copy"), "text": .string(copyTemplate("first"))])
            .content["template"]
        XCTAssertEqual(saved?["version"]?.intValue, 1)
        let listed = try client.request("templates").content["templates"]?.arrayValue ?? []
        let entry = listed.first { $0["name"]?.stringValue == "my-copy" }
        XCTAssertEqual(entry?["source"]?.stringValue, "saved", "expected the saved template listed: \(listed.map(\.compact))")
        XCTAssertEqual(entry?["inputs"]?.arrayValue?.count, 2, "expected its typed inputs")

        let submit: [String: JSONValue] = ["template": .string("my-copy"), "inputs": .object(["image": .int(0)])]
        let first = try client.request("submit", submit, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        let firstStatus = try waitForFinalState(client, job: first)
        XCTAssertEqual(firstStatus["outputs"]?.arrayValue?.first?["name"]?.stringValue, "first.png", "expected version 1 to run")

        _ = try client.request("template_save", ["name": .string("my-copy"), "text": .string(copyTemplate("second"))])
        let history = try client.request("template_history", ["name": .string("my-copy")]).content["versions"]?.arrayValue ?? []
        XCTAssertEqual(history.compactMap { $0["version"]?.intValue }, [1, 2], "expected two versions")
        XCTAssertEqual(history.first?["client"]?.stringValue, "owner", "expected the saving client recorded")
        let second = try client.request("submit", submit, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
        XCTAssertEqual(try waitForFinalState(client, job: second)["outputs"]?.arrayValue?.first?["name"]?.stringValue, "second.png")

        let old = try client.request("status", ["job": .string(first)]).content["job"]
        XCTAssertEqual(old?["template_version"]?.intValue, 1, "a job run before the update still reports version 1")
        XCTAssertEqual(old?["template_sha256"]?.stringValue, history.first?["sha256"]?.stringValue)
        // The image says which template version made it.
        let result = try client.request("result", ["job": .string(first)])
        let png = try PNG.decode(try XCTUnwrap(result.frames.first), source: "result")
        XCTAssertEqual(png.text(forKey: "pilot:template"), "my-copy")
        XCTAssertEqual(png.text(forKey: "pilot:template-version"), "1", "expected the version recorded in the PNG")
        XCTAssertEqual(png.text(forKey: "pilot:template-sha256"), history.first?["sha256"]?.stringValue)
        XCTAssertEqual(png.text(forKey: "pilot:job"), first)
        let shown = try client.request("template", ["name": .string("my-copy"), "version": .int(1)]).content["template"]
        XCTAssertEqual(shown?["text"]?.stringValue, copyTemplate("first"), "expected version 1's text")
    }

    func testInvalidTemplatesBuiltInsAndOthersTemplatesAreRefused() throws {
        let server = try TestDaemon(label: "tplbad")
        defer { server.stop() }
        let client = try server.client()
        XCTAssertThrowsError(try client.request("template_save", ["name": .string("broken"),
                                                                  "text": .string("version: 1\nnodes:\n  a: {type: NoSuchNode}\n")])) { error in
            let e = error as? DaemonError
            XCTAssertEqual(e?.code, .invalidWorkflow, "expected invalid_workflow, got \(error)")
            XCTAssertEqual(e?.details?.arrayValue?.first?["line"]?.intValue, 3, "expected the problem's line in the details: \(error)")
        }
        XCTAssertThrowsError(try client.request("template", ["name": .string("broken")]), "an invalid template is not saved")
        XCTAssertThrowsError(try client.request("template_delete", ["name": .string("text-inpaint")])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .forbidden, "expected a built-in's delete refused, got \(error)")
        }
        // A saved template shadows the built-in of its name, visibly; deleting it brings the file back.
        _ = try client.request("template_save", ["name": .string("text-inpaint"), "text": .string(copyTemplate("mine"))])
        let listed = try client.request("templates").content["templates"]?.arrayValue ?? []
        let entry = listed.first { $0["name"]?.stringValue == "text-inpaint" }
        XCTAssertEqual(entry?["shadows_file"], .bool(true), "expected the shadowing said: \(entry?.compact ?? "nil")")
        let deleted = try client.request("template_delete", ["name": .string("text-inpaint")]).content
        XCTAssertEqual(deleted["file_remains"], .bool(true))
        let back = try client.request("templates").content["templates"]?.arrayValue?.first { $0["name"]?.stringValue == "text-inpaint" }
        XCTAssertEqual(back?["source"]?.stringValue, "file", "expected the built-in back")
        XCTAssertEqual(try client.request("template_history", ["name": .string("text-inpaint")]).content["versions"]?.arrayValue?.first?["deleted"] != nil,
                       true, "expected the deleted version kept in the history")
    }

    func testTheCommandLineSavesShowsAndListsVersions() throws {
        let server = try TestDaemon(label: "tplcli")
        defer { server.stop() }
        let connection = server.daemon.configuration.stateDirectory.appendingPathComponent(ConnectionInfo.fileName).path
        let file = server.folder.appendingPathComponent("t.yaml")
        for name in ["one", "two"] {
            try copyTemplate(name).write(to: file, atomically: true, encoding: .utf8)
            let saved = try runPilot(["templates", "save", "cli-copy", file.path, "--connection", connection])
            XCTAssertEqual(saved.status, 0, "expected `pilot templates save` to succeed: \(saved.stderr)")
        }
        let history = try runPilot(["templates", "history", "cli-copy", "--connection", connection])
        XCTAssertEqual(history.stderr.split(separator: "\n").count, 2, "expected two versions listed: \(history.stderr)")
        let shown = try runPilot(["templates", "show", "cli-copy@1", "--connection", connection])
        XCTAssertEqual(shown.stderr, copyTemplate("one"), "expected version 1's text")
        let invalid = try runPilot(["templates", "save", "bad", "/nonexistent.yaml", "--connection", connection])
        XCTAssertEqual(invalid.status, 1, "expected a missing file refused: \(invalid.stderr)")
    }

    /// A template resizing its Image input to `side` × `side`.
    private func shrinkTemplate(_ side: Int) -> String {
        """
        version: 1
        inputs:
          image: {type: Image}
        nodes:
          size: {type: ResizeImage, inputs: {image: $image}, params: {width: \(side), height: \(side)}}
        outputs:
          image: size.image
        """
    }

    func testSavedTemplatesNestAsNodesAndAJobRecordsTheVersionsItsNodesRan() throws {
        let server = try TestDaemon(label: "tplnest")
        defer { server.stop() }
        let client = try server.client()
        _ = try client.request("template_save", ["name": .string("shrink"), "text": .string(shrinkTemplate(32))])
        let workflow = """
            version: 1
            inputs:
              image: {type: Path}
            nodes:
              load: {type: LoadImage, params: {path: $image}}
              small: {type: "template:shrink", inputs: {image: load.image}}
              save: {type: SaveImage, inputs: {image: small.image}, params: {name: nested}}
            outputs:
              image: small.image
            """
        let submit: [String: JSONValue] = ["workflow": .string(workflow), "inputs": .object(["image": .int(0)])]
        var sides: [Int] = []
        for version in [1, 2] {
            if version == 2 {
                _ = try client.request("template_save", ["name": .string("shrink"), "text": .string(shrinkTemplate(48))])
            }
            let job = try client.request("submit", submit, frames: [DaemonFixture.examplePNG]).content["job"]!.stringValue!
            let status = try waitForFinalState(client, job: job)
            XCTAssertEqual(status["state"]?.stringValue, "finished", "expected the nested workflow to run: \(status.compact)")
            let nested = status["nested_templates"]?.arrayValue ?? []
            XCTAssertEqual(nested.map { $0["name"]?.stringValue }, ["shrink"], "expected the nested template in status: \(status.compact)")
            XCTAssertEqual(nested.first?["version"]?.intValue, version, "expected the version the node ran")
            let png = try PNG.decode(try XCTUnwrap(try client.request("result", ["job": .string(job)]).frames.first), source: "result")
            XCTAssertTrue(png.text(forKey: "pilot:nested-templates")?.contains("\"version\":\(version)") == true,
                          "expected the PNG to record version \(version): \(png.text(forKey: "pilot:nested-templates") ?? "none")")
            sides.append(png.image.width)
        }
        XCTAssertEqual(sides, [32, 48], "expected each job to run the version saved when it was submitted")

        // A template may not hold itself, directly or through another.
        let selfish = shrinkTemplate(16).replacingOccurrences(of: "{type: ResizeImage, inputs: {image: $image}, params: {width: 16, height: 16}}",
                                                               with: "{type: \"template:loop\", inputs: {image: $image}}")
        XCTAssertThrowsError(try client.request("template_save", ["name": .string("loop"), "text": .string(selfish)])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidWorkflow, "expected the cycle refused, got \(error)")
            XCTAssertTrue("\(error)".contains("template cycle: loop → loop"), "\(error)")
        }
        // A template node has only its template's inputs as ports.
        let bad = workflow.replacingOccurrences(of: "inputs: {image: load.image}", with: "inputs: {image: load.image}, params: {width: 3}")
        XCTAssertThrowsError(try client.request("submit", ["workflow": .string(bad), "inputs": .object(["image": .int(0)])],
                                                frames: [DaemonFixture.examplePNG])) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidWorkflow, "\(error)")
        }
    }

    func testAJobKeepsTheTemplateTextsItWasValidatedWith() throws {
        let snapshot = TemplateSnapshot([TemplateText(name: "shrink", version: 3, file: "template shrink", text: shrinkTemplate(32))])
        let restored = try XCTUnwrap(TemplateSnapshot(json: snapshot.json))
        XCTAssertEqual(restored.texts, snapshot.texts)
        XCTAssertEqual(try restored.template(named: "shrink", version: nil)?.version, 3)
        XCTAssertNil(try restored.template(named: "shrink", version: 2), "expected only the snapshot's version")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-snap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try JobStore(path: folder.appendingPathComponent("jobs.sqlite").path)
        guard case let .inserted(job) = try store.insert(id: "j", idempotencyKey: nil, priority: 0, template: nil, templateFile: nil,
                                                         workflow: "version: 1", parameters: .object([:]), inputs: .object([:]),
                                                         client: nil, nestedTemplates: snapshot.json) else {
            return XCTFail("expected the job inserted")
        }
        XCTAssertEqual(try store.job("j")?.nestedTemplates, snapshot.json, "expected the texts stored with the job")
        XCTAssertEqual(job.json["nested_templates"]?.arrayValue?.first?["text"], nil, "status names templates, not their texts")
    }

    func testTheCommandLineKeepsVersionsInALocalFolderWithoutADaemon() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-tplfolder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("input.yaml")
        for side in [32, 48] {
            try shrinkTemplate(side).write(to: file, atomically: true, encoding: .utf8)
            let saved = try runPilot(["templates", "save", "shrink", file.path, "--folder", folder.path])
            XCTAssertEqual(saved.status, 0, "expected a local save to succeed: \(saved.stderr)")
        }
        let history = try runPilot(["templates", "history", "shrink", "--folder", folder.path])
        XCTAssertEqual(history.stderr.split(separator: "\n").map { $0.prefix(1) }, ["1", "2"], "expected two versions: \(history.stderr)")
        XCTAssertEqual(try runPilot(["templates", "show", "shrink@1", "--folder", folder.path]).stderr, shrinkTemplate(32))
        XCTAssertEqual(try runPilot(["templates", "show", "shrink", "--folder", folder.path]).stderr, shrinkTemplate(48))
        // A template naming itself is refused, with the place and nothing written.
        try shrinkTemplate(16).replacingOccurrences(of: "type: ResizeImage", with: "type: \"template:loop\"")
            .write(to: file, atomically: true, encoding: .utf8)
        let loop = try runPilot(["templates", "save", "loop", file.path, "--folder", folder.path])
        XCTAssertEqual(loop.status, 1, "expected the cycle refused: \(loop.stderr)")
        XCTAssertTrue(loop.stderr.contains("template cycle: loop → loop"), loop.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("loop.yaml").path))
        let removed = try runPilot(["templates", "rm", "shrink", "--folder", folder.path])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertEqual(try runPilot(["templates", "show", "shrink", "--folder", folder.path]).status, 1, "expected the file gone")
        XCTAssertEqual(try runPilot(["templates", "show", "shrink@2", "--folder", folder.path]).status, 0, "expected its history kept")
    }
}
