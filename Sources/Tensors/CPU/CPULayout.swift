extension CPUBackend {
    public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
        precondition(perm.count == x.rank && Set(perm) == Set(0..<x.rank),
                     "permutation \(perm) is not a permutation of 0..<\(x.rank)")
        let outShape = perm.map { x.shape[$0] }
        let out = empty(outShape)
        if perm == Array(0..<x.rank) {
            out.ptr.update(from: x.ptr, count: x.count)
            return out
        }
        let inStrides = Shape.strides(x.shape)
        let srcStrides = perm.map { inStrides[$0] }   // stride in x per output dim
        let inner = outShape.last ?? 1
        let innerStride = srcStrides.last ?? 1
        let rows = out.count / Swift.max(inner, 1)
        let px = x.ptr, po = out.ptr
        parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(inner, 1))) { r in
            for row in r {
                var rem = row, off = 0
                var d = outShape.count - 2
                while d >= 0 {
                    off += (rem % outShape[d]) * srcStrides[d]
                    rem /= outShape[d]
                    d -= 1
                }
                let src = px + off, dst = po + row * inner
                for k in 0..<inner { dst[k] = src[k * innerStride] }
            }
        }
        return out
    }

    public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        let ax = Shape.axis(axis, rank: x.rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= x.shape[ax],
                     "slice \(range) out of bounds for dimension \(ax) of size \(x.shape[ax])")
        var shape = x.shape
        shape[ax] = range.count
        let out = empty(shape)
        let outer = x.shape[..<ax].reduce(1, *)
        let inner = x.shape[(ax + 1)...].reduce(1, *)
        let px = x.ptr, po = out.ptr
        for o in 0..<outer {
            (po + o * range.count * inner).update(from: px + (o * x.shape[ax] + range.lowerBound) * inner,
                                                   count: range.count * inner)
        }
        return out
    }

    public func unslice(_ x: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor {
        let ax = Shape.axis(axis, rank: shape.count)
        let out = Tensor.zeros(shape)
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        let px = x.ptr, po = out.ptr
        for o in 0..<outer {
            (po + (o * shape[ax] + range.lowerBound) * inner).update(from: px + o * range.count * inner,
                                                                      count: range.count * inner)
        }
        return out
    }

    public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
        precondition(!xs.isEmpty, "concat of no tensors")
        let ax = Shape.axis(axis, rank: xs[0].rank)
        var shape = xs[0].shape
        shape[ax] = 0
        for x in xs {
            var s = x.shape
            precondition(s.count == shape.count, "concat: rank mismatch \(x.shape) vs \(xs[0].shape)")
            s[ax] = 0
            var ref = xs[0].shape
            ref[ax] = 0
            precondition(s == ref, "concat along \(ax): shapes \(x.shape) and \(xs[0].shape) differ elsewhere")
            shape[ax] += x.shape[ax]
        }
        let out = empty(shape)
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        var start = 0
        for x in xs {
            let n = x.shape[ax] * inner
            for o in 0..<outer {
                (out.ptr + o * shape[ax] * inner + start * inner).update(from: x.ptr + o * n, count: n)
            }
            start += x.shape[ax]
        }
        return out
    }

    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor {
        precondition(Shape.broadcast(x.shape, shape) == shape, "cannot broadcast \(x.shape) to \(shape)")
        // x + 0 with the target shape reuses the broadcasting kernel.
        return binary(.add, x, Tensor.zeros(shape))
    }
}
