import Foundation
import SafeTensors

/// A random-weight Stable Diffusion 1.x-style model small enough to run
/// every workflow in seconds. Its images look like coloured noise: it is for
/// trying workflows, the daemon and the CLI without real weights.
public enum TinyModel {
    public static var unetConfig: [String: Any] { [
        "_class_name": "UNet2DConditionModel", "sample_size": 16, "in_channels": 4, "out_channels": 4,
        "block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 32, "attention_head_dim": 4, "use_linear_projection": false,
        "flip_sin_to_cos": true, "freq_shift": 0, "act_fn": "silu",
    ] }
    public static var vaeConfig: [String: Any] { [
        "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
        "block_out_channels": [16, 32, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": Array(repeating: "DownEncoderBlock2D", count: 4),
        "up_block_types": Array(repeating: "UpDecoderBlock2D", count: 4),
        "sample_size": 128, "scaling_factor": 0.18215,
    ] }
    public static var textConfig: [String: Any] { [
        "architectures": ["CLIPTextModel"], "vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    ] }
    public static var schedulerConfig: [String: Any] { [
        "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "clip_sample": false, "set_alpha_to_one": false, "steps_offset": 1,
        "prediction_type": "epsilon", "timestep_spacing": "leading",
    ] }

    /// Writes the folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,
    /// `scheduler/`, and a README saying what it is) and returns its path.
    @discardableResult
    public static func create(at folder: String, seed: UInt64 = 0) throws -> String {
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
        try write("unet", unetConfig, file: "diffusion_pytorch_model.safetensors", {
            _ = try UNet2DConditionModel($0, config: try UNetConfig(JSONConfig(values: unetConfig)))
        }, seed: seed &+ 1)
        try write("vae", vaeConfig, file: "diffusion_pytorch_model.safetensors", {
            _ = try AutoencoderKL($0, config: try VAEConfig(JSONConfig(values: vaeConfig)))
        }, seed: seed &+ 2)
        try write("text_encoder", textConfig, file: "model.safetensors", {
            _ = try CLIPTextModel($0, config: try CLIPTextConfig(JSONConfig(values: textConfig)))
        }, seed: seed &+ 3)
        try write("scheduler", schedulerConfig, file: "", { _ in }, seed: 0)
        let index: [String: Any] = [
            "_class_name": "StableDiffusionPipeline", "_note": "tiny random-weight model from pilot models create-tiny",
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"], "scheduler": ["diffusers", "DDIMScheduler"],
        ]
        try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            .write(to: root.appendingPathComponent("model_index.json"))
        try createAdapters(in: root, seed: seed)
        try """
            # Tiny random-weight model

            Made by `pilot models create-tiny` (seed \(seed)). Every weight is random:
            images from it look like coloured noise. It exists so every workflow,
            the CLI and the daemon can be tried in seconds without real weights.
            Layout: a diffusers Stable Diffusion 1.x-style folder (UNet 32/64/64
            channels, VAE ×8, CLIP text encoder with 2 layers; the bundled CLIP
            tokenizer is used).

            Random-weight adapters shaped for this UNet, for the adapter templates:
            `controlnet/` (diffusers ControlNetModel), `t2i-adapter/` (a one-channel
            full T2I-Adapter, like the sketch adapters), `ip-adapter.safetensors`
            with its CLIP image encoder `image_encoder/`, and `lora.safetensors`
            (kohya format, UNet attention and text-encoder projections).

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
