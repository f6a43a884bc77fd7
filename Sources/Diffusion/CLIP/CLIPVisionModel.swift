import Foundation
import SafeTensors
import Tensors

/// The CLIP vision tower's shape (`image_encoder/config.json`).
public struct CLIPVisionConfig: Equatable, Sendable {
    public var hiddenSize = 1280
    public var intermediateSize = 5120
    public var heads = 16
    public var layers = 32
    public var imageSize = 224
    public var patchSize = 14
    public var projectionDim = 1024
    public var activation = Activation.gelu
    public var layerNormEps: Float = 1e-5

    public init() {}

    public init(_ c: JSONConfig) throws {
        // Folders from transformers nest the vision settings under "vision_config" for CLIPModel;
        // CLIPVisionModelWithProjection folders keep them at the top level.
        let v = (c.values["vision_config"] as? [String: Any]).map { JSONConfig(values: $0, path: c.path) } ?? c
        hiddenSize = try v.int("hidden_size", default: 768)
        intermediateSize = try v.int("intermediate_size", default: 3072)
        heads = try v.int("num_attention_heads", default: 12)
        layers = try v.int("num_hidden_layers", default: 12)
        imageSize = try v.int("image_size", default: 224)
        patchSize = try v.int("patch_size", default: 32)
        projectionDim = try v.int("projection_dim", default: try c.int("projection_dim", default: 512))
        activation = try v.activation("hidden_act", default: "quick_gelu")
        layerNormEps = try v.float("layer_norm_eps", default: 1e-5)
    }

    var textLikeConfig: CLIPTextConfig {
        var t = CLIPTextConfig()
        t.hiddenSize = hiddenSize; t.intermediateSize = intermediateSize; t.heads = heads; t.layers = layers
        t.activation = activation; t.layerNormEps = layerNormEps
        return t
    }
}

/// CLIP's vision transformer with its projection (transformers'
/// `CLIPVisionModelWithProjection`): patch embedding, class token,
/// pre-norm, bidirectional transformer layers, post-norm of the class
/// token, linear projection → `image_embeds`.
public final class CLIPVisionModel {
    public let config: CLIPVisionConfig
    let classEmbedding, patchEmbedding, positionEmbedding: Tensor
    let preNorm, postNorm: LayerNorm
    let layers: [CLIPEncoderLayer]
    let projection: Linear

    public init(_ w: WeightLoader, config c: CLIPVisionConfig) throws {
        config = c
        let v = w["vision_model"]
        let patches = (c.imageSize / c.patchSize) * (c.imageSize / c.patchSize)
        classEmbedding = try v["embeddings"].tensor("class_embedding", [c.hiddenSize])
        patchEmbedding = try v["embeddings"]["patch_embedding"].tensor("weight", [c.hiddenSize, 3, c.patchSize, c.patchSize])
        positionEmbedding = try v["embeddings"]["position_embedding"].tensor("weight", [patches + 1, c.hiddenSize])
        preNorm = try LayerNorm(v["pre_layrnorm"], dim: c.hiddenSize, eps: c.layerNormEps)
        layers = try (0..<c.layers).map { try CLIPEncoderLayer(v["encoder"]["layers"][$0], c.textLikeConfig, causal: false) }
        postNorm = try LayerNorm(v["post_layernorm"], dim: c.hiddenSize, eps: c.layerNormEps)
        projection = try Linear(w["visual_projection"], in: c.hiddenSize, out: c.projectionDim, bias: false)
    }

    /// Loads a transformers `CLIPVisionModelWithProjection` folder
    /// (`config.json` + `model.safetensors`), e.g. an IP-Adapter `image_encoder/`.
    public static func load(folder: String) throws -> CLIPVisionModel {
        let root = URL(fileURLWithPath: folder)
        let config = try CLIPVisionConfig(JSONConfig(path: root.appendingPathComponent("config.json").path))
        let file = try SafeTensorsFile(path: root.appendingPathComponent("model.safetensors").path)
        return try loadChecked(WeightSource(files: [file]), ignoring: { $0.hasSuffix("position_ids") }) {
            try CLIPVisionModel(WeightLoader($0), config: config)
        }
    }

    /// `image_embeds [B, projectionDim]` for preprocessed pixels `[B, 3, S, S]`.
    public func imageEmbeds(_ pixels: Tensor) throws -> Tensor {
        let s = config.imageSize
        guard pixels.rank == 4, pixels.dim(1) == 3, pixels.dim(2) == s, pixels.dim(3) == s else {
            throw ModelInputError.shape(what: "CLIP vision input", expected: "[B, 3, \(s), \(s)]", found: pixels.shape)
        }
        let b = pixels.dim(0), d = config.hiddenSize
        let patches = conv2d(pixels, weight: patchEmbedding, stride: config.patchSize)       // [B, D, g, g]
        let tokens = patches.reshaped([b, d, -1]).transposed()                              // [B, g², D]
        let cls = classEmbedding.reshaped([1, 1, d]).broadcast(to: [b, 1, d])
        var x = concat([cls, tokens], axis: 1) + positionEmbedding
        x = preNorm(x)
        for layer in layers { x = layer(x) }
        let pooled = postNorm(x.sliced(axis: 1, 0..<1).reshaped([b, d]))
        return projection(pooled)
    }
}
