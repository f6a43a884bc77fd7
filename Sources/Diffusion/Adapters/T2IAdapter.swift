import Foundation
import SafeTensors
import Tensors

/// Space-to-depth: `[B, C, H, W]` → `[B, C·r², H/r, W/r]` (PyTorch's `PixelUnshuffle`).
func pixelUnshuffle(_ x: Tensor, _ r: Int) -> Tensor {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    return x.reshaped([b, c, h / r, r, w / r, r]).permuted([0, 1, 3, 5, 2, 4]).reshaped([b, c * r * r, h / r, w / r])
}

/// 2×2 average pooling with stride 2 (even sizes; `ceil_mode` is then moot).
func averagePool2(_ x: Tensor) -> Tensor {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    if h % 2 == 1 || w % 2 == 1 {
        // ceil_mode: the partial window averages only the cells inside.
        let padded = x.padded(right: w % 2, bottom: h % 2)
        let counts = Tensor.ones([1, 1, h, w]).padded(right: w % 2, bottom: h % 2)
        return averagePool2(padded) / averagePool2(counts)
    }
    return x.reshaped([b, c, h / 2, 2, w / 2, 2]).mean(axes: [3, 5])
}

/// `T2IAdapter` hyper-parameters.
public struct T2IAdapterConfig: Equatable, Sendable {
    public enum Kind: String, Sendable { case full = "full_adapter", light = "light_adapter" }
    public var kind = Kind.full
    public var inChannels = 3
    public var channels = [320, 640, 1280, 1280]
    public var resBlocks = 2
    public var downscale = 8

    public init() {}

    public init(_ c: JSONConfig) throws {
        let k = try c.string("adapter_type", default: "full_adapter")
        guard let kind = Kind(rawValue: k) else {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported adapter_type \(k) (full_adapter, light_adapter)")
        }
        self.kind = kind
        inChannels = try c.int("in_channels", default: 3)
        channels = try c.ints("channels", default: [320, 640, 1280, 1280])
        resBlocks = try c.int("num_res_blocks", default: 2)
        downscale = try c.int("downscale_factor", default: 8)
    }
}

/// One adapter level: optional 2×2 average pool, channel change, residual blocks
/// (full: 3×3 → ReLU → 1×1; light: at a quarter of the width, 3×3 → ReLU → 3×3).
struct AdapterBlock {
    let down: Bool
    let inConv: Conv2d?
    let resnets: [(Conv2d, Conv2d)]
    let outConv: Conv2d?

    init(_ w: WeightLoader, in inC: Int, out outC: Int, blocks: Int, down: Bool, light: Bool) throws {
        self.down = down
        let width = light ? outC / 4 : outC
        inConv = light || inC != outC ? try Conv2d(w["in_conv"], in: inC, out: width, kernel: 1) : nil
        resnets = try (0..<blocks).map {
            (try Conv2d(w["resnets"][$0]["block1"], in: width, out: width, kernel: 3, padding: 1),
             try Conv2d(w["resnets"][$0]["block2"], in: width, out: width, kernel: light ? 3 : 1, padding: light ? 1 : 0))
        }
        outConv = light ? try Conv2d(w["out_conv"], in: width, out: outC, kernel: 1) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = down ? averagePool2(x) : x
        if let inConv { h = inConv(h) }
        for (b1, b2) in resnets { h = b2(b1(h).relu()) + h }
        return outConv?(h) ?? h
    }
}

/// T2I-Adapter (Mou et al. 2023) as diffusers' `T2IAdapter` (full and light):
/// multi-scale features from a control image, added inside the UNet's down
/// blocks (`UNetConditioning.adapterFeatures`). Constants for PILOT's
/// gradient pass.
public final class T2IAdapter {
    public let config: T2IAdapterConfig
    let convIn: Conv2d?
    let body: [AdapterBlock]

    public init(_ w: WeightLoader, config c: T2IAdapterConfig) throws {
        config = c
        let a = w["adapter"]
        let unshuffled = c.inChannels * c.downscale * c.downscale
        switch c.kind {
        case .full:
            convIn = try Conv2d(a["conv_in"], in: unshuffled, out: c.channels[0], kernel: 3, padding: 1)
            body = try c.channels.indices.map { i in
                try AdapterBlock(a["body"][i], in: i == 0 ? c.channels[0] : c.channels[i - 1], out: c.channels[i],
                                 blocks: c.resBlocks, down: i > 0, light: false)
            }
        case .light:
            convIn = nil
            var blocks = [try AdapterBlock(a["body"][0], in: unshuffled, out: c.channels[0], blocks: c.resBlocks, down: false, light: true)]
            for i in 0..<(c.channels.count - 1) {
                blocks.append(try AdapterBlock(a["body"][i + 1], in: c.channels[i], out: c.channels[i + 1],
                                               blocks: c.resBlocks, down: true, light: true))
            }
            blocks.append(try AdapterBlock(a["body"][c.channels.count], in: c.channels.last!, out: c.channels.last!,
                                           blocks: c.resBlocks, down: true, light: true))
            body = blocks
        }
    }

    /// Features for a control image `[B, inChannels, H, W]` in [0, 1], one per level.
    public func callAsFunction(_ image: Tensor) throws -> [Tensor] {
        let r = config.downscale
        guard image.rank == 4, image.dim(1) == config.inChannels, image.dim(2) % r == 0, image.dim(3) % r == 0 else {
            throw ModelInputError.shape(what: "T2I-Adapter image", expected: "[B, \(config.inChannels), H, W] with H, W multiples of \(r)",
                                        found: image.shape)
        }
        var h = pixelUnshuffle(image, r)
        if let convIn { h = convIn(h) }
        return body.map { block in
            h = block(h)
            return h
        }
    }

    /// Loads a diffusers `T2IAdapter` folder.
    public static func load(path: String) throws -> T2IAdapter {
        let root = URL(fileURLWithPath: path)
        let cfg = try T2IAdapterConfig(JSONConfig(path: root.appendingPathComponent("config.json").path))
        let file = try SafeTensorsFile(path: root.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        return try loadChecked(WeightSource(files: [file])) { try T2IAdapter(WeightLoader($0), config: cfg) }
    }
}
