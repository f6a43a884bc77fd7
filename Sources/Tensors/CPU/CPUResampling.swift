extension CPUBackend {
    public func upsampleNearest(_ x: Tensor, factor s: Int) -> Tensor {
        precondition(x.rank == 4 && s >= 1, "nearest upsample expects NCHW and factor ≥ 1, got \(x.shape), \(s)")
        let (nc, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let out = empty([x.shape[0], x.shape[1], h * s, w * s])
        let px = x.ptr, po = out.ptr
        parallelFor(nc * h, grain: 64) { r in
            for row in r {
                let src = px + row * w
                let dst = po + row * s * w * s
                for j in 0..<w {
                    let v = src[j]
                    for t in 0..<s { dst[j * s + t] = v }
                }
                for t in 1..<s { (dst + t * w * s).update(from: dst, count: w * s) }
            }
        }
        return out
    }

    public func upsampleNearestBackward(_ gradOutput: Tensor, factor s: Int) -> Tensor {
        let (n, c) = (gradOutput.shape[0], gradOutput.shape[1])
        let (h, w) = (gradOutput.shape[2] / s, gradOutput.shape[3] / s)
        let out = Tensor.zeros([n, c, h, w])
        let pg = gradOutput.ptr, po = out.ptr
        parallelFor(n * c * h, grain: 64) { r in
            for row in r {
                let dst = po + row * w
                for t in 0..<s {
                    let src = pg + (row * s + t) * w * s
                    for j in 0..<w {
                        var acc: Float = 0
                        for u in 0..<s { acc += src[j * s + u] }
                        dst[j] += acc
                    }
                }
            }
        }
        return out
    }

    public func embedding(_ table: Tensor, ids: [Int32], idsShape: [Int]) -> Tensor {
        precondition(table.rank == 2, "embedding table must be [V, D], got \(table.shape)")
        precondition(Shape.count(idsShape) == ids.count, "ids shape \(idsShape) does not hold \(ids.count) ids")
        let (vocab, d) = (table.shape[0], table.shape[1])
        let out = empty(idsShape + [d])
        for (i, id) in ids.enumerated() {
            precondition(id >= 0 && Int(id) < vocab, "embedding id \(id) outside vocabulary of \(vocab)")
            (out.ptr + i * d).update(from: table.ptr + Int(id) * d, count: d)
        }
        return out
    }

    public func embeddingBackward(_ gradOutput: Tensor, ids: [Int32], vocabulary: Int) -> Tensor {
        let d = gradOutput.shape.last ?? 1
        let out = Tensor.zeros([vocabulary, d])
        for (i, id) in ids.enumerated() {
            let dst = out.ptr + Int(id) * d, src = gradOutput.ptr + i * d
            for k in 0..<d { dst[k] += src[k] }
        }
        return out
    }
}
