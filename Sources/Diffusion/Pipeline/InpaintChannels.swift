import Tensors

/// The extra UNet input of inpainting checkpoints (SD 1.5/2 inpainting: 9
/// input channels), made as diffusers' StableDiffusionInpaintPipeline makes
/// it: the mask at latent size, then the latent of the image with the hole
/// greyed out.
public enum InpaintChannels {
    /// A pixel mask `[1, 1, H, W]` (1 = inpaint) at latent size: binarised
    /// at 0.5, then the top-left pixel of each `factor` × `factor` cell
    /// (nearest-neighbour downsampling, PyTorch's `interpolate` default).
    public static func latentMask(_ mask: Tensor, factor: Int) throws -> Tensor {
        guard mask.rank == 4, mask.dim(0) == 1, mask.dim(1) == 1, mask.dim(2) % factor == 0, mask.dim(3) % factor == 0 else {
            throw ModelInputError.shape(what: "inpainting mask", expected: "[1, 1, H, W] with H, W multiples of \(factor)",
                                        found: mask.shape)
        }
        let cells = try InpaintingMasks.nearestHole(mask, downscale: factor).map { $0 ? Float(1) : 0 }
        return Tensor(shape: [1, 1, mask.dim(2) / factor, mask.dim(3) / factor], values: cells)
    }

    /// RGB `[1, 3, H, W]` in [0, 1] with every pixel the mask marks for
    /// inpainting (≥ 0.5) set to mid grey (0 in the VAE's [-1, 1]), as the
    /// pipeline's `image * (mask < 0.5)` does.
    public static func maskedImage(_ rgb: Tensor, mask: Tensor) throws -> Tensor {
        guard rgb.rank == 4, rgb.dim(1) == 3, mask.rank == 4, mask.dim(2) == rgb.dim(2), mask.dim(3) == rgb.dim(3) else {
            throw ModelInputError.shape(what: "image and mask", expected: "[1, 3, H, W] and [1, 1, H, W]",
                                        found: rgb.shape + mask.shape)
        }
        let plane = rgb.dim(2) * rgb.dim(3)
        var values = rgb.scalars
        let hole = mask.scalars
        for c in 0..<3 {
            for i in 0..<plane where hole[i] >= 0.5 { values[c * plane + i] = 0.5 }
        }
        return Tensor(shape: rgb.shape, values: values)
    }

    /// `[1, 1 + C, h, w]`: the latent mask, then the masked image's latent.
    public static func channels(latentMask: Tensor, maskedImageLatent: Tensor) throws -> Tensor {
        guard latentMask.dim(2) == maskedImageLatent.dim(2), latentMask.dim(3) == maskedImageLatent.dim(3) else {
            throw ModelInputError.shape(what: "masked-image latent", expected: "the latent mask's size \(latentMask.shape)",
                                        found: maskedImageLatent.shape)
        }
        return concat([latentMask, maskedImageLatent], axis: 1)
    }
}
