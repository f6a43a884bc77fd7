import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

/// Templates used as nodes (`type: template:NAME`): expansion, equality
/// with the flat workflow, the cache across the boundary, and errors that
/// name both the outer node and the place inside the template.
final class TemplateNodeTests: XCTestCase {
    /// A folder with `files` (name → YAML) in it.
    private func folder(_ files: [String: String]) throws -> URL {
        let folder = Fixture.temporaryFolder("template-nodes")
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return folder
    }

    private func problems(_ file: URL) -> [Diagnostic] {
        do {
            _ = try WorkflowRunner().validate(file)
            return []
        } catch {
            return error.diagnostics
        }
    }

    func testNestedTemplatesEqualTheFlatWorkflowPixelForPixelAndHitItsCache() throws {
        var settings = Fixture.quickSettings("lora-inpaint")
        settings["lora"] = Fixture.tinyAdapters["lora"]
        let runner = WorkflowRunner()
        let flatOut = Fixture.temporaryFolder("flat"), nestedOut = Fixture.temporaryFolder("nested")
        let flatURL = Fixture.template("lora-inpaint"), nestedURL = Fixture.template("nested-inpaint")
        let flat = try runner.run(runner.validate(flatURL), file: flatURL, set: settings, outputDirectory: flatOut)

        let nestedWorkflow = try runner.validate(nestedURL)
        XCTAssertEqual(Set(nestedWorkflow.graph.nodes.keys),
                       ["model/model", "model/styled", "fill/text", "fill/picture", "fill/hole", "fill/source",
                        "fill/pilot", "fill/blend", "fill/decode", "fill/paste", "fill/save"],
                       "expected each template node replaced by its template's nodes, named node/inner")
        XCTAssertEqual(nestedWorkflow.templates.map(\.name).sorted(), ["inpaint-with-model", "load-model-lora"])
        let nested = try runner.run(nestedWorkflow, file: nestedURL, set: settings, outputDirectory: nestedOut)

        let flatImage = try PNG.read(path: flatOut.appendingPathComponent("lora-inpaint.png").path)
        let nestedImage = try PNG.read(path: nestedOut.appendingPathComponent("nested-inpaint.png").path)
        XCTAssertEqual(nestedImage.image, flatImage.image, "expected the nested workflow to paint the flat one's pixels")
        XCTAssertEqual(try XCTUnwrap(nested.outputs["image"]).summary, try XCTUnwrap(flat.outputs["image"]).summary)
        // Every inner node has the key it has in the flat workflow: all but the sink come from the cache.
        XCTAssertEqual(nested.nodes.filter { !$0.cacheHit }.map(\.nodeID), ["fill/save"],
                       "expected every inner node served from the flat run's cache entries")
        let annotation = try XCTUnwrap(nestedImage.text(forKey: "pilot:nested-templates"))
        XCTAssertTrue(annotation.contains("\"load-model-lora\"") && annotation.contains("\"inpaint-with-model\""), annotation)

        // The embedded workflow is the expanded graph: it re-runs with no templates at hand.
        let elsewhere = Fixture.temporaryFolder("rerun-nested")
        let recovered = elsewhere.appendingPathComponent("recovered.json")
        try XCTUnwrap(nestedImage.text(forKey: "pilot:workflow")).write(to: recovered, atomically: true, encoding: .utf8)
        let again = WorkflowRunner()
        _ = try again.run(again.validate(recovered), file: recovered, outputDirectory: elsewhere)
        XCTAssertEqual(try PNG.read(path: elsewhere.appendingPathComponent("nested-inpaint.png").path).image, nestedImage.image)

        // from-png on it: an inner node's parameter becomes a typed input with a valid name.
        let (embedded, _) = WorkflowParser.parse(try String(contentsOf: recovered, encoding: .utf8))
        let exposed = try embedded.exposing(["fill/pilot.cfg"], registry: .standard)
        XCTAssertEqual(exposed.inputs["fill_pilot_cfg"]?.type, .float, "expected fill/pilot.cfg exposed as fill_pilot_cfg")
        XCTAssertNoThrow(try ValidatedWorkflow(exposed, registry: .standard))
    }

