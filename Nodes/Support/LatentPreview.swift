import Diffusion
import Foundation
import Imaging
import Tensors
import Workflow

/// Preview images of a sampler's current estimate (x̂₀), as the run asked
/// for them (``PreviewRequest``): the sampling nodes hand ``hook(_:unet:)``
/// to their sampler, and each preview goes out as a `.preview` event.
/// `render` is public for the benchmarks (`pilot-bench models preview_*`).
public enum LatentPreview {
    /// A linear map from the four latent channels to RGB in [−1, 1]:
    /// `rgb[c] = Σ_k factors[k][c]·z[k] + bias[c]`.
    struct Projection: Sendable {
        let factors: [[Float]]
        let bias: [Float]
    }

    /// SD 1.x/2.x latents (the least-squares fit Keturn published in 2022,
    /// the map A1111's and ComfyUI's cheap previews use).
    static let sd = Projection(factors: [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                                         [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
                               bias: [0, 0, 0])
    /// SDXL latents (its VAE differs; the same kind of fit, with offsets).
    static let sdxl = Projection(factors: [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                                           [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
                                 bias: [0.1084, -0.0175, -0.0011])

    /// The preview hook for `context`'s request, nil when the run asked for
    /// none. SDXL's map is used when `unet` takes SDXL's added conditioning.
    static func hook(_ context: NodeContext, unet: UNet2DConditionModel) -> SamplerPreview? {
        guard let request = context.preview else { return nil }
        let sdxl = unet.config.addition != nil
        return SamplerPreview(wants: { request.wants(step: $0, total: $1) }, show: { step, total, denoised in
            // A preview that cannot be made is skipped: it must never fail the run.
            guard let preview = try? render(denoised, request: request, sdxl: sdxl) else { return }
            context.emitPreview(step: step, total: total, png: preview.png, width: preview.width, height: preview.height,
                                method: preview.method.rawValue, note: preview.note)
        })
    }

    public struct Rendered: Sendable {
        public let png: Data
        public let width: Int
        public let height: Int
        public let method: PreviewRequest.Method
        public let note: String?
    }

    /// The first item of `latent [B, 4, h, w]` as a PNG no larger than the request's `maxSide`.
    public static func render(_ latent: Tensor, request: PreviewRequest, sdxl: Bool) throws -> Rendered {
        let first = latent.dim(0) == 1 ? latent : latent.chunked(latent.dim(0), axis: 0)[0]
        var method = request.method
        var note: String?
        var image: Image
        if method == .taesd {
            switch TinyVAECache.shared.decoder(in: request.decoderDirectory, sdxl: sdxl) {
            case let .success(decoder):
                let rgb = try decoder.decode(Tensor(shape: first.shape, values: first.scalars))
                image = try Image(tensor: rgb * 0.5 + 0.5)
            case let .failure(reason):
                method = .latent2rgb
                note = reason.description
                image = try linear(first, sdxl ? Self.sdxl : Self.sd)
            }
        } else {
            image = try linear(first, sdxl ? Self.sdxl : Self.sd)
        }
        let side = max(image.width, image.height)
        if side > request.maxSide {
            let scale = Double(request.maxSide) / Double(side)
            image = image.resized(width: max(1, Int((Double(image.width) * scale).rounded())),
                                  height: max(1, Int((Double(image.height) * scale).rounded())))
        }
        let png = try ImageFile.encode(image, as: .png)
        return Rendered(png: png, width: image.width, height: image.height, method: method, note: note)
    }

    /// latent2rgb: one pixel per latent cell.
    static func linear(_ latent: Tensor, _ map: Projection) throws -> Image {
        guard latent.rank == 4, latent.dim(1) == map.factors.count else {
            throw NodeError("latent2rgb previews take [1, \(map.factors.count), h, w] latents, found \(latent.shape)")
        }
        let h = latent.dim(2), w = latent.dim(3), plane = h * w
        let z = latent.scalars
        var planes = [Float](repeating: 0, count: 3 * plane)
        for c in 0..<3 {
            for p in 0..<plane {
                var v = map.bias[c]
                for k in 0..<map.factors.count { v += map.factors[k][c] * z[k * plane + p] }
                planes[c * plane + p] = min(max((v + 1) / 2, 0), 1)
            }
        }
        return try Image(width: w, height: h, planes: planes)
    }
}

/// The tiny autoencoders previews decode with, each loaded once per process
/// (its failure too: a missing folder is reported with every preview, not
/// looked for at every step).
final class TinyVAECache: @unchecked Sendable {
    static let shared = TinyVAECache()

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    private let lock = NSLock()
    private var loaded: [String: Result<AutoencoderTiny, Unavailable>] = [:]

    /// Folder names inside the models folder: TAESD for SD 1.x/2.x, TAESDXL for SDXL.
    static func folderName(sdxl: Bool) -> String { sdxl ? "taesdxl" : "taesd" }

    func decoder(in directory: URL?, sdxl: Bool) -> Result<AutoencoderTiny, Unavailable> {
        guard let directory else {
            return .failure(Unavailable(description: "taesd previews need a models folder; showing latent2rgb"))
        }
        let folder = directory.appendingPathComponent(Self.folderName(sdxl: sdxl), isDirectory: true).path
        return lock.withLock {
            if let known = loaded[folder] { return known }
            let result: Result<AutoencoderTiny, Unavailable>
            do {
                result = .success(try AutoencoderTiny.load(path: folder))
            } catch {
                result = .failure(Unavailable(description: "no tiny VAE at \(folder) (\(error)); showing latent2rgb"))
            }
            loaded[folder] = result
            return result
        }
    }
}
