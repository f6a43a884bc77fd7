import Foundation
import Nodes
import Tensors
import Workflow

/// What one step preview costs at SD 1.5 size (a [1, 4, 64, 64] latent, a
/// 512×512 image), from the sampler's x̂₀ to the PNG bytes the event carries:
/// the report sets it against `every` (5, the default) UNet steps.
enum PreviewCases {
    /// The family's linear latent→RGB map: a 64×64 PNG.
    static func latent2rgb() -> ModelCase {
        ModelCase(name: "preview_latent2rgb", shape: "latent[1,4,64,64] -> 64x64 PNG", warmups: 1, fixedReps: nil) { _ in
            let z = ModelCases.normal([1, 4, 64, 64], seed: 6)
            return {
                _ = try LatentPreview.render(z, request: PreviewRequest(), sdxl: false)
                return []
            }
        }
    }

    /// The tiny autoencoder (TAESD's shapes, random weights: the model folder's
    /// `taesd/`, Benchmarks/models/make_random_taesd.py), 512×512 scaled to
    /// the default max_side 256, then the PNG.
    static func taesd() -> ModelCase {
        ModelCase(name: "preview_taesd", shape: "latent[1,4,64,64] -> TAESD 512x512 -> 256x256 PNG", warmups: 1,
                  fixedReps: nil) { model in
            let folder = URL(fileURLWithPath: model.source, isDirectory: true)
            let request = PreviewRequest(method: .taesd, decoderDirectory: folder)
            let z = ModelCases.normal([1, 4, 64, 64], seed: 6)
            let first = try LatentPreview.render(z, request: request, sdxl: false)
            guard first.method == .taesd else {
                throw BenchError.usage("preview_taesd needs \(model.source)/taesd (Benchmarks/models/make_random_taesd.py "
                                 + "\(model.source)): \(first.note ?? "")")
            }
            return {
                _ = try LatentPreview.render(z, request: request, sdxl: false)
                return []
            }
        }
    }
}
