import Foundation
import SafeTensors
import Tensors

/// `ControlNetModel` hyper-parameters: the UNet encoder's plus the hint
/// embedding's channels (`conditioning_embedding_out_channels`).
public struct ControlNetConfig: Equatable, Sendable {
    public var unet: UNetConfig
    public var conditioningChannels = 3
    public var embeddingChannels = [16, 32, 96, 256]

    public init(unet: UNetConfig, conditioningChannels: Int = 3, embeddingChannels: [Int] = [16, 32, 96, 256]) {
        self.unet = unet
        self.conditioningChannels = conditioningChannels
        self.embeddingChannels = embeddingChannels
    }

    public init(_ c: JSONConfig) throws {
        // A ControlNet config is a UNet config without up blocks: mirror the down blocks.
        var values = c.values
        let down = try c.strings("down_block_types", default: UNetConfig.sd1.downBlockTypes)
        values["up_block_types"] = down.reversed().map { $0 == "CrossAttnDownBlock2D" ? "CrossAttnUpBlock2D" : "UpBlock2D" }
        unet = try UNetConfig(JSONConfig(values: values, path: c.path))
        conditioningChannels = try c.int("conditioning_channels", default: 3)
        embeddingChannels = try c.ints("conditioning_embedding_out_channels", default: [16, 32, 96, 256])
    }

    /// SD 1.x ControlNets (lllyasviel/control_v11*_sd15).
    public static let sd1 = ControlNetConfig(unet: .sd1)
}

/// The ×8 hint encoder: conv, then (conv, stride-2 conv) pairs, SiLU between, zero-initialised conv out.
struct ControlNetConditioningEmbedding {
    let convIn, convOut: Conv2d
    let blocks: [Conv2d]

    init(_ w: WeightLoader, _ c: ControlNetConfig) throws {
        let ch = c.embeddingChannels
        convIn = try Conv2d(w["conv_in"], in: c.conditioningChannels, out: ch[0], kernel: 3, padding: 1)
        var blocks: [Conv2d] = []
        for i in 0..<(ch.count - 1) {
            blocks.append(try Conv2d(w["blocks"][2 * i], in: ch[i], out: ch[i], kernel: 3, padding: 1))
            blocks.append(try Conv2d(w["blocks"][2 * i + 1], in: ch[i], out: ch[i + 1], kernel: 3, stride: 2, padding: 1))
        }
        self.blocks = blocks
        convOut = try Conv2d(w["conv_out"], in: ch.last!, out: c.unet.blockOutChannels[0], kernel: 3, padding: 1)
    }

    func callAsFunction(_ hint: Tensor) -> Tensor {
        var h = convIn(hint).silu()
        for b in blocks { h = b(h).silu() }
        return convOut(h)
    }
}

/// ControlNet (Zhang et al. 2023) as diffusers' `ControlNetModel`: a copy of
/// the UNet encoder whose input is the latent plus an embedded control image,
/// and whose skip states and mid output, through zero-initialised 1×1
/// convolutions and scaled, are added to the UNet's.
public final class ControlNetModel {
    public let config: ControlNetConfig
    /// Where the weights came from.
    public internal(set) var source = "<memory>"
    let timeEmbedding: TimeEmbedding
    let convIn: Conv2d
    let hintEmbedding: ControlNetConditioningEmbedding
    let down: [DownBlock]
    let mid: MidBlock
    let zeroConvs: [Conv2d]
    let midZeroConv: Conv2d

    public init(_ w: WeightLoader, config cc: ControlNetConfig) throws {
        config = cc
        let c = cc.unet
        let ch = c.blockOutChannels
        let n = ch.count
        timeEmbedding = try TimeEmbedding(w, config: c)
        convIn = try Conv2d(w["conv_in"], in: c.inChannels, out: ch[0], kernel: 3, padding: 1)
        hintEmbedding = try ControlNetConditioningEmbedding(w["controlnet_cond_embedding"], cc)
        down = try (0..<n).map { i in
            try DownBlock(w["down_blocks"][i], in: i == 0 ? ch[0] : ch[i - 1], out: ch[i], c: c, heads: c.heads[i],
                          depth: c.transformerLayers[i], crossAttention: c.downBlockTypes[i] == "CrossAttnDownBlock2D",
                          last: i == n - 1)
        }
        mid = try MidBlock(w["mid_block"], channels: ch[n - 1], c: c, heads: c.heads[n - 1], depth: c.transformerLayers[n - 1])
        var zero: [Conv2d] = [try Conv2d(w["controlnet_down_blocks"][0], in: ch[0], out: ch[0], kernel: 1)]
        for i in 0..<n {
            for _ in 0..<(c.layersPerBlock + (i < n - 1 ? 1 : 0)) {
                zero.append(try Conv2d(w["controlnet_down_blocks"][zero.count], in: ch[i], out: ch[i], kernel: 1))
            }
        }
        zeroConvs = zero
        midZeroConv = try Conv2d(w["controlnet_mid_block"], in: ch[n - 1], out: ch[n - 1], kernel: 1)
    }

    /// Residuals for the UNet: one per skip state and one for the mid block,
    /// each multiplied by `scale`. `hint` is the control image `[B, 3, 8h, 8w]` in [0, 1].
    public func callAsFunction(_ x: Tensor, timesteps: [Float], context: Tensor, hint: Tensor,
                               scale: Float = 1, added: AddedConditioning? = nil) throws -> (down: [Tensor], mid: Tensor) {
        guard hint.rank == 4, hint.dim(0) == x.dim(0), hint.dim(1) == config.conditioningChannels,
              hint.dim(2) == x.dim(2) * 8, hint.dim(3) == x.dim(3) * 8 else {
            throw ModelInputError.shape(what: "ControlNet hint image",
                                        expected: "[\(x.dim(0)), \(config.conditioningChannels), \(x.dim(2) * 8), \(x.dim(3) * 8)]",
                                        found: hint.shape)
        }
        let time = try timeEmbedding(timesteps, added: added)
        var h = convIn(x) + hintEmbedding(hint)
        var skips = [h]
        let cond = UNetConditioning(context: context, added: added)
        for block in down {
            let (out, s) = block(h, time: time, cond: cond, adapter: nil)
            h = out
            skips += s
        }
        h = mid(h, time: time, cond: cond)
        let residuals = zip(skips, zeroConvs).map { $1($0) * scale }
        return (residuals, midZeroConv(h) * scale)
    }

    /// Loads a diffusers `ControlNetModel` folder (config.json + weights) or an
    /// original-layout single file (`control_model.*` keys) with `config`.
    public static func load(path: String, config: ControlNetConfig? = nil) throws -> ControlNetModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.missingFile(path: path, what: "ControlNet (no such file or folder)")
        }
        if isDir.boolValue {
            let root = URL(fileURLWithPath: path)
            let cfg = try ControlNetConfig(JSONConfig(path: root.appendingPathComponent("config.json").path))
            let file = try SafeTensorsFile(path: root.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
            let model = try loadChecked(WeightSource(files: [file])) { try ControlNetModel(WeightLoader($0), config: cfg) }
            model.source = path
            return model
        }
        let file = try SafeTensorsFile(path: path)
        let keys = Set(file.names)
        let cfg = config ?? .sd1
        let map = LDMKeyMap.controlNet(cfg, keys: keys)
        guard !map.isEmpty else {
            throw ModelLoadError.unrecognised(path: path, reason: "no control_model.* or ControlNet diffusers keys: not a ControlNet")
        }
        let model = try ControlNetModel(WeightLoader(WeightSource(files: [file], locations: map)), config: cfg)
        model.source = path
        return model
    }
}
