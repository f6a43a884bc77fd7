import Tensors

/// The adapters conditioning a run, and how each UNet call gets them.
///
/// A UNet call is either a guidance pass (2N rows: the N candidates'
/// unconditional rows, then their conditional rows) or PILOT's gradient
/// pass (N conditional rows, the latent traced). ControlNets run inside the call, so in the gradient pass
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

    /// Conditioning for one UNet call on `x` with `context` (one row per
    /// row of `x`) at `timestep`, step `step` of `steps`. `guided`: the
    /// rows are a guidance pass (the first half unconditional), else
    /// conditional rows only (PILOT's gradient pass).
    public func conditioning(x: Tensor, timestep: Float, step: Int, steps: Int, context: Tensor,
                             attentionControl: AttentionControl?, added: AddedConditioning? = nil,
                             guided: Bool) throws -> UNetConditioning {
        let b = x.dim(0)
        precondition(!guided || b % 2 == 0, "a guidance pass has an even number of rows, found \(b)")
        var cond = UNetConditioning(context: context, attentionControl: attentionControl, added: added)
        let (lo, hi) = (Float(step) / Float(max(steps, 1)), Float(step + 1) / Float(max(steps, 1)))
        for use in controlNets where !(lo < use.start || hi > use.end) {
            let hint = use.hint.repeatingRows(b)
            let (down, mid) = try use.model(x, timesteps: Array(repeating: timestep, count: b), context: context,
                                            hint: hint, scale: use.scale, added: added)
            cond.controlDown = cond.controlDown.map { zip($0, down).map { $0 + $1 } } ?? down
            cond.controlMid = cond.controlMid.map { $0 + mid } ?? mid
        }
        if let f = adapterFeatures {
            cond.adapterFeatures = f.map { $0.repeatingRows(b) }
        }
        if let ip = imagePrompt {
            let tokens = guided ? ip.adapter.guidanceTokens(imageEmbeds: ip.imageEmbeds).repeatingHalves(b / 2)
                                : ip.adapter.tokens(imageEmbeds: ip.imageEmbeds).repeatingRows(b)
            cond.imagePrompt = ImagePromptConditioning(tokens: tokens, scale: ip.scale, adapter: ip.adapter)
        }
        return cond
    }
}

extension Tensor {
    /// A one-row tensor `[1, …]` repeated to `n` rows (itself when n is 1).
    func repeatingRows(_ n: Int) -> Tensor {
        precondition(dim(0) == 1, "repeating rows of a tensor with \(dim(0)) rows")
        return n == 1 ? self : concat(Array(repeating: self, count: n), axis: 0)
    }

    /// A two-row tensor `[a, b]` as `[a × n, b × n]` (a guidance pass of n candidates).
    func repeatingHalves(_ n: Int) -> Tensor {
        precondition(dim(0) == 2, "repeating the halves of a tensor with \(dim(0)) rows")
        if n == 1 { return self }
        let halves = chunked(2, axis: 0)
        return concat(Array(repeating: halves[0], count: n) + Array(repeating: halves[1], count: n), axis: 0)
    }

    /// Consecutive groups of at most `size` rows (itself when it has no more).
    func rowGroups(_ size: Int) -> [Tensor] {
        let n = dim(0), size = Swift.max(1, size)
        guard n > size else { return [self] }
        return stride(from: 0, to: n, by: size).map { sliced(axis: 0, $0..<Swift.min(n, $0 + size)) }
    }
}
