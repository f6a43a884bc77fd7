import Foundation
import SafeTensors

/// A random-weight Stable Diffusion model small enough to run every
/// workflow in seconds, in the SD 1.x layout or the SDXL one (two text
/// encoders, added text/time conditioning). Its images look like coloured
/// noise: it is for trying workflows, the daemon and the CLI without real
/// weights.
public enum TinyModel {
    /// The layouts `create` can write.
    public enum Family: String, CaseIterable, Sendable {
        case sd15, sdxl
        /// SD 1.5's layout with an inpainting UNet (9 input channels: the
        /// latent, the mask, the masked image's latent).
        case sd15Inpaint = "sd15-inpaint"
    }

    public static var unetConfig: [String: Any] { unetConfig(.sd15) }

    public static func unetConfig(_ family: Family) -> [String: Any] {
        var config: [String: Any] = [
            "_class_name": "UNet2DConditionModel", "sample_size": 16, "in_channels": 4, "out_channels": 4,
            "block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 8,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            "cross_attention_dim": 32, "attention_head_dim": 4, "use_linear_projection": false,
            "flip_sin_to_cos": true, "freq_shift": 0, "act_fn": "silu",
        ]
        if family == .sd15Inpaint { config["in_channels"] = 9 }
        if family == .sdxl {
            // SDXL's shape in miniature: no attention at full resolution,
            // deeper transformers lower down, linear projections, both
            // encoders' states side by side (32 + 32) and the pooled
            // embedding (32) with six time ids (8 channels each) added.
            config["down_block_types"] = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
            config["up_block_types"] = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
            config["transformer_layers_per_block"] = [1, 1, 2]
            config["attention_head_dim"] = [2, 4, 4]
            config["cross_attention_dim"] = 64
            config["use_linear_projection"] = true
            config["addition_embed_type"] = "text_time"
            config["addition_time_embed_dim"] = 8
            config["projection_class_embeddings_input_dim"] = 32 + 6 * 8
        }
        return config
    }

    public static var vaeConfig: [String: Any] { vaeConfig(.sd15) }

