import Tensors

/// Errors in how a model is called (shapes), as opposed to how it loaded.
public enum ModelInputError: Error, CustomStringConvertible {
    case shape(what: String, expected: String, found: [Int])
    case mismatch(what: String, expected: String, found: String)

    public var description: String {
        switch self {
        case .shape(let what, let expected, let found): return "\(what) should be \(expected), found shape \(found)"
        case .mismatch(let what, let expected, let found): return "\(what) should be \(expected), found \(found)"
        }
    }
}

/// Stable Diffusion's noise-prediction UNet (diffusers
/// `UNet2DConditionModel`: the SD 1.x/2.x and SDXL layouts). Property paths mirror
/// diffusers' weight names, so a diffusers folder loads by name.
public final class UNet2DConditionModel {
    public let config: UNetConfig
    let timeEmbedding: TimeEmbedding
    let convIn, convOut: Conv2d

    /// Where the weights live (and so where the UNet computes).
    public var device: Device { convIn.weight.device }
    let normOut: GroupNorm
    let down: [DownBlock]
    let mid: MidBlock
    let up: [UpBlock]

    public init(_ w: WeightLoader, config c: UNetConfig) throws {
        config = c
        let ch = c.blockOutChannels
        let n = ch.count
        timeEmbedding = try TimeEmbedding(w, config: c)
        convIn = try Conv2d(w["conv_in"], in: c.inChannels, out: ch[0], kernel: 3, padding: 1)
        down = try (0..<n).map { i in
            try DownBlock(w["down_blocks"][i], in: i == 0 ? ch[0] : ch[i - 1], out: ch[i], c: c, heads: c.heads[i],
                          depth: c.transformerLayers[i], crossAttention: c.downBlockTypes[i] == "CrossAttnDownBlock2D",
                          last: i == n - 1)
        }
        mid = try MidBlock(w["mid_block"], channels: ch[n - 1], c: c, heads: c.heads[n - 1], depth: c.transformerLayers[n - 1])
        let rch = Array(ch.reversed()), rheads = Array(c.heads.reversed()), rdepth = Array(c.transformerLayers.reversed())
        up = try (0..<n).map { i in
            try UpBlock(w["up_blocks"][i], in: rch[min(i + 1, n - 1)], previous: i == 0 ? rch[0] : rch[i - 1],
                        out: rch[i], c: c, heads: rheads[i], depth: rdepth[i],
                        crossAttention: c.upBlockTypes[i] == "CrossAttnUpBlock2D", last: i == n - 1)
        }
        normOut = try GroupNorm(w["conv_norm_out"], groups: c.normGroups, channels: ch[0], eps: c.normEps)
        convOut = try Conv2d(w["conv_out"], in: ch[0], out: c.outChannels, kernel: 3, padding: 1)
    }

    /// Spatial sizes must be divisible by this (one halving per down block but the last).
    public var spatialMultiple: Int { 1 << (config.blockOutChannels.count - 1) }

    /// Shapes of the ControlNet residuals this UNet accepts for a latent of
    /// `height`×`width`: one per skip state, then the mid block's.
    public func controlResidualShapes(batch: Int, height: Int, width: Int) -> (down: [[Int]], mid: [Int]) {
        var shapes: [[Int]] = [[batch, config.blockOutChannels[0], height, width]]
        var (h, w) = (height, width)
        for (i, block) in down.enumerated() {
            for _ in block.resnets { shapes.append([batch, config.blockOutChannels[i], h, w]) }
            if block.downsampler != nil {
                h = (h + 1) / 2; w = (w + 1) / 2
                shapes.append([batch, config.blockOutChannels[i], h, w])
            }
        }
        return (shapes, [batch, config.blockOutChannels.last!, h, w])
    }

    /// Predicts the model output (ε or v) for latents `x [B, C, H, W]` at
    /// `timesteps` (one per batch row).
    public func callAsFunction(_ x: Tensor, timesteps: [Float], conditioning cond: UNetConditioning) throws -> Tensor {
        let b = x.dim(0)
        guard x.rank == 4, x.dim(1) == config.inChannels else {
            throw ModelInputError.shape(what: "UNet latent", expected: "[B, \(config.inChannels), H, W]", found: x.shape)
        }
        guard x.shape.allSatisfy({ $0 >= 1 }) else {
            throw ModelInputError.shape(what: "UNet latent", expected: "every dimension at least 1", found: x.shape)
        }
        guard x.dim(2) % spatialMultiple == 0, x.dim(3) % spatialMultiple == 0 else {
            throw ModelInputError.shape(what: "UNet latent", expected: "spatial sizes divisible by \(spatialMultiple)", found: x.shape)
        }
        guard timesteps.count == b else {
            throw ModelInputError.shape(what: "timesteps", expected: "one per batch row (\(b))", found: [timesteps.count])
        }
        let ctx = cond.context
        guard ctx.rank == 3, ctx.dim(0) == b, ctx.dim(2) == config.crossAttentionDim else {
            throw ModelInputError.shape(what: "UNet context", expected: "[\(b), L, \(config.crossAttentionDim)]", found: ctx.shape)
        }
        let shapes = controlResidualShapes(batch: b, height: x.dim(2), width: x.dim(3))
        if let cd = cond.controlDown {
            guard cd.map(\.shape) == shapes.down else {
                throw ModelInputError.mismatch(what: "ControlNet down residuals", expected: "\(shapes.down)",
                                               found: "\(cd.map(\.shape))")
            }
        }
        if let cm = cond.controlMid, cm.shape != shapes.mid {
            throw ModelInputError.shape(what: "ControlNet mid residual", expected: "\(shapes.mid)", found: cm.shape)
        }

        let time = try timeEmbedding(timesteps, added: cond.added)
        if let ip = cond.imagePrompt, ip.tokens.dim(0) != b || ip.tokens.dim(2) != config.crossAttentionDim {
            throw ModelInputError.shape(what: "IP-Adapter image tokens", expected: "[\(b), n, \(config.crossAttentionDim)]",
                                        found: ip.tokens.shape)
        }
        var h = convIn(x)
        var skips = [h]
        var adapter = cond.adapterFeatures ?? []
        for block in down {
            let isCross = !block.attentions.isEmpty
            let feature = isCross && !adapter.isEmpty ? adapter.removeFirst() : nil
            var (out, s) = block(h, time: time, cond: cond, adapter: feature)
            if !isCross, !adapter.isEmpty {
                // Plain down blocks get their feature after the block (diffusers).
                out = out + adapter.removeFirst()
                s[s.count - 1] = out
            }
            h = out
            skips += s
        }
        if let cd = cond.controlDown { skips = zip(skips, cd).map { $0 + $1 } }
        h = mid(h, time: time, cond: cond)
        if let first = adapter.first, first.shape == h.shape { h = h + first }
        if let cm = cond.controlMid { h = h + cm }
        for block in up {
            let n = block.skipCount
            let mine = Array(skips.suffix(n))
            skips.removeLast(n)
            h = block(h, skips: mine, time: time, cond: cond)
        }
        return convOut(normOut(h).silu())
    }
}
