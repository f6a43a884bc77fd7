import Foundation
import SafeTensors
import Tensors

/// `AutoencoderTiny` hyper-parameters (a diffusers TAESD folder's `config.json`).
public struct TinyVAEConfig: Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var latentChannels = 4
    public var encoderChannels = [64, 64, 64, 64]
    public var decoderChannels = [64, 64, 64, 64]
    /// Residual blocks after each encoder level's convolution.
    public var encoderBlocks = [1, 3, 3, 3]
    /// Residual blocks of each decoder level (before its upsampling).
    public var decoderBlocks = [3, 3, 3, 1]
    public var upsampling = 2

    public init() {}

    public init(_ c: JSONConfig) throws {
        inChannels = try c.int("in_channels", default: 3)
        outChannels = try c.int("out_channels", default: 3)
        latentChannels = try c.int("latent_channels", default: 4)
        encoderChannels = try c.ints("encoder_block_out_channels", default: encoderChannels)
        decoderChannels = try c.ints("decoder_block_out_channels", default: decoderChannels)
        encoderBlocks = try c.ints("num_encoder_blocks", default: encoderBlocks)
        decoderBlocks = try c.ints("num_decoder_blocks", default: decoderBlocks)
        upsampling = try c.int("upsampling_scaling_factor", default: 2)
        guard encoderChannels.count == encoderBlocks.count, !encoderBlocks.isEmpty else {
            throw ModelLoadError.badConfig(path: c.path, reason: "encoder_block_out_channels and num_encoder_blocks differ in length")
        }
        guard decoderChannels.count == decoderBlocks.count, !decoderBlocks.isEmpty else {
            throw ModelLoadError.badConfig(path: c.path, reason: "decoder_block_out_channels and num_decoder_blocks differ in length")
        }
        // Each decoder level's convolution keeps its width, so the levels must agree (as in every TAESD).
        guard Set(decoderChannels).count == 1, Set(encoderChannels).count == 1 else {
            throw ModelLoadError.badConfig(path: c.path, reason: "the block widths of each half must all be equal, found "
                                           + "encoder \(encoderChannels), decoder \(decoderChannels)")
        }
        for (key, supported) in [("act_fn", "relu"), ("upsample_fn", "nearest")] {
            let value = try c.string(key, default: supported)
            guard value == supported else {
                throw ModelLoadError.badConfig(path: c.path, reason: "\(key) \(value) is not supported (only \(supported), as TAESD uses)")
            }
        }
        guard (1...8).contains(upsampling) else {
            throw ModelLoadError.badConfig(path: c.path, reason: "upsampling_scaling_factor \(upsampling) is outside 1…8")
        }
    }

    /// Pixels per latent cell along each side (the encoder's strided levels).
    public var downscale: Int { 1 << (encoderBlocks.count - 1) }
}

/// TAESD's residual unit: three 3×3 convolutions with ReLU between, a skip
/// (1×1 when the channel count changes), and a ReLU after the sum.
struct TinyVAEBlock {
    let convs: [Conv2d]
    let skip: Conv2d?

    init(_ w: WeightLoader, in inC: Int, out outC: Int) throws {
        // The convolutions are entries 0, 2 and 4 of an nn.Sequential (ReLUs between).
        convs = [
            try Conv2d(w["conv"][0], in: inC, out: outC, kernel: 3, padding: 1),
            try Conv2d(w["conv"][2], in: outC, out: outC, kernel: 3, padding: 1),
            try Conv2d(w["conv"][4], in: outC, out: outC, kernel: 3, padding: 1),
        ]
        skip = inC == outC ? nil : try Conv2d(w["skip"], in: inC, out: outC, kernel: 1, bias: false)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = convs[2](convs[1](convs[0](x).relu()).relu())
        return (h + (skip?(x) ?? x)).relu()
    }
}

/// One entry of TAESD's layer list.
enum TinyVAELayer {
    case conv(Conv2d)
    case block(TinyVAEBlock)
    case relu
    case upsample(Int)

    func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case let .conv(conv): conv(x)
        case let .block(block): block(x)
        case .relu: x.relu()
        case let .upsample(factor): upsampleNearest(x, factor: factor)
        }
    }
}

/// The tiny autoencoder (TAESD, diffusers `AutoencoderTiny`): a small
/// convolutional encoder and decoder trained to agree with Stable
/// Diffusion's VAE, cheap enough to decode a preview at every step. It works
/// on scaled latents (the sampler's own units; its scaling factor is 1).
public final class AutoencoderTiny {
    public let config: TinyVAEConfig
    let encoderLayers: [TinyVAELayer]
    let decoderLayers: [TinyVAELayer]

