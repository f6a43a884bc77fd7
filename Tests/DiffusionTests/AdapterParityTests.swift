@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// ControlNet, T2I-Adapter, IP-Adapter and LoRA against diffusers
/// (`Tests/Reference/make_adapter_fixtures.py`, float32 dumps within 2e-6 of
/// float64): outputs ≤ 1e-4 relative to the reference's max |value|, the
/// ControlNet pipeline's latents ≤ 1e-3, its image ≤ 2/255.
final class AdapterParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/adapters").standardized
    let tol: Float = 1e-4

    var inputs: SafeTensorsFile!
    var model: StableDiffusionModel!

    override func setUpWithError() throws {
        inputs = try SafeTensorsFile(path: Self.folder.appendingPathComponent("inputs.safetensors").path)
        model = try SDFixture("sd1").loadFolder()
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { inputs = nil; model = nil }

    func file(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: Self.folder.appendingPathComponent("\(name).safetensors").path)
    }
    func path(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }
    func input(_ n: String) throws -> Tensor { try Tensor(inputs, n) }

    func unet(_ cond: UNetConditioning) throws -> Tensor {
        try model.unet(try input("latents"), timesteps: try inputs.floats("timestep"), conditioning: cond)
    }

    // MARK: ControlNet

    func checkControlNet(_ cn: ControlNetModel, _ how: String) throws {
        let ref = try file("controlnet_reference")
        let (down, mid) = try cn(try input("latents"), timesteps: try inputs.floats("timestep"), context: try input("context"),
                                 hint: try input("cond_image"), scale: 0.8)
        XCTAssertEqual(down.count, 9)
        for (i, r) in down.enumerated() {
            assertClose(r, try Tensor(ref, "controlnet.down_residual.\(i)"), tolerance: tol, "\(how) down residual \(i)")
        }
        assertClose(mid, try Tensor(ref, "controlnet.mid_residual"), tolerance: tol, "\(how) mid residual")
        let out = try unet(UNetConditioning(context: try input("context"), controlDown: down, controlMid: mid))
        assertClose(out, try Tensor(ref, "controlnet.unet_out"), tolerance: tol, "\(how) UNet with residuals")
    }

    func testControlNetFromDiffusersFolder() throws {
        try checkControlNet(try ControlNetModel.load(path: path("controlnet")), "folder")
    }

    func testControlNetFromOriginalSingleFile() throws {
        let config = try ControlNetConfig(JSONConfig(path: path("controlnet/config.json")))
        try checkControlNet(try ControlNetModel.load(path: path("controlnet_ldm.safetensors"), config: config), "single file")
    }

    func testTwoControlNetsSumTheirResiduals() throws {
        let ref = try file("controlnet_reference")
        let a = try ControlNetModel.load(path: path("controlnet")), b = try ControlNetModel.load(path: path("controlnet_b"))
        let hint = try input("cond_image")
        let swapped = concat([hint.sliced(axis: 0, 1..<2), hint.sliced(axis: 0, 0..<1)], axis: 0)
        let stack = AdapterStack()
        stack.controlNets = [.init(model: a, hint: hint, scale: 0.9), .init(model: b, hint: swapped, scale: 0.5)]
        // The stack repeats a batch-1 hint; these hints already have batch 2, so call the nets directly.
        let x = try input("latents"), t = try inputs.floats("timestep"), ctx = try input("context")
        let (da, ma) = try a(x, timesteps: t, context: ctx, hint: hint, scale: 0.9)
        let (db, mb) = try b(x, timesteps: t, context: ctx, hint: swapped, scale: 0.5)
        let down = zip(da, db).map { $0 + $1 }
        for (i, r) in down.enumerated() {
            assertClose(r, try Tensor(ref, "multi.down_residual.\(i)"), tolerance: tol, "summed down residual \(i)")
        }
        let out = try unet(UNetConditioning(context: ctx, controlDown: down, controlMid: ma + mb))
        assertClose(out, try Tensor(ref, "multi.unet_out"), tolerance: tol, "UNet with two ControlNets")
        XCTAssertFalse(stack.isEmpty)
    }

    func checkControlNetPipeline(_ prefix: String, end: Float) throws {
        let ref = try file("controlnet_reference")
        let stack = AdapterStack()
        stack.controlNets = [.init(model: try ControlNetModel.load(path: path("controlnet")),
                                   hint: try input("cond_image").sliced(axis: 0, 0..<1), scale: 1, start: 0, end: end)]
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5, adapters: stack)
        var scheduler = DDIMScheduler(config: model.schedule, steps: 3)
        var x = try Tensor(ref, "pipeline.latents_in")
        let pos = try Tensor(ref, "pipeline.prompt_embeds"), neg = try Tensor(ref, "pipeline.negative_prompt_embeds")
        for i in 0..<3 {
            let out = try sampler.guidedOutput(x, timestep: scheduler.timesteps[i], positive: pos, negative: neg, step: i, steps: 3)
            x = scheduler.step(out, step: i, sample: x, noise: nil)
            assertClose(x, try Tensor(ref, "\(prefix).step.\(i).latents"), tolerance: 1e-3, "\(prefix) latents after step \(i)")
        }
        assertClose(x, try Tensor(ref, "\(prefix).latents_out"), tolerance: 1e-3, "\(prefix) final latents")
        if prefix == "pipeline" {
            let image = try model.vae.decodeToImage(scaledLatent: x)
            let expected = try Tensor(ref, "pipeline.image").permuted([0, 3, 1, 2])
            let maxDiff = zip(image.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(maxDiff, 2.0 / 255, "ControlNet pipeline image: expected ≤ 2/255, got \(maxDiff * 255)/255")
        }
    }

    func testControlNetPipelineMatchesDiffusers() throws { try checkControlNetPipeline("pipeline", end: 1) }
    func testControlGuidanceEndStopsTheControlNet() throws { try checkControlNetPipeline("pipeline_end05", end: 0.5) }

    func testControlNetHintShapeIsChecked() throws {
        let cn = try ControlNetModel.load(path: path("controlnet"))
        XCTAssertThrowsError(try cn(try input("latents"), timesteps: [1, 1], context: try input("context"),
                                    hint: Tensor.zeros([2, 3, 64, 64]))) { error in
            XCTAssertTrue("\(error)".contains("ControlNet hint image"), "\(error)")
        }
    }

    // MARK: T2I-Adapter

    func testT2IAdaptersFullAndLight() throws {
        let ref = try file("t2i_reference")
        let image = try input("cond_image").sliced(axis: 0, 1..<2)
        for kind in ["t2i_full", "t2i_light"] {
            let adapter = try T2IAdapter.load(path: path(kind))
            let features = try adapter(image)
            XCTAssertEqual(features.count, 3, "\(kind): one feature per UNet down block")
            for (i, f) in features.enumerated() {
                assertClose(f, try Tensor(ref, "\(kind).feature.\(i)"), tolerance: tol, "\(kind) feature \(i)")
            }
            let stack = AdapterStack()
            try stack.addT2IAdapter(adapter, image: image, scale: 0.7)
            let cond = try stack.conditioning(x: try input("latents"), timestep: 451, step: 0, steps: 1,
                                              context: try input("context"), attentionControl: nil, guided: true)
            assertClose(try unet(cond), try Tensor(ref, "\(kind).unet_out"), tolerance: tol, "\(kind) UNet output (batch 2)")
        }
    }

    // MARK: IP-Adapter

    func testIPAdapterPreprocessingEncoderTokensAndUNet() throws {
        let ref = try file("ip_adapter_reference")
        let hwc = try input("ip_source_image") * (1 / 255)                    // uint8 values stored as floats, HWC
        let pixels = CLIPImagePreprocessing.pixelValues(hwc.permuted([2, 0, 1]))
        assertClose(pixels, try Tensor(ref, "ip.pixel_values"), tolerance: 1e-6, "CLIP preprocessing (Pillow bicubic, crop, normalise)")
        let encoder = try CLIPVisionModel.load(folder: path("image_encoder"))
        let embeds = try encoder.imageEmbeds(pixels)
        assertClose(embeds, try Tensor(ref, "ip.image_embeds"), tolerance: tol, "CLIP image_embeds")
        let ip = try IPAdapter(path: path("ip_adapter.safetensors"), unet: model.unet, imageEmbedDim: 8)
        XCTAssertEqual(ip.tokenCount, 4)
        let tokens = ip.guidanceTokens(imageEmbeds: embeds)
        assertClose(tokens, try Tensor(ref, "ip.image_tokens"), tolerance: tol, "image tokens [zero embedding, image]")
        let out = try unet(UNetConditioning(context: try input("context"),
                                            imagePrompt: ImagePromptConditioning(tokens: tokens, scale: 0.6, adapter: ip)))
        assertClose(out, try Tensor(ref, "ip.unet_out"), tolerance: tol, "UNet with IP-Adapter at scale 0.6")
        let noIP = try unet(UNetConditioning(context: try input("context")))
        XCTAssertGreaterThan(relativeError(out, noIP), 1e-2, "the image prompt must matter")
    }

    // MARK: LoRA

    func testLoRAMergesKohyaAndPeftFormats() throws {
        let ref = try file("lora_reference")
        let kohya = try LoRA.load(path: path("lora_kohya.safetensors"))
        let peft = try LoRA.load(path: path("lora_peft.safetensors"))
        let ids = try ref.floats("lora.input_ids").map { Int32($0) }
        for (tag, ks, ps) in [("a", Float(1), Float(1)), ("b", 0.5, 0.75)] {
            let merged = try StableDiffusionModel.load(path: SDFixture("sd1").folder, loras: [(kohya, ks), (peft, ps)])
            XCTAssertEqual(merged.loraReport.unknown, [], "every LoRA entry matched a weight")
            XCTAssertEqual(merged.loraReport.appliedModules, 17, "15 modules, two of them touched by both files")
            assertClose(merged.textEncoder(ids: [ids]), try Tensor(ref, "lora.\(tag).text_out"), tolerance: tol,
                        "case \(tag): text encoder with merged LoRAs")
            let out = try merged.unet(try input("latents"), timesteps: try inputs.floats("timestep"),
                                      conditioning: UNetConditioning(context: try input("context")))
            assertClose(out, try Tensor(ref, "lora.\(tag).unet_out"), tolerance: tol, "case \(tag): UNet with merged LoRAs")
        }
        // The base model is untouched by a LoRA load.
        let base = try unet(UNetConditioning(context: try input("context")))
        assertClose(base, try input("unet_out"), tolerance: tol, "base model after LoRA loads")
    }

    func testMergedWeightsMatchTheFormula() throws {
        let ref = try file("lora_reference")
        let kohya = try LoRA.load(path: path("lora_kohya.safetensors"))
        let peft = try LoRA.load(path: path("lora_peft.safetensors"))
        let unetFile = try SafeTensorsFile(path: SDFixture("sd1").folder + "/unet/diffusion_pytorch_model.safetensors")
        let source = WeightSource(files: [unetFile])
        var report = LoRAReport()
        try source.merge([(kohya, 0.5), (peft, 0.75)], target: .unet, report: &report)
        for key in ref.names where key.hasPrefix("lora.b.merged.unet.") {
            let name = String(key.dropFirst("lora.b.merged.unet.".count))
            let expected = try Tensor(ref, key)
            assertClose(try source.tensor(name, shape: expected.shape), expected, tolerance: 1e-5, "merged \(name)")
        }
    }

    func writeLoRA(_ body: (inout SafeTensorsWriter) throws -> Void) throws -> String {
        var w = SafeTensorsWriter()
        try body(&w)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString).safetensors")
        try w.write(to: url.path)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testUnknownLoRAKeysAreReported() throws {
        let path = try writeLoRA { w in
            try w.add("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", shape: [1, 8, 3, 3], floats: Array(repeating: 0.01, count: 72))
            try w.add("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", shape: [8, 1, 1, 1], floats: Array(repeating: 0.1, count: 8))
            try w.add("lora_unet_no_such_module.lora_down.weight", shape: [1, 8], floats: Array(repeating: 0.1, count: 8))
            try w.add("lora_unet_no_such_module.lora_up.weight", shape: [8, 1], floats: Array(repeating: 0.1, count: 8))
            try w.add("something_else.weight", shape: [1], floats: [1])
        }
        let m = try StableDiffusionModel.load(path: SDFixture("sd1").folder, loras: [(try LoRA.load(path: path), 1)])
        XCTAssertEqual(m.loraReport.appliedModules, 1)
        XCTAssertTrue(m.loraReport.unknown.contains { $0.hasSuffix("unet: no_such_module") }, "\(m.loraReport.unknown)")
        XCTAssertTrue(m.loraReport.unknown.contains { $0.hasSuffix("something_else.weight") }, "\(m.loraReport.unknown)")
    }

    // MARK: Mismatched adapters

    func testLoRAForAnotherArchitectureIsRefusedNamingBothSides() throws {
        let foreign = try writeLoRA { w in
            // A Flux LoRA's module names (SGM names like input_blocks_1_1_proj_in now map to diffusers').
            try w.add("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", shape: [1, 320], floats: Array(repeating: 0, count: 320))
            try w.add("lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", shape: [320, 1], floats: Array(repeating: 0, count: 320))
        }
        XCTAssertThrowsError(try StableDiffusionModel.load(path: SDFixture("sd1").folder, loras: [(try LoRA.load(path: foreign), 1)])) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains(foreign) && m.contains("diffusion_pytorch_model.safetensors") && m.contains("none of its modules"), m)
        }
        let wrongShape = try writeLoRA { w in
            try w.add("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", shape: [1, 16, 3, 3], floats: Array(repeating: 0, count: 144))
            try w.add("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", shape: [32, 1, 1, 1], floats: Array(repeating: 0, count: 32))
        }
        XCTAssertThrowsError(try StableDiffusionModel.load(path: SDFixture("sd1").folder, loras: [(try LoRA.load(path: wrongShape), 1)])) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains(wrongShape) && m.contains("down_blocks.0.resnets.0.conv1.weight [8, 8, 3, 3]"), m)
        }
    }

    func testControlNetForAnotherUNetIsRefusedNamingBothSides() throws {
        XCTAssertThrowsError(try ControlNetModel.checkCompatible(ControlNetConfig(unet: .sd2), source: "sd21-canny",
                                                                  with: .sd1, unetSource: "sd15")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("sd21-canny") && m.contains("width 1024") && m.contains("sd15") && m.contains("width 768"), m)
        }
        let cn = try ControlNetModel.load(path: path("controlnet"))
        XCTAssertNoThrow(try cn.checkCompatible(with: model.unet), "the fixture ControlNet fits the fixture UNet")
        XCTAssertThrowsError(try ControlNetModel.checkCompatible(cn.config, source: cn.source, with: .sd1, unetSource: "sd15")) { e in
            XCTAssertTrue("\(e)".contains(cn.source), "\(e)")
        }
    }

    func testWrongVisionEncoderAndT2IShapesAreRefused() throws {
        XCTAssertThrowsError(try IPAdapter(path: path("ip_adapter.safetensors"), unet: model.unet, imageEmbedDim: 1024)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("ip_adapter.safetensors") && m.contains("expects image embeddings of 8") && m.contains("1024")
                          && m.contains("wrong vision encoder"), m)
        }
        let stack = AdapterStack()
        try stack.addT2IAdapter(try T2IAdapter.load(path: path("t2i_full")), image: try input("cond_image").sliced(axis: 0, 0..<1), scale: 1)
        XCTAssertNoThrow(try stack.checkCompatible(with: model.unet, height: 16, width: 16))
        XCTAssertThrowsError(try stack.checkCompatible(with: model.unet, height: 32, width: 32, unetSource: "sd1 tiny")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("T2I-Adapter") && m.contains("sd1 tiny"), m)
        }
    }
}
