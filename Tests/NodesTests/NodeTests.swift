import Foundation
import Imaging
import Nodes
import SafeTensors
import Tensors
import Workflow
import XCTest

/// Single nodes and small workflows.
final class NodeTests: XCTestCase {
    private func run(yaml: String, in folder: URL, set: [String: String] = [:]) throws -> ExecutionResult {
        let file = folder.appendingPathComponent("workflow.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        return try runner.run(runner.validate(file), file: file, set: set, outputDirectory: folder.appendingPathComponent("out"))
    }

    func testRegistryDeclarationsFollowTheContract() {
        let registry = NodeRegistry.standard
        let contract: [String: (inputs: [String], outputs: [String])] = [
            "LoadCheckpoint": (["path", "config"], ["unet", "vae", "clip"]),
            "TextEncode": (["clip", "prompt", "negative"], ["conditioning"]),
            "LoadImage": (["path"], ["image"]),
            "LoadMask": (["path", "invert"], ["mask"]),
            "LoadLatent": (["path"], ["latent"]),
            "SaveLatent": (["latent", "name"], []),
            "SaveImage": (["image", "name"], []),
            "VAEEncode": (["vae", "image"], ["latent"]),
            "VAEDecode": (["vae", "latent"], ["image"]),
            "Sample": (["unet", "conditioning", "latent", "source", "mask", "steps", "cfg", "scheduler", "eta", "seed", "width", "height"], ["latent"]),
            "PILOTOptimize": (["unet", "conditioning", "source", "mask", "noise", "steps", "cfg", "interval", "inner_steps",
                               "coherence", "lr", "lr_warmup", "coef", "momentum", "sbc", "seed"], ["state"]),
            "Blend": (["state"], ["latent"]),
            "LoadControlNet": (["path", "config"], ["control_net"]),
            "ApplyControlNet": (["unet", "control_net", "hint", "scale", "start", "end"], ["unet"]),
            "LoadT2IAdapter": (["path"], ["t2i_adapter"]),
            "ApplyT2IAdapter": (["unet", "t2i_adapter", "hint", "scale"], ["unet"]),
            "LoadIPAdapter": (["path", "image_encoder"], ["ip_adapter"]),
            "ApplyIPAdapter": (["unet", "ip_adapter", "image", "scale"], ["unet"]),
            "LoadLoRA": (["unet", "clip", "path", "scale", "clip_scale", "strict"], ["unet", "clip"]),
            "CannyEdges": (["image", "low", "high", "blur", "l2_gradient"], ["image"]),
            "Scribble": (["image", "threshold", "strokes", "thickness"], ["image"]),
        ]
        for (type, ports) in contract {
            let description = registry.description(of: type)
            XCTAssertNotNil(description, type)
            for name in ports.inputs { XCTAssertNotNil(description?.input(named: name), "\(type).\(name)") }
            for name in ports.outputs { XCTAssertNotNil(description?.output(named: name), "\(type).\(name)") }
        }
        XCTAssertEqual(registry.description(of: "Sample")?.input(named: "cfg")?.defaultValue.flatMap(Literal.init), .float(7.5))
        XCTAssertEqual(registry.description(of: "PILOTOptimize")?.input(named: "steps")?.defaultValue.flatMap(Literal.init), .int(100))
        XCTAssertEqual(registry.description(of: "PILOTOptimize")?.input(named: "lr_warmup")?.defaultValue.flatMap(Literal.init), .float(0.007))
        XCTAssertEqual(registry.description(of: "TextEncode")?.input(named: "negative")?.defaultValue.flatMap(Literal.init), .string(""))
        XCTAssertEqual(registry.description(of: "LoadMask")?.input(named: "invert")?.defaultValue.flatMap(Literal.init), .bool(false))
        XCTAssertEqual(registry.description(of: "CannyEdges")?.input(named: "low")?.defaultValue.flatMap(Literal.init), .float(100))
        XCTAssertEqual(registry.description(of: "CannyEdges")?.input(named: "high")?.defaultValue.flatMap(Literal.init), .float(200))
    }

    func testLoadMaskInvertAndAlpha() throws {
        let folder = Fixture.temporaryFolder("mask")
        var values = [Float](repeating: 0, count: 64)
        values[9] = 1
        try PNG.write(Mask(width: 8, height: 8, values: values), to: folder.appendingPathComponent("m.png").path)
        let result = try run(yaml: """
            version: 1
            nodes:
              plain: {type: LoadMask, params: {path: m.png}}
              flipped: {type: LoadMask, params: {path: m.png, invert: true}}
            outputs: {plain: plain.mask, flipped: flipped.mask}
            """, in: folder)
        let plain = try result.outputs["plain"]!.asObject(Mask.self)
        let flipped = try result.outputs["flipped"]!.asObject(Mask.self)
        XCTAssertEqual(plain.values, values)
        XCTAssertEqual(flipped.values, values.map { 1 - $0 })
    }

    func testCompositeResizeAndLatentRoundTrip() throws {
        let folder = Fixture.temporaryFolder("misc")
        try PNG.write(ExampleImages.source(), to: folder.appendingPathComponent("a.png").path)
        try PNG.write(Image(width: 128, height: 128, red: 1), to: folder.appendingPathComponent("red.png").path)
        try PNG.write(ExampleImages.mask(), to: folder.appendingPathComponent("m.png").path)
        let noise = SeededNoise.latent(seed: 3, height: 2, width: 3)
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: noise.shape, floats: noise.scalars)
        try writer.write(to: folder.appendingPathComponent("noise.safetensors").path)
        let result = try run(yaml: """
            version: 1
            nodes:
              a: {type: LoadImage, params: {path: a.png}}
              red: {type: LoadImage, params: {path: red.png}}
              m: {type: LoadMask, params: {path: m.png}}
              paste: {type: CompositeMasked, inputs: {image: red.image, source: a.image, mask: m.mask}}
              small: {type: ResizeImage, inputs: {image: a.image}, params: {width: 64, height: 32}}
              noise: {type: LoadLatent, params: {path: noise.safetensors}}
              keep: {type: SaveLatent, inputs: {latent: noise.latent}, params: {name: copy}}
            outputs: {paste: paste.image, small: small.image}
            """, in: folder)
        let paste = try result.outputs["paste"]!.asObject(Image.self)
        let source = try PNG.read(path: folder.appendingPathComponent("a.png").path).image
        let mask = ExampleImages.mask()
        for p in [0, 64 * 128 + 64, 127 * 128 + 127] {
            XCTAssertEqual(paste.planes[p], mask.values[p] > 0.5 ? 1 : source.planes[p])
        }
        let small = try result.outputs["small"]!.asObject(Image.self)
        XCTAssertEqual([small.width, small.height], [64, 32])
        let copy = try SafeTensorsFile(path: folder.appendingPathComponent("out/copy.safetensors").path)
        XCTAssertEqual(try copy.floats("latent"), noise.scalars)
        XCTAssertEqual(try copy.info("latent").shape, [1, 4, 2, 3])
    }

