import Tensors

/// The CLIP text transformer's shape (`text_encoder/config.json`).
public struct CLIPTextConfig: Equatable, Sendable {
    public var vocabularySize = 49408
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var heads = 12
    public var layers = 12
    public var maxPositions = 77
    public var activation = Activation.quickGelu
    public var layerNormEps: Float = 1e-5
    /// `projection_dim` of a `CLIPTextModelWithProjection` (the pooled
    /// projection SDXL's second encoder feeds the UNet); nil without one.
    public var projectionDim: Int?
    /// The end-of-text token id, whose position the pooled output reads.
    public var endTokenId: Int32 = 49407

    public init() {}

    public init(_ c: JSONConfig) throws {
        vocabularySize = try c.int("vocab_size", default: 49408)
        hiddenSize = try c.int("hidden_size", default: 512)
        intermediateSize = try c.int("intermediate_size", default: 2048)
        heads = try c.int("num_attention_heads", default: 8)
        layers = try c.int("num_hidden_layers", default: 12)
        maxPositions = try c.int("max_position_embeddings", default: 77)
        activation = try c.activation("hidden_act", default: "quick_gelu")
        layerNormEps = try c.float("layer_norm_eps", default: 1e-5)
        // transformers pools at the first `eos_token_id`; configs that say 2
        // (the legacy value) mean the largest id, which is CLIP's 49407.
        let eos = try c.int("eos_token_id", default: 49407)
        if eos != 2, eos >= 0, eos < vocabularySize { endTokenId = Int32(eos) }
        let architectures = try c.strings("architectures", default: [])
        if architectures.contains("CLIPTextModelWithProjection") {
            projectionDim = try c.int("projection_dim", default: 512)
        }
    }

    /// SD 1.x: OpenAI CLIP ViT-L/14 text tower.
    public static let sd1: CLIPTextConfig = {
        var c = CLIPTextConfig()
        c.hiddenSize = 768; c.intermediateSize = 3072; c.heads = 12; c.layers = 12
        c.activation = .quickGelu
        return c
    }()

    /// SD 2.x: OpenCLIP ViT-H/14 text tower, 23 of its 24 layers.
    public static let sd2: CLIPTextConfig = {
        var c = CLIPTextConfig()
        c.hiddenSize = 1024; c.intermediateSize = 4096; c.heads = 16; c.layers = 23
        c.activation = .gelu
        return c
    }()
}

/// One pre-norm transformer layer with causal self-attention.
struct CLIPEncoderLayer {
    let q, k, v, out: Linear
    let norm1, norm2: LayerNorm
    let fc1, fc2: Linear
    let heads: Int
    let activation: Activation
    let causal: Bool

    init(_ w: WeightLoader, _ c: CLIPTextConfig, causal: Bool = true) throws {
        self.causal = causal
        let d = c.hiddenSize
        q = try Linear(w["self_attn"]["q_proj"], in: d, out: d)
        k = try Linear(w["self_attn"]["k_proj"], in: d, out: d)
        v = try Linear(w["self_attn"]["v_proj"], in: d, out: d)
        out = try Linear(w["self_attn"]["out_proj"], in: d, out: d)
        norm1 = try LayerNorm(w["layer_norm1"], dim: d, eps: c.layerNormEps)
        norm2 = try LayerNorm(w["layer_norm2"], dim: d, eps: c.layerNormEps)
        fc1 = try Linear(w["mlp"]["fc1"], in: d, out: c.intermediateSize)
        fc2 = try Linear(w["mlp"]["fc2"], in: c.intermediateSize, out: d)
        heads = c.heads
        activation = c.activation
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = norm1(x)
        let a = attention(q: q(h), k: k(h), v: v(h), heads: heads, causal: causal)
        let x = x + out(a)
        return x + fc2(activation(fc1(norm2(x))))
    }
}

