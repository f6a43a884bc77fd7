import Diffusion
import Foundation
import Imaging
import SafeTensors
import Tensors
import Workflow

// Payloads: what object values carry along edges. Model objects are
// reference types without Sendable conformance; the wrappers below are
// `@unchecked Sendable` because every model is immutable after load (its
// weights are never written again; sampling only reads them), so sharing one
// between nodes, runs and threads cannot race.

/// How a checkpoint was loaded, so that LoadLoRA can load it again with
/// LoRAs merged into the weights (models are immutable after load).
public struct CheckpointRecipe: Sendable, Equatable {
    /// A LoRA file and the scale it was merged with.
    public struct LoRAUse: Sendable, Equatable {
        public var path: String
        public var scale: Float

        public init(path: String, scale: Float) {
            self.path = path
            self.scale = scale
        }
    }

    public var path: String
    public var config: String?
    /// In the order they were applied.
    public var loras: [LoRAUse] = []

    public init(path: String, config: String?, loras: [LoRAUse] = []) {
        self.path = path
        self.config = config
        self.loras = loras
    }

    /// Loads the model this recipe describes.
    public func load() throws -> StableDiffusionModel {
        let files = try loras.map { (try LoRA.load(path: $0.path), $0.scale) }
        return try StableDiffusionModel.load(path: path, config: config, loras: files)
    }
}

/// An adapter an Apply* node attached to a UNet. Sample and PILOTOptimize
/// turn a UNet's list into the `AdapterStack` of their sampler, sized to
/// the latent they denoise.
public enum UNetAdapter: @unchecked Sendable {
    /// A ControlNet with its hint image, scale and active share of the steps.
    case controlNet(ControlNetModel, hint: Image, scale: Float, start: Float, end: Float)
    /// A T2I-Adapter with its hint image and scale.
    case t2iAdapter(T2IAdapter, hint: Image, scale: Float)
    /// An IP-Adapter bound to this UNet with the CLIP embedding of its image.
    case imagePrompt(IPAdapter, imageEmbeds: Tensor, scale: Float)

    var estimatedBytes: Int {
        switch self {
        case let .controlNet(_, hint, _, _, _), let .t2iAdapter(_, hint, _): hint.estimatedBytes
        case let .imagePrompt(_, embeds, _): embeds.count * 4
        }
    }
}

/// A loaded UNet with the noise schedule its checkpoint came with, how it
/// was loaded, and the adapters attached to it (ApplyControlNet,
/// ApplyT2IAdapter, ApplyIPAdapter).
public final class UNetPayload: @unchecked Sendable, EstimatedByteSize {
    public let unet: UNet2DConditionModel
    public let schedule: NoiseScheduleConfig
    /// The UNet's weights, or for a payload an Apply* node derived from
    /// another only its own additions (the UNet is shared, and counted
    /// where it was loaded).
    public let estimatedBytes: Int
    public let recipe: CheckpointRecipe?
    public let adapters: [UNetAdapter]

    public init(unet: UNet2DConditionModel, schedule: NoiseScheduleConfig, estimatedBytes: Int,
                recipe: CheckpointRecipe? = nil, adapters: [UNetAdapter] = []) {
        self.unet = unet
        self.schedule = schedule
        self.estimatedBytes = estimatedBytes
        self.recipe = recipe
        self.adapters = adapters
    }

    /// The same UNet with `adapter` attached after the others.
    public func adding(_ adapter: UNetAdapter) -> UNetPayload {
        UNetPayload(unet: unet, schedule: schedule, estimatedBytes: adapter.estimatedBytes + Value.defaultObjectBytes,
                    recipe: recipe, adapters: adapters + [adapter])
    }