    func testAValueOutOfAnInnerPortsRangeNamesTheOuterNodeAndTheInnerPort() throws {
        let dir = try folder([
            "count.yaml": """
                version: 1
                inputs:
                  steps: {type: Int, default: 5}
                  checkpoint: {type: Path}
                nodes:
                  model: {type: LoadCheckpoint, params: {path: $checkpoint}}
                  text: {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: cat}}
                  sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                           params: {steps: $steps, width: 64, height: 64}}
                outputs:
                  latent: sample.latent
                """,
            "outer.yaml": """
                version: 1
                nodes:
                  run:
                    type: template:count
                    params: {checkpoint: m, steps: 0}
                outputs:
                  latent: run.latent
                """,
        ])
        let found = problems(dir.appendingPathComponent("outer.yaml"))
        XCTAssertEqual(found.count, 1, "expected one problem, found \(found.map(\.description))")
        let problem = try XCTUnwrap(found.first)
        XCTAssertEqual(problem.code, .outOfRange)
        XCTAssertEqual(problem.file, dir.appendingPathComponent("outer.yaml").path)
        XCTAssertEqual([problem.node, problem.port], ["run", "steps"])
        XCTAssertEqual(problem.location, SourceLocation(line: 5, column: 36), "expected the outer value's place")
        let inner = try XCTUnwrap(problem.trace.first, "expected the inner port in the trace")
        XCTAssertEqual(inner.template, "count")
        XCTAssertEqual(inner.file, dir.appendingPathComponent("count.yaml").path)
        XCTAssertEqual([inner.node, inner.port], ["sample", "steps"])
        XCTAssertEqual(inner.location.line, 9, "expected the line of `steps: $steps` in count.yaml")
        XCTAssertTrue(problem.description.contains("node 'run' port 'steps': in template 'count' ("), problem.description)
        XCTAssertTrue(problem.description.contains("count.yaml:9:"), problem.description)
    }

    func testAProblemInsideATemplateIsReportedAtTheNodeWithTheTemplatesLocation() throws {
        let dir = try folder([
            "broken.yaml": """
                version: 1
                inputs:
                  image: {type: Image}
                nodes:
                  blur: {type: FeatherMsk, inputs: {mask: $image}}
                outputs:
                  image: blur.mask
                """,
            "outer.yaml": """
                version: 1
                nodes:
                  picture: {type: LoadImage, params: {path: a.png}}
                  fix: {type: "template:broken", inputs: {image: picture.image}}
                outputs:
                  image: fix.image
                """,
        ])
        let found = problems(dir.appendingPathComponent("outer.yaml"))
        let problem = try XCTUnwrap(found.first { $0.code == .unknownNodeType }, "\(found.map(\.description))")
        XCTAssertEqual(problem.node, "fix")
        XCTAssertEqual(problem.location, SourceLocation(line: 4, column: 15), "expected the template node's type")
        XCTAssertEqual(problem.trace.map(\.node), ["blur"])
        XCTAssertEqual(problem.trace.first?.location, SourceLocation(line: 5, column: 16))
        XCTAssertTrue(problem.message.contains("did you mean 'FeatherMask'"), problem.message)
        guard case let .object(json) = problem.json, case let .array(trace)? = json["trace"],
              case let .object(frame)? = trace.first else { return XCTFail("expected a trace in \(problem.json)") }
        XCTAssertEqual(frame["line"], .int(5))
    }

    func testTemplateCyclesAndTooDeepNestingAreRefusedAtValidation() throws {
        let node = { (name: String) in
            """
            version: 1
            inputs:
              image: {type: Image}
            nodes:
              inner: {type: "template:\(name)", inputs: {image: $image}}
            outputs:
              image: inner.image
            """
        }
        let outer = """
            version: 1
            nodes:
              picture: {type: LoadImage, params: {path: a.png}}
              start: {type: "template:a", inputs: {image: picture.image}}
            outputs:
              image: start.image
            """
        let cycle = try folder(["a.yaml": node("b"), "b.yaml": node("a"), "outer.yaml": outer])
        let found = problems(cycle.appendingPathComponent("outer.yaml"))
        let loop = try XCTUnwrap(found.first { $0.code == .cycle }, "expected a cycle, found \(found.map(\.description))")
        XCTAssertTrue(loop.message.contains("template cycle: a → b → a"), loop.message)
        XCTAssertEqual(loop.node, "start")
        XCTAssertEqual(loop.trace.map(\.template), ["a", "b"], "expected the path through both templates")

        // t0 → t1 → … → t9 is deeper than templates may nest.
        var files = ["outer.yaml": outer.replacingOccurrences(of: "template:a", with: "template:t0")]
        for level in 0..<9 { files["t\(level).yaml"] = node("t\(level + 1)") }
        files["t9.yaml"] = """
            version: 1
            inputs:
              image: {type: Image}
            nodes:
              same: {type: ResizeImage, inputs: {image: $image}, params: {width: 64, height: 64}}
            outputs:
              image: same.image
            """
        let deep = problems(try folder(files).appendingPathComponent("outer.yaml"))
        XCTAssertEqual(deep.map(\.code), [.limitExceeded], "\(deep.map(\.description))")
        XCTAssertTrue(deep.first?.message.contains("nested more than 8 deep") == true, deep.first?.message ?? "")
    }