/// CLIP's text encoder as SD uses it: token + position embeddings, causal
/// transformer layers, final layer norm (`CLIPTextModel.last_hidden_state`).
public final class CLIPTextModel {
    public let config: CLIPTextConfig
    let tokenEmbedding: Tensor
    let positionEmbedding: Tensor
    let layers: [CLIPEncoderLayer]
    let finalNorm: LayerNorm
    /// `text_projection` (no bias) of a `CLIPTextModelWithProjection`.
    let projection: Linear?

    /// Loads from diffusers names (`text_model.…`, and `text_projection`
    /// when the config has a projection).
    public init(_ w: WeightLoader, config c: CLIPTextConfig) throws {
        config = c
        let t = w["text_model"]
        tokenEmbedding = try t["embeddings"]["token_embedding"].tensor("weight", [c.vocabularySize, c.hiddenSize])
        positionEmbedding = try t["embeddings"]["position_embedding"].tensor("weight", [c.maxPositions, c.hiddenSize])
        layers = try (0..<c.layers).map { try CLIPEncoderLayer(t["encoder"]["layers"][$0], c) }
        finalNorm = try LayerNorm(t["final_layer_norm"], dim: c.hiddenSize, eps: c.layerNormEps)
        projection = try c.projectionDim.map { try Linear(w["text_projection"], in: c.hiddenSize, out: $0, bias: false) }
    }

    /// Hidden states `[B, L, hidden]` for `ids` (`B` rows of `L` ids).
    /// `skipLastLayers` drops that many final layers before the final norm
    /// ("CLIP skip" as users set it: 0 = all layers).
    public func callAsFunction(ids: [[Int32]], skipLastLayers: Int = 0) -> Tensor {
        encode(ids: ids, skipLastLayers: skipLastLayers).hidden
    }

    /// The hidden states after all layers but the last `skipLastLayers`,
    /// through the final layer norm when `normalised` (SD 1.x/2.x) or not
    /// (SDXL reads `hidden_states[-2]` raw), and, when `pooled` and the model
    /// has a projection, the projected final-norm state at each row's end
    /// token `[B, projectionDim]` (transformers' `text_embeds`).
    ///
    /// `injected` replaces the token vectors at those positions, in every
    /// row, with the given `hiddenSize` vectors (textual inversion).
    public func encode(ids: [[Int32]], skipLastLayers: Int = 0, normalised: Bool = true,
                       pooled: Bool = false, injected: [Int: [Float]] = [:]) -> (hidden: Tensor, pooled: Tensor?) {
        precondition(!ids.isEmpty, "no prompts to encode")
        let length = ids[0].count
        precondition(ids.allSatisfy { $0.count == length } && length <= config.maxPositions,
                     "every row must have the same length ≤ \(config.maxPositions)")
        var x = embedding(tokenEmbedding, ids: ids.flatMap { $0 }, shape: [ids.count, length])
        if !injected.isEmpty {
            let d = config.hiddenSize
            var values = x.scalars
            for (position, vector) in injected {
                precondition(position >= 0 && position < length && vector.count == d,
                             "an injected vector needs a position in 0..<\(length) and \(d) values")
                for b in 0..<ids.count { values.replaceSubrange(((b * length + position) * d)..<((b * length + position + 1) * d), with: vector) }
            }
            x = Tensor(shape: x.shape, values: values)
        }
        x = x + positionEmbedding.sliced(axis: 0, 0..<length)
        let kept = layers.count - max(0, min(skipLastLayers, layers.count - 1))
        var hidden: Tensor?
        for (i, layer) in layers.enumerated() {
            if i == kept { hidden = normalised ? finalNorm(x) : x }
            if i >= kept, !(pooled && projection != nil) { break }
            x = layer(x)
        }
        let last = finalNorm(x)
        let out = hidden ?? (normalised ? last : x)
        guard pooled, let projection else { return (out, nil) }
        let rows = ids.enumerated().map { b, row in
            let end = row.firstIndex(of: config.endTokenId) ?? row.indices.max { row[$0] < row[$1] }!
            return last.sliced(axis: 0, b..<(b + 1)).sliced(axis: 1, end..<(end + 1)).reshaped([1, config.hiddenSize])
        }
        return (out, projection(concat(rows, axis: 0)))
    }
}
