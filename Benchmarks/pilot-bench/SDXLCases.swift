import Diffusion
import Tensors

/// The SDXL cases at 1024×1024 (128×128 latents), on an SDXL-base-size
/// folder (`Benchmarks/models/make_random_sdxl.py`), loaded with compact
/// 16-bit weights. The peer (`models.py`) runs the same shapes in float32.
enum SDXLCases {
    /// Default size conditioning of a 1024×1024 image, one row per batch entry.
    static func timeIds(batch: Int) -> Tensor {
        AddedConditioning.batched(Array(repeating: AddedConditioning(
            textEmbeds: Tensor.zeros([1, 1]), timeIds: AddedConditioning.timeIds(originalSize: (1024, 1024),
                                                                                 targetSize: (1024, 1024))),
            count: batch)).timeIds
    }

    static func checkSDXL(_ model: StableDiffusionModel) {
        precondition(model.unet.config.addition != nil && model.unet.config.crossAttentionDim == 2048,
                     "the SDXL cases need an SDXL folder (Benchmarks/models/make_random_sdxl.py), got \(model.family)")
    }

    /// One SDXL UNet forward as classifier-free guidance runs it: batch 2.
    static func unet() -> ModelCase {
        ModelCase(name: "sdxl_unet", shape: "x[2,4,128,128] t=500 context[2,77,2048] pooled[2,1280]", warmups: 1,
                  fixedReps: nil, compactWeights: true) { model in
            checkSDXL(model)
            let x = ModelCases.normal([2, 4, 128, 128], seed: 1)
            let context = ModelCases.normal([2, 77, 2048], seed: 2)
            let added = AddedConditioning(textEmbeds: ModelCases.normal([2, 1280], seed: 3), timeIds: timeIds(batch: 2))
            return {
                _ = try model.unet(x, timesteps: [500, 500], conditioning: UNetConditioning(context: context, added: added))
                return []
            }
        }
    }

    /// One PILOT inner iteration at 1024×1024 as `PILOTSampler` runs it on
    /// SDXL: the conditional UNet forward (batch 1) on a tape with SBC in
    /// every cross-attention layer and the 70 loss layers captured (all are
    /// below full resolution), L_bg + λ·L_sc, ∂L/∂x, the heavy-ball update.
    static func pilotInner() -> ModelCase {
        ModelCase(name: "sdxl_pilot_inner", shape: "x[1,4,128,128] t=451 SBC, 70 loss layers, dL/dx", warmups: 1,
                  fixedReps: nil, compactWeights: true) { model in
            checkSDXL(model)
            let added = AddedConditioning(textEmbeds: ModelCases.normal([1, 1280], seed: 8), timeIds: timeIds(batch: 1))
            return try PILOTCases.innerCall(model, side: 128, context: ModelCases.normal([1, 77, 2048], seed: 7),
                                            added: added, lossLayers: 70)
        }
    }
}