    func testTemplateNodePortsAreTypedAndRequiredLikeAnyNodes() throws {
        let dir = try folder([
            "outer.yaml": """
                version: 1
                nodes:
                  picture: {type: LoadImage, params: {path: a.png}}
                  fill: {type: "template:inpaint-with-model", inputs: {unet: picture.image}}
                  other: {type: template:text-inpant}
                outputs:
                  image: fill.image
                  more: fill.pixels
                """,
        ])
        let runner = WorkflowRunner(templates: TemplateFolder(Fixture.templates))
        var found: [Diagnostic] = []
        do { _ = try runner.validate(dir.appendingPathComponent("outer.yaml")) } catch { found = error.diagnostics }
        let text = found.map(\.description).joined(separator: "\n")
        XCTAssertTrue(found.contains { $0.code == .typeMismatch && $0.port == "unet" && $0.message.contains("expected UNet, found Image") }, text)
        XCTAssertTrue(found.contains { $0.code == .missingInput && $0.port == "clip" }, text)
        XCTAssertTrue(found.contains { $0.code == .unknownTemplate && $0.message.contains("did you mean 'text-inpaint'") }, text)
        XCTAssertTrue(found.contains { $0.code == .danglingOutput && $0.output == "more" }, text)
    }

    func testAPinnedVersionOfAFolderTemplateRunsThatVersion() throws {
        let dir = Fixture.temporaryFolder("versions")
        let templates = TemplateFolder(dir)
        let resize = { (side: Int) in
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
        XCTAssertEqual(try templates.save("shrink", text: resize(64)).version, 1)
        XCTAssertEqual(try templates.save("shrink", text: resize(128)).version, 2)
        XCTAssertEqual(templates.history(of: "shrink").map(\.version), [1, 2])
        XCTAssertEqual(try templates.template(named: "shrink", version: nil)?.version, 2)
        for (pin, side) in [("version: 1", 64), ("", 128)] {
            let outer = try folder(["outer.yaml": """
                version: 1
                nodes:
                  picture: {type: LoadImage, params: {path: \(Fixture.repository.appendingPathComponent("Examples/source.png").path)}}
                  small: {type: "template:shrink", \(pin.isEmpty ? "" : pin + ", ")inputs: {image: picture.image}}
                outputs:
                  image: small.image
                """]).appendingPathComponent("outer.yaml")
            let runner = WorkflowRunner(templates: templates)
            let result = try runner.run(runner.validate(outer), file: outer, outputDirectory: Fixture.temporaryFolder("pin"))
            let image = try XCTUnwrap(result.outputs["image"]).asObject(Image.self)
            XCTAssertEqual(image.width, side, "expected \(pin.isEmpty ? "the latest version" : pin) to run")
        }
        try templates.remove("shrink")
        XCTAssertNil(try templates.template(named: "shrink", version: nil))
        XCTAssertNotNil(try templates.template(named: "shrink", version: 1), "expected the history to outlive the file")
        XCTAssertNotNil(try LayeredTemplates([TemplateFolder(Fixture.templates), templates]).template(named: "shrink", version: 2),
                        "expected a removed template's versions found through a layered source too")
    }

    func testRelativePathsInAFileTemplateResolveInItsFolderWhereverItIsNested() throws {
        let library = try folder(["picture.yaml": """
            version: 1
            inputs:
              path: {type: Path, default: pictures/source.png}
            nodes:
              load: {type: LoadImage, params: {path: $path}}
            outputs:
              image: load.image
            """])
        try FileManager.default.createDirectory(at: library.appendingPathComponent("pictures"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixture.repository.appendingPathComponent("Examples/source.png"),
                                         to: library.appendingPathComponent("pictures/source.png"))
        let outer = try folder(["outer.yaml": """
            version: 1
            nodes:
              pic: {type: "template:picture"}
            outputs:
              image: pic.image
            """]).appendingPathComponent("outer.yaml")
        let runner = WorkflowRunner(templates: TemplateFolder(library))
        let alone = library.appendingPathComponent("picture.yaml")
        _ = try runner.run(runner.validate(alone), file: alone, outputDirectory: Fixture.temporaryFolder("alone"))
        let nested = try runner.run(runner.validate(outer), file: outer, outputDirectory: Fixture.temporaryFolder("nested"))
        XCTAssertNotNil(nested.outputs["image"], "expected the default found beside the template, not beside outer.yaml")
        XCTAssertEqual(nested.nodes.map(\.cacheHit), [true], "expected the same file to key the same, however its path is spelt")
    }
}
