import Tensors

/// diffusers' `Attention` as used in SD transformer blocks: bias-free q/k/v
/// projections, multi-head scaled dot-product attention, `to_out.0`.
struct CrossAttention {
    let q, k, v, out: Linear
    let heads: Int
    /// The layer's diffusers path, passed to `AttentionControl`.
    let name: String
    let isCross: Bool

    init(_ w: WeightLoader, queryDim: Int, contextDim: Int?, heads: Int, headDim: Int) throws {
        let inner = heads * headDim
        q = try Linear(w["to_q"], in: queryDim, out: inner, bias: false)
        k = try Linear(w["to_k"], in: contextDim ?? queryDim, out: inner, bias: false)
        v = try Linear(w["to_v"], in: contextDim ?? queryDim, out: inner, bias: false)
        out = try Linear(w["to_out"][0], in: inner, out: queryDim)
        self.heads = heads
        name = w.prefix
        isCross = contextDim != nil
    }

    func callAsFunction(_ x: Tensor, cond: UNetConditioning? = nil) -> Tensor {
        let c = cond.map(\.context) ?? x
        let (qx, kx, vx) = (q(x), k(c), v(c))
        var mask: Tensor?
        if isCross, let control = cond?.attentionControl {
            if control.capturesProbabilities(layer: name) {
                control.record(layer: name, probabilities: attentionProbabilities(q: qx, k: kx, heads: heads))
            }
            mask = control.crossAttentionMask(layer: name, queries: qx.dim(1), keys: kx.dim(1), batch: qx.dim(0))
        }
        var h = attention(q: qx, k: kx, v: vx, heads: heads, mask: mask)
        // IP-Adapter: decoupled attention over the image tokens, no SBC, added before to_out.
        if isCross, let ip = cond?.imagePrompt, let (kIP, vIP) = ip.adapter.projections(layer: name) {
            h = h + attention(q: qx, k: kIP(ip.tokens), v: vIP(ip.tokens), heads: heads) * ip.scale
        }
        return out(h)
    }
}

/// `FeedForward` with GEGLU: `proj` to 2×inner, `hidden · gelu(gate)`, back to dim.
struct GEGLUFeedForward {
    let proj, out: Linear
    let inner: Int

    init(_ w: WeightLoader, dim: Int, mult: Int = 4) throws {
        inner = dim * mult
        proj = try Linear(w["net"][0]["proj"], in: dim, out: inner * 2)
        out = try Linear(w["net"][2], in: inner, out: dim)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        out(proj(x).geglu())
    }
}

/// `BasicTransformerBlock`: self-attention, cross-attention, GEGLU MLP, each
/// pre-normed with a residual.
struct BasicTransformerBlock {
    let norm1, norm2, norm3: LayerNorm
    let attn1, attn2: CrossAttention
    let ff: GEGLUFeedForward

    init(_ w: WeightLoader, dim: Int, heads: Int, headDim: Int, contextDim: Int) throws {
        norm1 = try LayerNorm(w["norm1"], dim: dim, eps: 1e-5)
        attn1 = try CrossAttention(w["attn1"], queryDim: dim, contextDim: nil, heads: heads, headDim: headDim)
        norm2 = try LayerNorm(w["norm2"], dim: dim, eps: 1e-5)
        attn2 = try CrossAttention(w["attn2"], queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim)
        norm3 = try LayerNorm(w["norm3"], dim: dim, eps: 1e-5)
        ff = try GEGLUFeedForward(w["ff"], dim: dim)
    }

    func callAsFunction(_ x: Tensor, cond: UNetConditioning) -> Tensor {
        var x = x + attn1(norm1(x))
        x = x + attn2(norm2(x), cond: cond)
        return x + ff(norm3(x))
    }
}

/// `Transformer2DModel` over an NCHW feature map: GN, 1×1-conv or linear
/// projection in, transformer blocks over the H·W tokens, projection out,
/// residual.
struct Transformer2D {
    let norm: GroupNorm
    let projIn, projOut: Projection
    let blocks: [BasicTransformerBlock]

    /// SD 1.x projects with 1×1 convolutions, SD 2.x with linear layers.
    enum Projection {
        case conv(Conv2d), linear(Linear)
    }

    init(_ w: WeightLoader, channels: Int, heads: Int, contextDim: Int, layers: Int, groups: Int, linear: Bool) throws {
        norm = try GroupNorm(w["norm"], groups: groups, channels: channels, eps: 1e-6)
        if linear {
            projIn = .linear(try Linear(w["proj_in"], in: channels, out: channels))
            projOut = .linear(try Linear(w["proj_out"], in: channels, out: channels))
        } else {
            projIn = .conv(try Conv2d(w["proj_in"], in: channels, out: channels, kernel: 1))
            projOut = .conv(try Conv2d(w["proj_out"], in: channels, out: channels, kernel: 1))
        }
        blocks = try (0..<layers).map {
            try BasicTransformerBlock(w["transformer_blocks"][$0], dim: channels, heads: heads,
                                      headDim: channels / heads, contextDim: contextDim)
        }
    }

    func callAsFunction(_ x: Tensor, cond: UNetConditioning) -> Tensor {
        let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        var t = norm(x)
        func tokens(_ t: Tensor) -> Tensor { t.permuted([0, 2, 3, 1]).reshaped([b, h * w, c]) }
        func image(_ t: Tensor) -> Tensor { t.reshaped([b, h, w, c]).permuted([0, 3, 1, 2]) }
        switch projIn {
        case .conv(let p): t = tokens(p(t))
        case .linear(let p): t = p(tokens(t))
        }
        for block in blocks { t = block(t, cond: cond) }
        switch projOut {
        case .conv(let p): t = p(image(t))
        case .linear(let p): t = image(p(t))
        }
        return t + x
    }
}
