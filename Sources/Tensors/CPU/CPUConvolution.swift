/// 2-D convolution as im2col + sgemm, tiled over output rows so the column
/// buffer stays under `columnBudget` bytes whatever the image size; 3×3
/// stride-1 ungrouped convolutions with enough channels and tiles, and
/// their input gradients, go through Winograd F(2×2, 3×3) or F(4×4, 3×3)
/// instead (CPUWinograd.swift).
struct ConvGeometry {
    let n: Int, cin: Int, h: Int, w: Int
    let cout: Int, kh: Int, kw: Int
    let ho: Int, wo: Int
    let p: Conv2DParameters

    var groups: Int { p.groups }
    var cinG: Int { cin / groups }
    var coutG: Int { cout / groups }
    /// Rows of the column matrix per group.
    var kc: Int { cinG * kh * kw }
    var spatial: Int { ho * wo }
    var isPointwise: Bool { kh == 1 && kw == 1 && p.strideH == 1 && p.strideW == 1 && p.padH == 0 && p.padW == 0 }

    static let columnBudget = 32 << 20

    init(input: [Int], weight: [Int], _ p: Conv2DParameters) {
        precondition(input.count == 4, "conv2d input must be NCHW, got \(input)")
        precondition(weight.count == 4, "conv2d weight must be OIHW, got \(weight)")
        precondition(p.groups >= 1 && input[1] % p.groups == 0 && weight[0] % p.groups == 0,
                     "conv2d groups \(p.groups) must divide in \(input[1]) and out \(weight[0]) channels")
        precondition(weight[1] * p.groups == input[1],
                     "conv2d weight \(weight) expects \(weight[1] * p.groups) input channels, input has \(input[1])")
        n = input[0]; cin = input[1]; h = input[2]; w = input[3]
        cout = weight[0]; kh = weight[2]; kw = weight[3]
        (ho, wo) = p.outputSize(h: h, w: w, kh: kh, kw: kw)
        precondition(ho > 0 && wo > 0, "conv2d kernel \(kh)×\(kw) does not fit input \(h)×\(w) with padding \(p.padH),\(p.padW)")
        self.p = p
    }

    /// Output rows per tile.
    var tileRows: Int {
        let perRow = cin * kh * kw * wo * MemoryLayout<Float>.size
        return Swift.max(1, Swift.min(ho, ConvGeometry.columnBudget / Swift.max(perRow, 1)))
    }

