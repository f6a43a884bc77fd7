import Tensors

/// A hook into every cross-attention layer of the UNet, called with the
/// layer's diffusers path (e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2`).
///
/// PILOT uses it to apply semantic boundary control (a multiplicative
/// post-softmax mask) and to capture probabilities for its losses.
public protocol AttentionControl: AnyObject {
    /// A probability mask for this layer, `[Nq, Nk]` or `[B, Nq, Nk]`, or nil.
    func crossAttentionMask(layer: String, queries: Int, keys: Int, batch: Int) -> Tensor?
    /// Whether `record` should receive this layer's probabilities.
    func capturesProbabilities(layer: String) -> Bool
    /// The layer's probabilities before any mask, `[B, heads, Nq, Nk]`;
    /// traced when the UNet input is, so losses differentiate through them.
    func record(layer: String, probabilities: Tensor)
}

extension AttentionControl {
    public func crossAttentionMask(layer: String, queries: Int, keys: Int, batch: Int) -> Tensor? { nil }
    public func capturesProbabilities(layer: String) -> Bool { false }
    public func record(layer: String, probabilities: Tensor) {}
}

/// Everything the UNet is conditioned on besides the latent and timestep.
public struct UNetConditioning {
    /// Text (or other) context tokens `[B, L, crossAttentionDim]`.
    public var context: Tensor
    /// ControlNet residuals: one per down-block output and one for the mid block.
    public var controlDown: [Tensor]?
    public var controlMid: Tensor?
    /// T2I-Adapter features, added inside the down blocks (diffusers'
    /// `down_intrablock_additional_residuals`).
    public var adapterFeatures: [Tensor]?
    public var attentionControl: AttentionControl?
    /// IP-Adapter image tokens and scale (decoupled cross-attention).
    public var imagePrompt: ImagePromptConditioning?
    /// SDXL's pooled text embedding and time ids (nil for SD 1.x/2.x).
    public var added: AddedConditioning?

    public init(context: Tensor, controlDown: [Tensor]? = nil, controlMid: Tensor? = nil,
                adapterFeatures: [Tensor]? = nil, attentionControl: AttentionControl? = nil,
                imagePrompt: ImagePromptConditioning? = nil, added: AddedConditioning? = nil) {
        self.context = context
        self.added = added
        self.controlDown = controlDown
        self.controlMid = controlMid
        self.adapterFeatures = adapterFeatures
        self.attentionControl = attentionControl
        self.imagePrompt = imagePrompt
    }
}