    /// The sampler's adapters for a latent of `height`×`width` (hints are
    /// resized to 8× that), or nil when none is attached.
    public func adapterStack(latentHeight height: Int, latentWidth width: Int) throws -> AdapterStack? {
        guard !adapters.isEmpty else { return nil }
        let stack = AdapterStack()
        for adapter in adapters {
            switch adapter {
            case let .controlNet(model, hint, scale, start, end):
                let image = hint.tensor(width: 8 * width, height: 8 * height, channels: model.config.conditioningChannels)
                stack.controlNets.append(.init(model: model, hint: image, scale: scale, start: start, end: end))
            case let .t2iAdapter(model, hint, scale):
                let image = hint.tensor(width: 8 * width, height: 8 * height, channels: model.config.inChannels)
                try stack.addT2IAdapter(model, image: image, scale: scale)
            case let .imagePrompt(model, embeds, scale):
                guard stack.imagePrompt == nil else { throw NodeError("a UNet takes one IP-Adapter; two are attached") }
                stack.imagePrompt = (model, embeds, scale)
            }
        }
        return stack
    }
}

/// A loaded VAE (immutable after load).
public final class VAEPayload: @unchecked Sendable, EstimatedByteSize {
    public let vae: AutoencoderKL
    public let estimatedBytes: Int

    public init(vae: AutoencoderKL, estimatedBytes: Int) {
        self.vae = vae
        self.estimatedBytes = estimatedBytes
    }
}

/// The family's text encoders with their tokenizer (one CLIP for SD 1.x/2.x,
/// CLIP ViT-L and OpenCLIP ViT-bigG for SDXL), immutable after load.
public final class CLIPPayload: @unchecked Sendable, EstimatedByteSize {
    public let encoder: PromptEncoder
    public let estimatedBytes: Int
    public let recipe: CheckpointRecipe?

    public init(encoder: PromptEncoder, estimatedBytes: Int, recipe: CheckpointRecipe? = nil) {
        self.encoder = encoder
        self.estimatedBytes = estimatedBytes
        self.recipe = recipe
    }

    /// The first text encoder (the one whose tokens PILOT's loss reads).
    public var textEncoder: CLIPTextModel { encoder.encoders[0] }
}

/// Prompt embeddings for classifier-free guidance, with the prompt's
/// word-token positions (PILOT's attention loss) and, for families whose
/// UNet takes it (SDXL), each prompt's pooled text embedding. Tensors are
/// values whose storage is never written after creation.
public final class ConditioningPayload: @unchecked Sendable, EstimatedByteSize {
    public let positive: Tensor
    public let negative: Tensor
    public let wordTokens: [Int]
    /// `[1, P]` pooled embeddings, present together or not at all.
    public let pooledPositive: Tensor?
    public let pooledNegative: Tensor?
    /// For an inpainting checkpoint (InpaintConditioning): the mask and the
    /// masked image's latent, `[1, 5, h, w]`, fed to the UNet beside the latent.
    public let inpaint: Tensor?

    public init(positive: Tensor, negative: Tensor, wordTokens: [Int], pooledPositive: Tensor? = nil,
                pooledNegative: Tensor? = nil, inpaint: Tensor? = nil) {
        precondition((pooledPositive == nil) == (pooledNegative == nil), "pooled embeddings come in pairs")
        self.positive = positive
        self.negative = negative
        self.wordTokens = wordTokens
        self.pooledPositive = pooledPositive
        self.pooledNegative = pooledNegative
        self.inpaint = inpaint
    }

    /// The same prompts with inpainting channels attached.
    func with(inpaint: Tensor) -> ConditioningPayload {
        ConditioningPayload(positive: positive, negative: negative, wordTokens: wordTokens, pooledPositive: pooledPositive,
                            pooledNegative: pooledNegative, inpaint: inpaint)
    }

    public var estimatedBytes: Int {
        (positive.count + negative.count + (pooledPositive?.count ?? 0) + (pooledNegative?.count ?? 0) + (inpaint?.count ?? 0)) * 4
            + wordTokens.count * 8
    }
}

