import Tensors

/// The adapters conditioning a run, and how each UNet call gets them.
///
/// A UNet call is either a guidance pass (batch 2: unconditional row, then
/// conditional) or PILOT's gradient pass (batch 1, conditional only, the
/// latent traced). ControlNets run inside the call, so in the gradient pass
/// their residuals are traced and gradients flow through them (as the PILOT
/// reference does); T2I-Adapter features are constants computed once and
/// repeated to the call's batch; IP-Adapter tokens use the zero image
/// embedding for the unconditional row.
public final class AdapterStack {
    public struct ControlNetUse {
        public let model: ControlNetModel
        /// The control image `[1, 3, H, W]` in [0, 1] at the output size.
        public let hint: Tensor
        public var scale: Float
        /// Active on step i of n unless i/n < start or (i+1)/n > end (diffusers'
        /// `control_guidance_start/end`).
        public var start: Float, end: Float

        public init(model: ControlNetModel, hint: Tensor, scale: Float = 1, start: Float = 0, end: Float = 1) {
            self.model = model
            self.hint = hint
            self.scale = scale
            self.start = start
            self.end = end
        }
    }

    public var controlNets: [ControlNetUse] = []
    /// T2I-Adapter features (batch 1), already scaled; summed over adapters.
    public private(set) var adapterFeatures: [Tensor]?
    public var imagePrompt: (adapter: IPAdapter, imageEmbeds: Tensor, scale: Float)?

    public init() {}

    public var isEmpty: Bool { controlNets.isEmpty && adapterFeatures == nil && imagePrompt == nil }

    /// Adds a T2I-Adapter's features for a control image, scaled.
    public func addT2IAdapter(_ adapter: T2IAdapter, image: Tensor, scale: Float) throws {
        let features = try adapter(image).map { ($0 * scale).detached }
        if let existing = adapterFeatures {
            guard existing.map(\.shape) == features.map(\.shape) else {
                throw ModelInputError.mismatch(what: "T2I-Adapter features", expected: "\(existing.map(\.shape))",
                                               found: "\(features.map(\.shape))")
            }
            adapterFeatures = zip(existing, features).map { $0 + $1 }
        } else {
            adapterFeatures = features
        }
    }

    /// Conditioning for one UNet call on `x` with `context` (batch 1 or 2)
    /// at `timestep`, step `step` of `steps`.
    public func conditioning(x: Tensor, timestep: Float, step: Int, steps: Int, context: Tensor,
                             attentionControl: AttentionControl?, added: AddedConditioning? = nil) throws -> UNetConditioning {
        let b = x.dim(0)
        var cond = UNetConditioning(context: context, attentionControl: attentionControl, added: added)
        let (lo, hi) = (Float(step) / Float(max(steps, 1)), Float(step + 1) / Float(max(steps, 1)))
        for use in controlNets where !(lo < use.start || hi > use.end) {
            let hint = b == 1 ? use.hint : concat(Array(repeating: use.hint, count: b), axis: 0)
            let (down, mid) = try use.model(x, timesteps: Array(repeating: timestep, count: b), context: context,
                                            hint: hint, scale: use.scale, added: added)
            cond.controlDown = cond.controlDown.map { zip($0, down).map { $0 + $1 } } ?? down
            cond.controlMid = cond.controlMid.map { $0 + mid } ?? mid
        }
        if let f = adapterFeatures {
            cond.adapterFeatures = b == 1 ? f : f.map { concat(Array(repeating: $0, count: b), axis: 0) }
        }
        if let ip = imagePrompt {
            let tokens = b == 1 ? ip.adapter.tokens(imageEmbeds: ip.imageEmbeds)
                                : ip.adapter.guidanceTokens(imageEmbeds: ip.imageEmbeds)
            cond.imagePrompt = ImagePromptConditioning(tokens: tokens, scale: ip.scale, adapter: ip.adapter)
        }
        return cond
    }
}
