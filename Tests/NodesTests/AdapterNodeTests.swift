import Diffusion
import Foundation
import Imaging
import Nodes
import SafeTensors
import Tensors
import Workflow
import XCTest

/// The adapter nodes on the tiny model and its random adapters: each one
/// reaches the sampler (at scale 0 the result equals the adapter-free one,
/// at scale 1 it differs), incompatible adapters fail in the node that
/// attaches them, and cache keys follow what changes an output.
final class AdapterNodeTests: XCTestCase {
    /// `controlnet`, `adapter`, `ip_adapter`, `image_encoder`, `lora` paths of the tiny model.
    private let tiny = Fixture.tinyAdapters
    private static let adapterFixtures = Fixture.repository.appendingPathComponent("Tests/Fixtures/adapters")

    private func run(_ yaml: String, in folder: URL, runner: WorkflowRunner = WorkflowRunner(),
                     set: [String: String] = [:]) throws -> ExecutionResult {
        let file = folder.appendingPathComponent("workflow.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return try runner.run(runner.validate(file), file: file, set: set, outputDirectory: folder.appendingPathComponent("out"))
    }

    private func examples(in folder: URL) throws {
        try PNG.write(ExampleImages.scribble(), to: folder.appendingPathComponent("sketch.png").path)
        try PNG.write(ExampleImages.object(), to: folder.appendingPathComponent("object.png").path)
        try PNG.write(ExampleImages.source(), to: folder.appendingPathComponent("source.png").path)
        try PNG.write(ExampleImages.mask(), to: folder.appendingPathComponent("mask.png").path)
    }

    private func latent(_ result: ExecutionResult, _ name: String) throws -> [Float] {
        try XCTUnwrap(result.outputs[name]).asObject(LatentPayload.self).latent.scalars
    }

    /// A text-to-image Sample (64×64, two DDIM steps) on `unet`, with the
    /// adapter nodes of the tiny model declared (unused ones are not run).
    private func sampling(_ unet: String, extra: String = "") -> String {
        """
        version: 1
        nodes:
          model:   {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
          text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a flower}}
          sketch:  {type: LoadImage, params: {path: sketch.png}}
          hint:    {type: Scribble, inputs: {image: sketch.image}, params: {thickness: 1}}
          look:    {type: LoadImage, params: {path: object.png}}
          cn:      {type: LoadControlNet, params: {path: \(tiny["controlnet"]!)}}
          t2i:     {type: LoadT2IAdapter, params: {path: \(tiny["adapter"]!)}}
          ip:      {type: LoadIPAdapter, params: {path: \(tiny["ip_adapter"]!), image_encoder: \(tiny["image_encoder"]!)}}
        \(extra)
          sample:  {type: Sample, inputs: {unet: \(unet), conditioning: text.conditioning},
                    params: {steps: 2, seed: 5, width: 64, height: 64}}
        outputs: {latent: sample.latent}
        """
    }

    func testEachAdapterReachesTheSamplerAndScaleZeroChangesNothing() throws {
        let folder = Fixture.temporaryFolder("adapters")
        try examples(in: folder)
        let runner = WorkflowRunner()
        let plain = try latent(run(sampling("model.unet"), in: folder, runner: runner), "latent")
        let attach: [(String, String)] = [
            ("ApplyControlNet", "control_net: cn.control_net, hint: hint.image"),
            ("ApplyT2IAdapter", "t2i_adapter: t2i.t2i_adapter, hint: hint.image"),
            ("ApplyIPAdapter", "ip_adapter: ip.ip_adapter, image: look.image"),
        ]
        for (type, ports) in attach {
            func attached(_ scale: Double) throws -> [Float] {
                let node = "  with: {type: \(type), inputs: {unet: model.unet, \(ports)}, params: {scale: \(scale)}}"
                return try latent(run(sampling("with.unet", extra: node), in: folder, runner: runner), "latent")
            }
            XCTAssertEqual(try attached(0), plain, "\(type) at scale 0 leaves the sample as it was")
            let changed = try attached(1)
            XCTAssertNotEqual(changed, plain, "\(type) at scale 1 changes the sample")
            XCTAssertTrue(changed.allSatisfy(\.isFinite), type)
        }

        // All three on one UNet, chained: differs from each alone.
        let chain = """
              a: {type: ApplyControlNet, inputs: {unet: model.unet, control_net: cn.control_net, hint: hint.image}}
              b: {type: ApplyT2IAdapter, inputs: {unet: a.unet, t2i_adapter: t2i.t2i_adapter, hint: hint.image}}
              c: {type: ApplyIPAdapter, inputs: {unet: b.unet, ip_adapter: ip.ip_adapter, image: look.image}}
            """
        let all = try latent(run(sampling("c.unet", extra: chain), in: folder, runner: runner), "latent")
        XCTAssertNotEqual(all, plain)
    }

    /// PILOT's optimisation and blend stages see the adapters too (the gradient pass included).
    func testPILOTHonoursAControlNet() throws {
        let folder = Fixture.temporaryFolder("pilot-cn")
        try examples(in: folder)
        func inpaint(_ scale: Double) throws -> [Float] {
            try latent(run("""
                version: 1
                nodes:
                  model:   {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
                  text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a flower}}
                  picture: {type: LoadImage, params: {path: source.png}}
                  hole:    {type: LoadMask, params: {path: mask.png}}
                  sketch:  {type: LoadImage, params: {path: sketch.png}}
                  hint:    {type: Scribble, inputs: {image: sketch.image}}
                  cn:      {type: LoadControlNet, params: {path: \(tiny["controlnet"]!)}}
                  control: {type: ApplyControlNet, inputs: {unet: model.unet, control_net: cn.control_net, hint: hint.image},
                            params: {scale: \(scale)}}
                  source:  {type: VAEEncode, inputs: {vae: model.vae, image: picture.image}}
                  pilot:   {type: PILOTOptimize, inputs: {unet: control.unet, conditioning: text.conditioning, source: source.latent,
                            mask: hole.mask}, params: {steps: 4, interval: 2, inner_steps: 1, coherence: 0.5}}
                  blend:   {type: Blend, inputs: {state: pilot.state}}
                outputs: {latent: blend.latent}
                """, in: folder), "latent")
        }
        let (off, on) = (try inpaint(0), try inpaint(1))
        XCTAssertNotEqual(off, on)
        XCTAssertTrue(on.allSatisfy(\.isFinite))
    }

    func testLoRAMergesAtItsScaleAndChains() throws {
        let folder = Fixture.temporaryFolder("lora")
        func sample(_ loras: [Double]) throws -> [Float] {
            var nodes = "", unet = "model.unet", clip = "model.clip"
            for (i, scale) in loras.enumerated() {
                nodes += "  l\(i): {type: LoadLoRA, inputs: {unet: \(unet), clip: \(clip)}, params: {path: \(tiny["lora"]!), scale: \(scale)}}\n"
                (unet, clip) = ("l\(i).unet", "l\(i).clip")
            }
            return try latent(run("""
                version: 1
                nodes:
                  model:  {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
                \(nodes)
                  text:   {type: TextEncode, inputs: {clip: \(clip)}, params: {prompt: a flower}}
                  sample: {type: Sample, inputs: {unet: \(unet), conditioning: text.conditioning},
                           params: {steps: 2, seed: 5, width: 64, height: 64}}
                outputs: {latent: sample.latent}
                """, in: folder), "latent")
        }
        let plain = try sample([])
        XCTAssertEqual(try sample([0]), plain, "a LoRA at scale 0 changes nothing")
        let once = try sample([1])
        XCTAssertNotEqual(once, plain)
        let twice = try sample([0.5, 0.5])
        XCTAssertNotEqual(twice, plain)
        let worst = zip(twice, once).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(worst, 1e-3, "two LoRAs at 0.5 merge to the same weights as one at 1 (up to rounding)")
    }

    func testLoRAEntriesMatchingNothingFailUnlessNotStrict() throws {
        let folder = Fixture.temporaryFolder("lora-strict")
        // The tiny LoRA plus one module the model does not have.
        let original = try SafeTensorsFile(path: tiny["lora"]!)
        var writer = SafeTensorsWriter()
        for name in original.names { try writer.add(name, shape: try original.info(name).shape, floats: try original.floats(name)) }
        try writer.add("lora_unet_no_such_block_to_q.lora_down.weight", shape: [4, 32], floats: .init(repeating: 0.1, count: 128))
        try writer.add("lora_unet_no_such_block_to_q.lora_up.weight", shape: [32, 4], floats: .init(repeating: 0.1, count: 128))
        let extra = folder.appendingPathComponent("extra.safetensors").path
        try writer.write(to: extra)
        func yaml(strict: Bool) -> String {
            """
            version: 1
            nodes:
              model: {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
              style: {type: LoadLoRA, inputs: {unet: model.unet, clip: model.clip}, params: {path: \(extra), strict: \(strict)}}
            outputs: {unet: style.unet}
            """
        }
        XCTAssertThrowsError(try run(yaml(strict: true), in: folder)) { error in
            let failure = error as? ExecutionError
            XCTAssertEqual(failure?.nodeID, "style")
            XCTAssertTrue("\(error)".contains("no_such_block_to_q") && "\(error)".contains("strict: false"), "\(error)")
        }
        XCTAssertNoThrow(try run(yaml(strict: false), in: folder))
    }

    /// Adapters made for another UNet fail in the node that attaches them,
    /// which the error names. The fixture adapters are for the SD 1.x test
    /// model (cross-attention width 6, blocks 8/12/12), not the tiny one (32, 32/64/64).
    func testIncompatibleAdaptersFailInTheirNode() throws {
        let folder = Fixture.temporaryFolder("mismatch")
        try examples(in: folder)
        let foreign = Self.adapterFixtures
        let cases: [(node: String, type: String, yaml: String, mentions: String)] = [
            ("control", "ApplyControlNet", """
              cn:      {type: LoadControlNet, params: {path: \(foreign.appendingPathComponent("controlnet").path)}}
              control: {type: ApplyControlNet, inputs: {unet: model.unet, control_net: cn.control_net, hint: hint.image}}
            outputs: {unet: control.unet}
            """, "does not fit the UNet of"),
            ("adapted", "ApplyT2IAdapter", """
              t2i:     {type: LoadT2IAdapter, params: {path: \(foreign.appendingPathComponent("t2i_full").path)}}
              adapted: {type: ApplyT2IAdapter, inputs: {unet: model.unet, t2i_adapter: t2i.t2i_adapter, hint: hint.image}}
            outputs: {unet: adapted.unet}
            """, "does not fit the UNet of"),
            ("prompted", "ApplyIPAdapter", """
              ip:       {type: LoadIPAdapter, params: {path: \(foreign.appendingPathComponent("ip_adapter.safetensors").path),
                         image_encoder: \(foreign.appendingPathComponent("image_encoder").path)}}
              prompted: {type: ApplyIPAdapter, inputs: {unet: model.unet, ip_adapter: ip.ip_adapter, image: sketch.image}}
            outputs: {unet: prompted.unet}
            """, "does not fit"),
            ("ip", "LoadIPAdapter", """
              ip:       {type: LoadIPAdapter, params: {path: \(tiny["ip_adapter"]!),
                         image_encoder: \(foreign.appendingPathComponent("image_encoder").path)}}
            outputs: {ip: ip.ip_adapter}
            """, "wrong vision encoder"),
            ("style", "LoadLoRA", """
              style:   {type: LoadLoRA, inputs: {unet: model.unet, clip: model.clip},
                        params: {path: \(foreign.appendingPathComponent("lora_kohya.safetensors").path)}}
            outputs: {unet: style.unet}
            """, "lora_kohya.safetensors"),
        ]
        for (node, type, body, mentions) in cases {
            let yaml = """
                version: 1
                nodes:
                  model:  {type: LoadCheckpoint, params: {path: \(Fixture.tinyModel)}}
                  sketch: {type: LoadImage, params: {path: sketch.png}}
                  hint:   {type: Scribble, inputs: {image: sketch.image}}
                """ + "\n" + body
            XCTAssertThrowsError(try run(yaml, in: folder), type) { error in
                guard case let .nodeFailed(id, failedType, _)? = error as? ExecutionError else { return XCTFail("\(type): \(error)") }
                XCTAssertEqual(id, node)
                XCTAssertEqual(failedType, type)
                XCTAssertTrue("\(error)".hasPrefix("node '\(node)' (\(type)) failed:"), "\(error)")
                XCTAssertTrue("\(error)".contains(mentions), "\(type): \(error)")
            }
        }
    }

    /// What each adapter node's output depends on is in its cache key: a
    /// changed scale re-runs the Apply node and the sampler but not the
    /// loads; a changed hint file re-runs the preprocessor too.
    func testCacheKeysFollowAdapterInputs() throws {
        let url = Fixture.template("controlnet-inpaint")
        let folder = Fixture.temporaryFolder("cn-cache")
        let sketch = folder.appendingPathComponent("sketch.png")
        try PNG.write(ExampleImages.scribble(), to: sketch.path)
        let runner = WorkflowRunner()
        let workflow = try runner.validate(url)
        var settings = Fixture.quickSettings("controlnet-inpaint")
        settings["sketch"] = sketch.path
        let output = folder.appendingPathComponent("out")
        _ = try runner.run(workflow, file: url, set: settings, outputDirectory: output)

        settings["control_scale"] = "0.5"
        let rescaled = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        // Not re-run: served from the cache, or not needed at all (`drawing`: `hint` is served).
        for id in ["model", "controlnet", "drawing", "hint", "text", "source"] { XCTAssertNotEqual(rescaled.node(id)?.cacheHit, false, id) }
        for id in ["control", "pilot", "blend", "decode"] { XCTAssertEqual(rescaled.node(id)?.cacheHit, false, id) }

        settings["thickness"] = "3"
        let thicker = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        for id in ["model", "controlnet", "drawing"] { XCTAssertNotEqual(thicker.node(id)?.cacheHit, false, id) }
        for id in ["hint", "control", "pilot"] { XCTAssertEqual(thicker.node(id)?.cacheHit, false, id) }

        var drawing = ExampleImages.scribble()
        drawing[0, 5, 5] = 0
        try PNG.write(drawing, to: sketch.path)
        let redrawn = try runner.run(workflow, file: url, set: settings, outputDirectory: output)
        for id in ["model", "controlnet"] { XCTAssertNotEqual(redrawn.node(id)?.cacheHit, false, id) }
        for id in ["drawing", "hint", "control", "pilot"] { XCTAssertEqual(redrawn.node(id)?.cacheHit, false, id) }
    }
}
