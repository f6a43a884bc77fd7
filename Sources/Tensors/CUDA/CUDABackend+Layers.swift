import Foundation

// Convolutions, normalisation, softmax, attention, resampling and lookup
// on CUDABackend.

extension CUDABackend {
    /// Largest im2col buffer, in bytes; images are processed in groups that fit.
    static let columnBudget = 512 << 20

    struct ConvShape {
        let n, c, h, w, cout, kh, kw, oh, ow: Int
        let p: Conv2DParameters
        var k: Int { c * kh * kw }
        var plane: Int { oh * ow }
        var pointwise: Bool { kh == 1 && kw == 1 && p.strideH == 1 && p.strideW == 1 && p.padH == 0 && p.padW == 0 }
        var geometry: [UInt8] { KernelStructs.conv([n, c, h, w, kh, kw, p.strideH, p.strideW, p.padH, p.padW, oh, ow]) }

        init(input: [Int], weight: [Int], _ p: Conv2DParameters) {
            precondition(input.count == 4 && weight.count == 4, "conv2d expects NCHW input and OIHW weight, got \(input) and \(weight)")
            n = input[0]; c = input[1]; h = input[2]; w = input[3]
            cout = weight[0]; kh = weight[2]; kw = weight[3]
            precondition(weight[1] == c, "conv2d: weight \(weight) expects \(weight[1]) input channels, input has \(c)")
            (oh, ow) = p.outputSize(h: h, w: w, kh: kh, kw: kw)
            self.p = p
        }

        /// Images per im2col pass for elements of `bytes`.
        func imagesPerPass(elementBytes: Int) -> Int {
            Swift.max(1, Swift.min(n, CUDABackend.columnBudget / Swift.max(1, k * plane * elementBytes)))
        }
    }

    /// A grouped convolution's kernel as `groups` ungrouped ones: `body`
    /// gets the i-th equal slice of `a` along `axisA` and of `b` along
    /// `axisB`, and the results are joined along `joinAxis`.
    private func perGroup(_ p: Conv2DParameters, _ a: Tensor, axisA: Int, _ b: Tensor, axisB: Int, joinAxis: Int,
                          _ body: (Tensor, Tensor, Conv2DParameters) -> Tensor) -> Tensor {
        let g = p.groups
        let na = a.shape[axisA] / g, nb = b.shape[axisB] / g
        var single = p
        single.groups = 1
        let parts = (0..<g).map { i in
            body(slice(a, axis: axisA, range: (i * na)..<((i + 1) * na)), slice(b, axis: axisB, range: (i * nb)..<((i + 1) * nb)), single)
        }
        return concat(parts, axis: joinAxis)
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
        if p.groups > 1 {
            let y = perGroup(p, x, axisA: 1, weight, axisB: 0, joinAxis: 1) { conv2d($0, weight: $1, bias: nil, $2) }
            if let bias { addBias(y, bias, outer: y.shape[0], channels: y.shape[1], inner: y.shape[2] * y.shape[3]) }
            return y
        }
        let t = workingType(x, weight, bias)
        let xv = operand(x, t), wv = operand(weight, t)
        let s = ConvShape(input: x.shape, weight: weight.shape, p)
        let y = empty([s.n, s.cout, s.oh, s.ow], t)
        if s.pointwise {
            gemm(transA: false, transB: false, m: s.cout, n: s.plane, k: s.c,
                 a: wv.storage.deviceAddress, aType: t, lda: s.c, strideA: 0,
                 b: xv.storage.deviceAddress, bType: t, ldb: s.plane, strideB: s.c * s.plane,
                 c: y.storage.deviceAddress, cType: t, ldc: s.plane, strideC: s.cout * s.plane, batch: s.n)
        } else {
            let per = s.imagesPerPass(elementBytes: t.byteSize)
            let col = empty([per, s.k, s.plane], t)
            let geometry = s.geometry
            for first in stride(from: 0, to: s.n, by: per) {
                let count = Swift.min(per, s.n - first)
                launchElementwise("im2col", t, count * s.k * s.plane) {
                    $0.pointer(xv); $0.pointer(col); $0.bytes(geometry); $0.i32(first); $0.i32(count)
                }
                gemm(transA: false, transB: false, m: s.cout, n: s.plane, k: s.k,
                     a: wv.storage.deviceAddress, aType: t, lda: s.k, strideA: 0,
                     b: col.storage.deviceAddress, bType: t, ldb: s.plane, strideB: s.k * s.plane,
                     c: y.deviceAddress(at: first * s.cout * s.plane), cType: t, ldc: s.plane, strideC: s.cout * s.plane,
                     batch: count)
            }
        }
        if let bias { addBias(y, bias, outer: s.n, channels: s.cout, inner: s.plane) }
        return y
    }

