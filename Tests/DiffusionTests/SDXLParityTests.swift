@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// The tiny SDXL pipeline of `Tests/Reference/make_sdxl_fixtures.py` against
/// diffusers 0.39.0 / transformers 4.57.6 (float32 on fp16-exact weights).
final class SDXLParityTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/sdxl").standardized
    static var folder: URL { root.appendingPathComponent("sdxl") }

    var reference: SafeTensorsFile!

    override func setUpWithError() throws {
        reference = try SafeTensorsFile(path: Self.root.appendingPathComponent("sdxl_reference.safetensors").path)
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { reference = nil }

    func ref(_ name: String) throws -> Tensor { try Tensor(reference, name) }

    func ids(_ name: String) throws -> [[Int32]] { [try ref(name).scalars.map { Int32($0) }] }

    /// A component of the fixture folder, checked for unused weights.
    func component<T>(_ name: String, file: String, _ build: (WeightLoader, JSONConfig) throws -> T) throws -> T {
        let dir = Self.folder.appendingPathComponent(name)
        let config = try JSONConfig(path: dir.appendingPathComponent("config.json").path)
        let source = WeightSource(files: [try SafeTensorsFile(path: dir.appendingPathComponent(file).path)])
        return try loadChecked(source, ignoring: { $0.hasSuffix("position_ids") }) { try build(WeightLoader($0), config) }
    }

    func testUNetWithAddedTextTimeConditioningMatchesDiffusers() throws {
        let unet = try component("unet", file: "diffusion_pytorch_model.fp16.safetensors") {
            try UNet2DConditionModel($0, config: UNetConfig($1))
        }
        XCTAssertEqual(unet.config.transformerLayers, [1, 2, 3], "per-level transformer depths")
        XCTAssertEqual(unet.config.addition, AdditionEmbeddingConfig(timeEmbedDim: 4, inputDim: 28), "text_time addition")
        let t = try ref("unet.timestep").scalars[0]
        let added = AddedConditioning(textEmbeds: try ref("unet.text_embeds"), timeIds: try ref("unet.time_ids"))
        let out = try unet(try ref("unet.sample"), timesteps: [t, t],
                           conditioning: UNetConditioning(context: try ref("unet.context"), added: added))
        assertClose(out, try ref("unet.out"), tolerance: 1e-4, "SDXL UNet output")
        // Without its added conditioning an SDXL UNet refuses to run rather than guess.
        XCTAssertThrowsError(try unet(try ref("unet.sample"), timesteps: [t, t],
                                      conditioning: UNetConditioning(context: try ref("unet.context")))) { error in
            XCTAssertTrue("\(error)".contains("pooled text embeddings"), "\(error)")
        }
    }

    func testBothTextEncodersPenultimateStatesAndPooledProjection() throws {
        let te1 = try component("text_encoder", file: "model.fp16.safetensors") { try CLIPTextModel($0, config: CLIPTextConfig($1)) }
        let te2 = try component("text_encoder_2", file: "model.fp16.safetensors") { try CLIPTextModel($0, config: CLIPTextConfig($1)) }
        XCTAssertNil(te1.config.projectionDim, "text_encoder is a CLIPTextModel")
        XCTAssertEqual(te2.config.projectionDim, 4, "text_encoder_2 is a CLIPTextModelWithProjection")
        let first = te1.encode(ids: try ids("ids.prompt"), skipLastLayers: 1, normalised: false)
        assertClose(first.hidden, try ref("te1.penultimate"), tolerance: 1e-4, "text_encoder hidden_states[-2]")
        let second = te2.encode(ids: try ids("ids.prompt_2"), skipLastLayers: 1, normalised: false, pooled: true)
        assertClose(second.hidden, try ref("te2.penultimate"), tolerance: 1e-4, "text_encoder_2 hidden_states[-2]")
        assertClose(try XCTUnwrap(second.pooled), try ref("te2.text_embeds"), tolerance: 1e-4, "text_encoder_2 text_embeds")
        assertClose(concat([first.hidden, second.hidden], axis: 2), try ref("prompt_embeds"), tolerance: 1e-4,
                    "encode_prompt's concatenated embeddings")
    }

    /// The folder loads as the SDXL family (two encoders, added conditioning)
    /// and a 4-step DDIM txt2img run matches the diffusers pipeline, with
    /// its empty negative prompt as zeros.
    func testFolderLoadsAsSDXLAndTxt2ImgMatchesThePipeline() throws {
        let model = try StableDiffusionModel.load(path: Self.folder.path)
        XCTAssertEqual(model.family.id, "sdxl-base", "detected from the UNet's text_time addition")
        XCTAssertEqual(model.textEncoders.count, 2, "text_encoder and text_encoder_2")
        XCTAssertEqual(model.vae.config.scalingFactor, 0.13025, "SDXL's VAE scaling factor")
        let encoder = try model.promptEncoder()
        let prompts = try encoder.encode(prompt: "a red fox in the snow", negative: "")
        XCTAssertEqual(prompts.positive.tokens.ids.map(Float.init), try ref("ids.prompt").scalars, "tokenizer ids")
        assertClose(prompts.positive.embedding, try ref("prompt_embeds"), tolerance: 1e-4, "prompt embeddings")
        assertClose(try XCTUnwrap(prompts.positive.pooled), try ref("pooled_prompt_embeds"), tolerance: 1e-4, "pooled embedding")
        XCTAssertEqual(prompts.negative.embedding.scalars.map(abs).max(), 0, "empty negative prompt → zero embeddings")
        XCTAssertEqual(prompts.negative.pooled?.scalars.map(abs).max(), 0, "empty negative prompt → zero pooled embedding")

        let ids = AddedConditioning.timeIds(originalSize: (128, 128), targetSize: (128, 128))
        var sampler = GuidedSampler(unet: model.unet, guidanceScale: 5, added: PromptPair(
            negative: AddedConditioning(textEmbeds: prompts.negative.pooled!, timeIds: ids),
            positive: AddedConditioning(textEmbeds: prompts.positive.pooled!, timeIds: ids)))
        sampler.adapters = nil
        var scheduler = DDIMScheduler(config: model.schedule, steps: 4)
        let latent = try sampler.run(scheduler: &scheduler, noise: try ref("txt2img.noise"),
                                     positive: prompts.positive.embedding, negative: prompts.negative.embedding)
        assertClose(latent, try ref("txt2img.latent"), tolerance: 1e-3, "4-step DDIM txt2img latent")
    }
}
