/// Scaled dot-product attention over `[B, N, heads·d]` tensors without
/// materialising the full score matrix: queries are processed in chunks whose
/// scores fit the scratch budget, and GEMMs read each head in place through
/// leading dimensions (no head permutes, no copies).
struct AttentionGeometry {
    let b: Int, nq: Int, nk: Int, heads: Int, d: Int, dv: Int
    let scale: Float
    let maskBatched: Bool
    let causal: Bool

    init(q: [Int], k: [Int], v: [Int], mask: [Int]?, _ p: AttentionParameters) {
        precondition(q.count == 3 && k.count == 3 && v.count == 3,
                     "attention expects [B, N, heads·d] tensors, got q \(q), k \(k), v \(v)")
        precondition(q[0] == k[0] && k[0] == v[0] && k[1] == v[1],
                     "attention batch/key lengths disagree: q \(q), k \(k), v \(v)")
        precondition(p.heads > 0 && q[2] % p.heads == 0 && v[2] % p.heads == 0 && q[2] == k[2],
                     "attention: \(p.heads) heads do not divide q/k width \(q[2]) or v width \(v[2])")
        b = q[0]; nq = q[1]; nk = k[1]; heads = p.heads
        d = q[2] / heads; dv = v[2] / heads
        scale = p.scale ?? 1 / Float(d).squareRoot()
        causal = p.causal
        if let mask {
            precondition(mask == [nq, nk] || mask == [b, nq, nk],
                         "attention mask must be [\(nq), \(nk)] or [\(b), \(nq), \(nk)], got \(mask)")
            maskBatched = mask.count == 3
        } else {
            maskBatched = false
        }
    }

    /// Preferred bytes of scores per chunk: small enough to stay in the
    /// last-level cache between the two GEMMs and the softmax.
    static let cacheFriendlyBytes = 4 << 20

    /// Query rows per chunk so that `buffers` score matrices fit `bytes`
    /// (and, where possible, the cache-friendly size).
    func chunkRows(budget bytes: Int, buffers: Int) -> Int {
        let limit = Swift.min(bytes, AttentionGeometry.cacheFriendlyBytes)
        return Swift.max(1, Swift.min(nq, limit / Swift.max(1, buffers * nk * MemoryLayout<Float>.size)))
    }
}

