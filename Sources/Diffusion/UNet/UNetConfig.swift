import Foundation

/// SDXL's added conditioning (`addition_embed_type: "text_time"`): the
/// pooled text embedding and six size/crop numbers, each number embedded
/// like a timestep in `timeEmbedDim` channels, go through a two-layer MLP
/// into the time embedding.
public struct AdditionEmbeddingConfig: Equatable, Sendable {
    /// `addition_time_embed_dim`: channels per time id.
    public var timeEmbedDim: Int
    /// `projection_class_embeddings_input_dim`: pooled text width + 6·timeEmbedDim.
    public var inputDim: Int
    /// The number of time ids (original size, crop corner, target size).
    public static let timeIdCount = 6

    public init(timeEmbedDim: Int, inputDim: Int) {
        self.timeEmbedDim = timeEmbedDim
        self.inputDim = inputDim
    }

    /// Width of the pooled text embedding the UNet expects.
    public var textEmbedDim: Int { inputDim - Self.timeIdCount * timeEmbedDim }
}

/// `UNet2DConditionModel` hyper-parameters (`unet/config.json`): the SD
/// 1.x / 2.x and SDXL layouts. CrossAttn/plain down and up blocks, a
/// cross-attention mid block, positional time embedding, per-level
/// transformer depths and SDXL's "text_time" added conditioning.
public struct UNetConfig: Equatable, Sendable {
    public var inChannels = 4
    public var outChannels = 4
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var layersPerBlock = 2
    public var normGroups = 32
    public var normEps: Float = 1e-5
    public var crossAttentionDim = 768
    /// Attention heads per block (diffusers' `attention_head_dim` for SD
    /// 1.x/2.x, or `num_attention_heads`).
    public var heads = [8, 8, 8, 8]
    /// Transformer blocks in each attention of down level i (diffusers'
    /// `transformer_layers_per_block`); the mid block has the last level's
    /// count and up level i the count of down level n−1−i.
    public var transformerLayers = [1, 1, 1, 1]
    /// SDXL's added conditioning, nil for SD 1.x/2.x.
    public var addition: AdditionEmbeddingConfig?
    public var useLinearProjection = false
    public var upcastAttention = false
    public var flipSinToCos = true
    public var freqShift: Float = 0
    public var downsamplePadding = 1
    public var sampleSize = 64

    public init() {}

    public init(_ c: JSONConfig) throws {
        inChannels = try c.int("in_channels", default: 4)
        outChannels = try c.int("out_channels", default: 4)
        blockOutChannels = try c.ints("block_out_channels", default: [320, 640, 1280, 1280])
        let n = blockOutChannels.count
        downBlockTypes = try c.strings("down_block_types", default: downBlockTypes)
        upBlockTypes = try c.strings("up_block_types", default: upBlockTypes)
        guard downBlockTypes.count == n, upBlockTypes.count == n else {
            throw ModelLoadError.badConfig(path: c.path, reason: "down_block_types/up_block_types must have \(n) entries like block_out_channels")
        }
        let known: Set = ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        for t in downBlockTypes + upBlockTypes where !known.contains(t) {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported block type \(t) (supported: \(known.sorted().joined(separator: ", ")))")
        }
        let mid = try c.string("mid_block_type", default: "UNetMidBlock2DCrossAttn")
        guard mid == "UNetMidBlock2DCrossAttn" else {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported mid_block_type \(mid)")
        }
        layersPerBlock = try c.int("layers_per_block", default: 2)
        normGroups = try c.int("norm_num_groups", default: 32)
        normEps = try c.float("norm_eps", default: 1e-5)
        crossAttentionDim = try c.int("cross_attention_dim", default: 1280)
        // diffusers names the head count `attention_head_dim` for SD 1.x/2.x.
        let heads = try c.intOrList("num_attention_heads", count: n, default: nil)
        self.heads = try heads ?? c.intOrList("attention_head_dim", count: n, default: 8)!
        transformerLayers = try c.intOrList("transformer_layers_per_block", count: n, default: 1)!
        if let reverse = c.values["reverse_transformer_layers_per_block"], !(reverse is NSNull) {
            throw ModelLoadError.badConfig(path: c.path, reason: "reverse_transformer_layers_per_block is not supported (up levels mirror the down levels' depths)")
        }
        for (i, d) in transformerLayers.enumerated() where d < 1 || d > 64 {
            throw ModelLoadError.badConfig(path: c.path, reason: "transformer_layers_per_block[\(i)] is \(d), expected 1…64")
        }
        switch try c.optionalString("addition_embed_type") {
        case nil:
            addition = nil
        case "text_time":
            addition = AdditionEmbeddingConfig(timeEmbedDim: try c.int("addition_time_embed_dim"),
                                               inputDim: try c.int("projection_class_embeddings_input_dim"))
            if let a = addition, a.timeEmbedDim < 1 || a.textEmbedDim < 1 {
                throw ModelLoadError.badConfig(path: c.path, reason: "projection_class_embeddings_input_dim \(a.inputDim) leaves no room for a pooled text embedding beside 6 × \(a.timeEmbedDim) time-id channels")
            }
        case let other?:
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported addition_embed_type \(other) (supported: text_time)")
        }
        for key in ["class_embed_type", "encoder_hid_dim_type", "time_cond_proj_dim"] {
            if let v = c.values[key], !(v is NSNull) {
                throw ModelLoadError.badConfig(path: c.path, reason: "unsupported \(key) \(v) (expected null)")
            }
        }
        useLinearProjection = try c.bool("use_linear_projection", default: false)
        upcastAttention = try c.bool("upcast_attention", default: false)
        flipSinToCos = try c.bool("flip_sin_to_cos", default: true)
        freqShift = try c.float("freq_shift", default: 0)
        downsamplePadding = try c.int("downsample_padding", default: 1)
        sampleSize = try c.int("sample_size", default: 64)
        for (i, h) in self.heads.enumerated() where h <= 0 || blockOutChannels[i] % h != 0 {
            throw ModelLoadError.badConfig(path: c.path, reason: "\(h) attention heads do not divide \(blockOutChannels[i]) channels in block \(i)")
        }
        for ch in blockOutChannels where ch % normGroups != 0 {
            throw ModelLoadError.badConfig(path: c.path, reason: "norm_num_groups \(normGroups) does not divide \(ch) channels")
        }
        let act = try c.string("act_fn", default: "silu")
        guard act == "silu" else { throw ModelLoadError.badConfig(path: c.path, reason: "unsupported act_fn \(act)") }
    }

    /// SD 1.x (runwayml/stable-diffusion-v1-5 `unet/config.json`).
    public static let sd1 = UNetConfig()

    /// SD 2.x (stabilityai/stable-diffusion-2-1 `unet/config.json`).
    public static let sd2: UNetConfig = {
        var c = UNetConfig()
        c.crossAttentionDim = 1024
        c.heads = [5, 10, 20, 20]
        c.useLinearProjection = true
        c.upcastAttention = true
        c.sampleSize = 96
        return c
    }()

    var timeEmbedDim: Int { blockOutChannels[0] * 4 }
}
