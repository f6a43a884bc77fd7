extension CPUBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2, got \(a.shape) and \(b.shape)")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard let batch = Shape.broadcast(batchA, batchB) else {
            preconditionFailure("matmul batch dimensions \(batchA) and \(batchB) do not broadcast")
        }
        let out = empty(batch + [m, n])
        let batches = Shape.count(batch)
        // A shared right operand and a plain left operand: one big GEMM.
        if batchB.isEmpty && !transposeA {
            sgemm(transB: transposeB, m: batches * m, n: n, k: k, a: a.ptr, lda: ac, b: b.ptr, ldb: bc,
                  c: out.ptr, ldc: n)
            return out
        }
        let sa = BroadcastPlan.strides(of: batchA, in: batch)
        let sb = BroadcastPlan.strides(of: batchB, in: batch)
        for i in 0..<batches {
            var rem = i, oa = 0, ob = 0
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                let idx = rem % batch[d]
                rem /= batch[d]
                oa += idx * sa[d]
                ob += idx * sb[d]
            }
            sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                  a: a.ptr + oa * ar * ac, lda: ac, b: b.ptr + ob * br * bc, ldb: bc,
                  c: out.ptr + i * m * n, ldc: n)
        }
        return out
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        let (outF, inF) = (weight.shape[0], weight.shape[1])
        precondition(x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF) features")
        if let bias { precondition(bias.shape == [outF], "linear bias must be [\(outF)], got \(bias.shape)") }
        let rows = x.count / Swift.max(inF, 1)
        let out = empty(Array(x.shape.dropLast()) + [outF])
        if let bias {
            for r in 0..<rows { (out.ptr + r * outF).update(from: bias.ptr, count: outF) }
        }
        sgemm(transB: true, m: rows, n: outF, k: inF, a: x.ptr, lda: inF, b: weight.ptr, ldb: inF,
              beta: bias == nil ? 0 : 1, c: out.ptr, ldc: outF)
        return out
    }
}
