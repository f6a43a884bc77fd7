extension CPUBackend {
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        precondition(x.rank >= 2, "group norm input must be [N, C, ...], got \(x.shape)")
        let (n, c) = (x.shape[0], x.shape[1])
        precondition(groups > 0 && c % groups == 0, "group norm: \(groups) groups do not divide \(c) channels")
        if let weight { precondition(weight.shape == [c], "group norm weight must be [\(c)], got \(weight.shape)") }
        if let bias { precondition(bias.shape == [c], "group norm bias must be [\(c)], got \(bias.shape)") }
        let spatial = x.count / Swift.max(n * c, 1)
        let cg = c / groups
        let size = cg * spatial
        let out = empty(x.shape)
        var mean = [Float](repeating: 0, count: n * groups)
        var rstd = [Float](repeating: 0, count: n * groups)
        let px = x.ptr, po = out.ptr
        let pw = weight?.ptr, pb = bias?.ptr
        mean.withUnsafeMutableBufferPointer { meanBuf in
            rstd.withUnsafeMutableBufferPointer { rstdBuf in
                let mb = UnsafeSendableBox(meanBuf), rb = UnsafeSendableBox(rstdBuf)
                parallelFor(n * groups) { r in
                    for ng in r {
                        let base = px + ng * size
                        let (m, v) = meanVariance(base, size)
                        let rs = 1 / (v + eps).squareRoot()
                        mb.value[ng] = m
                        rb.value[ng] = rs
                        let gi = ng % groups
                        for ci in 0..<cg {
                            let ch = gi * cg + ci
                            let a = rs * (pw?[ch] ?? 1)
                            let s = (pb?[ch] ?? 0) - m * a
                            let src = base + ci * spatial, dst = po + ng * size + ci * spatial
                            for k in 0..<spatial { dst[k] = src[k] * a + s }
                        }
                    }
                }
            }
        }
        return (out, NormStatistics(mean: mean, rstd: rstd))
    }

    public func groupNormBackward(_ gradOutput: Tensor, input: Tensor, groups: Int, weight: Tensor?,
                                  statistics st: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        let (n, c) = (input.shape[0], input.shape[1])
        let spatial = input.count / Swift.max(n * c, 1)
        let cg = c / groups
        let size = cg * spatial
        let dx = empty(input.shape)
        // Per (n, channel): Σ dy and Σ dy·x̂, used by dx and by dweight/dbias.
        let sumDy = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
        let sumDyXhat = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
        defer { sumDy.deallocate(); sumDyXhat.deallocate() }
        let px = input.ptr, pg = gradOutput.ptr, pd = dx.ptr, pw = weight?.ptr
        st.mean.withUnsafeBufferPointer { meanB in
            st.rstd.withUnsafeBufferPointer { rstdB in
                let mb = UnsafeSendableBox(meanB), rb = UnsafeSendableBox(rstdB)
                parallelFor(n * groups) { r in
                    for ng in r {
                        let m = mb.value[ng], rs = rb.value[ng]
                        let gi = ng % groups, b = ng / groups
                        var a1: Double = 0, a2: Double = 0   // Σ w·dy, Σ w·dy·x̂ over the group
                        for ci in 0..<cg {
                            let ch = gi * cg + ci
                            let xs = px + ng * size + ci * spatial, gs = pg + ng * size + ci * spatial
                            let s1 = FastMath.sum(gs, spatial)
                            let s2 = (FastMath.dot(gs, xs, spatial) - m * s1) * rs
                            sumDy[b * c + ch] = s1
                            sumDyXhat[b * c + ch] = s2
                            let wc = pw?[ch] ?? 1
                            a1 += Double(wc * s1)
                            a2 += Double(wc * s2)
                        }
                        let meanDxhat = Float(a1 / Double(size)), meanDxhatXhat = Float(a2 / Double(size))
                        for ci in 0..<cg {
                            let ch = gi * cg + ci
                            let wc = pw?[ch] ?? 1
                            let off = ng * size + ci * spatial
                            let xs = px + off, gs = pg + off, ds = pd + off
                            for k in 0..<spatial {
                                let xhat = (xs[k] - m) * rs
                                ds[k] = rs * (gs[k] * wc - meanDxhat - xhat * meanDxhatXhat)
                            }
                        }
                    }
                }
            }
        }
        guard weight != nil else { return (dx, nil, nil) }
        let dw = Tensor.zeros([c]), db = Tensor.zeros([c])
        for b in 0..<n {
            for ch in 0..<c {
                dw.ptr[ch] += sumDyXhat[b * c + ch]
                db.ptr[ch] += sumDy[b * c + ch]
            }
        }
        return (dx, dw, db)
    }

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        let d = x.shape.last ?? 1
        if let weight { precondition(weight.shape == [d], "layer norm weight must be [\(d)], got \(weight.shape)") }
        if let bias { precondition(bias.shape == [d], "layer norm bias must be [\(d)], got \(bias.shape)") }
        let rows = x.count / Swift.max(d, 1)
        let out = empty(x.shape)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        let px = x.ptr, po = out.ptr, pw = weight?.ptr, pb = bias?.ptr
        mean.withUnsafeMutableBufferPointer { meanBuf in
            rstd.withUnsafeMutableBufferPointer { rstdBuf in
                let mb = UnsafeSendableBox(meanBuf), rb = UnsafeSendableBox(rstdBuf)
                parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(d, 1))) { r in
                    for row in r {
                        let src = px + row * d, dst = po + row * d
                        let (m, v) = meanVariance(src, d)
                        let rs = 1 / (v + eps).squareRoot()
                        mb.value[row] = m
                        rb.value[row] = rs
                        switch (pw, pb) {
                        case let (w?, b?): for k in 0..<d { dst[k] = (src[k] - m) * rs * w[k] + b[k] }
                        case let (w?, nil): for k in 0..<d { dst[k] = (src[k] - m) * rs * w[k] }
                        case let (nil, b?): for k in 0..<d { dst[k] = (src[k] - m) * rs + b[k] }
                        case (nil, nil): for k in 0..<d { dst[k] = (src[k] - m) * rs }
                        }
                    }
                }
            }
        }
        return (out, NormStatistics(mean: mean, rstd: rstd))
    }

    public func layerNormBackward(_ gradOutput: Tensor, input: Tensor, weight: Tensor?,
                                  statistics st: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        let d = input.shape.last ?? 1
        let rows = input.count / Swift.max(d, 1)
        let dx = empty(input.shape)
        let px = input.ptr, pg = gradOutput.ptr, pd = dx.ptr, pw = weight?.ptr
        st.mean.withUnsafeBufferPointer { meanB in
            st.rstd.withUnsafeBufferPointer { rstdB in
                let mb = UnsafeSendableBox(meanB), rb = UnsafeSendableBox(rstdB)
                parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(d, 1))) { r in
                    for row in r {
                        let m = mb.value[row], rs = rb.value[row]
                        let xs = px + row * d, gs = pg + row * d, ds = pd + row * d
                        // a1 = mean(g·w), a2 = mean(g·w·x̂)
                        var a1: Float, a2: Float
                        if let w = pw {
                            a1 = FastMath.dot(gs, w, d)
                            a2 = (FastMath.dot3(gs, w, xs, d) - m * a1) * rs
                        } else {
                            a1 = FastMath.sum(gs, d)
                            a2 = (FastMath.dot(gs, xs, d) - m * a1) * rs
                        }
                        a1 /= Float(d); a2 /= Float(d)
                        for k in 0..<d {
                            let xhat = (xs[k] - m) * rs
                            ds[k] = rs * (gs[k] * (pw?[k] ?? 1) - a1 - xhat * a2)
                        }
                    }
                }
            }
        }
        guard weight != nil else { return (dx, nil, nil) }
        // dweight = Σ_rows dy·x̂, dbias = Σ_rows dy; per-thread partials over row blocks.
        let threads = ComputeThreads.count
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: threads * 2 * d)
        partial.initialize(repeating: 0, count: threads * 2 * d)
        defer { partial.deallocate() }
        parallelFor(threads) { tr in
            for t in tr {
                let pwd = partial + t * 2 * d, pbd = pwd + d
                for row in (rows * t / threads)..<(rows * (t + 1) / threads) {
                    let m = st.mean.storage.pointer[row], rs = st.rstd.storage.pointer[row]
                    let xs = px + row * d, gs = pg + row * d
                    for k in 0..<d {
                        pwd[k] += gs[k] * (xs[k] - m) * rs
                        pbd[k] += gs[k]
                    }
                }
            }
        }
        let dw = Tensor.zeros([d]), db = Tensor.zeros([d])
        for t in 0..<threads {
            for k in 0..<d {
                dw.ptr[k] += partial[t * 2 * d + k]
                db.ptr[k] += partial[t * 2 * d + d + k]
            }
        }
        return (dx, dw, db)
    }

    public func softmax(_ x: Tensor) -> Tensor {
        let d = x.shape.last ?? 1
        let rows = x.count / Swift.max(d, 1)
        let out = empty(x.shape)
        let px = x.ptr, po = out.ptr
        parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(d, 1))) { r in
            for row in r { softmaxRow(px + row * d, po + row * d, d) }
        }
        return out
    }

    public func softmaxBackward(output: Tensor, gradOutput: Tensor) -> Tensor {
        let d = output.shape.last ?? 1
        let rows = output.count / Swift.max(d, 1)
        let dx = empty(output.shape)
        let py = output.ptr, pg = gradOutput.ptr, pd = dx.ptr
        parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(d, 1))) { r in
            for row in r {
                let y = py + row * d, g = pg + row * d, o = pd + row * d
                let dot = FastMath.dot(y, g, d)
                for k in 0..<d { o[k] = y[k] * (g[k] - dot) }
            }
        }
        return dx
    }
}

/// Mean and (biased) variance of `n` floats, two-pass: SIMD partial sums
/// over blocks of 4096, blocks accumulated in Double.
@inline(__always)
func meanVariance(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> (Float, Float) {
    var s: Double = 0
    var k = 0
    while k < n {
        let e = Swift.min(n, k + 4096)
        s += Double(FastMath.sum(p + k, e - k))
        k = e
    }
    let m = Float(s / Double(n))
    var v: Double = 0
    k = 0
    while k < n {
        let e = Swift.min(n, k + 4096)
        v += Double(FastMath.squaredDeviation(p + k, e - k, from: m))
        k = e
    }
    return (m, Float(v / Double(n)))
}

/// Numerically stable softmax of one row of `x`, written to `out` (which may alias `x`).
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    let s = FastMath.expShiftSum(x, out, n, shift: FastMath.max(x, n))
    FastMath.scale(out, out, n, by: 1 / s)
}