    public init(_ w: WeightLoader, config c: TinyVAEConfig) throws {
        config = c
        // Encoder: per level a convolution (the first from the image, the rest
        // strided by 2 without bias) and its blocks; then one to the latent.
        var encoder: [TinyVAELayer] = []
        let e = w["encoder"]["layers"]
        for (level, count) in c.encoderBlocks.enumerated() {
            let channels = c.encoderChannels[level]
            encoder.append(level == 0
                ? .conv(try Conv2d(e[encoder.count], in: c.inChannels, out: channels, kernel: 3, padding: 1))
                : .conv(try Conv2d(e[encoder.count], in: c.encoderChannels[level - 1], out: channels, kernel: 3, stride: 2,
                                   padding: 1, bias: false)))
            for _ in 0..<count {
                encoder.append(.block(try TinyVAEBlock(e[encoder.count], in: channels, out: channels)))
            }
        }
        encoder.append(.conv(try Conv2d(e[encoder.count], in: c.encoderChannels.last!, out: c.latentChannels,
                                        kernel: 3, padding: 1)))
        encoderLayers = encoder

        // Decoder: a convolution and ReLU, then per level its blocks, an
        // upsampling (not after the last) and a convolution (biased only the last, to RGB).
        let d = w["decoder"]["layers"]
        var decoder: [TinyVAELayer] = [
            .conv(try Conv2d(d[0], in: c.latentChannels, out: c.decoderChannels[0], kernel: 3, padding: 1)), .relu,
        ]
        for (level, count) in c.decoderBlocks.enumerated() {
            let channels = c.decoderChannels[level]
            let last = level == c.decoderBlocks.count - 1
            for _ in 0..<count {
                decoder.append(.block(try TinyVAEBlock(d[decoder.count], in: channels, out: channels)))
            }
            if !last { decoder.append(.upsample(c.upsampling)) }
            decoder.append(.conv(try Conv2d(d[decoder.count], in: channels, out: last ? c.outChannels : channels,
                                            kernel: 3, padding: 1, bias: last)))
        }
        decoderLayers = decoder
    }

    /// Scaled latents `[B, latent, h, w]` for images `[B, 3, H, W]` in [−1, 1].
    public func encode(_ image: Tensor) throws -> Tensor {
        let r = config.downscale
        guard image.rank == 4, image.dim(1) == config.inChannels, image.dim(2) % r == 0, image.dim(3) % r == 0 else {
            throw ModelInputError.shape(what: "tiny VAE input image",
                                        expected: "[B, \(config.inChannels), H, W] with H, W multiples of \(r)", found: image.shape)
        }
        return encoderLayers.reduce(image * 0.5 + 0.5) { x, layer in layer(x) }
    }

    /// Images `[B, 3, H, W]` in about [−1, 1] for scaled latents `[B, latent, h, w]`.
    public func decode(_ latent: Tensor) throws -> Tensor {
        guard latent.rank == 4, latent.dim(1) == config.latentChannels else {
            throw ModelInputError.shape(what: "tiny VAE latent", expected: "[B, \(config.latentChannels), h, w]", found: latent.shape)
        }
        // TAESD's soft clamp of the latent to (−3, 3).
        let clamped = (latent * (1 / 3)).tanh() * 3
        return decoderLayers.reduce(clamped) { x, layer in layer(x) } * 2 - 1
    }

    /// Loads a diffusers `AutoencoderTiny` folder (`config.json`,
    /// `diffusion_pytorch_model.safetensors`: madebyollin/taesd, taesdxl).
    public static func load(path: String) throws -> AutoencoderTiny {
        let root = URL(fileURLWithPath: path, isDirectory: true)
        let configPath = root.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw ModelLoadError.missingFile(path: configPath, what: "the tiny VAE's config.json (a diffusers AutoencoderTiny folder)")
        }
        let config = try TinyVAEConfig(JSONConfig(path: configPath))
        let weights = root.appendingPathComponent("diffusion_pytorch_model.safetensors").path
        guard FileManager.default.fileExists(atPath: weights) else {
            throw ModelLoadError.missingFile(path: weights, what: "the tiny VAE's weights")
        }
        let file = try SafeTensorsFile(path: weights)
        return try loadChecked(WeightSource(files: [file])) { try AutoencoderTiny(WeightLoader($0), config: config) }
    }
}
