import Foundation
import SafeTensors
import Tensors

/// Image tokens and their weight for the UNet's decoupled cross-attention.
public struct ImagePromptConditioning {
    /// `[B, tokens, crossAttentionDim]`, one row per UNet batch row.
    public var tokens: Tensor
    public var scale: Float
    public let adapter: IPAdapter

    public init(tokens: Tensor, scale: Float, adapter: IPAdapter) {
        self.tokens = tokens
        self.scale = scale
        self.adapter = adapter
    }
}

/// IP-Adapter (Ye et al. 2023), SD 1.x base variant: a linear projection of
/// the CLIP image embedding to `tokens` context tokens (then layer norm), and
/// per cross-attention layer extra key/value projections `to_k_ip`, `to_v_ip`.
/// The UNet adds `scale · attention(q, k_ip, v_ip)` to the text attention
/// before `to_out`, once (the PILOT authors' double `to_out` and ignored scale
/// are not reproduced).
public final class IPAdapter {
    public let tokenCount: Int
    public let crossAttentionDim: Int
    /// The CLIP image-embedding size the projection expects.
    public let imageEmbedDim: Int
    /// Where the weights came from.
    public let source: String
    let projection: Linear
    let norm: LayerNorm
    let layers: [String: (k: Linear, v: Linear)]

    /// Loads `image_proj.*` / `ip_adapter.N.to_k_ip|to_v_ip.weight` from one
    /// safetensors file, for `unet`. Layer N (odd) is the ⌊N/2⌋-th attention
    /// processor in diffusers' order (down blocks, up blocks, mid block; attn1
    /// even, attn2 odd).
    public init(path: String, unet: UNet2DConditionModel, imageEmbedDim: Int) throws {
        let file = try SafeTensorsFile(path: path)
        let w = WeightLoader(WeightSource(files: [file]))
        let cross = unet.config.crossAttentionDim
        source = path
        let projShape = try file.info("image_proj.proj.weight").shape
        guard projShape.count == 2, projShape[0] % cross == 0 else {
            throw AdapterMismatchError(adapter: "IP-Adapter \(path) (image_proj.proj.weight \(projShape))",
                                       model: "the UNet (cross-attention width \(cross))",
                                       reason: "the projection does not make tokens of the UNet's width")
        }
        guard projShape[1] == imageEmbedDim else {
            throw AdapterMismatchError(adapter: "IP-Adapter \(path) (expects image embeddings of \(projShape[1]))",
                                       model: "the image encoder (projects to \(imageEmbedDim))", reason: "wrong vision encoder")
        }
        self.imageEmbedDim = imageEmbedDim
        tokenCount = projShape[0] / cross
        crossAttentionDim = cross
        projection = try Linear(w["image_proj"]["proj"], in: imageEmbedDim, out: tokenCount * cross)
        norm = try LayerNorm(w["image_proj"]["norm"], dim: cross, eps: 1e-5)
        var layers: [String: (Linear, Linear)] = [:]
        for (j, (name, channels)) in unet.crossAttentionLayersInProcessorOrder.enumerated() {
            let ip = w["ip_adapter"][2 * j + 1]
            layers[name] = (try Linear(ip["to_k_ip"], in: cross, out: channels, bias: false),
                            try Linear(ip["to_v_ip"], in: cross, out: channels, bias: false))
        }
        self.layers = layers
    }

    /// The image tokens `[B, tokens, crossAttentionDim]` for CLIP image embeddings `[B, D]`.
    public func tokens(imageEmbeds e: Tensor) -> Tensor {
        norm(projection(e).reshaped([e.dim(0), tokenCount, crossAttentionDim]))
    }

    /// Tokens for classifier-free guidance: the unconditional row projects a
    /// zero embedding (as diffusers does), then the conditional row.
    public func guidanceTokens(imageEmbeds e: Tensor) -> Tensor {
        concat([tokens(imageEmbeds: Tensor.zeros(e.shape)), tokens(imageEmbeds: e)], axis: 0)
    }

    func projections(layer: String) -> (Linear, Linear)? { layers[layer].map { ($0.k, $0.v) } }
}

extension UNet2DConditionModel {
    /// Every cross-attention layer's diffusers path and width, in diffusers'
    /// attention-processor order: down blocks, up blocks, then the mid block.
    public var crossAttentionLayersInProcessorOrder: [(String, Int)] {
        var out: [(String, Int)] = []
        func add(_ prefix: String, _ t: Transformer2D, _ channels: Int) {
            for b in t.blocks.indices { out.append(("\(prefix).transformer_blocks.\(b).attn2", channels)) }
        }
        let ch = config.blockOutChannels
        for (i, block) in down.enumerated() {
            for (j, t) in block.attentions.enumerated() { add("down_blocks.\(i).attentions.\(j)", t, ch[i]) }
        }
        let rch = Array(ch.reversed())
        for (i, block) in up.enumerated() {
            for (j, t) in block.attentions.enumerated() { add("up_blocks.\(i).attentions.\(j)", t, rch[i]) }
        }
        add("mid_block.attentions.0", mid.attention, ch.last!)
        return out
    }
}
