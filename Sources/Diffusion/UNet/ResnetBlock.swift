import Tensors

/// diffusers' `ResnetBlock2D`: GN → SiLU → conv, plus a projected time
/// embedding, GN → SiLU → conv, and a (1×1-projected) shortcut.
struct ResnetBlock2D {
    let norm1, norm2: GroupNorm
    let conv1, conv2: Conv2d
    let timeProjection: Linear?
    let shortcut: Conv2d?

    init(_ w: WeightLoader, in inC: Int, out outC: Int, timeChannels: Int?, groups: Int, eps: Float) throws {
        norm1 = try GroupNorm(w["norm1"], groups: groups, channels: inC, eps: eps)
        conv1 = try Conv2d(w["conv1"], in: inC, out: outC, kernel: 3, padding: 1)
        timeProjection = try timeChannels.map { try Linear(w["time_emb_proj"], in: $0, out: outC) }
        norm2 = try GroupNorm(w["norm2"], groups: groups, channels: outC, eps: eps)
        conv2 = try Conv2d(w["conv2"], in: outC, out: outC, kernel: 3, padding: 1)
        shortcut = inC == outC ? nil : try Conv2d(w["conv_shortcut"], in: inC, out: outC, kernel: 1)
    }

    func callAsFunction(_ x: Tensor, time: Tensor?) -> Tensor {
        var h = conv1(norm1(x).silu())
        if let timeProjection, let time {
            let t = timeProjection(time.silu())                 // [B, C]
            h = h + t.reshaped([t.dim(0), t.dim(1), 1, 1])
        }
        h = conv2(norm2(h).silu())
        return (shortcut?(x) ?? x) + h
    }
}

/// `Downsample2D` with a convolution: 3×3, stride 2.
struct Downsample2D {
    let conv: Conv2d
    init(_ w: WeightLoader, channels: Int, padding: Int) throws {
        conv = try Conv2d(w["conv"], in: channels, out: channels, kernel: 3, stride: 2, padding: padding)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { conv(x) }
}

/// `Upsample2D`: nearest ×2, then a 3×3 convolution.
struct Upsample2D {
    let conv: Conv2d
    init(_ w: WeightLoader, channels: Int) throws {
        conv = try Conv2d(w["conv"], in: channels, out: channels, kernel: 3, padding: 1)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest(x, factor: 2)) }
}