    /// Sample fed the seeded noise through LoadLatent equals Sample seeding it.
    func testSampleWithLoadedNoiseEqualsSeededNoise() throws {
        let folder = Fixture.temporaryFolder("noise")
        let noise = SeededNoise.latent(seed: 11, height: 8, width: 8)
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: noise.shape, floats: noise.scalars)
        try writer.write(to: folder.appendingPathComponent("noise.safetensors").path)
        let result = try run(yaml: """
            version: 1
            inputs: {checkpoint: {type: Path}}
            nodes:
              model: {type: LoadCheckpoint, params: {path: $checkpoint}}
              text: {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a cat}}
              noise: {type: LoadLatent, params: {path: noise.safetensors}}
              given: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning, latent: noise.latent},
                      params: {steps: 2, seed: 99}}
              seeded: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                       params: {steps: 2, seed: 11, width: 64, height: 64}}
              euler: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                      params: {steps: 2, seed: 11, width: 64, height: 64, scheduler: euler}}
            outputs: {given: given.latent, seeded: seeded.latent, euler: euler.latent}
            """, in: folder, set: ["checkpoint": Fixture.tinyModel])
        let given = try result.outputs["given"]!.asObject(LatentPayload.self).latent
        let seeded = try result.outputs["seeded"]!.asObject(LatentPayload.self).latent
        let euler = try result.outputs["euler"]!.asObject(LatentPayload.self).latent
        XCTAssertEqual(given.shape, [1, 4, 8, 8])
        XCTAssertEqual(given.scalars, seeded.scalars)
        XCTAssertNotEqual(euler.scalars, seeded.scalars)
    }

    /// 1000 steps of a 4096×4096 image would run for days: refused at once,
    /// with the figures and the override.
    func testASamplingJobThatWouldRunForDaysIsRefusedWithItsFigures() throws {
        let folder = Fixture.temporaryFolder("work")
        let started = Date()
        XCTAssertThrowsError(try run(yaml: """
            version: 1
            inputs: {checkpoint: {type: Path}}
            nodes:
              model:  {type: LoadCheckpoint, params: {path: $checkpoint}}
              text:   {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: "a fox"}}
              sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                       params: {steps: 1000, width: 4096, height: 4096}}
            outputs: {latent: sample.latent}
            """, in: folder, set: ["checkpoint": Fixture.tinyModel])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("node 'sample'") && text.contains("1000 guided step(s)")
                          && text.contains("4096×4096") && text.contains("PILOT_MAX_UNET_WORK"),
                          "the refusal names the node, the work and the override: \(text)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 60, "refused before sampling, not after hours")
        XCTAssertNoThrow(try WorkLimit.check(node: "PILOTOptimize", guidedSteps: 100, batch: 2, gradientPasses: 100,
                                             height: 64, width: 64), "the paper's 512×512 configuration is allowed")
        XCTAssertNoThrow(try WorkLimit.check(node: "PILOTOptimize", guidedSteps: 100, batch: 2, gradientPasses: 100,
                                             height: 256, width: 256), "as is the same at 2048×2048")
    }

    func testAPromptOverTheLimitIsRefusedAtValidationAndAtBinding() throws {
        let long = String(repeating: "cat ", count: 2100)  // 8,400 bytes, over 8 KiB
        let literal = """
            version: 1
            nodes:
              model: {type: LoadCheckpoint, params: {path: tiny}}
              text: {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: "\(long)"}}
            outputs: {conditioning: text.conditioning}
            """
        let (_, problems) = Validator(registry: NodeRegistry.standard).validate(literal, file: "long.yaml")
        let problem = try XCTUnwrap(problems.first { $0.port == "prompt" }, "expected a diagnostic on text.prompt, got \(problems)")
        XCTAssertEqual(problem.code, .outOfRange)
        XCTAssertEqual(problem.node, "text")
        XCTAssertEqual(problem.expected, "a string of at most 8192 bytes", problem.description)
        XCTAssertEqual(problem.found, "8400 bytes", problem.description)

        let template = """
            version: 1
            inputs: {prompt: {type: String}}
            nodes:
              model: {type: LoadCheckpoint, params: {path: tiny}}
              text: {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: $prompt}}
            outputs: {conditioning: text.conditioning}
            """
        let validated = try ValidatedWorkflow(parsing: template, registry: NodeRegistry.standard)
        XCTAssertNoThrow(try validated.bind(text: ["prompt": "a cat"]))
        XCTAssertThrowsError(try validated.bind(text: ["prompt": long])) { error in
            let failure = error as? BindingFailure
            XCTAssertTrue(failure?.description.contains("at most 8192 bytes") == true,
                          "expected the binding to name the 8192-byte limit, got \(error)")
        }
    }

    func testRunTimeFailureNamesTheNode() throws {
        let folder = Fixture.temporaryFolder("fail")
        XCTAssertThrowsError(try run(yaml: """
            version: 1
            nodes:
              picture: {type: LoadImage, params: {path: missing.png}}
            outputs: {image: picture.image}
            """, in: folder)) { error in
            guard let failure = error as? ExecutionError else { return XCTFail("\(error)") }
            XCTAssertEqual(failure.nodeID, "picture")
            XCTAssertTrue(failure.description.hasPrefix("node 'picture' (LoadImage) failed:"), failure.description)
        }
    }
}

