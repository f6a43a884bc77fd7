import Tensors

/// Which cross-attention layers feed the semantic-centralisation loss.
public enum AttentionLayerSelection: Sendable, Equatable {
    /// Every cross-attention layer whose query resolution is below the full
    /// latent resolution: the reference's 11 layers on SD 1.5
    /// (`down_blocks.1–2`, `mid_block`, `up_blocks.1–2`).
    case belowFullResolution
    /// Layers by diffusers path (`…transformer_blocks.0.attn2`).
    case named([String])
    /// Layers whose query count N = h_s·w_s is in the set.
    case queryCounts(Set<Int>)
}

/// PILOT's hook into the UNet: semantic boundary control (SBC) in every
/// cross-attention layer and, during gradient passes, capture of the
/// selected layers' probabilities (before masking) for L_sc.
public final class PILOTAttentionControl: AttentionControl {
    public let masks: InpaintingMasks
    public var sbc: Bool
    public let selection: AttentionLayerSelection
    /// When true, `record` keeps probabilities of the selected layers.
    public var capturing = false
    /// Captured probabilities of the current pass, in forward order.
    public private(set) var captured: [(layer: String, probabilities: Tensor)] = []
    private var sbcMasks: [[Int]: Tensor] = [:]

    public init(masks: InpaintingMasks, sbc: Bool = true, selection: AttentionLayerSelection = .belowFullResolution) {
        self.masks = masks
        self.sbc = sbc
        self.selection = selection
    }

    /// Forgets the probabilities of the previous pass.
    public func reset() { captured.removeAll() }

    func isSelected(layer: String, queries: Int) -> Bool {
        switch selection {
        case .belowFullResolution: return queries < masks.latentHeight * masks.latentWidth
        case .named(let names): return names.contains(layer)
        case .queryCounts(let set): return set.contains(queries)
        }
    }

    public func capturesProbabilities(layer: String) -> Bool { capturing }

    public func record(layer: String, probabilities p: Tensor) {
        guard isSelected(layer: layer, queries: p.dim(2)) else { return }
        captured.append((layer, p))
    }

    /// M[p, 0] = 1 (BOS always kept), M[p, k ≥ 1] = F_s(p); no renormalisation.
    public func crossAttentionMask(layer: String, queries: Int, keys: Int, batch: Int) -> Tensor? {
        guard sbc, masks.hasHole, masks.hasBackground, let f = masks.hole[queries] else { return nil }
        if let m = sbcMasks[[queries, keys]] { return m }
        let column = f.reshaped([queries, 1])
        let m = concat([Tensor.ones([queries, 1]), column.broadcast(to: [queries, keys - 1])], axis: 1)
        sbcMasks[[queries, keys]] = m
        return m
    }
}
