/// Multi-head scaled dot-product attention over `[B, N, heads·d]` tensors
/// (the layout diffusers' `Attention` projects into): head h reads channels
/// `h·d ..< (h+1)·d`. `mask`, when given (`[Nq, Nk]` or `[B, Nq, Nk]`),
/// multiplies the probabilities after the softmax with no renormalisation
/// (PILOT's semantic boundary control); it is a constant for autograd.
///
/// `causal` restricts query i to keys 0...i (CLIP's text encoder).
///
/// Scores are computed in query chunks bounded by `scratchBytes`, and the
/// backward recomputes them chunk by chunk instead of storing them.
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float? = nil, mask: Tensor? = nil,
                      causal: Bool = false, scratchBytes: Int = 64 << 20) -> Tensor {
    let p = AttentionParameters(heads: heads, scale: scale, scratchBytes: scratchBytes, causal: causal)
    let y = Backends.backend(for: q, k, v, mask).attention(q: q, k: k, v: v, mask: mask?.detached, p)
    let (cq, ck, cv, cm) = (q.detached, k.detached, v.detached, mask?.detached)
    return Tape.record(y, inputs: [q, k, v]) { g, _ in
        let (dq, dk, dv) = Backends.backend(for: g, cq, ck, cv).attentionBackward(q: cq, k: ck, v: cv, mask: cm, gradOutput: g, p)
        return [dq, dk, dv]
    }
}

/// The attention probabilities `softmax(QKᵀ·scale)` per head, materialised as
/// `[B, heads, Nq, Nk]` and differentiable through the tape — for callers
/// that need them as values (PILOT's losses read cross-attention maps).
/// Unlike `attention`, this keeps the full matrix: use it where Nk is small.
public func attentionProbabilities(q: Tensor, k: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    precondition(q.rank == 3 && k.rank == 3 && q.dim(2) == k.dim(2) && q.dim(2) % heads == 0,
                 "attentionProbabilities expects [B, N, heads·d] q and k, got \(q.shape) and \(k.shape)")
    let (b, nq, nk, d) = (q.dim(0), q.dim(1), k.dim(1), q.dim(2) / heads)
    let qh = q.reshaped([b, nq, heads, d]).permuted([0, 2, 1, 3])
    let kh = k.reshaped([b, nk, heads, d]).permuted([0, 2, 1, 3])
    let s = scale ?? 1 / Float(d).squareRoot()
    return softmax(matmul(qh, kh, transposeB: true) * s)
}