/// Latents from files are checked before any model sees them.
final class LatentInputTests: XCTestCase {
    private func latentFile(shape: [Int], values: [Float]? = nil) throws -> String {
        let url = Fixture.temporaryFolder("latent").appendingPathComponent("latent.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: shape, floats: values ?? [Float](repeating: 0.5, count: shape.reduce(1, *)))
        try writer.write(to: url.path)
        return url.path
    }

    func testALatentWithAZeroDimensionIsRefusedWithItsShape() throws {
        let path = try latentFile(shape: [1, 4, 0, 8])
        let loader = NodeLibrary.objectLoader(base: URL(fileURLWithPath: "/"))
        XCTAssertThrowsError(try loader(.latent, path)) { error in
            XCTAssertTrue("\(error)".contains("[1, 4, 0, 8]") && "\(error)".contains("1 ≤ h, w ≤ 1024"),
                          "the error must give the shape found and the one expected: \(error)")
        }
    }

    func testOversizedNonFiniteAndMisshapenLatentsAreRefused() throws {
        let loader = NodeLibrary.objectLoader(base: URL(fileURLWithPath: "/"))
        for shape in [[1, 4, 2048, 8], [65, 4, 8, 8], [4, 8, 8], [1, 64, 8, 8]] {
            XCTAssertThrowsError(try loader(.latent, try latentFile(shape: shape)), "shape \(shape) must be refused")
        }
        var values = [Float](repeating: 0, count: 4 * 8 * 8)
        values[17] = .nan
        XCTAssertThrowsError(try loader(.latent, try latentFile(shape: [1, 4, 8, 8], values: values))) { error in
            XCTAssertTrue("\(error)".contains("NaN"), "\(error)")
        }
        XCTAssertNoThrow(try loader(.latent, try latentFile(shape: [1, 4, 8, 8])), "a good latent loads")
        XCTAssertNoThrow(try loader(.latent, try latentFile(shape: [2, 4, 8, 8])), "a batch of two latents loads")
    }
}

