import Foundation
import Imaging
import Nodes
import XCTest

/// The `pilot` executable's documented exit statuses: 0 the workflow ran,
/// 1 validation or binding failed (each diagnostic on standard error as
/// `FILE:LINE:COL: error: …`), 2 a node failed at run time (named).
final class CLITests: XCTestCase {
    /// The `pilot` built beside this test bundle (`swift test` builds every product).
    static let executable: URL? = {
        var candidates: [URL] = []
        if let bundle = Bundle.main.executableURL?.deletingLastPathComponent() { candidates.append(bundle) }
        candidates += Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        candidates.append(Fixture.repository.appendingPathComponent(".build/release"))
        return candidates.map { $0.appendingPathComponent("pilot") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    private func pilot(_ arguments: [String], in folder: URL) throws -> Outcome {
        let executable = try XCTUnwrap(Self.executable, "the pilot executable was not built beside the tests")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes before waiting, so a full pipe cannot stall the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                       stderr: String(decoding: stderr, as: UTF8.self))
    }

    private func write(_ text: String, _ name: String, in folder: URL) throws {
        try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func testValidationErrorsExitOneWithFileLineColumn() throws {
        let folder = Fixture.temporaryFolder("cli")
        try write("""
            version: 1
            nodes:
              picture: {type: LoadImage, params: {path: a.png}}
              small:   {type: ResizeImage, inputs: {image: picture.image}, params: {width: 0, height: 8}}
              blur:    {type: NoSuchNode}
            outputs: {image: small.image}
            """, "broken.yaml", in: folder)
        for command in ["validate", "run"] {
            let outcome = try pilot([command, "broken.yaml"], in: folder)
            XCTAssertEqual(outcome.status, 1, "\(command): \(outcome.stderr)")
            let lines = outcome.stderr.split(separator: "\n").map(String.init)
            XCTAssertTrue(lines.contains { $0.hasPrefix("broken.yaml:4:") && $0.contains("error:") && $0.contains("width") },
                          "\(command): the out-of-range width, with its line: \(outcome.stderr)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("broken.yaml:5:") && $0.contains("NoSuchNode") },
                          "\(command): the unknown node type, with its line: \(outcome.stderr)")
            let located = lines.filter { $0.range(of: #"^broken\.yaml:\d+:\d+: error: "#, options: .regularExpression) != nil }
            XCTAssertGreaterThanOrEqual(located.count, 2, "every problem reported at once as FILE:LINE:COL")
        }
        // A template input set to a value it does not accept is a binding error: status 1 too.
        try write("""
            version: 1
            inputs: {size: {type: Int, min: 1, max: 64}}
            nodes:
              blank: {type: LoadImage, params: {path: a.png}}
              small: {type: ResizeImage, inputs: {image: blank.image}, params: {width: $size, height: $size}}
            outputs: {image: small.image}
            """, "bound.yaml", in: folder)
        XCTAssertEqual(try pilot(["run", "bound.yaml", "--set", "size=1000"], in: folder).status, 1)
    }

    func testRunTimeFailureExitsTwoNamingTheNode() throws {
        let folder = Fixture.temporaryFolder("cli")
        try PNG.write(ExampleImages.source(), to: folder.appendingPathComponent("a.png").path)
        try write("""
            version: 1
            nodes:
              picture: {type: LoadImage, params: {path: a.png}}
              edges:   {type: CannyEdges, inputs: {image: picture.image}, params: {low: 300, high: 200}}
              save:    {type: SaveImage, inputs: {image: edges.image}, params: {name: edges}}
            """, "fails.yaml", in: folder)
        let outcome = try pilot(["run", "fails.yaml", "--quiet"], in: folder)
        XCTAssertEqual(outcome.status, 2, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("node 'edges' (CannyEdges) failed: low (300.0) is above high (200.0)"), outcome.stderr)
    }

    func testSuccessExitsZeroWithTheTimingTable() throws {
        let folder = Fixture.temporaryFolder("cli")
        try PNG.write(ExampleImages.scribble(), to: folder.appendingPathComponent("sketch.png").path)
        try write("""
            version: 1
            nodes:
              sketch: {type: LoadImage, params: {path: sketch.png}}
              hint:   {type: Scribble, inputs: {image: sketch.image}, params: {thickness: 2}}
              save:   {type: SaveImage, inputs: {image: hint.image}, params: {name: hint}}
            """, "ok.yaml", in: folder)
        let outcome = try pilot(["run", "ok.yaml", "--output", "out"], in: folder)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("Scribble") && outcome.stdout.contains("total"), outcome.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out/hint.png").path))
    }

    /// The newcomer's path: create the tiny model with its adapters, run an adapter template by name.
    func testCreateTinyThenRunAnAdapterTemplate() throws {
        let folder = Fixture.temporaryFolder("cli")
        let created = try pilot(["models", "create-tiny", "tiny"], in: folder)
        XCTAssertEqual(created.status, 0, created.stderr)
        for item in ["controlnet/config.json", "t2i-adapter/config.json", "image_encoder/model.safetensors",
                     "ip-adapter.safetensors", "lora.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("tiny/\(item)").path), item)
        }
        let tiny = folder.appendingPathComponent("tiny").path
        let outcome = try pilot(["run", "ipadapter-controlnet-inpaint", "--templates", Fixture.templates.path, "--quiet",
                                 "--set", "checkpoint=\(tiny)", "--set", "controlnet=\(tiny)/controlnet",
                                 "--set", "ip_adapter=\(tiny)/ip-adapter.safetensors", "--set", "image_encoder=\(tiny)/image_encoder",
                                 "--set", "steps=2", "--set", "interval=1", "--set", "inner_steps=1", "--output", "out"], in: folder)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out/ipadapter-controlnet-inpaint.png").path))
    }

    /// `pilot templates from-png`: a literal parameter of the run becomes a
    /// typed input (its value the default), the rest is fixed; run with its
    /// defaults, the template makes the same image.
    func testATemplateFromAFinishedImageExposesChosenParametersAndReproducesIt() throws {
        let folder = Fixture.temporaryFolder("frompng")
        try write("""
            version: 1
            inputs:
              seed: {type: Int, default: 5}
            nodes:
              model:  {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
              text:   {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: "a red ball"}}
              sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                       params: {steps: 2, width: 64, height: 64, seed: $seed}}
              decode: {type: VAEDecode, inputs: {vae: model.vae, latent: sample.latent}}
              save:   {type: SaveImage, inputs: {image: decode.image}, params: {name: first}}
            """, "txt.yaml", in: folder)
        let first = try pilot(["run", "txt.yaml", "--output", "out"], in: folder)
        XCTAssertEqual(first.status, 0, first.stderr)
        let made = try pilot(["templates", "from-png", "out/first.png", "--name", "again", "--expose", "steps,text.prompt",
                              "--output", "again.yaml"], in: folder)
        XCTAssertEqual(made.status, 0, made.stderr)
        let text = try String(contentsOf: folder.appendingPathComponent("again.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("steps: {type: Int, default: 2"), "expected steps as a typed input with the run's value: \(text)")
        XCTAssertTrue(text.contains("text_prompt: {type: String, default: \"a red ball\""), "expected node.param exposed as node_param: \(text)")
        XCTAssertFalse(text.contains("seed: {type"), "an input not exposed is fixed in place: \(text)")
        let rerun = try pilot(["run", "again.yaml", "--output", "out2"], in: folder)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertEqual(try PNG.read(path: folder.appendingPathComponent("out2/first.png").path).image,
                       try PNG.read(path: folder.appendingPathComponent("out/first.png").path).image,
                       "expected the template with its defaults to make the same image")
        let ambiguous = try pilot(["templates", "from-png", "out/first.png", "--name", "x", "--expose", "nonsense"], in: folder)
        XCTAssertEqual(ambiguous.status, 1)
        XCTAssertTrue(ambiguous.stderr.contains("neither a template input nor a literal parameter"), ambiguous.stderr)
    }
}
