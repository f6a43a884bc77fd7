import Diffusion
import Tensors

/// One model-level case. `Benchmarks/peers/models.py` mirrors every case
/// under the same name; keep the two in step.
struct ModelCase {
    /// Stable identifier, shared with the peer script and the driver.
    let name: String
    /// Human-readable shapes and settings.
    let shape: String
    /// Untimed calls before the timed ones.
    let warmups: Int
    /// A fixed number of timed calls (the long PILOT run), else `--reps`.
    let fixedReps: Int?
    /// Target for ours ÷ PyTorch's time, from the project's issues; nil: report only.
    var timeRatioTarget: Double? = nil
    /// Load the model with compact 16-bit host weights (the SDXL cases:
    /// SDXL's float16 checkpoints would take 14 GB widened at load).
    var compactWeights = false
    /// Makes the inputs from the loaded model and returns the call to time;
    /// the call returns its sub-steps (empty for most cases).
    let prepare: (StableDiffusionModel) throws -> () throws -> [Phase]
}

/// The Stable Diffusion 1.5 component cases at 512×512 (64×64 latents), and
/// the two PILOT cases (PILOTCases.swift).
enum ModelCases {
    static var all: [ModelCase] {
        [unet(), controlNetStep(), vaeDecode(), vaeEncode(), text(), PILOTCases.innerIteration(),
         PILOTCases.run256(), PILOTCases.batch256(), PreviewCases.latent2rgb(), PreviewCases.taesd(), SDXLCases.unet(), SDXLCases.pilotInner()]
    }

    static func named(_ name: String) -> ModelCase? { all.first { $0.name == name } }

    /// One UNet forward as classifier-free guidance runs it: batch 2.
    static func unet() -> ModelCase {
        ModelCase(name: "unet", shape: "x[2,4,64,64] t=500 context[2,77,768]", warmups: 1, fixedReps: nil,
                  timeRatioTarget: 1) { model in
            let x = normal([2, 4, 64, 64], seed: 1)
            let context = normal([2, 77, 768], seed: 2)
            return {
                _ = try model.unet(x, timesteps: [500, 500], conditioning: UNetConditioning(context: context))
                return []
            }
        }
    }

    /// The `unet` case's call with one ControlNet (scale 1, a 512×512 hint),
    /// as a ControlNet pipeline's guided step runs it: the adapter stack
    /// repeats the hint to the batch and runs the ControlNet, then the UNet
    /// adds its residuals. Minus `unet`, this is a ControlNet's added cost
    /// (the report's derived row). The ControlNet is the folder's
    /// `controlnet/` (Benchmarks/models/make_random_sd15.py writes it).
    static func controlNetStep() -> ModelCase {
        ModelCase(name: "controlnet_step", shape: "unet + 1 ControlNet, hint[1,3,512,512] scale 1", warmups: 1,
                  fixedReps: nil) { model in
            let controlNet = try ControlNetModel.load(path: model.source + "/controlnet")
            try controlNet.checkCompatible(with: model.unet, unetSource: model.source)
            var rng = SplitMix64(seed: 5)
            let hint = Tensor.uniform([1, 3, 512, 512], low: 0, high: 1, using: &rng)
            let stack = AdapterStack()
            stack.controlNets = [AdapterStack.ControlNetUse(model: controlNet, hint: hint, scale: 1)]
            let x = normal([2, 4, 64, 64], seed: 1)
            let context = normal([2, 77, 768], seed: 2)
            return {
                let conditioning = try stack.conditioning(x: x, timestep: 500, step: 0, steps: 1, context: context,
                                                          attentionControl: nil, guided: true)
                _ = try model.unet(x, timesteps: [500, 500], conditioning: conditioning)
                return []
            }
        }
    }

    static func vaeDecode() -> ModelCase {
        ModelCase(name: "vae_decode", shape: "latent[1,4,64,64] -> [1,3,512,512]", warmups: 1, fixedReps: nil,
                  timeRatioTarget: 1) { model in
            let z = normal([1, 4, 64, 64], seed: 3)
            return {
                _ = try model.vae.decode(z)
                return []
            }
        }
    }

    /// The posterior's moments (mean and clamped log-variance), no sampling.
    static func vaeEncode() -> ModelCase {
        ModelCase(name: "vae_encode", shape: "[1,3,512,512] -> latent[1,4,64,64]", warmups: 1, fixedReps: nil,
                  timeRatioTarget: 1) { model in
            var rng = SplitMix64(seed: 4)
            let image = Tensor.uniform([1, 3, 512, 512], low: -1, high: 1, using: &rng)
            return {
                _ = try model.vae.encode(image)
                return []
            }
        }
    }

    /// The prompt and the empty negative prompt in one batch.
    static func text() -> ModelCase {
        ModelCase(name: "text", shape: "ids[2,77] -> [2,77,768]", warmups: 1, fixedReps: nil) { model in
            let ids = [PILOTCases.promptIDs, PILOTCases.negativeIDs]
            return {
                _ = model.textEncoder(ids: ids)
                return []
            }
        }
    }

    /// Standard-normal values from SplitMix64, reproducible per seed (the
    /// peer draws the same distribution from torch.randn, not the same values).
    static func normal(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor.randn(shape, using: &rng)
    }
}
