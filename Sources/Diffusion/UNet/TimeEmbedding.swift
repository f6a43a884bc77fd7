import Tensors

/// SDXL's added conditioning for one UNet call: the pooled text embedding
/// `[B, P]` and the six size/crop numbers per row `[B, 6]` (original height
/// and width, crop top and left, target height and width).
public struct AddedConditioning {
    public var textEmbeds: Tensor
    public var timeIds: Tensor

    public init(textEmbeds: Tensor, timeIds: Tensor) {
        self.textEmbeds = textEmbeds
        self.timeIds = timeIds
    }

    /// Size conditioning as diffusers' SDXL pipeline builds it, for one row.
    public static func timeIds(originalSize: (height: Int, width: Int), cropTopLeft: (top: Int, left: Int) = (0, 0),
                               targetSize: (height: Int, width: Int)) -> Tensor {
        Tensor(shape: [1, AdditionEmbeddingConfig.timeIdCount],
               values: [originalSize.height, originalSize.width, cropTopLeft.top, cropTopLeft.left,
                        targetSize.height, targetSize.width].map(Float.init))
    }

    /// Rows of `parts` stacked along the batch axis.
    public static func batched(_ parts: [AddedConditioning]) -> AddedConditioning {
        AddedConditioning(textEmbeds: concat(parts.map(\.textEmbeds), axis: 0), timeIds: concat(parts.map(\.timeIds), axis: 0))
    }
}

/// The time embedding a UNet (and its ControlNets) add to every resnet:
/// sinusoidal timestep features through `time_embedding`'s two-layer MLP,
/// plus, for SDXL, `add_embedding` of the pooled text and the embedded
/// time ids.
struct TimeEmbedding {
    let config: UNetConfig
    let linear1, linear2: Linear
    let addLinear1, addLinear2: Linear?

    init(_ w: WeightLoader, config c: UNetConfig) throws {
        config = c
        linear1 = try Linear(w["time_embedding"]["linear_1"], in: c.blockOutChannels[0], out: c.timeEmbedDim)
        linear2 = try Linear(w["time_embedding"]["linear_2"], in: c.timeEmbedDim, out: c.timeEmbedDim)
        if let a = c.addition {
            addLinear1 = try Linear(w["add_embedding"]["linear_1"], in: a.inputDim, out: c.timeEmbedDim)
            addLinear2 = try Linear(w["add_embedding"]["linear_2"], in: c.timeEmbedDim, out: c.timeEmbedDim)
        } else {
            addLinear1 = nil
            addLinear2 = nil
        }
    }

    /// `[B, timeEmbedDim]` for one timestep per row.
    func callAsFunction(_ timesteps: [Float], added: AddedConditioning?) throws -> Tensor {
        let c = config
        let b = timesteps.count
        let features = timestepEmbedding(timesteps, dim: c.blockOutChannels[0], flipSinToCos: c.flipSinToCos,
                                         downscaleFreqShift: c.freqShift)
        let time = linear2(linear1(features).silu())
        guard let a = c.addition, let addLinear1, let addLinear2 else {
            if added != nil {
                throw ModelInputError.mismatch(what: "added conditioning (pooled text, time ids)",
                                               expected: "none: this UNet has no addition embedding", found: "some")
            }
            return time
        }
        guard let added else {
            throw ModelInputError.mismatch(what: "added conditioning", expected: "pooled text embeddings [\(b), \(a.textEmbedDim)] "
                                           + "and time ids [\(b), 6] (an SDXL-family UNet)", found: "none")
        }
        guard added.textEmbeds.shape == [b, a.textEmbedDim] else {
            throw ModelInputError.shape(what: "pooled text embeddings", expected: "[\(b), \(a.textEmbedDim)]",
                                        found: added.textEmbeds.shape)
        }
        guard added.timeIds.shape == [b, AdditionEmbeddingConfig.timeIdCount] else {
            throw ModelInputError.shape(what: "time ids", expected: "[\(b), 6]", found: added.timeIds.shape)
        }
        let ids = timestepEmbedding(added.timeIds.scalars, dim: a.timeEmbedDim, flipSinToCos: c.flipSinToCos,
                                    downscaleFreqShift: c.freqShift)
            .reshaped([b, AdditionEmbeddingConfig.timeIdCount * a.timeEmbedDim])
        let features2 = concat([added.textEmbeds, ids], axis: 1)
        return time + addLinear2(addLinear1(features2).silu())
    }
}
