@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// ControlNet, IP-Adapter and LoRA on the tiny SDXL model against diffusers
/// (`Tests/Reference/make_sdxl_adapter_fixtures.py`; float32 references
/// within 1.2e-6 of float64): every output ≤ 1e-4 relative to the
/// reference's max |value|. Every UNet and ControlNet call carries SDXL's
/// added conditioning.
final class SDXLAdapterParityTests: XCTestCase {
    static let folder = SDXLParityTests.root.appendingPathComponent("adapters")
    let tol: Float = 1e-4

    var reference: SafeTensorsFile!
    var model: StableDiffusionModel!

    override func setUpWithError() throws {
        reference = try SafeTensorsFile(path: Self.folder.appendingPathComponent("reference.safetensors").path)
        model = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { reference = nil; model = nil }

    func r(_ name: String) throws -> Tensor { try Tensor(reference, name) }
    func path(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }
    var added: AddedConditioning {
        get throws { AddedConditioning(textEmbeds: try r("inputs.text_embeds"), timeIds: try r("inputs.time_ids")) }
    }

    func unet(_ cond: UNetConditioning, model m: StableDiffusionModel? = nil) throws -> Tensor {
        var cond = cond
        cond.added = try added
        return try (m ?? model).unet(try r("inputs.sample"), timesteps: try reference.floats("inputs.timestep"), conditioning: cond)
    }

    func testPlainUNetIsTheBaseline() throws {
        assertClose(try unet(UNetConditioning(context: try r("inputs.encoder_hidden_states"))), try r("inputs.unet_out"),
                    tolerance: tol, "UNet without adapters")
    }

    func testSDXLControlNetWithItsOwnAddedEmbedding() throws {
        let cn = try ControlNetModel.load(path: path("controlnet"))
        let hint = Tensor(shape: [2, 3, 128, 128], values: try reference.floats("inputs.hint_u8").map { $0 / 255 })
        let (down, mid) = try cn(try r("inputs.sample"), timesteps: try reference.floats("inputs.timestep"),
                                 context: try r("inputs.encoder_hidden_states"), hint: hint, scale: 1, added: try added)
        XCTAssertEqual(down.count, 9)
        for (i, d) in down.enumerated() {
            assertClose(d, try r("controlnet.down_residual.\(i)"), tolerance: tol, "SDXL ControlNet down residual \(i)")
        }
        assertClose(mid, try r("controlnet.mid_residual"), tolerance: tol, "SDXL ControlNet mid residual")
        let out = try unet(UNetConditioning(context: try r("inputs.encoder_hidden_states"), controlDown: down, controlMid: mid))
        assertClose(out, try r("controlnet.unet_out"), tolerance: tol, "SDXL UNet with ControlNet residuals")
    }

    func testSDXLIPAdapterEncoderTokensAndUNet() throws {
        let encoder = try CLIPVisionModel.load(folder: path("image_encoder"))
        let embeds = try encoder.imageEmbeds(try r("inputs.ip_pixel_values"))
        assertClose(embeds, try r("ip.image_embeds"), tolerance: tol, "CLIP image_embeds")
        let ip = try IPAdapter(path: path("ip_adapter.safetensors"), unet: model.unet, imageEmbedDim: 6)
        let tokens = ip.guidanceTokens(imageEmbeds: embeds)
        assertClose(tokens, try r("ip.image_tokens"), tolerance: tol, "image tokens [zero embedding, image]")
        let out = try unet(UNetConditioning(context: try r("inputs.encoder_hidden_states"),
                                            imagePrompt: ImagePromptConditioning(tokens: tokens, scale: 0.7, adapter: ip)))
        assertClose(out, try r("ip.unet_out"), tolerance: tol, "SDXL UNet with IP-Adapter at scale 0.7 (mid block last)")
    }

    func testSDXLLoRAReachesTheUNetAndBothTextEncoders() throws {
        let ids1 = [try r("inputs.input_ids").scalars.map { Int32($0) }]
        let ids2 = [try r("inputs.input_ids_2").scalars.map { Int32($0) }]
        for file in ["lora_kohya.safetensors", "lora_peft.safetensors", "lora_kohya_sgm.safetensors"] {
            let lora = try LoRA.load(path: path(file))
            let merged = try StableDiffusionModel.load(path: SDXLParityTests.folder.path, loras: [(lora, 0.8)])
            XCTAssertEqual(merged.loraReport.unknown, [], "\(file): every entry matched a weight")
            XCTAssertEqual(merged.loraReport.appliedModules, 48, "\(file): 28 UNet and 20 text-encoder modules")
            let out = try unet(UNetConditioning(context: try r("inputs.encoder_hidden_states")), model: merged)
            assertClose(out, try r("lora.unet_out"), tolerance: tol, "\(file): UNet with the LoRA at 0.8")
            let te1 = merged.textEncoders[0].encode(ids: ids1, skipLastLayers: 1, normalised: false, pooled: false)
            assertClose(te1.hidden, try r("lora.te1.penultimate"), tolerance: tol, "\(file): text_encoder hidden_states[-2]")
            let te2 = merged.textEncoders[1].encode(ids: ids2, skipLastLayers: 1, normalised: false, pooled: true)
            assertClose(te2.hidden, try r("lora.te2.penultimate"), tolerance: tol, "\(file): text_encoder_2 hidden_states[-2]")
            assertClose(try XCTUnwrap(te2.pooled), try r("lora.te2.text_embeds"), tolerance: tol, "\(file): text_encoder_2 pooled")
        }
    }

    func testSecondEncoderLoRAEntriesOnAnSD15ModelAreReported() throws {
        let lora = try LoRA.load(path: path("lora_kohya.safetensors"))
        XCTAssertTrue(lora.entries.contains { $0.target == .textEncoder2 }, "lora_te2_ entries target text_encoder_2")
        let sd1 = try SDFixture("sd1").loadFolder()
        XCTAssertEqual(sd1.textEncoders.count, 1)
        let report = LoRAReport([(lora, 1)], components: [.unet, .textEncoder])
        XCTAssertTrue(report.unknown.contains { $0.contains("text_encoder_2") && $0.contains("the model has no text_encoder_2") },
                      "an SD 1.5 model names the entries it has no encoder for: \(report.unknown.prefix(3))")
    }

    func testKohyaOriginalLayoutNamesMapToDiffusersModules() {
        let cases: [(String, String?)] = [
            ("input_blocks_4_1_transformer_blocks_1_attn1_to_k", "down_blocks_1_attentions_0_transformer_blocks_1_attn1_to_k"),
            ("input_blocks_3_0_op", "down_blocks_0_downsamplers_0_conv"),
            ("input_blocks_1_0_in_layers_2", "down_blocks_0_resnets_0_conv1"),
            ("input_blocks_2_0_skip_connection", "down_blocks_0_resnets_1_conv_shortcut"),
            ("middle_block_1_proj_in", "mid_block_attentions_0_proj_in"),
            ("middle_block_2_emb_layers_1", "mid_block_resnets_1_time_emb_proj"),
            ("output_blocks_2_1_conv", "up_blocks_0_upsamplers_0_conv"),
            ("output_blocks_5_2_conv", "up_blocks_1_upsamplers_0_conv"),
            ("output_blocks_5_1_proj_out", "up_blocks_1_attentions_2_proj_out"),
            ("output_blocks_7_0_out_layers_3", "up_blocks_2_resnets_1_conv2"),
            ("label_emb_0_2", "add_embedding_linear_2"),
            ("down_blocks_0_attentions_0_proj_in", nil),
            ("input_blocks_1_0_unknown_layer", nil),
        ]
        for (kohya, diffusers) in cases {
            XCTAssertEqual(LoRA.diffusersModule(ldm: kohya, layersPerBlock: 2), diffusers, "\(kohya) with 2 resnets a level")
        }
    }
}
