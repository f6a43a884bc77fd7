import Tensors

/// A down block: resnets, each optionally followed by a transformer, then an
/// optional stride-2 downsampler. Returns the output and the skip states.
struct DownBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2D]
    let downsampler: Downsample2D?

    init(_ w: WeightLoader, in inC: Int, out outC: Int, c: UNetConfig, heads: Int, depth: Int, crossAttention: Bool,
         last: Bool) throws {
        resnets = try (0..<c.layersPerBlock).map {
            try ResnetBlock2D(w["resnets"][$0], in: $0 == 0 ? inC : outC, out: outC, timeChannels: c.timeEmbedDim,
                              groups: c.normGroups, eps: c.normEps)
        }
        attentions = crossAttention ? try (0..<c.layersPerBlock).map {
            try Transformer2D(w["attentions"][$0], channels: outC, heads: heads, contextDim: c.crossAttentionDim,
                              layers: depth, groups: c.normGroups, linear: c.useLinearProjection)
        } : []
        downsampler = last ? nil : try Downsample2D(w["downsamplers"][0], channels: outC, padding: c.downsamplePadding)
    }

    /// `adapter`: a T2I-Adapter feature added after the last resnet/transformer
    /// of a cross-attention block (diffusers' intrablock residual).
    func callAsFunction(_ x: Tensor, time: Tensor, cond: UNetConditioning, adapter: Tensor?) -> (Tensor, [Tensor]) {
        var h = x
        var skips: [Tensor] = []
        for (j, resnet) in resnets.enumerated() {
            h = resnet(h, time: time)
            if !attentions.isEmpty { h = attentions[j](h, cond: cond) }
            if j == resnets.count - 1, !attentions.isEmpty, let adapter { h = h + adapter }
            skips.append(h)
        }
        if let downsampler {
            h = downsampler(h)
            skips.append(h)
        }
        return (h, skips)
    }
}

/// `UNetMidBlock2DCrossAttn`: resnet, transformer, resnet.
struct MidBlock {
    let resnet1, resnet2: ResnetBlock2D
    let attention: Transformer2D

    init(_ w: WeightLoader, channels: Int, c: UNetConfig, heads: Int, depth: Int) throws {
        resnet1 = try ResnetBlock2D(w["resnets"][0], in: channels, out: channels, timeChannels: c.timeEmbedDim,
                                    groups: c.normGroups, eps: c.normEps)
        attention = try Transformer2D(w["attentions"][0], channels: channels, heads: heads, contextDim: c.crossAttentionDim,
                                      layers: depth, groups: c.normGroups, linear: c.useLinearProjection)
        resnet2 = try ResnetBlock2D(w["resnets"][1], in: channels, out: channels, timeChannels: c.timeEmbedDim,
                                    groups: c.normGroups, eps: c.normEps)
    }

    func callAsFunction(_ x: Tensor, time: Tensor, cond: UNetConditioning) -> Tensor {
        resnet2(attention(resnet1(x, time: time), cond: cond), time: time)
    }
}

/// An up block: `layersPerBlock + 1` resnets, each consuming one skip state
/// (concatenated on channels), optionally followed by a transformer, then an
/// optional nearest-×2 upsampler.
struct UpBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2D]
    let upsampler: Upsample2D?

    init(_ w: WeightLoader, in inC: Int, previous prevC: Int, out outC: Int, c: UNetConfig, heads: Int, depth: Int,
         crossAttention: Bool, last: Bool) throws {
        let n = c.layersPerBlock + 1
        resnets = try (0..<n).map { j in
            let skip = j == n - 1 ? inC : outC
            let input = j == 0 ? prevC : outC
            return try ResnetBlock2D(w["resnets"][j], in: input + skip, out: outC, timeChannels: c.timeEmbedDim,
                                     groups: c.normGroups, eps: c.normEps)
        }
        attentions = crossAttention ? try (0..<n).map {
            try Transformer2D(w["attentions"][$0], channels: outC, heads: heads, contextDim: c.crossAttentionDim,
                              layers: depth, groups: c.normGroups, linear: c.useLinearProjection)
        } : []
        upsampler = last ? nil : try Upsample2D(w["upsamplers"][0], channels: outC)
    }

    var skipCount: Int { resnets.count }

    func callAsFunction(_ x: Tensor, skips: [Tensor], time: Tensor, cond: UNetConditioning) -> Tensor {
        var h = x
        var skips = skips
        for (j, resnet) in resnets.enumerated() {
            h = resnet(concat([h, skips.removeLast()], axis: 1), time: time)
            if !attentions.isEmpty { h = attentions[j](h, cond: cond) }
        }
        if let upsampler { h = upsampler(h) }
        return h
    }
}