/// A scaled latent `[N, C, h, w]`, N candidates of a batch (1 for one
/// image), or recorded per-step noise `[k, N, C, h, w]` (a tensor value,
/// never written after creation).
public final class LatentPayload: @unchecked Sendable, EstimatedByteSize, ContentFingerprinting {
    public let latent: Tensor

    public init(_ latent: Tensor) { self.latent = latent }

    /// Largest latent side accepted from a file (8192 pixels at 1/8 scale).
    public static let maxSide = 1024
    /// Most latent channels (SD uses 4, SD3-style models 16).
    public static let maxChannels = 16
    /// Most steps of recorded per-step noise in one file.
    public static let maxSteps = 1000
    /// Most candidates in one latent (the sampling nodes' largest `batch`).
    public static let maxBatch = 64

    /// The tensor `latent` of a safetensors file, checked before any model
    /// sees it: `[N, C, h, w]` with every size at least 1 (a zero size once
    /// reached the kernels), N ≤ 64, C ≤ 16, h and w ≤ 1024, finite values.
    public static func read(path: String) throws -> LatentPayload {
        let file = try SafeTensorsFile(path: path)
        guard file.contains("latent") else {
            throw NodeError("\(path) has no tensor 'latent' (it has: \(file.names.prefix(20).joined(separator: ", ")))")
        }
        let shape = try file.info("latent").shape
        // [N, C, h, w], or recorded per-step noise [k, N, C, h, w] (Blend's `noise`).
        let inner = shape.count == 5 && (1...maxSteps).contains(shape[0]) ? Array(shape.dropFirst()) : shape
        guard inner.count == 4, inner.allSatisfy({ $0 >= 1 }), inner[0] <= maxBatch,
              inner[1] <= maxChannels, inner[2] <= maxSide, inner[3] <= maxSide else {
            throw NodeError("\(path): 'latent' has shape \(shape), expected [N, C, h, w] (or per-step noise [k, N, C, h, w], "
                            + "k ≤ \(maxSteps)) with 1 ≤ N ≤ \(maxBatch), 1 ≤ C ≤ \(maxChannels) and 1 ≤ h, w ≤ \(maxSide)")
        }
        let values = try file.floats("latent")
        guard values.allSatisfy(\.isFinite) else {
            throw NodeError("\(path): 'latent' holds a NaN or infinite value")
        }
        return LatentPayload(Tensor(shape: shape, values: values))
    }

    public var estimatedBytes: Int { latent.count * 4 }

    public var contentFingerprint: String {
        var data = Data("latent \(latent.shape)\n".utf8)
        latent.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        return Digest.sha256Hex(data)
    }
}

/// PILOT between its two stages: the state after optimisation, the sampler
/// that made it (holding the UNet, read only) and the noise source, in the
/// state it was left in after the initial draw (the blend noise continues it). `PILOTSampler.blend` does not change the state it is given, so
/// Blend may run again on a cached state.
public final class PILOTStatePayload: @unchecked Sendable, EstimatedByteSize {
    public let state: PILOTState
    public let sampler: PILOTSampler
    let random: NoiseSource

    init(state: PILOTState, sampler: PILOTSampler, random: NoiseSource) {
        self.state = state
        self.sampler = sampler
        self.random = random
    }

    public var estimatedBytes: Int {
        (state.latent.count + state.source.count + state.positive.count + state.negative.count) * 4
    }
}

/// A loaded ControlNet (immutable after load).
public final class ControlNetPayload: @unchecked Sendable, EstimatedByteSize {
    public let model: ControlNetModel
    public let estimatedBytes: Int

    public init(model: ControlNetModel, estimatedBytes: Int) {
        self.model = model
        self.estimatedBytes = estimatedBytes
    }
}

/// A loaded T2I-Adapter (immutable after load).
public final class T2IAdapterPayload: @unchecked Sendable, EstimatedByteSize {
    public let model: T2IAdapter
    public let estimatedBytes: Int

