import CBLAS

/// Row-major `C = alpha·op(A)·op(B) + beta·C` through OpenBLAS.
///
/// OpenBLAS itself runs single-threaded (see `ComputeThreads`): a product
/// large enough to share is split into column (or row) panels of C, one per
/// thread of our own pool, each a single-threaded `cblas_sgemm`. Each element
/// of C is still one call's K-loop, and no BLAS worker threads exist to spin
/// after a call and steal cores from the elementwise loops that follow.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let threads = ComputeThreads.count
    // Below ~4 MFLOP per thread (and for empty products) the split costs more than it saves.
    guard threads > 1, m * n * k >= threads << 21 else {
        serialSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c, ldc: ldc)
        return
    }
    let box = UnsafeSendableBox((a, b, c))
    if n >= m {
        // Panels of columns of C (multiples of 16 for the kernels).
        let panels = min(threads, max(1, n / 16))
        parallelFor(panels) { r in
            let (a, b, c) = box.value
            for p in r {
                let n0 = (n * p / panels) & ~15, n1 = p == panels - 1 ? n : (n * (p + 1) / panels) & ~15
                guard n1 > n0 else { continue }
                let bp = transB ? b + n0 * ldb : b + n0
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n1 - n0), Int32(k), alpha, a, Int32(lda),
                            bp, Int32(ldb), beta, c + n0, Int32(ldc))
            }
        }
    } else {
        let panels = min(threads, max(1, m / 16))
        parallelFor(panels) { r in
            let (a, b, c) = box.value
            for p in r {
                let m0 = (m * p / panels) & ~15, m1 = p == panels - 1 ? m : (m * (p + 1) / panels) & ~15
                guard m1 > m0 else { continue }
                let ap = transA ? a + m0 : a + m0 * lda
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(m1 - m0), Int32(n), Int32(k), alpha, ap, Int32(lda),
                            b, Int32(ldb), beta, c + m0 * ldc, Int32(ldc))
            }
        }
    }
}

/// `sgemm` on the calling thread only: for products that run side by side
/// in the workers of a parallel loop.
@inline(__always)
func serialSgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS leaves C scaled by beta; make the empty product explicit.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
