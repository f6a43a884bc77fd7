import Diffusion
import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

final class TemplateTests: XCTestCase {
    func testEveryTemplateValidates() throws {
        let library = TemplateLibrary(explicit: Fixture.templates.path)
        let names = Set(library.templates.map { $0.deletingPathExtension().lastPathComponent })
        let issued = ["txt2img", "text-inpaint", "blended-baseline", "controlnet-inpaint", "controlnet-canny-inpaint",
                      "ipadapter-inpaint", "ipadapter-controlnet-inpaint", "t2i-adapter-inpaint", "lora-inpaint",
                      "sdxl-txt2img", "sdxl-text-inpaint", "sdxl-controlnet-inpaint"]
        XCTAssertTrue(names.isSuperset(of: issued), "missing templates: \(Set(issued).subtracting(names).sorted())")
        for url in library.templates {
            XCTAssertNoThrow(try WorkflowRunner().validate(url), url.lastPathComponent)
        }
        XCTAssertEqual(library.resolve("txt2img")?.lastPathComponent, "txt2img.yaml")
        XCTAssertNil(library.resolve("no-such-template"))
    }

    /// Runs every template on the tiny model, then re-runs the workflow
    /// embedded in its PNG (from another folder) and expects the same image.
    /// Templates made to be nodes (a model's loader, an inpainter taking a
    /// model) do not run alone; TemplateNodeTests runs them nested.
    func testEveryTemplateRunsAndItsImageReRuns() throws {
        let library = TemplateLibrary(explicit: Fixture.templates.path)
        for url in library.templates {
            let name = url.deletingPathExtension().lastPathComponent
            let graph = try WorkflowRunner().validate(url).graph
            if graph.outputs["image"] == nil || graph.inputs.values.contains(where: { !$0.type.isScalar }) {
                XCTAssertTrue(["load-model-lora", "inpaint-with-model"].contains(name),
                              "\(name): expected an image output and only scalar inputs, as every template that runs alone has")
                continue
            }
            let output = Fixture.temporaryFolder("out")
            let runner = WorkflowRunner()
            let result = try runner.run(runner.validate(url), file: url, set: Fixture.quickSettings(name),
                                        outputDirectory: output)
            XCTAssertNotNil(result.outputs["image"], name)
            let png = output.appendingPathComponent("\(name).png")
            let decoded = try PNG.read(path: png.path)
            let embedded = try XCTUnwrap(decoded.text(forKey: "pilot:workflow"), name)
            XCTAssertEqual(decoded.text(forKey: "pilot:workflow-sha256"), Digest.sha256Hex(Data(embedded.utf8)))
            XCTAssertEqual(decoded.text(forKey: "pilot:seed"), "0")
            XCTAssertNotNil(decoded.text(forKey: "pilot:models"))

            // Re-run the embedded workflow alone, from an unrelated folder, with a fresh cache.
            let elsewhere = Fixture.temporaryFolder("rerun")
            let file = elsewhere.appendingPathComponent("recovered.json")
            try embedded.write(to: file, atomically: true, encoding: .utf8)
            let again = WorkflowRunner()
            let output2 = elsewhere.appendingPathComponent("out")
            _ = try again.run(again.validate(file), file: file, outputDirectory: output2)
            let rerun = try PNG.read(path: output2.appendingPathComponent("\(name).png").path)
            XCTAssertEqual(rerun.image, decoded.image, "\(name): the embedded workflow re-runs to the same image")
            XCTAssertEqual(rerun.text(forKey: "pilot:workflow"), embedded)
        }
    }

    func testCacheReusesLoadsAndEncodesWhenOnlyThePromptChanges() throws {
        // A private copy of the model, so its file can be changed.
        let model = Fixture.temporaryFolder("model").appendingPathComponent("tiny")
        try FileManager.default.copyItem(atPath: Fixture.tinyModel, toPath: model.path)
        let url = Fixture.template("text-inpaint")
        let runner = WorkflowRunner()
        let workflow = try runner.validate(url)
        var settings = Fixture.quickSettings("text-inpaint")
        settings["checkpoint"] = model.path
        let output = Fixture.temporaryFolder("cache")

        let first = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        XCTAssertTrue(first.nodes.allSatisfy { !$0.cacheHit })

        settings["prompt"] = "a blue cube"
        let second = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        for id in ["model", "source", "picture", "hole"] { XCTAssertEqual(second.node(id)?.cacheHit, true, id) }
        for id in ["text", "pilot", "blend", "decode", "save"] { XCTAssertEqual(second.node(id)?.cacheHit, false, id) }

        // The same again: everything cacheable is served, only the sink runs.
        let third = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        XCTAssertEqual(third.ranNodes, ["save"])

        // New weights in the model folder (same size, other values): the checkpoint reloads.
        let other = Fixture.temporaryFolder("other").appendingPathComponent("tiny")
        try TinyModel.create(at: other.path, seed: 7)
        let weights = "text_encoder/model.safetensors"
        try FileManager.default.removeItem(at: model.appendingPathComponent(weights))
        try FileManager.default.copyItem(at: other.appendingPathComponent(weights), to: model.appendingPathComponent(weights))
        let fourth = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        XCTAssertEqual(fourth.node("model")?.cacheHit, false)
        XCTAssertEqual(fourth.node("text")?.cacheHit, false)
        XCTAssertEqual(fourth.node("picture")?.cacheHit, true)
    }

    func testCatalogDocumentIsCurrent() throws {
        let file = Fixture.repository.appendingPathComponent("docs/nodes.md")
        let committed = try String(contentsOf: file, encoding: .utf8)
        XCTAssertEqual(committed, NodeRegistry.standard.catalogMarkdown,
                       "docs/nodes.md is stale: run `swift run -c release pilot nodes --markdown > docs/nodes.md`")
    }

    func testExampleInputsAreTheCommittedDrawings() throws {
        let folder = Fixture.repository.appendingPathComponent("Examples")
        let source = folder.appendingPathComponent("source.png"), mask = folder.appendingPathComponent("mask.png")
        if ProcessInfo.processInfo.environment["PILOT_WRITE_EXAMPLES"] == "1" {
            try PNG.write(ExampleImages.source(), to: source.path)
            try PNG.write(ExampleImages.mask(), to: mask.path)
        }
        let image = try PNG.read(path: source.path).image
        XCTAssertEqual(image.width, 128)
        let drawn = ExampleImages.source().planes
        let worst = zip(image.planes, drawn).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThanOrEqual(worst, 0.51 / 255, "Examples/source.png is 8-bit ExampleImages.source()")
        XCTAssertEqual(try Mask(from: PNG.read(path: mask.path)).values, ExampleImages.mask().values)
        for (name, drawing) in [("scribble.png", ExampleImages.scribble()), ("object.png", ExampleImages.object())] {
            let file = folder.appendingPathComponent(name)
            if ProcessInfo.processInfo.environment["PILOT_WRITE_EXAMPLES"] == "1" { try PNG.write(drawing, to: file.path) }
            let committed = try PNG.read(path: file.path).image
            let worst = zip(committed.planes, drawing.planes).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 0.51 / 255, "Examples/\(name) is 8-bit ExampleImages")
        }
    }
}
