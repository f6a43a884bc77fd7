import Diffusion
import Foundation
import Imaging
import Tensors
import Workflow

// Payloads: what object values carry along edges. Model objects are
// reference types without Sendable conformance; the wrappers below are
// `@unchecked Sendable` because every model is immutable after load (its
// weights are never written again; sampling only reads them), so sharing one
// between nodes, runs and threads cannot race.

/// A loaded UNet with the noise schedule its checkpoint came with.
public final class UNetPayload: @unchecked Sendable, EstimatedByteSize {
    public let unet: UNet2DConditionModel
    public let schedule: NoiseScheduleConfig
    public let estimatedBytes: Int

    public init(unet: UNet2DConditionModel, schedule: NoiseScheduleConfig, estimatedBytes: Int) {
        self.unet = unet
        self.schedule = schedule
        self.estimatedBytes = estimatedBytes
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

/// The CLIP text encoder, its tokenizer and the family's pad convention
/// (immutable after load).
public final class CLIPPayload: @unchecked Sendable, EstimatedByteSize {
    public let textEncoder: CLIPTextModel
    public let tokenizer: CLIPTokenizer
    public let padding: PromptPadding
    public let estimatedBytes: Int

    public init(textEncoder: CLIPTextModel, tokenizer: CLIPTokenizer, padding: PromptPadding, estimatedBytes: Int) {
        self.textEncoder = textEncoder
        self.tokenizer = tokenizer
        self.padding = padding
        self.estimatedBytes = estimatedBytes
    }

    /// `[1, 77, hidden]` embeddings and the tokens of `prompt`.
    public func encode(_ prompt: String) -> (embedding: Tensor, tokens: TokenizedPrompt) {
        let tokens = tokenizer.tokenize(prompt, length: textEncoder.config.maxPositions, padding: padding)
        return (textEncoder(ids: [tokens.ids]), tokens)
    }
}

/// Prompt embeddings for classifier-free guidance, with the prompt's
/// word-token positions (PILOT's attention loss). Tensors are values whose
/// storage is never written after creation.
public final class ConditioningPayload: @unchecked Sendable, EstimatedByteSize {
    public let positive: Tensor
    public let negative: Tensor
    public let wordTokens: [Int]

    public init(positive: Tensor, negative: Tensor, wordTokens: [Int]) {
        self.positive = positive
        self.negative = negative
        self.wordTokens = wordTokens
    }

    public var estimatedBytes: Int { (positive.count + negative.count) * 4 + wordTokens.count * 8 }
}

/// A scaled latent `[1, 4, h, w]` (a tensor value, never written after creation).
public final class LatentPayload: @unchecked Sendable, EstimatedByteSize, ContentFingerprinting {
    public let latent: Tensor

    public init(_ latent: Tensor) { self.latent = latent }

    public var estimatedBytes: Int { latent.count * 4 }

    public var contentFingerprint: String {
        var data = Data("latent \(latent.shape)\n".utf8)
        latent.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        return Digest.sha256Hex(data)
    }
}

/// PILOT between its two stages: the state after optimisation, the sampler
/// that made it (holding the UNet, read only) and the seed of the blend
/// noise. `PILOTSampler.blend` does not change the state it is given, so
/// Blend may run again on a cached state.
public final class PILOTStatePayload: @unchecked Sendable, EstimatedByteSize {
    public let state: PILOTState
    public let sampler: PILOTSampler
    public let seed: Int

    public init(state: PILOTState, sampler: PILOTSampler, seed: Int) {
        self.state = state
        self.sampler = sampler
        self.seed = seed
    }

    public var estimatedBytes: Int {
        (state.latent.count + state.source.count + state.positive.count + state.negative.count) * 4
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
