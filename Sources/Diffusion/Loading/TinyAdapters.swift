import Foundation
import SafeTensors
import Tensors

/// Random-weight adapters shaped for the tiny model's UNet, written beside
/// it by `pilot models create-tiny` so every adapter template runs on it.
extension TinyModel {
    /// A ControlNet over the tiny UNet's encoder (its config without up blocks).
    public static var controlNetConfig: [String: Any] { controlNetConfig(.sd15) }

    public static func controlNetConfig(_ family: Family) -> [String: Any] {
        var config = unetConfig(family)
        config["_class_name"] = "ControlNetModel"
        config.removeValue(forKey: "up_block_types")
        config.removeValue(forKey: "out_channels")
        config["conditioning_channels"] = 3
        config["conditioning_embedding_out_channels"] = [8, 16, 16, 32]  // three stride-2 convs: ×8
        return config
    }

    /// A full T2I-Adapter on one-channel hints (as the sketch adapters), one
    /// feature per UNet down block at its width.
    public static var t2iAdapterConfig: [String: Any] { [
        "_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [32, 64, 64], "in_channels": 1,
        "num_res_blocks": 1, "downscale_factor": 8,
    ] }

    /// A CLIPVisionModelWithProjection on 32×32 crops.
    public static var imageEncoderConfig: [String: Any] { [
        "architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model", "hidden_size": 16,
        "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "image_size": 32, "patch_size": 8,
        "projection_dim": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3,
    ] }

    /// Image tokens the tiny IP-Adapter makes.
    static let ipAdapterTokens = 4
    /// Rank of the tiny LoRA's factors.
    static let loraRank = 4

    /// Writes `controlnet/`, `t2i-adapter/`, `image_encoder/`,
    /// `ip-adapter.safetensors` and `lora.safetensors` into `root`, beside a
    /// tiny model whose UNet and text encoder are already there.
    static func createAdapters(in root: URL, seed: UInt64, family: Family) throws {
        let unetConfig = try UNetConfig(JSONConfig(values: unetConfig(family)))
        let controlNetConfig = controlNetConfig(family)
        try writeRandom(root.appendingPathComponent("controlnet"), config: controlNetConfig,
                        weightsFile: "diffusion_pytorch_model.safetensors", seed: seed &+ 11) {
            _ = try ControlNetModel($0, config: ControlNetConfig(JSONConfig(values: controlNetConfig)))
        }
        if family == .sd15 {
            // SDXL T2I-Adapters are another architecture (full_adapter_xl), not supported yet.
            try writeRandom(root.appendingPathComponent("t2i-adapter"), config: t2iAdapterConfig,
                            weightsFile: "diffusion_pytorch_model.safetensors", seed: seed &+ 12) {
                _ = try T2IAdapter($0, config: T2IAdapterConfig(JSONConfig(values: t2iAdapterConfig)))
            }
        }
        let encoderConfig = try CLIPVisionConfig(JSONConfig(values: imageEncoderConfig))
        try writeRandom(root.appendingPathComponent("image_encoder"), config: imageEncoderConfig,
                        weightsFile: "model.safetensors", seed: seed &+ 13) {
            _ = try CLIPVisionModel($0, config: encoderConfig)
        }

        // IP-Adapter: the image projection, then to_k_ip / to_v_ip for every
        // cross-attention layer in diffusers' processor order (odd indices).
        let unet = try UNet2DConditionModel(WeightLoader(WeightSource(randomSeed: seed &+ 1)), config: unetConfig)
        let width = unetConfig.crossAttentionDim
        let ip = WeightSource(randomSeed: seed &+ 14)
        _ = try ip.tensor("image_proj.proj.weight", shape: [ipAdapterTokens * width, encoderConfig.projectionDim])
        _ = try ip.tensor("image_proj.proj.bias", shape: [ipAdapterTokens * width])
        _ = try ip.tensor("image_proj.norm.weight", shape: [width])
        _ = try ip.tensor("image_proj.norm.bias", shape: [width])
        for (j, (_, channels)) in unet.crossAttentionLayersInProcessorOrder.enumerated() {
            _ = try ip.tensor("ip_adapter.\(2 * j + 1).to_k_ip.weight", shape: [channels, width])
            _ = try ip.tensor("ip_adapter.\(2 * j + 1).to_v_ip.weight", shape: [channels, width])
        }
        try writeGenerated(ip, to: root.appendingPathComponent("ip-adapter.safetensors"))

        // LoRA (kohya names): the UNet's attention projections and the text
        // encoders', with α = r/2.
        let lora = WeightSource(randomSeed: seed &+ 15)
        var alphas: [(String, [Int], [Float])] = []
        var parts = [("lora_unet_", "unet", "diffusion_pytorch_model.safetensors")]
        parts += family == .sdxl
            ? [("lora_te1_", "text_encoder", "model.safetensors"), ("lora_te2_", "text_encoder_2", "model.safetensors")]
            : [("lora_te_", "text_encoder", "model.safetensors")]
        for (prefix, component, file) in parts {
            let weights = try SafeTensorsFile(path: root.appendingPathComponent(component).appendingPathComponent(file).path)
            let targets = [".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight",
                           ".q_proj.weight", ".k_proj.weight", ".v_proj.weight", ".out_proj.weight"]
            for name in weights.names.sorted() where targets.contains(where: { name.hasSuffix($0) }) {
                let shape = try weights.info(name).shape
                let module = prefix + name.dropLast(".weight".count).replacingOccurrences(of: ".", with: "_")
                _ = try lora.tensor("\(module).lora_down.weight", shape: [loraRank, shape[1]])
                _ = try lora.tensor("\(module).lora_up.weight", shape: [shape[0], loraRank])
                alphas.append(("\(module).alpha", [], [Float(loraRank) / 2]))
            }
        }
        try writeGenerated(lora, to: root.appendingPathComponent("lora.safetensors"), extra: alphas)
    }
}
