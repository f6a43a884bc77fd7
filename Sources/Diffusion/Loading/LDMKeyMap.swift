import SafeTensors

/// Maps diffusers weight names to the keys of an original (LDM / A1111 /
/// ComfyUI) single-file checkpoint. One table per component; structural
/// index arithmetic follows the LDM layout of `input_blocks`,
/// `middle_block` and `output_blocks` (each UNet level has `layers` resnets
/// plus a downsampler on the way down and `layers + 1` resnets plus an
/// upsampler on the way up).
enum LDMKeyMap {
    typealias Location = WeightSource.Location

    /// Maps `diffusers.weight/.bias` to `prefix + ldm.weight/.bias` for the
    /// suffixes the file has (biasless layers simply have no `.bias`).
    static func addModule(_ map: inout [String: Location], _ keys: Set<String>, _ prefix: String,
                          _ diffusers: String, _ ldm: String) {
        for suffix in ["weight", "bias"] where keys.contains("\(prefix)\(ldm).\(suffix)") {
            map["\(diffusers).\(suffix)"] = Location(key: "\(prefix)\(ldm).\(suffix)")
        }
    }

    // MARK: UNet

    static func unet(_ c: UNetConfig, keys: Set<String>, prefix: String = "model.diffusion_model.") -> [String: Location] {
        var map: [String: Location] = [:]
        func add(_ diffusers: String, _ ldm: String) { addModule(&map, keys, prefix, diffusers, ldm) }
        func resnet(_ d: String, _ l: String) {
            add("\(d).norm1", "\(l).in_layers.0")
            add("\(d).conv1", "\(l).in_layers.2")
            add("\(d).time_emb_proj", "\(l).emb_layers.1")
            add("\(d).norm2", "\(l).out_layers.0")
            add("\(d).conv2", "\(l).out_layers.3")
            add("\(d).conv_shortcut", "\(l).skip_connection")
        }
        func transformer(_ d: String, _ l: String) {
            // Names inside a SpatialTransformer match diffusers already.
            let lp = "\(prefix)\(l)."
            for key in keys where key.hasPrefix(lp) {
                map["\(d).\(key.dropFirst(lp.count))"] = Location(key: key)
            }
        }
        add("time_embedding.linear_1", "time_embed.0")
        add("time_embedding.linear_2", "time_embed.2")
        add("add_embedding.linear_1", "label_emb.0.0")        // SDXL's pooled text + time ids
        add("add_embedding.linear_2", "label_emb.0.2")
        add("conv_in", "input_blocks.0.0")
        add("conv_norm_out", "out.0")
        add("conv_out", "out.2")
        let n = c.blockOutChannels.count, layers = c.layersPerBlock
        for i in 0..<n {
            for j in 0..<layers {
                let k = 1 + i * (layers + 1) + j
                resnet("down_blocks.\(i).resnets.\(j)", "input_blocks.\(k).0")
                transformer("down_blocks.\(i).attentions.\(j)", "input_blocks.\(k).1")
            }
            if i < n - 1 {
                add("down_blocks.\(i).downsamplers.0.conv", "input_blocks.\(1 + i * (layers + 1) + layers).0.op")
            }
        }
        resnet("mid_block.resnets.0", "middle_block.0")
        transformer("mid_block.attentions.0", "middle_block.1")
        resnet("mid_block.resnets.1", "middle_block.2")
        for i in 0..<n {
            let hasAttention = c.upBlockTypes[i] == "CrossAttnUpBlock2D"
            for j in 0...layers {
                let k = i * (layers + 1) + j
                resnet("up_blocks.\(i).resnets.\(j)", "output_blocks.\(k).0")
                if hasAttention { transformer("up_blocks.\(i).attentions.\(j)", "output_blocks.\(k).1") }
                if j == layers, i < n - 1 {
                    add("up_blocks.\(i).upsamplers.0.conv", "output_blocks.\(k).\(hasAttention ? 2 : 1).conv")
                }
            }
        }
        return map
    }

    // MARK: ControlNet

    /// Original ControlNet files: the UNet encoder under `control_model.`
    /// (or no prefix), `input_hint_block` (convs at even indices, SiLU between),
    /// `zero_convs.N.0` and `middle_block_out.0`.
    static func controlNet(_ c: ControlNetConfig, keys: Set<String>) -> [String: Location] {
        let prefix = keys.contains { $0.hasPrefix("control_model.") } ? "control_model." : ""
        var map = unet(c.unet, keys: keys, prefix: prefix)
        func add(_ diffusers: String, _ ldm: String) { addModule(&map, keys, prefix, diffusers, ldm) }
        let hintConvs = 2 * (c.embeddingChannels.count - 1)
        add("controlnet_cond_embedding.conv_in", "input_hint_block.0")
        for j in 0..<hintConvs { add("controlnet_cond_embedding.blocks.\(j)", "input_hint_block.\(2 * (j + 1))") }
        add("controlnet_cond_embedding.conv_out", "input_hint_block.\(2 * (hintConvs + 1))")
        var i = 0
        while keys.contains("\(prefix)zero_convs.\(i).0.weight") {
            add("controlnet_down_blocks.\(i)", "zero_convs.\(i).0")
            i += 1
        }
        add("controlnet_mid_block", "middle_block_out.0")
        return map
    }

