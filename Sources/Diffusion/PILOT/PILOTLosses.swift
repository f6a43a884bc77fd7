import Foundation
import Tensors

/// PILOT's losses and schedules (PILOT.md, "The inner optimisation").
public enum PILOTLoss {
    /// L_bg = Σ K·((z_src+1)/2 − (ẑ₀+1)/2)², a sum over channels and pixels
    /// (and over candidates for a batch `[B, C, h, w]` against a source `[1, C, h, w]`).
    public static func background(reconstruction x0: Tensor, source: Tensor, keep: Tensor) -> Tensor {
        let d = (source - x0) * 0.5
        return (d.squared() * keep).sum()
    }

    /// L_ℓ = out_ℓ − in_ℓ for one layer's probabilities `[B, heads, N, L]`:
    /// attention mass on the prompt's word tokens over background queries,
    /// minus that over hole queries, each normalised by heads × pixel count.
    /// A layer whose F_s is all hole or all background contributes 0 (nil).
    /// With B candidates it is the sum of their terms (each row's own
    /// normalisation), so its gradient for one candidate is that candidate's.
    public static func centralisationTerm(probabilities p: Tensor, hole f: Tensor, wordTokens: [Int]) -> Tensor? {
        let (rows, heads, n, keys) = (p.dim(0), p.dim(1), p.dim(2), p.dim(3))
        precondition(f.count == n, "F_s has \(f.count) cells for \(n) queries")
        let holeCount = f.scalars.reduce(0, +)
        let bgCount = Float(n) - holeCount
        guard holeCount > 0, bgCount > 0, !wordTokens.isEmpty else { return nil }
        var select = [Float](repeating: 0, count: keys)
        for k in wordTokens where k < keys { select[k] = 1 }
        let mass = matmul(p, Tensor(shape: [keys, 1], values: select)).reshaped([rows * heads, n])   // Σ_k∈T A
        let fRow = f.reshaped([1, n])
        let inside = (mass * fRow).sum() * (1 / (Float(heads) * holeCount))
        let outside = (mass * (1 - fRow)).sum() * (1 / (Float(heads) * bgCount))
        return outside - inside
    }

    /// λ(t) = 0.1·C for t < 300, else 0.1·C + 0.9·C·(t − 300)/699.
    public static func lambda(timestep t: Int, scale c: Float) -> Float {
        t < 300 ? 0.1 * c : 0.1 * c + 0.9 * c * Float(t - 300) / 699
    }

    /// η(t) = lr·1.002^(1000 − t).
    public static func learningRate(timestep t: Int, base lr: Float) -> Float {
        lr * Float(Foundation.pow(1.002, Double(1000 - t)))
    }
}