    public static func vaeConfig(_ family: Family) -> [String: Any] { [
        "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
        "block_out_channels": [16, 32, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": Array(repeating: "DownEncoderBlock2D", count: 4),
        "up_block_types": Array(repeating: "UpDecoderBlock2D", count: 4),
        "sample_size": 128, "scaling_factor": family == .sdxl ? 0.13025 : 0.18215,
    ] }

    public static var textConfig: [String: Any] { [
        "architectures": ["CLIPTextModel"], "vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    ] }

    /// SDXL's second encoder in miniature: OpenCLIP-style (gelu) with a
    /// pooled projection.
    public static var textConfig2: [String: Any] { [
        "architectures": ["CLIPTextModelWithProjection"], "vocab_size": 49408, "hidden_size": 32,
        "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3, "max_position_embeddings": 77,
        "hidden_act": "gelu", "layer_norm_eps": 1e-5, "projection_dim": 32, "pad_token_id": 0,
    ] }

    public static var schedulerConfig: [String: Any] { [
        "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "clip_sample": false, "set_alpha_to_one": false, "steps_offset": 1,
        "prediction_type": "epsilon", "timestep_spacing": "leading",
    ] }

    /// The text encoder folders of `family` with their configs.
    static func textEncoders(_ family: Family) -> [(component: String, config: [String: Any])] {
        family == .sdxl ? [("text_encoder", textConfig), ("text_encoder_2", textConfig2)] : [("text_encoder", textConfig)]
    }

    /// Writes the folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`
    /// (and `text_encoder_2/` for SDXL), `scheduler/`, adapters, and a README
    /// saying what it is) and returns its path.
    @discardableResult
    public static func create(at folder: String, seed: UInt64 = 0, family: Family = .sd15) throws -> String {
        let root = URL(fileURLWithPath: folder)
        let fm = FileManager.default
        if fm.fileExists(atPath: root.appendingPathComponent("model_index.json").path) {
            throw ModelLoadError.unrecognised(path: folder, reason: "already holds a model (model_index.json); choose an empty folder")
        }
        func write(_ component: String, _ config: [String: Any], file: String, _ build: (WeightLoader) throws -> Void,
                   seed: UInt64) throws {
            try writeRandom(root.appendingPathComponent(component), config: config,
                            configFile: component == "scheduler" ? "scheduler_config.json" : "config.json",
                            weightsFile: file, seed: seed, build)
        }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        let unetConfig = unetConfig(family), vaeConfig = vaeConfig(family)
        try write("unet", unetConfig, file: "diffusion_pytorch_model.safetensors", {
            _ = try UNet2DConditionModel($0, config: try UNetConfig(JSONConfig(values: unetConfig)))
        }, seed: seed &+ 1)
        try write("vae", vaeConfig, file: "diffusion_pytorch_model.safetensors", {
            _ = try AutoencoderKL($0, config: try VAEConfig(JSONConfig(values: vaeConfig)))
        }, seed: seed &+ 2)
        for (i, encoder) in textEncoders(family).enumerated() {
            try write(encoder.component, encoder.config, file: "model.safetensors", {
                _ = try CLIPTextModel($0, config: try CLIPTextConfig(JSONConfig(values: encoder.config)))
            }, seed: seed &+ 3 &+ UInt64(7 * i))
        }
        try write("scheduler", schedulerConfig, file: "", { _ in }, seed: 0)
        var index: [String: Any] = [
            "_class_name": family == .sdxl ? "StableDiffusionXLPipeline"
                : family == .sd15Inpaint ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline",
            "_note": "tiny random-weight model from pilot models create-tiny",
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"], "scheduler": ["diffusers", "DDIMScheduler"],
        ]
        if family == .sdxl {
            index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
            index["force_zeros_for_empty_prompt"] = true
        }
        try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            .write(to: root.appendingPathComponent("model_index.json"))
        try createAdapters(in: root, seed: seed, family: family)
        let layout = family == .sdxl
            ? """
              a diffusers SDXL-style folder (UNet 32/64/64 channels with no attention at
              full resolution, transformer depths 1/1/2, pooled-text and time-id added
              conditioning; VAE ×8 with SDXL's scaling 0.13025; a CLIP text encoder
              with 2 layers and a gelu encoder with projection and 3 layers,
              penultimate states side by side; the bundled CLIP tokenizer is used)
              """
            : """
              a diffusers Stable Diffusion 1.x-style folder (UNet 32/64/64
              channels\(family == .sd15Inpaint ? " taking 9 input channels, an inpainting UNet" : ""), VAE ×8,
              CLIP text encoder with 2 layers; the bundled CLIP tokenizer is used)
              """
        let adapters = family == .sdxl
            ? "`controlnet/` (diffusers ControlNetModel with SDXL's added conditioning), "
            : "`controlnet/` (diffusers ControlNetModel), `t2i-adapter/` (a one-channel\nfull T2I-Adapter, like the sketch adapters), "
        try """
            # Tiny random-weight model

            Made by `pilot models create-tiny --family \(family.rawValue)` (seed \(seed)). Every
            weight is random: images from it look like coloured noise. It exists so
            every workflow, the CLI and the daemon can be tried in seconds without
            real weights. Layout: \(layout).

            Random-weight adapters shaped for this UNet, for the adapter templates:
            \(adapters)`ip-adapter.safetensors` with its CLIP image encoder `image_encoder/`,
            and `lora.safetensors` (kohya format, UNet attention and text-encoder
            projections).

            """.write(to: root.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        return root.path
    }

    /// Writes `config` to `dir/configFile` and, unless `weightsFile` is
    /// empty, the weights `build` asks for, invented from `seed`, to
    /// `dir/weightsFile`.
    static func writeRandom(_ dir: URL, config: [String: Any], configFile: String = "config.json", weightsFile: String,
                            seed: UInt64, _ build: (WeightLoader) throws -> Void) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: dir.appendingPathComponent(configFile))
        guard !weightsFile.isEmpty else { return }
        let source = WeightSource(randomSeed: seed)
        try build(WeightLoader(source))
        try writeGenerated(source, to: dir.appendingPathComponent(weightsFile))
    }

    /// Writes the weights a random `source` invented.
    static func writeGenerated(_ source: WeightSource, to file: URL, extra: [(String, [Int], [Float])] = []) throws {
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt", "note": "random weights made by pilot models create-tiny"]
        for (name, t) in source.generated { try writer.add(name, t) }
        for (name, shape, values) in extra { try writer.add(name, shape: shape, floats: values) }
        try writer.write(to: file.path)
    }
}