    public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2DParameters) -> Tensor {
        if p.groups > 1 {
            var shape = inputShape
            shape[1] /= p.groups
            return perGroup(p, gradOutput, axisA: 1, weight, axisB: 0, joinAxis: 1) {
                conv2dBackwardInput($0, weight: $1, inputShape: shape, $2)
            }
        }
        let t = workingType(gradOutput, weight)
        let gv = operand(gradOutput, t), wv = operand(weight, t)
        let s = ConvShape(input: inputShape, weight: weight.shape, p)
        let dx = empty(inputShape, t)
        if s.pointwise {
            gemm(transA: true, transB: false, m: s.c, n: s.plane, k: s.cout,
                 a: wv.storage.deviceAddress, aType: t, lda: s.c, strideA: 0,
                 b: gv.storage.deviceAddress, bType: t, ldb: s.plane, strideB: s.cout * s.plane,
                 c: dx.storage.deviceAddress, cType: t, ldc: s.plane, strideC: s.c * s.plane, batch: s.n)
            return dx
        }
        let per = s.imagesPerPass(elementBytes: t.byteSize)
        let col = empty([per, s.k, s.plane], t)
        let geometry = s.geometry
        for first in stride(from: 0, to: s.n, by: per) {
            let count = Swift.min(per, s.n - first)
            gemm(transA: true, transB: false, m: s.k, n: s.plane, k: s.cout,
                 a: wv.storage.deviceAddress, aType: t, lda: s.k, strideA: 0,
                 b: gv.deviceAddress(at: first * s.cout * s.plane), bType: t, ldb: s.plane, strideB: s.cout * s.plane,
                 c: col.storage.deviceAddress, cType: t, ldc: s.plane, strideC: s.k * s.plane, batch: count)
            launchElementwise("col2im", t, count * s.c * s.h * s.w) {
                $0.pointer(col); $0.pointer(dx); $0.bytes(geometry); $0.i32(first); $0.i32(count)
            }
        }
        return dx
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], _ p: Conv2DParameters) -> Tensor {
        if p.groups > 1 {
            var shape = weightShape
            shape[0] /= p.groups
            return perGroup(p, gradOutput, axisA: 1, input, axisB: 1, joinAxis: 0) {
                conv2dBackwardWeight($0, input: $1, weightShape: shape, $2)
            }
        }
        let t = workingType(gradOutput, input)
        let gv = operand(gradOutput, t), xv = operand(input, t)
        let s = ConvShape(input: input.shape, weight: weightShape, p)
        let dw = zeros(weightShape, t)
        let per = s.pointwise ? Swift.max(1, s.n) : s.imagesPerPass(elementBytes: t.byteSize)
        let col = s.pointwise ? nil : empty([per, s.k, s.plane], t)
        let geometry = s.geometry
        for first in stride(from: 0, to: s.n, by: per) {
            let count = Swift.min(per, s.n - first)
            if let col {
                launchElementwise("im2col", t, count * s.k * s.plane) {
                    $0.pointer(xv); $0.pointer(col); $0.bytes(geometry); $0.i32(first); $0.i32(count)
                }
            }
            for i in 0..<count {
                let image = first + i
                let source = col.map { $0.deviceAddress(at: i * s.k * s.plane) } ?? xv.deviceAddress(at: image * s.c * s.plane)
                // dW[Cout, K] += dY_n[Cout, plane] · col_nᵀ[plane, K]
                gemm(transA: false, transB: true, m: s.cout, n: s.k, k: s.plane,
                     a: gv.deviceAddress(at: image * s.cout * s.plane), aType: t, lda: s.plane,
                     b: source, bType: t, ldb: s.plane,
                     beta: image == 0 ? 0 : 1, c: dw.storage.deviceAddress, cType: t, ldc: s.k)
            }
        }
        return dw
    }

    // MARK: Normalisation

    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        precondition(x.rank >= 2 && x.shape[1] % groups == 0, "groupNorm: \(groups) groups do not divide the channels of \(x.shape)")
        let t = workingType(x, weight, bias)
        let xv = operand(x, t), wv = weight.map { operand($0, t) }, bv = bias.map { operand($0, t) }
        let n = x.shape[0], c = x.shape[1], hw = x.count / Swift.max(1, n * c)
        let y = empty(x.shape, t)
        let mean = empty([n * groups], .float32), rstd = empty([n * groups], .float32)
        launchRows("group_norm", t, rows: n * groups, width: c / groups * hw) {
            $0.pointer(xv); $0.optionalPointer(wv); $0.optionalPointer(bv); $0.pointer(y); $0.pointer(mean); $0.pointer(rstd)
            $0.i32(n); $0.i32(c); $0.i64(hw); $0.i32(groups); $0.f32(eps); $0.i32(wv == nil ? 0 : 1); $0.i32(bv == nil ? 0 : 1)
        }
        return (y, NormStatistics(mean: mean, rstd: rstd))
    }

    public func groupNormBackward(_ gradOutput: Tensor, input: Tensor, groups: Int, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        let t = workingType(gradOutput, input, weight)
        let g = operand(gradOutput, t), xv = operand(input, t), wv = weight.map { operand($0, t) }
        let mean = operand(statistics.mean, .float32), rstd = operand(statistics.rstd, .float32)
        let n = input.shape[0], c = input.shape[1], hw = input.count / Swift.max(1, n * c)
        let dx = empty(input.shape, t)
        launchRows("group_norm_backward", t, rows: n * groups, width: c / groups * hw) {
            $0.pointer(g); $0.pointer(xv); $0.optionalPointer(wv); $0.pointer(mean); $0.pointer(rstd); $0.pointer(dx)
            $0.i32(n); $0.i32(c); $0.i64(hw); $0.i32(groups); $0.i32(wv == nil ? 0 : 1)
        }
        guard weight != nil else { return (dx, nil, nil) }
        let dw = empty([c], t), db = empty([c], t)
        launch("group_norm_params", t, grid: LaunchShape.rowBlocks(c), block: LaunchShape.threads) {
            $0.pointer(g); $0.pointer(xv); $0.pointer(mean); $0.pointer(rstd); $0.pointer(dw); $0.pointer(db)
            $0.i32(n); $0.i32(c); $0.i64(hw); $0.i32(groups)
        }
        return (dx, dw, db)
    }

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        let t = workingType(x, weight, bias)
        let xv = operand(x, t), wv = weight.map { operand($0, t) }, bv = bias.map { operand($0, t) }
        let d = x.shape.last ?? 1, rows = x.count / Swift.max(d, 1)
        let y = empty(x.shape, t)
        let mean = empty([rows], .float32), rstd = empty([rows], .float32)
        launchRows("layer_norm", t, rows: rows, width: d) {
            $0.pointer(xv); $0.optionalPointer(wv); $0.optionalPointer(bv); $0.pointer(y); $0.pointer(mean); $0.pointer(rstd)
            $0.i64(rows); $0.i32(d); $0.f32(eps); $0.i32(wv == nil ? 0 : 1); $0.i32(bv == nil ? 0 : 1)
        }
        return (y, NormStatistics(mean: mean, rstd: rstd))
    }

    public func layerNormBackward(_ gradOutput: Tensor, input: Tensor, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        let t = workingType(gradOutput, input, weight)
        let g = operand(gradOutput, t), xv = operand(input, t), wv = weight.map { operand($0, t) }
        let mean = operand(statistics.mean, .float32), rstd = operand(statistics.rstd, .float32)
        let d = input.shape.last ?? 1, rows = input.count / Swift.max(d, 1)
        let dx = empty(input.shape, t)
        launchRows("layer_norm_backward", t, rows: rows, width: d) {
            $0.pointer(g); $0.pointer(xv); $0.optionalPointer(wv); $0.pointer(mean); $0.pointer(rstd); $0.pointer(dx)
            $0.i64(rows); $0.i32(d); $0.i32(wv == nil ? 0 : 1)
        }
        guard weight != nil else { return (dx, nil, nil) }
        let dw = empty([d], t), db = empty([d], t)
        launch("layer_norm_params", t, grid: LaunchShape.rowBlocks(d), block: LaunchShape.threads) {
            $0.pointer(g); $0.pointer(xv); $0.pointer(mean); $0.pointer(rstd); $0.pointer(dw); $0.pointer(db)
            $0.i64(rows); $0.i32(d)
        }
        return (dx, dw, db)
    }

    public func softmax(_ x: Tensor) -> Tensor {
        let t = workingType(x), xv = operand(x, t)
        let n = x.shape.last ?? 1, rows = x.count / Swift.max(n, 1)
        let y = empty(x.shape, t)
        launchRows("softmax", t, rows: rows, width: n) { $0.pointer(xv); $0.pointer(y); $0.i64(rows); $0.i32(n) }
        return y
    }

    public func softmaxBackward(output: Tensor, gradOutput: Tensor) -> Tensor {
        let t = workingType(output, gradOutput)
        let y = operand(output, t), g = operand(gradOutput, t)
        let n = output.shape.last ?? 1, rows = output.count / Swift.max(n, 1)
        let dx = empty(output.shape, t)
        launchRows("softmax_backward", t, rows: rows, width: n) { $0.pointer(y); $0.pointer(g); $0.pointer(dx); $0.i64(rows); $0.i32(n) }
        return dx
    }

    // MARK: Attention

    /// Scratch for one attention chunk: float32 scores of every head.
    static let attentionBudget = 1 << 30

    public func attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, _ p: AttentionParameters) -> Tensor {
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, mask: mask?.shape, p)
        let t = workingType(q, k, v)
        let qv = operand(q, t), kv = operand(k, t), vv = operand(v, t)
        let mv = mask.map { operand($0, .float32) }
        let out = empty([g.b, g.nq, g.heads * g.dv], t)
        let rows = LaunchShape.attentionRows(queries: g.nq, keys: g.nk, heads: g.heads, budget: Self.attentionBudget)
        let scores = empty([g.heads, rows, g.nk], .float32)
        let probs = empty([g.heads, rows, g.nk], t)
        let ldq = g.heads * g.d, ldv = g.heads * g.dv
        for b in 0..<g.b {
            for first in stride(from: 0, to: g.nq, by: rows) {
                let count = Swift.min(rows, g.nq - first)
                // S_h = scale · Q_h K_hᵀ for every head at once (heads are column offsets).
                gemm(transA: false, transB: true, m: count, n: g.nk, k: g.d, alpha: g.scale,
                     a: qv.deviceAddress(at: (b * g.nq + first) * ldq), aType: t, lda: ldq, strideA: g.d,
                     b: kv.deviceAddress(at: b * g.nk * ldq), bType: t, ldb: ldq, strideB: g.d,
                     c: scores.storage.deviceAddress, cType: .float32, ldc: g.nk, strideC: count * g.nk, batch: g.heads)
                let shape = KernelStructs.attentionRows(rows: count, first: first, heads: g.heads, keys: g.nk, causal: g.causal)
                let maskAddress = mv.map { $0.deviceAddress(at: g.maskBatched ? b * g.nq * g.nk : 0) } ?? 0
                launchRows("attention_probs", t, rows: g.heads * count, width: g.nk) {
                    $0.pointer(scores); $0.pointer(probs); $0.pointer(maskAddress); $0.bytes(shape)
                }
                // O_h = P_h V_h, written into the head's columns.
                gemm(transA: false, transB: false, m: count, n: g.dv, k: g.nk,
                     a: probs.storage.deviceAddress, aType: t, lda: g.nk, strideA: count * g.nk,
                     b: vv.deviceAddress(at: b * g.nk * ldv), bType: t, ldb: ldv, strideB: g.dv,
                     c: out.deviceAddress(at: (b * g.nq + first) * ldv), cType: t, ldc: ldv, strideC: g.dv, batch: g.heads)
            }
        }
        return out
    }

    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, gradOutput: Tensor,
                                  _ p: AttentionParameters) -> (Tensor, Tensor, Tensor) {
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, mask: mask?.shape, p)
        let t = workingType(q, k, v, gradOutput)
        let qv = operand(q, t), kv = operand(k, t), vv = operand(v, t), go = operand(gradOutput, t)
        let mv = mask.map { operand($0, .float32) }
        let dq = empty(q.shape, t), dk = empty(k.shape, t), dv = empty(v.shape, t)
        let rows = LaunchShape.attentionRows(queries: g.nq, keys: g.nk, heads: g.heads, budget: Self.attentionBudget / 2)
        let scores = empty([g.heads, rows, g.nk], .float32)
        let dpm = empty([g.heads, rows, g.nk], .float32)
        let pm = empty([g.heads, rows, g.nk], t)
        let ds = empty([g.heads, rows, g.nk], t)
        let ldq = g.heads * g.d, ldv = g.heads * g.dv
        for b in 0..<g.b {
            for first in stride(from: 0, to: g.nq, by: rows) {
                let count = Swift.min(rows, g.nq - first)
                let accumulate: Float = first == 0 ? 0 : 1
                let qAt = qv.deviceAddress(at: (b * g.nq + first) * ldq), kAt = kv.deviceAddress(at: b * g.nk * ldq)
                let vAt = vv.deviceAddress(at: b * g.nk * ldv), gAt = go.deviceAddress(at: (b * g.nq + first) * ldv)
                gemm(transA: false, transB: true, m: count, n: g.nk, k: g.d, alpha: g.scale,
                     a: qAt, aType: t, lda: ldq, strideA: g.d, b: kAt, bType: t, ldb: ldq, strideB: g.d,
                     c: scores.storage.deviceAddress, cType: .float32, ldc: g.nk, strideC: count * g.nk, batch: g.heads)
                // dPm = dO_h V_hᵀ
                gemm(transA: false, transB: true, m: count, n: g.nk, k: g.dv,
                     a: gAt, aType: t, lda: ldv, strideA: g.dv, b: vAt, bType: t, ldb: ldv, strideB: g.dv,
                     c: dpm.storage.deviceAddress, cType: .float32, ldc: g.nk, strideC: count * g.nk, batch: g.heads)
                let shape = KernelStructs.attentionRows(rows: count, first: first, heads: g.heads, keys: g.nk, causal: g.causal)
                let maskAddress = mv.map { $0.deviceAddress(at: g.maskBatched ? b * g.nq * g.nk : 0) } ?? 0
                launchRows("attention_probs_backward", t, rows: g.heads * count, width: g.nk) {
                    $0.pointer(scores); $0.pointer(dpm); $0.pointer(maskAddress); $0.pointer(pm); $0.pointer(ds)
                    $0.f32(g.scale); $0.bytes(shape)
                }
                // dV_h += Pmᵀ dO_h ; dQ_h = dS K_h ; dK_h += dSᵀ Q_h
                gemm(transA: true, transB: false, m: g.nk, n: g.dv, k: count,
                     a: pm.storage.deviceAddress, aType: t, lda: g.nk, strideA: count * g.nk,
                     b: gAt, bType: t, ldb: ldv, strideB: g.dv, beta: accumulate,
                     c: dv.deviceAddress(at: b * g.nk * ldv), cType: t, ldc: ldv, strideC: g.dv, batch: g.heads)
                gemm(transA: false, transB: false, m: count, n: g.d, k: g.nk,
                     a: ds.storage.deviceAddress, aType: t, lda: g.nk, strideA: count * g.nk,
                     b: kAt, bType: t, ldb: ldq, strideB: g.d,
                     c: dq.deviceAddress(at: (b * g.nq + first) * ldq), cType: t, ldc: ldq, strideC: g.d, batch: g.heads)
                gemm(transA: true, transB: false, m: g.nk, n: g.d, k: count,
                     a: ds.storage.deviceAddress, aType: t, lda: g.nk, strideA: count * g.nk,
                     b: qAt, bType: t, ldb: ldq, strideB: g.d, beta: accumulate,
                     c: dk.deviceAddress(at: b * g.nk * ldq), cType: t, ldc: ldq, strideC: g.d, batch: g.heads)
            }
        }
        return (dq, dk, dv)
    }

    // MARK: Resampling and lookup

    public func upsampleNearest(_ x: Tensor, factor: Int) -> Tensor {
        let t = workingType(x), xv = operand(x, t)
        let h = x.dim(-2), w = x.dim(-1), planes = x.count / Swift.max(1, h * w)
        let y = empty(Array(x.shape.dropLast(2)) + [h * factor, w * factor], t)
        launchElementwise("upsample", t, y.count) { $0.pointer(xv); $0.pointer(y); $0.i64(planes); $0.i32(h); $0.i32(w); $0.i32(factor) }
        return y
    }

    public func upsampleNearestBackward(_ gradOutput: Tensor, factor: Int) -> Tensor {
        let t = workingType(gradOutput), g = operand(gradOutput, t)
        let h = gradOutput.dim(-2) / factor, w = gradOutput.dim(-1) / factor
        let planes = gradOutput.count / Swift.max(1, h * w * factor * factor)
        let dx = empty(Array(gradOutput.shape.dropLast(2)) + [h, w], t)
        launchElementwise("upsample_backward", t, dx.count) { $0.pointer(g); $0.pointer(dx); $0.i64(planes); $0.i32(h); $0.i32(w); $0.i32(factor) }
        return dx
    }

    /// Token ids as an int32 device buffer.
    private func idsOnDevice(_ ids: [Int32]) -> Tensor {
        let buffer = empty([Swift.max(ids.count, 1)], .float32)
        ids.withUnsafeBytes { raw in
            if let base = raw.baseAddress, !ids.isEmpty { copyToDevice(base, buffer.storage.deviceAddress, bytes: raw.count) }
        }
        return buffer
    }

    public func embedding(_ table: Tensor, ids: [Int32], idsShape: [Int]) -> Tensor {
        let t = workingType(table), tv = operand(table, t)
        let d = table.shape[1]
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < table.shape[0] }, "embedding: an id is outside 0..<\(table.shape[0])")
        let y = empty(idsShape + [d], t)
        let idBuffer = idsOnDevice(ids)
        launchElementwise("embedding", t, y.count) { $0.pointer(tv); $0.pointer(idBuffer); $0.pointer(y); $0.i64(ids.count); $0.i64(d) }
        return y
    }

    public func embeddingBackward(_ gradOutput: Tensor, ids: [Int32], vocabulary: Int) -> Tensor {
        let t = workingType(gradOutput), g = operand(gradOutput, t)
        let d = gradOutput.shape.last ?? 1
        let acc = zeros([vocabulary, d], .float32)
        let idBuffer = idsOnDevice(ids)
        launchElementwise("embedding_backward", t, ids.count * d) { $0.pointer(g); $0.pointer(idBuffer); $0.pointer(acc); $0.i64(ids.count); $0.i64(d) }
        return convert(acc, to: t)
    }
}
