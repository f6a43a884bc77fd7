import Foundation

// The Backend kernels of CUDABackend. Each takes operands on any device
// (host ones are uploaded), computes in the working type of its first
// device operand, and returns a fresh tensor on this device.

extension CUDABackend {
    // MARK: Layout

    public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let strides = Shape.strides(x.shape)
        let outShape = perm.map { x.shape[$0] }
        let y = empty(outShape, t)
        let dims = KernelStructs.dims(size: outShape, a: perm.map { strides[$0] })
        launchElementwise("gather", t, y.count) { $0.pointer(xs); $0.pointer(y); $0.i64(y.count); $0.bytes(dims) }
        return y
    }

    /// Copies `rows` rows of `x` viewed as [outer, srcRows, inner] into `y` viewed as [outer, dstRows, inner].
    func copyRows(_ x: Tensor, into y: Tensor, outer: Int, rows: Int, inner: Int,
                  srcRows: Int, srcStart: Int, dstRows: Int, dstStart: Int) {
        let n = outer * rows * inner
        launchElementwise("copy_rows", y.elementType, n) {
            $0.pointer(x); $0.pointer(y); $0.i64(outer); $0.i64(rows); $0.i64(inner)
            $0.i64(srcRows); $0.i64(srcStart); $0.i64(dstRows); $0.i64(dstStart)
        }
    }

    public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let a = Shape.axis(axis, rank: x.rank)
        var shape = x.shape
        shape[a] = range.count
        let y = empty(shape, t)
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        copyRows(xs, into: y, outer: outer, rows: range.count, inner: inner,
                 srcRows: x.shape[a], srcStart: range.lowerBound, dstRows: range.count, dstStart: 0)
        return y
    }

    public func unslice(_ x: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let a = Shape.axis(axis, rank: shape.count)
        let y = zeros(shape, t)
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        copyRows(xs, into: y, outer: outer, rows: range.count, inner: inner,
                 srcRows: range.count, srcStart: 0, dstRows: shape[a], dstStart: range.lowerBound)
        return y
    }

    public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
        let t = xs.first(where: { $0.device == device })?.elementType ?? .float32
        let a = Shape.axis(axis, rank: xs[0].rank)
        var shape = xs[0].shape
        shape[a] = xs.reduce(0) { $0 + $1.shape[a] }
        for x in xs {
            precondition(x.rank == shape.count && x.shape.enumerated().allSatisfy { $0.offset == a || $0.element == shape[$0.offset] },
                         "concat along \(a): shapes \(xs.map(\.shape)) disagree")
        }
        let y = empty(shape, t)
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var start = 0
        for x in xs {
            let part = operand(x, t)
            copyRows(part, into: y, outer: outer, rows: x.shape[a], inner: inner,
                     srcRows: x.shape[a], srcStart: 0, dstRows: shape[a], dstStart: start)
            start += x.shape[a]
        }
        return y
    }

    /// Strides of `shape` read as `target` (aligned on the right, 0 where broadcast).
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let strides = Shape.strides(shape)
        let lead = target.count - shape.count
        return target.indices.map { i in
            guard i >= lead else { return 0 }
            let d = shape[i - lead]
            return d == 1 && target[i] != 1 ? 0 : strides[i - lead]
        }
    }

    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor {
        precondition(Shape.broadcast(x.shape, shape) == shape, "cannot broadcast \(x.shape) to \(shape)")
        let t = workingType(x), xs = operand(x, t)
        let y = empty(shape, t)
        let dims = KernelStructs.dims(size: shape, a: Self.broadcastStrides(x.shape, to: shape))
        launchElementwise("gather", t, y.count) { $0.pointer(xs); $0.pointer(y); $0.i64(y.count); $0.bytes(dims) }
        return y
    }

    // MARK: Elementwise

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let shape = Shape.broadcast(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let t = workingType(a, b)
        let av = operand(a, t), bv = operand(b, t)
        let y = empty(shape, t)
        let n = y.count
        if a.shape == b.shape {
            launchElementwise("binary_same", t, n) { $0.pointer(av); $0.pointer(bv); $0.pointer(y); $0.i64(n); $0.i32(op.kernelCode) }
        } else {
            let dims = KernelStructs.dims(size: shape, a: Self.broadcastStrides(a.shape, to: shape),
                                          b: Self.broadcastStrides(b.shape, to: shape))
            launchElementwise("binary_broadcast", t, n) {
                $0.pointer(av); $0.pointer(bv); $0.pointer(y); $0.i64(n); $0.i32(op.kernelCode); $0.bytes(dims)
            }
        }
        return y
    }

    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let y = empty(x.shape, t)
        let (code, c0, c1) = op.kernelCode
        launchElementwise("unary", t, y.count) {
            $0.pointer(xs); $0.pointer(y); $0.i64(y.count); $0.i32(code); $0.f32(c0); $0.f32(c1)
        }
        return y
    }

    public func unaryBackward(_ op: UnaryOp, _ x: Tensor, gradOutput: Tensor) -> Tensor {
        let t = workingType(x, gradOutput)
        let xs = operand(x, t), g = operand(gradOutput, t)
        let dx = empty(x.shape, t)
        let (code, c0, c1) = op.kernelCode
        launchElementwise("unary_backward", t, dx.count) {
            $0.pointer(xs); $0.pointer(g); $0.pointer(dx); $0.i64(dx.count); $0.i32(code); $0.f32(c0); $0.f32(c1)
        }
        return dx
    }

    public func geglu(_ x: Tensor) -> Tensor {
        let last = x.shape.last ?? 0
        precondition(last % 2 == 0, "geglu needs an even last dimension, got \(x.shape)")
        let t = workingType(x), xs = operand(x, t)
        var shape = x.shape
        shape[shape.count - 1] = last / 2
        let y = empty(shape, t)
        let n = last / 2, rows = n == 0 ? 0 : y.count / n
        launchElementwise("geglu", t, y.count) { $0.pointer(xs); $0.pointer(y); $0.i64(rows); $0.i64(n) }
        return y
    }

    public func gegluBackward(_ x: Tensor, gradOutput: Tensor) -> Tensor {
        let t = workingType(x, gradOutput)
        let xs = operand(x, t), g = operand(gradOutput, t)
        let dx = empty(x.shape, t)
        let n = (x.shape.last ?? 0) / 2, rows = n == 0 ? 0 : g.count / n
        launchElementwise("geglu_backward", t, g.count) { $0.pointer(xs); $0.pointer(g); $0.pointer(dx); $0.i64(rows); $0.i64(n) }
        return dx
    }

    // MARK: Reductions

    public func sum(_ x: Tensor, axes: [Int], keepDims: Bool) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let reduced = Set(axes.map { Shape.axis($0, rank: x.rank) })
        let strides = Shape.strides(x.shape)
        var outShape: [Int] = [], keptSize: [Int] = [], keptStride: [Int] = [], redSize: [Int] = [], redStride: [Int] = []
        for (i, d) in x.shape.enumerated() {
            if reduced.contains(i) {
                redSize.append(d); redStride.append(strides[i])
                if keepDims { outShape.append(1) }
            } else {
                keptSize.append(d); keptStride.append(strides[i]); outShape.append(d)
            }
        }
        let y = empty(outShape, t)
        let outputs = y.count
        guard outputs > 0 else { return y }
        let dims = KernelStructs.reduceDims(keptSize: keptSize, keptStride: keptStride, reducedSize: redSize, reducedStride: redStride)
        let reducedCount = redSize.reduce(1, *)
        if reducedCount == 0 {
            return zeros(outShape, t)
        } else if reducedCount > 64 {
            launch("sum_block", t, grid: LaunchShape.rowBlocks(outputs), block: LaunchShape.threads) {
                $0.pointer(xs); $0.pointer(y); $0.i64(outputs); $0.bytes(dims)
            }
        } else {
            launchElementwise("sum_thread", t, outputs) { $0.pointer(xs); $0.pointer(y); $0.i64(outputs); $0.bytes(dims) }
        }
        return y
    }

    public func max(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor {
        let t = workingType(x), xs = operand(x, t)
        let a = Shape.axis(axis, rank: x.rank)
        var shape = x.shape
        if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
        let y = empty(shape, t)
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        launchElementwise("max_axis", t, outer * inner) {
            $0.pointer(xs); $0.pointer(y); $0.i64(outer); $0.i64(x.shape[a]); $0.i64(inner)
        }
        return y
    }

    // MARK: Products

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2 operands, got \(a.shape) and \(b.shape)")
        let t = workingType(a, b)
        var av = operand(a, t), bv = operand(b, t)
        let m = transposeA ? a.dim(-1) : a.dim(-2), ka = transposeA ? a.dim(-2) : a.dim(-1)
        let kb = transposeB ? b.dim(-1) : b.dim(-2), n = transposeB ? b.dim(-2) : b.dim(-1)
        precondition(ka == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard let batch = Shape.broadcast(batchA, batchB) else {
            preconditionFailure("matmul batch dimensions do not broadcast: \(a.shape) and \(b.shape)")
        }
        let count = batch.reduce(1, *)
        let y = empty(batch + [m, n], t)
        let lda = a.dim(-1), ldb = b.dim(-1)
        // A shared rank-2 operand has stride 0; a batch that only partly broadcasts is expanded.
        var strideA = batchA.reduce(1, *) == count ? a.dim(-2) * a.dim(-1) : 0
        var strideB = batchB.reduce(1, *) == count ? b.dim(-2) * b.dim(-1) : 0
        if strideA == 0 && !batchA.isEmpty && batchA.reduce(1, *) != 1 {
            av = broadcast(av, to: batch + Array(a.shape.suffix(2))); strideA = a.dim(-2) * a.dim(-1)
        }
        if strideB == 0 && !batchB.isEmpty && batchB.reduce(1, *) != 1 {
            bv = broadcast(bv, to: batch + Array(b.shape.suffix(2))); strideB = b.dim(-2) * b.dim(-1)
        }
        if strideB == 0 && !transposeA && count > 1 {
            // [batch·M, K] · B in one product.
            gemm(transA: false, transB: transposeB, m: count * m, n: n, k: ka,
                 a: av.storage.deviceAddress, aType: t, lda: lda, b: bv.storage.deviceAddress, bType: t, ldb: ldb,
                 c: y.storage.deviceAddress, cType: t, ldc: n)
        } else {
            gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: ka,
                 a: av.storage.deviceAddress, aType: t, lda: lda, strideA: strideA,
                 b: bv.storage.deviceAddress, bType: t, ldb: ldb, strideB: strideB,
                 c: y.storage.deviceAddress, cType: t, ldc: n, strideC: m * n, batch: count)
        }
        return y
    }

    func addBias(_ y: Tensor, _ bias: Tensor, outer: Int, channels: Int, inner: Int) {
        let bv = operand(bias, y.elementType)
        launchElementwise("add_bias", y.elementType, y.count) {
            $0.pointer(y); $0.pointer(bv); $0.i64(outer); $0.i64(channels); $0.i64(inner)
        }
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let t = workingType(x, weight, bias)
        let xv = operand(x, t), wv = operand(weight, t)
        let outF = weight.shape[0], inF = weight.shape[1]
        precondition(x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF)")
        let rows = x.count / Swift.max(inF, 1)
        let y = empty(Array(x.shape.dropLast()) + [outF], t)
        gemm(transA: false, transB: true, m: rows, n: outF, k: inF,
             a: xv.storage.deviceAddress, aType: t, lda: inF, b: wv.storage.deviceAddress, bType: t, ldb: inF,
             c: y.storage.deviceAddress, cType: t, ldc: outF)
        if let bias { addBias(y, bias, outer: rows, channels: outF, inner: 1) }
        return y
    }
}
