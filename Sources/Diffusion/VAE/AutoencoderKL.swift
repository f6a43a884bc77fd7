import Tensors

/// `AutoencoderKL` hyper-parameters (`vae/config.json`).
public struct VAEConfig: Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var latentChannels = 4
    public var blockOutChannels = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var normGroups = 32
    public var scalingFactor: Float = 0.18215
    public var useQuantConv = true
    public var midBlockAttention = true

    public init() {}

    public init(_ c: JSONConfig) throws {
        inChannels = try c.int("in_channels", default: 3)
        outChannels = try c.int("out_channels", default: 3)
        latentChannels = try c.int("latent_channels", default: 4)
        blockOutChannels = try c.ints("block_out_channels", default: [64])
        layersPerBlock = try c.int("layers_per_block", default: 1)
        normGroups = try c.int("norm_num_groups", default: 32)
        scalingFactor = try c.float("scaling_factor", default: 0.18215)
        useQuantConv = try c.bool("use_quant_conv", default: true)
        midBlockAttention = try c.bool("mid_block_add_attention", default: true)
        for t in try c.strings("down_block_types", default: []) where t != "DownEncoderBlock2D" {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported VAE down block \(t)")
        }
        for t in try c.strings("up_block_types", default: []) where t != "UpDecoderBlock2D" {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported VAE up block \(t)")
        }
        for ch in blockOutChannels where ch % normGroups != 0 {
            throw ModelLoadError.badConfig(path: c.path, reason: "norm_num_groups \(normGroups) does not divide \(ch) channels")
        }
    }

    /// SD 1.x/2.x VAE (`vae/config.json` of stable-diffusion-v1-5).
    public static let sd = VAEConfig()

    /// Pixels per latent cell along each side.
    public var downscale: Int { 1 << (blockOutChannels.count - 1) }
}

/// Single-head spatial self-attention of the VAE mid block. Accepts both
/// weight namings (`to_q`… and the older `query`/`key`/`value`/`proj_attn`).
struct VAEAttention {
    let norm: GroupNorm
    let q, k, v, out: Linear

    init(_ w: WeightLoader, channels: Int, groups: Int) throws {
        norm = try GroupNorm(w["group_norm"], groups: groups, channels: channels, eps: 1e-6)
        let old = !w["to_q"].contains("weight") && w["query"].contains("weight")
        q = try Linear(w[old ? "query" : "to_q"], in: channels, out: channels)
        k = try Linear(w[old ? "key" : "to_k"], in: channels, out: channels)
        v = try Linear(w[old ? "value" : "to_v"], in: channels, out: channels)
        out = try Linear(old ? w["proj_attn"] : w["to_out"][0], in: channels, out: channels)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, wd) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        let t = norm(x).reshaped([b, c, h * wd]).transposed()            // [B, HW, C]
        let a = out(attention(q: q(t), k: k(t), v: v(t), heads: 1))
        return a.transposed().reshaped([b, c, h, wd]) + x
    }
}

/// `UNetMidBlock2D` without time embedding: resnet, attention, resnet.
struct VAEMidBlock {
    let resnet1, resnet2: ResnetBlock2D
    let attention: VAEAttention?

    init(_ w: WeightLoader, channels: Int, groups: Int, attention: Bool) throws {
        resnet1 = try ResnetBlock2D(w["resnets"][0], in: channels, out: channels, timeChannels: nil, groups: groups, eps: 1e-6)
        self.attention = attention ? try VAEAttention(w["attentions"][0], channels: channels, groups: groups) : nil
        resnet2 = try ResnetBlock2D(w["resnets"][1], in: channels, out: channels, timeChannels: nil, groups: groups, eps: 1e-6)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnet1(x, time: nil)
        if let attention { h = attention(h) }
        return resnet2(h, time: nil)
    }
}

/// The VAE encoder: image `[B, 3, H, W]` → posterior moments `[B, 2·latent, H/8, W/8]`.
struct VAEEncoder {
    let convIn, convOut: Conv2d
    let blocks: [(resnets: [ResnetBlock2D], down: Conv2d?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm

    init(_ w: WeightLoader, _ c: VAEConfig) throws {
        let ch = c.blockOutChannels
        convIn = try Conv2d(w["conv_in"], in: c.inChannels, out: ch[0], kernel: 3, padding: 1)
        blocks = try ch.indices.map { i in
            let inC = i == 0 ? ch[0] : ch[i - 1]
            let b = w["down_blocks"][i]
            let resnets = try (0..<c.layersPerBlock).map {
                try ResnetBlock2D(b["resnets"][$0], in: $0 == 0 ? inC : ch[i], out: ch[i], timeChannels: nil,
                                  groups: c.normGroups, eps: 1e-6)
            }
            // Downsample2D(padding=0): pad right/bottom by one, then 3×3 stride 2.
            let down = i == ch.count - 1 ? nil
                : try Conv2d(b["downsamplers"][0]["conv"], in: ch[i], out: ch[i], kernel: 3, stride: 2)
            return (resnets, down)
        }
        mid = try VAEMidBlock(w["mid_block"], channels: ch.last!, groups: c.normGroups, attention: c.midBlockAttention)
        normOut = try GroupNorm(w["conv_norm_out"], groups: c.normGroups, channels: ch.last!, eps: 1e-6)
        convOut = try Conv2d(w["conv_out"], in: ch.last!, out: 2 * c.latentChannels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for block in blocks {
            for r in block.resnets { h = r(h, time: nil) }
            if let down = block.down { h = down(h.padded(right: 1, bottom: 1)) }
        }
        return convOut(normOut(mid(h)).silu())
    }
}

/// The VAE decoder: latent `[B, latent, h, w]` → image `[B, 3, 8h, 8w]` in about [−1, 1].
struct VAEDecoder {
    let convIn, convOut: Conv2d
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock2D], up: Upsample2D?)]
    let normOut: GroupNorm