    // MARK: VAE

    static func vae(_ c: VAEConfig, keys: Set<String>, prefix: String = "first_stage_model.") -> [String: Location] {
        var map: [String: Location] = [:]
        func add(_ diffusers: String, _ ldm: String) { addModule(&map, keys, prefix, diffusers, ldm) }
        func resnet(_ d: String, _ l: String) {
            for name in ["norm1", "conv1", "norm2", "conv2"] { add("\(d).\(name)", "\(l).\(name)") }
            add("\(d).conv_shortcut", "\(l).nin_shortcut")
        }
        func mid(_ side: String) {
            resnet("\(side).mid_block.resnets.0", "\(side).mid.block_1")
            resnet("\(side).mid_block.resnets.1", "\(side).mid.block_2")
            let a = "\(side).mid_block.attentions.0"
            add("\(a).group_norm", "\(side).mid.attn_1.norm")
            add("\(a).to_q", "\(side).mid.attn_1.q")
            add("\(a).to_k", "\(side).mid.attn_1.k")
            add("\(a).to_v", "\(side).mid.attn_1.v")
            add("\(a).to_out.0", "\(side).mid.attn_1.proj_out")
        }
        let n = c.blockOutChannels.count
        for side in ["encoder", "decoder"] {
            add("\(side).conv_in", "\(side).conv_in")
            add("\(side).conv_out", "\(side).conv_out")
            add("\(side).conv_norm_out", "\(side).norm_out")
            mid(side)
        }
        for i in 0..<n {
            for j in 0..<c.layersPerBlock {
                resnet("encoder.down_blocks.\(i).resnets.\(j)", "encoder.down.\(i).block.\(j)")
            }
            add("encoder.down_blocks.\(i).downsamplers.0.conv", "encoder.down.\(i).downsample.conv")
            // The decoder's up levels are stored in reverse order.
            let l = n - 1 - i
            for j in 0...c.layersPerBlock {
                resnet("decoder.up_blocks.\(i).resnets.\(j)", "decoder.up.\(l).block.\(j)")
            }
            add("decoder.up_blocks.\(i).upsamplers.0.conv", "decoder.up.\(l).upsample.conv")
        }
        add("quant_conv", "quant_conv")
        add("post_quant_conv", "post_quant_conv")
        return map
    }

    // MARK: Text encoders

    /// SD 1.x: HF CLIP under `cond_stage_model.transformer.` (with or without `text_model.`).
    static func clipText(keys: Set<String>, prefix: String = "cond_stage_model.transformer.") -> [String: Location] {
        var map: [String: Location] = [:]
        for key in keys where key.hasPrefix(prefix) {
            var name = String(key.dropFirst(prefix.count))
            if !name.hasPrefix("text_model.") { name = "text_model." + name }
            map[name] = Location(key: key)
        }
        return map
    }

    /// SD 2.x (and SDXL's second encoder): OpenCLIP under
    /// `cond_stage_model.model.` (`conditioner.embedders.1.model.`), with
    /// fused qkv projections split by rows; with `projection`, the pooled
    /// `text_projection` (stored for `x @ P`, so transposed).
    static func openCLIPText(keys: Set<String>, width: Int, prefix: String = "cond_stage_model.model.",
                             projection: Bool = false) -> [String: Location] {
        var map: [String: Location] = [:]
        func add(_ d: String, _ l: String, rows: Range<Int>? = nil) {
            if keys.contains(prefix + l) { map[d] = Location(key: prefix + l, rows: rows) }
        }
        add("text_model.embeddings.token_embedding.weight", "token_embedding.weight")
        add("text_model.embeddings.position_embedding.weight", "positional_embedding")
        add("text_model.final_layer_norm.weight", "ln_final.weight")
        add("text_model.final_layer_norm.bias", "ln_final.bias")
        if projection, keys.contains(prefix + "text_projection") {
            map["text_projection.weight"] = Location(key: prefix + "text_projection", transposed: true)
        }
        var i = 0
        while keys.contains("\(prefix)transformer.resblocks.\(i).ln_1.weight") {
            let d = "text_model.encoder.layers.\(i)", l = "transformer.resblocks.\(i)"
            for s in ["weight", "bias"] {
                add("\(d).layer_norm1.\(s)", "\(l).ln_1.\(s)")
                add("\(d).layer_norm2.\(s)", "\(l).ln_2.\(s)")
                add("\(d).self_attn.out_proj.\(s)", "\(l).attn.out_proj.\(s)")
                add("\(d).mlp.fc1.\(s)", "\(l).mlp.c_fc.\(s)")
                add("\(d).mlp.fc2.\(s)", "\(l).mlp.c_proj.\(s)")
                for (k, proj) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                    add("\(d).self_attn.\(proj).\(s)", "\(l).attn.in_proj_\(s)", rows: (k * width)..<((k + 1) * width))
                }
            }
            i += 1
        }
        return map
    }

    /// Number of OpenCLIP residual blocks stored.
    static func openCLIPLayerCount(keys: Set<String>, prefix: String = "cond_stage_model.model.") -> Int {
        var i = 0
        while keys.contains("\(prefix)transformer.resblocks.\(i).ln_1.weight") { i += 1 }
        return i
    }
}
