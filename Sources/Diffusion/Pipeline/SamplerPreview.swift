import Tensors

/// Where a sampling loop sends its current estimate of the result (x̂₀, the
/// clean scaled latent the model output predicts) for preview images, and
/// at which steps. x̂₀ is computed only for the steps `wants` accepts.
public struct SamplerPreview {
    /// Whether step `step` (1-based) of `total` is previewed.
    public let wants: (_ step: Int, _ total: Int) -> Bool
    /// Receives x̂₀ `[B, C, h, w]` of step `step` of `total`.
    public let show: (_ step: Int, _ total: Int, _ denoised: Tensor) -> Void

    public init(wants: @escaping (_ step: Int, _ total: Int) -> Bool,
                show: @escaping (_ step: Int, _ total: Int, _ denoised: Tensor) -> Void) {
        self.wants = wants
        self.show = show
    }
}