    init(_ w: WeightLoader, _ c: VAEConfig) throws {
        let rch = Array(c.blockOutChannels.reversed())
        convIn = try Conv2d(w["conv_in"], in: c.latentChannels, out: rch[0], kernel: 3, padding: 1)
        mid = try VAEMidBlock(w["mid_block"], channels: rch[0], groups: c.normGroups, attention: c.midBlockAttention)
        blocks = try rch.indices.map { i in
            let inC = i == 0 ? rch[0] : rch[i - 1]
            let b = w["up_blocks"][i]
            let resnets = try (0...c.layersPerBlock).map {
                try ResnetBlock2D(b["resnets"][$0], in: $0 == 0 ? inC : rch[i], out: rch[i], timeChannels: nil,
                                  groups: c.normGroups, eps: 1e-6)
            }
            let up = i == rch.count - 1 ? nil : try Upsample2D(b["upsamplers"][0], channels: rch[i])
            return (resnets, up)
        }
        normOut = try GroupNorm(w["conv_norm_out"], groups: c.normGroups, channels: rch.last!, eps: 1e-6)
        convOut = try Conv2d(w["conv_out"], in: rch.last!, out: c.outChannels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = mid(convIn(z))
        for block in blocks {
            for r in block.resnets { h = r(h, time: nil) }
            if let up = block.up { h = up(h) }
        }
        return convOut(normOut(h).silu())
    }
}

/// The diagonal Gaussian posterior of the VAE encoder.
public struct LatentDistribution {
    public let mean: Tensor
    /// log σ², clamped to [−30, 20] as diffusers does.
    public let logVariance: Tensor

    public var standardDeviation: Tensor { (logVariance * 0.5).exp() }

    /// `mean + σ·noise` for standard-normal `noise` of the mean's shape.
    public func sample(noise: Tensor) -> Tensor { mean + standardDeviation * noise }
}

/// Stable Diffusion's VAE (diffusers `AutoencoderKL`).
public final class AutoencoderKL {
    public let config: VAEConfig
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    let quantConv, postQuantConv: Conv2d?

    public init(_ w: WeightLoader, config c: VAEConfig) throws {
        config = c
        encoder = try VAEEncoder(w["encoder"], c)
        decoder = try VAEDecoder(w["decoder"], c)
        let l = c.latentChannels
        quantConv = c.useQuantConv ? try Conv2d(w["quant_conv"], in: 2 * l, out: 2 * l, kernel: 1) : nil
        postQuantConv = c.useQuantConv ? try Conv2d(w["post_quant_conv"], in: l, out: l, kernel: 1) : nil
    }

    /// The posterior for images `[B, 3, H, W]` in [−1, 1] (H, W multiples of 8),
    /// in the VAE's own (unscaled) latent units.
    public func encode(_ image: Tensor) throws -> LatentDistribution {
        guard image.rank == 4, image.dim(1) == config.inChannels,
              image.dim(2) % config.downscale == 0, image.dim(3) % config.downscale == 0 else {
            throw ModelInputError.shape(what: "VAE input image",
                                        expected: "[B, \(config.inChannels), H, W] with H, W multiples of \(config.downscale)",
                                        found: image.shape)
        }
        var moments = encoder(image)
        if let quantConv { moments = quantConv(moments) }
        let parts = moments.chunked(2, axis: 1)
        return LatentDistribution(mean: parts[0], logVariance: parts[1].clamped(-30, 20))
    }

    /// Images in about [−1, 1] for unscaled latents `[B, latent, h, w]`.
    public func decode(_ latent: Tensor) throws -> Tensor {
        guard latent.rank == 4, latent.dim(1) == config.latentChannels else {
            throw ModelInputError.shape(what: "VAE latent", expected: "[B, \(config.latentChannels), h, w]", found: latent.shape)
        }
        return decoder(postQuantConv?(latent) ?? latent)
    }
}
