import Foundation

/// Nearest-neighbour upsampling of NCHW by an integer factor.
public func upsampleNearest(_ x: Tensor, factor: Int = 2) -> Tensor {
    let y = Backends.backend(for: x).upsampleNearest(x, factor: factor)
    return Tape.record(y, inputs: [x]) { g, _ in [Backends.backend(for: g).upsampleNearestBackward(g, factor: factor)] }
}

/// Rows of `table [V, D]` selected by `ids`, shaped `idsShape + [D]`.
public func embedding(_ table: Tensor, ids: [Int32], shape idsShape: [Int]? = nil) -> Tensor {
    let shape = idsShape ?? [ids.count]
    let y = Backends.backend(for: table).embedding(table, ids: ids, idsShape: shape)
    let vocab = table.shape[0]
    return Tape.record(y, inputs: [table]) { g, _ in [Backends.backend(for: g).embeddingBackward(g, ids: ids, vocabulary: vocab)] }
}

/// Sinusoidal timestep embedding as diffusers' `get_timestep_embedding`:
/// `half = dim/2`, frequencies `exp(−ln(maxPeriod)·i/(half − shift))`, rows
/// `[sin(t·f), cos(t·f)]` (or `[cos, sin]` with `flipSinToCos`), a zero column
/// appended for odd `dim`. Angles are formed in Double for accuracy.
public func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool = false,
                              downscaleFreqShift: Float = 1, scale: Float = 1, maxPeriod: Float = 10_000) -> Tensor {
    let half = dim / 2
    var out = [Float](repeating: 0, count: timesteps.count * dim)
    for (r, t) in timesteps.enumerated() {
        for i in 0..<half {
            let exponent = -Foundation.log(Double(maxPeriod)) * Double(i) / (Double(half) - Double(downscaleFreqShift))
            let angle = Double(scale) * Double(t) * Foundation.exp(exponent)
            let (s, c) = (Float(Foundation.sin(angle)), Float(Foundation.cos(angle)))
            out[r * dim + i] = flipSinToCos ? c : s
            out[r * dim + half + i] = flipSinToCos ? s : c
        }
    }
    return Tensor(shape: [timesteps.count, dim], values: out)
}