extension CPUBackend {
    public func attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, _ p: AttentionParameters) -> Tensor {
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, mask: mask?.shape, p)
        let out = empty([g.b, g.nq, g.heads * g.dv])
        let threads = ComputeThreads.count
        // Each worker owns its scratch: the budget (and the cache) is shared among them.
        let rowsPerChunk = g.chunkRows(budget: p.scratchBytes / threads, buffers: 1)
        let chunks = (g.nq + rowsPerChunk - 1) / rowsPerChunk
        let ldq = g.heads * g.d, ldv = g.heads * g.dv
        let pointers = UnsafeSendableBox((q.ptr, k.ptr, v.ptr, out.ptr))
        // Units of work: one (batch, head, query chunk) each, run side by side on
        // single-threaded GEMMs; no barrier between the two products and the softmax.
        parallelFor(g.b * g.heads * chunks) { units in
            let (qp, kp, vp, op) = pointers.value
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerChunk * g.nk)
            let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerChunk)
            defer { scores.deallocate(); inverseSums.deallocate() }
            for unit in units {
                let bi = unit / (g.heads * chunks), h = unit / chunks % g.heads, r0 = unit % chunks * rowsPerChunk
                let rows = Swift.min(rowsPerChunk, g.nq - r0)
                let qc = qp + (bi * g.nq + r0) * ldq + h * g.d
                serialSgemm(transB: true, m: rows, n: g.nk, k: g.d, alpha: g.scale, a: qc, lda: ldq,
                            b: kp + bi * g.nk * ldq + h * g.d, ldb: ldq, c: scores, ldc: g.nk)
                // Softmax without its last pass: the rows stay unnormalised and
                // the (much narrower) output rows are divided by their sums instead.
                unnormalisedProbabilities(scores, inverseSums: inverseSums, rows: rows, g: g, mask: mask, batch: bi, r0: r0)
                let oc = op + (bi * g.nq + r0) * ldv + h * g.dv
                serialSgemm(m: rows, n: g.dv, k: g.nk, a: scores, lda: g.nk,
                            b: vp + bi * g.nk * ldv + h * g.dv, ldb: ldv, c: oc, ldc: ldv)
                for r in 0..<rows { FastMath.scale(oc + r * ldv, oc + r * ldv, g.dv, by: inverseSums[r]) }
            }
        }
        return out
    }

    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, gradOutput: Tensor,
                                  _ p: AttentionParameters) -> (Tensor, Tensor, Tensor) {
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, mask: mask?.shape, p)
        precondition(gradOutput.shape == [g.b, g.nq, g.heads * g.dv],
                     "attention gradient shape \(gradOutput.shape) != output shape \([g.b, g.nq, g.heads * g.dv])")
        let dq = empty(q.shape), dk = Tensor.zeros(k.shape), dvT = Tensor.zeros(v.shape)
        // Units of work: one (batch, head) each, all its query chunks in turn on
        // single-threaded GEMMs, so that dK and dV, which sum over the chunks,
        // have one writer; each worker owns its scratch for P, dP and (with a
        // mask) P ⊙ M, and the scratch budget is shared among the workers.
        let rowsPerChunk = g.chunkRows(budget: p.scratchBytes / ComputeThreads.count, buffers: mask == nil ? 2 : 3)
        let ldq = g.heads * g.d, ldv = g.heads * g.dv
        let pointers = UnsafeSendableBox((q.ptr, k.ptr, v.ptr, gradOutput.ptr, dq.ptr, dk.ptr, dvT.ptr))
        parallelFor(g.b * g.heads) { units in
            let (qp, kp, vp, dop, dqp, dkp, dvp) = pointers.value
            let probs = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerChunk * g.nk)
            let dprobs = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerChunk * g.nk)
            let masked = mask == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: rowsPerChunk * g.nk)
            defer { probs.deallocate(); dprobs.deallocate(); masked?.deallocate() }
            for unit in units {
                let bi = unit / g.heads, h = unit % g.heads
                let kh = kp + bi * g.nk * ldq + h * g.d, vh = vp + bi * g.nk * ldv + h * g.dv
                let dkh = dkp + bi * g.nk * ldq + h * g.d, dvh = dvp + bi * g.nk * ldv + h * g.dv
                var r0 = 0
                while r0 < g.nq {
                    let rows = Swift.min(rowsPerChunk, g.nq - r0)
                    let qc = qp + (bi * g.nq + r0) * ldq + h * g.d
                    let doc = dop + (bi * g.nq + r0) * ldv + h * g.dv
                    // Recompute P (masked: P' = P ⊙ M; keep P in `probs`, P' only for dV).
                    serialSgemm(transB: true, m: rows, n: g.nk, k: g.d, alpha: g.scale, a: qc, lda: ldq,
                                b: kh, ldb: ldq, c: probs, ldc: g.nk)
                    probabilities(probs, rows: rows, g: g, r0: r0)
                    // dP' = dO·Vᵀ
                    serialSgemm(transB: true, m: rows, n: g.nk, k: g.dv, a: doc, lda: ldv, b: vh, ldb: ldv,
                                c: dprobs, ldc: g.nk)
                    if let mask, let masked {
                        // dV += (P ⊙ M)ᵀ·dO, and dP = dP' ⊙ M.
                        let mp = maskRows(mask, g: g, batch: bi, r0: r0)
                        for i in 0..<rows * g.nk {
                            masked[i] = probs[i] * mp[i]
                            dprobs[i] *= mp[i]
                        }
                        serialSgemm(transA: true, m: g.nk, n: g.dv, k: rows, a: masked, lda: g.nk, b: doc, ldb: ldv,
                                    beta: 1, c: dvh, ldc: ldv)
                    } else {
                        serialSgemm(transA: true, m: g.nk, n: g.dv, k: rows, a: probs, lda: g.nk, b: doc, ldb: ldv,
                                    beta: 1, c: dvh, ldc: ldv)
                    }
                    // dS = P ⊙ (dP − Σ P⊙dP), in place in dprobs.
                    for r in 0..<rows {
                        let pr = probs + r * g.nk, dr = dprobs + r * g.nk
                        let dot = FastMath.dot(pr, dr, g.nk)
                        for j in 0..<g.nk { dr[j] = pr[j] * (dr[j] - dot) }
                    }
                    serialSgemm(m: rows, n: g.d, k: g.nk, alpha: g.scale, a: dprobs, lda: g.nk, b: kh, ldb: ldq,
                                c: dqp + (bi * g.nq + r0) * ldq + h * g.d, ldc: ldq)
                    serialSgemm(transA: true, m: g.nk, n: g.d, k: rows, alpha: g.scale, a: dprobs, lda: g.nk,
                                b: qc, ldb: ldq, beta: 1, c: dkh, ldc: ldq)
                    r0 += rows
                }
            }
        }
        return (dq, dk, dvT)
    }

    /// Softmax of each score row in place (keys after the query get 0 when
    /// causal). The backward's P; the mask, if any, is applied by its caller.
    private func probabilities(_ s: UnsafeMutablePointer<Float>, rows: Int, g: AttentionGeometry, r0: Int) {
        for r in 0..<rows {
            let row = s + r * g.nk
            FastMath.scale(row, row, g.nk, by: exponentiate(row, query: r0 + r, g: g))
        }
    }

    /// exp(s − max) of each score row in place (then the optional
    /// multiplicative mask), and the inverse of each row's sum of
    /// exponentials: row-scaling by it gives the probabilities, and commutes
    /// with the mask and with the product by V.
    private func unnormalisedProbabilities(_ s: UnsafeMutablePointer<Float>, inverseSums: UnsafeMutablePointer<Float>,
                                           rows: Int, g: AttentionGeometry, mask: Tensor?, batch: Int, r0: Int) {
        let nk = g.nk
        let mp = mask.map { maskRows($0, g: g, batch: batch, r0: r0) }
        for r in 0..<rows {
            let row = s + r * nk
            inverseSums[r] = exponentiate(row, query: r0 + r, g: g)
            if let mp {
                let m = mp + r * nk
                for j in 0..<nk { row[j] *= m[j] }
            }
        }
    }

    /// exp(s − max) of score row `row` (of query `query`) in place, keys
    /// after the query set to 0 when causal; returns 1 / Σ exp.
    @inline(__always)
    private func exponentiate(_ row: UnsafeMutablePointer<Float>, query: Int, g: AttentionGeometry) -> Float {
        let visible = g.causal ? Swift.min(g.nk, query + 1) : g.nk
        let sum = FastMath.expShiftSum(row, row, visible, shift: FastMath.max(row, visible))
        if visible < g.nk { (row + visible).update(repeating: 0, count: g.nk - visible) }
        return 1 / sum
    }

    private func maskRows(_ mask: Tensor, g: AttentionGeometry, batch: Int, r0: Int) -> UnsafeMutablePointer<Float> {
        mask.ptr + ((g.maskBatched ? batch * g.nq : 0) + r0) * g.nk
    }
}