    public init(model: T2IAdapter, estimatedBytes: Int) {
        self.model = model
        self.estimatedBytes = estimatedBytes
    }
}

/// An IP-Adapter file (checked, not yet bound to a UNet: its key/value
/// projections are per UNet layer, so ApplyIPAdapter loads them) and the
/// loaded CLIP image encoder it needs.
public final class IPAdapterPayload: @unchecked Sendable, EstimatedByteSize {
    public let path: String
    public let encoder: CLIPVisionModel
    public let estimatedBytes: Int

    public init(path: String, encoder: CLIPVisionModel, estimatedBytes: Int) {
        self.path = path
        self.encoder = encoder
        self.estimatedBytes = estimatedBytes
    }
}

extension Image: EstimatedByteSize, ContentFingerprinting {
    public var estimatedBytes: Int { planes.count * 4 }

    public var contentFingerprint: String {
        var data = Data("image \(width)x\(height)\n".utf8)
        planes.withUnsafeBytes { data.append(contentsOf: $0) }
        return Digest.sha256Hex(data)
    }
}

extension Mask: EstimatedByteSize, ContentFingerprinting {
    public var estimatedBytes: Int { values.count * 4 }

    public var contentFingerprint: String {
        var data = Data("mask \(width)x\(height)\n".utf8)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return Digest.sha256Hex(data)
    }
}

/// Images of one size on an `image` port: the candidates of a batch
/// (VAEDecode of a latent with N rows), in order. A batch of one travels as
/// a plain ``Image``.
public final class ImageBatch: @unchecked Sendable, EstimatedByteSize, ContentFingerprinting {
    public let images: [Image]

    public init(_ images: [Image]) {
        precondition(images.count > 1, "a batch holds more than one image")
        self.images = images
    }

    /// A plain image for one, a batch for more.
    static func value(_ images: [Image]) -> Value {
        images.count == 1 ? .object(images[0], type: .image) : .object(ImageBatch(images), type: .image)
    }

    public var estimatedBytes: Int { images.reduce(0) { $0 + $1.estimatedBytes } }

    public var contentFingerprint: String {
        Digest.sha256Hex(Data(images.map(\.contentFingerprint).joined(separator: "\n").utf8))
    }
}

extension NodeInputs {
    /// Latent input `name` as one latent `[1, C, h, w]`, or nil when not
    /// given; a batch and recorded per-step noise (`[k, N, C, h, w]`) are
    /// refused here (the noise belongs to Blend's `noise`).
    func singleLatent(_ name: String) throws -> Tensor? {
        guard let latent = try latentBatch(name) else { return nil }
        guard latent.dim(0) == 1 else {
            throw NodeError("input '\(name)': expected one latent [1, C, h, w], found a batch of \(latent.dim(0)) \(latent.shape); "
                            + "this input takes one")
        }
        return latent
    }

    /// Latent input `name` as `[N, C, h, w]` (N candidates), or nil when not given.
    func latentBatch(_ name: String) throws -> Tensor? {
        guard let latent = try optionalObject(name, as: LatentPayload.self)?.latent else { return nil }
        guard latent.rank == 4 else {
            throw NodeError("input '\(name)': expected a latent [N, C, h, w], found \(latent.shape) "
                            + "(per-step noise [k, N, C, h, w] goes to Blend's 'noise')")
        }
        return latent
    }

    /// Image input `name`: the one image, or each image of a batch, in order.
    func images(_ name: String) throws -> [Image] {
        if case let .object(batch as ImageBatch, _)? = values[name] { return batch.images }
        return [try object(name, as: Image.self)]
    }

    /// Image input `name` where the node takes one image (a batch is refused).
    func image(_ name: String) throws -> Image {
        let images = try images(name)
        guard images.count == 1 else {
            throw NodeError("input '\(name)': expected one image, found a batch of \(images.count) "
                            + "(this node takes one; SaveImage, CompositeMasked, ResizeImage and Stitch take batches)")
        }
        return images[0]
    }
}
