/// Multi-head scaled dot-product attention over `[B, N, heads·d]` tensors
/// (the layout diffusers' `Attention` projects into): head h reads channels
/// `h·d ..< (h+1)·d`. `mask`, when given (`[Nq, Nk]` or `[B, Nq, Nk]`),
/// multiplies the probabilities after the softmax with no renormalisation
/// (PILOT's semantic boundary control); it is a constant for autograd.
///
/// Scores are computed in query chunks bounded by `scratchBytes`, and the
/// backward recomputes them chunk by chunk instead of storing them.
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float? = nil, mask: Tensor? = nil,
                      scratchBytes: Int = 64 << 20) -> Tensor {
    let p = AttentionParameters(heads: heads, scale: scale, scratchBytes: scratchBytes)
    let y = q.backend.attention(q: q, k: k, v: v, mask: mask?.detached, p)
    let (cq, ck, cv, cm) = (q.detached, k.detached, v.detached, mask?.detached)
    return Tape.record(y, inputs: [q, k, v]) { g, _ in
        let (dq, dk, dv) = g.backend.attentionBackward(q: cq, k: ck, v: cv, mask: cm, gradOutput: g, p)
        return [dq, dk, dv]
    }
}
