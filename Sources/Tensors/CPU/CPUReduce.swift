extension CPUBackend {
    public func sum(_ x: Tensor, axes: [Int], keepDims: Bool) -> Tensor {
        let axesN = Set(axes.map { Shape.axis($0, rank: x.rank) })
        var cur = x
        // Reduce one axis at a time from the last; each pass is [outer, r, inner].
        for ax in axesN.sorted(by: >) {
            cur = sumAxis(cur, ax)
        }
        if keepDims { return cur }
        let shape = x.shape.enumerated().filter { !axesN.contains($0.offset) }.map(\.element)
        return Tensor(shape: shape, storage: cur.storage)
    }

    /// Sum over one axis, keeping it as size 1.
    private func sumAxis(_ x: Tensor, _ ax: Int) -> Tensor {
        var shape = x.shape
        let r = shape[ax]
        shape[ax] = 1
        let outer = x.shape[..<ax].reduce(1, *)
        let inner = x.shape[(ax + 1)...].reduce(1, *)
        let out = Tensor.zeros(shape)
        let px = x.ptr, po = out.ptr
        if inner == 1 {
            parallelFor(outer, grain: Swift.max(1, 8192 / Swift.max(r, 1))) { range in
                for o in range {
                    let src = px + o * r
                    var acc: Double = 0
                    var k = 0
                    // Blocks of 256 summed in Float (vectorised), accumulated in Double.
                    while k < r {
                        let e = Swift.min(r, k + 256)
                        var part: Float = 0
                        for i in k..<e { part += src[i] }
                        acc += Double(part)
                        k = e
                    }
                    po[o] = Float(acc)
                }
            }
        } else {
            parallelFor(outer * ((inner + 255) / 256)) { range in
                let tiles = (inner + 255) / 256
                for t in range {
                    let o = t / tiles, i0 = (t % tiles) * 256, i1 = Swift.min(inner, i0 + 256)
                    let dst = po + o * inner
                    for j in 0..<r {
                        let src = px + (o * r + j) * inner
                        for i in i0..<i1 { dst[i] += src[i] }
                    }
                }
            }
        }
        return out
    }

    public func max(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor {
        let ax = Shape.axis(axis, rank: x.rank)
        var shape = x.shape
        let r = shape[ax]
        precondition(r > 0, "max over an empty dimension")
        shape[ax] = 1
        let outer = x.shape[..<ax].reduce(1, *)
        let inner = x.shape[(ax + 1)...].reduce(1, *)
        let out = empty(shape)
        let px = x.ptr, po = out.ptr
        for o in 0..<outer {
            for i in 0..<inner {
                var m = -Float.infinity
                for j in 0..<r { m = Swift.max(m, px[(o * r + j) * inner + i]) }
                po[o * inner + i] = m
            }
        }
        if keepDims { return out }
        shape.remove(at: ax)
        return Tensor(shape: shape, storage: out.storage)
    }
}