    /// Fills `cols [cin·kh·kw, rows·wo]` for output rows `r0..<r0+rows` of image `x [cin, h, w]`.
    func im2col(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafeMutablePointer<Float>, r0: Int, rows: Int) {
        let tileP = rows * wo
        parallelFor(cin) { cr in
            for c in cr {
                let plane = x + c * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let dst = cols + ((c * kh + ki) * kw + kj) * tileP
                        let (lo, hi) = validColumns(kj)
                        for r in 0..<rows {
                            let ih = (r0 + r) * p.strideH - p.padH + ki
                            let row = dst + r * wo
                            if ih < 0 || ih >= h || lo >= hi {
                                row.update(repeating: 0, count: wo)
                                continue
                            }
                            if lo > 0 { row.update(repeating: 0, count: lo) }
                            if hi < wo { (row + hi).update(repeating: 0, count: wo - hi) }
                            let src = plane + ih * w - p.padW + kj
                            if p.strideW == 1 {
                                (row + lo).update(from: src + lo, count: hi - lo)
                            } else {
                                let s = p.strideW
                                for ow in lo..<hi { row[ow] = src[ow * s] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds `cols` back into image gradient `dx [cin, h, w]` (im2col's adjoint).
    func col2im(_ cols: UnsafeMutablePointer<Float>, _ dx: UnsafeMutablePointer<Float>, r0: Int, rows: Int) {
        let tileP = rows * wo
        parallelFor(cin) { cr in
            for c in cr {
                let plane = dx + c * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let src = cols + ((c * kh + ki) * kw + kj) * tileP
                        let (lo, hi) = validColumns(kj)
                        guard lo < hi else { continue }
                        for r in 0..<rows {
                            let ih = (r0 + r) * p.strideH - p.padH + ki
                            if ih < 0 || ih >= h { continue }
                            let row = src + r * wo
                            let dst = plane + ih * w - p.padW + kj
                            let s = p.strideW
                            for ow in lo..<hi { dst[ow * s] += row[ow] }
                        }
                    }
                }
            }
        }
    }

    /// Output columns `lo..<hi` whose input column for kernel tap `kj` is inside the image.
    @inline(__always)
    func validColumns(_ kj: Int) -> (Int, Int) {
        let s = p.strideW, off = kj - p.padW
        // iw = ow·s + off ∈ [0, w)
        let lo = off >= 0 ? 0 : (-off + s - 1) / s
        let hiExclusive = (w - off + s - 1) / s
        return (Swift.min(lo, wo), Swift.max(Swift.min(hiExclusive, wo), Swift.min(lo, wo)))
    }
}

extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
        let g = ConvGeometry(input: x.shape, weight: weight.shape, p)
        if let bias { precondition(bias.shape == [g.cout], "conv2d bias must be [\(g.cout)], got \(bias.shape)") }
        let out = empty([g.n, g.cout, g.ho, g.wo])
        if Winograd.appliesForward(g) {
            Winograd.convolve(x.ptr, n: g.n, cin: g.cin, h: g.h, w: g.w, cout: g.cout, ho: g.ho, wo: g.wo,
                              padH: g.p.padH, padW: g.p.padW, weight: weight.ptr, layout: .direct,
                              bias: bias?.ptr, out: out.ptr)
            return out
        }
        let P = g.spatial
        if let bias {
            parallelFor(g.n * g.cout, grain: 16) { r in
                for i in r { (out.ptr + i * P).update(repeating: bias.ptr[i % g.cout], count: P) }
            }
        }
        let beta: Float = bias == nil ? 0 : 1
        let tile = g.tileRows
        let cols = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: g.cin * g.kh * g.kw * tile * g.wo)
        defer { cols?.deallocate() }
        for b in 0..<g.n {
            let xb = x.ptr + b * g.cin * g.h * g.w
            let ob = out.ptr + b * g.cout * P
            if g.isPointwise {
                for gi in 0..<g.groups {
                    sgemm(m: g.coutG, n: P, k: g.kc, a: weight.ptr + gi * g.coutG * g.kc, lda: g.kc,
                          b: xb + gi * g.kc * P, ldb: P, beta: beta, c: ob + gi * g.coutG * P, ldc: P)
                }
                continue
            }
            guard let cols else { continue }
            var r0 = 0
            while r0 < g.ho {
                let rows = Swift.min(tile, g.ho - r0)
                let tileP = rows * g.wo
                g.im2col(xb, cols, r0: r0, rows: rows)
                for gi in 0..<g.groups {
                    sgemm(m: g.coutG, n: tileP, k: g.kc, a: weight.ptr + gi * g.coutG * g.kc, lda: g.kc,
                          b: cols + gi * g.kc * tileP, ldb: tileP, beta: beta,
                          c: ob + gi * g.coutG * P + r0 * g.wo, ldc: P)
                }
                r0 += rows
            }
        }
        return out
    }

    public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int],
                                    _ p: Conv2DParameters) -> Tensor {
        let g = ConvGeometry(input: inputShape, weight: weight.shape, p)
        precondition(gradOutput.shape == [g.n, g.cout, g.ho, g.wo],
                     "conv2d gradient shape \(gradOutput.shape) != output shape \([g.n, g.cout, g.ho, g.wo])")
        if Winograd.appliesBackwardInput(g) {
            // dy convolved with the filters rotated 180°, channels swapped, padding 2 − p.
            let dx = empty(inputShape)
            Winograd.convolve(gradOutput.ptr, n: g.n, cin: g.cout, h: g.ho, w: g.wo, cout: g.cin, ho: g.h, wo: g.w,
                              padH: 2 - g.p.padH, padW: 2 - g.p.padW, weight: weight.ptr, layout: .rotatedTransposed,
                              bias: nil, out: dx.ptr)
            return dx
        }
        let dx = Tensor.zeros(inputShape)
        let P = g.spatial
        let tile = g.tileRows
        let cols = UnsafeMutablePointer<Float>.allocate(capacity: g.cin * g.kh * g.kw * tile * g.wo)
        defer { cols.deallocate() }
        for b in 0..<g.n {
            let db = gradOutput.ptr + b * g.cout * P
            let xb = dx.ptr + b * g.cin * g.h * g.w
            if g.isPointwise {
                for gi in 0..<g.groups {
                    sgemm(transA: true, m: g.kc, n: P, k: g.coutG, a: weight.ptr + gi * g.coutG * g.kc, lda: g.kc,
                          b: db + gi * g.coutG * P, ldb: P, c: xb + gi * g.kc * P, ldc: P)
                }
                continue
            }
            var r0 = 0
            while r0 < g.ho {
                let rows = Swift.min(tile, g.ho - r0)
                let tileP = rows * g.wo
                for gi in 0..<g.groups {
                    sgemm(transA: true, m: g.kc, n: tileP, k: g.coutG, a: weight.ptr + gi * g.coutG * g.kc, lda: g.kc,
                          b: db + gi * g.coutG * P + r0 * g.wo, ldb: P, c: cols + gi * g.kc * tileP, ldc: tileP)
                }
                g.col2im(cols, xb, r0: r0, rows: rows)
                r0 += rows
            }
        }
        return dx
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int],
                                     _ p: Conv2DParameters) -> Tensor {
        let g = ConvGeometry(input: input.shape, weight: weightShape, p)
        let dw = Tensor.zeros(weightShape)
        let P = g.spatial
        let tile = g.tileRows
        let cols = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: g.cin * g.kh * g.kw * tile * g.wo)
        defer { cols?.deallocate() }
        for b in 0..<g.n {
            let db = gradOutput.ptr + b * g.cout * P
            let xb = input.ptr + b * g.cin * g.h * g.w
            if g.isPointwise {
                for gi in 0..<g.groups {
                    sgemm(transB: true, m: g.coutG, n: g.kc, k: P, a: db + gi * g.coutG * P, lda: P,
                          b: xb + gi * g.kc * P, ldb: P, beta: 1, c: dw.ptr + gi * g.coutG * g.kc, ldc: g.kc)
                }
                continue
            }
            guard let cols else { continue }
            var r0 = 0
            while r0 < g.ho {
                let rows = Swift.min(tile, g.ho - r0)
                let tileP = rows * g.wo
                g.im2col(xb, cols, r0: r0, rows: rows)
                for gi in 0..<g.groups {
                    sgemm(transB: true, m: g.coutG, n: g.kc, k: tileP, a: db + gi * g.coutG * P + r0 * g.wo, lda: P,
                          b: cols + gi * g.kc * tileP, ldb: tileP, beta: 1, c: dw.ptr + gi * g.coutG * g.kc, ldc: g.kc)
                }
                r0 += rows
            }
        }
        return dw
    }
}
