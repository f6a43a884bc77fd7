import CBLAS
import Dispatch
import Foundation
import Tensors

/// The tensor-op cases, at the shapes of Stable Diffusion 1.x's first UNet
/// level for a 512×512 image (64×64 latents, 320 channels, 4096 tokens,
/// 8 heads of 40, 77 text tokens). `Benchmarks/peers/tensor_ops.py` mirrors
/// every case under the same `op` name; keep the two in step.
enum TensorOpCases {
    static var all: [BenchCase] {
        [
            sgemm(), matmul(), conv2d(), attention(), crossAttention(), attentionBackward(), conv2dBackward(),
            copy(), groupNorm(), layerNorm(), softmax(), silu(), geglu(), addBroadcast(),
        ]
    }

    // MARK: Compute-bound, measured against raw sgemm

    /// `n`³ single-precision GEMM straight into OpenBLAS, into a preallocated
    /// C, with OpenBLAS's own threading (ours keeps OpenBLAS single-threaded
    /// and splits products itself): the best this BLAS does here, and the
    /// yardstick for every FLOP rate.
    static func sgemm(_ n: Int = 2048) -> BenchCase {
        BenchCase(op: "sgemm", shape: "\(n)x\(n)x\(n) cblas", work: .flops(2 * pow(Double(n), 3)),
                  reference: .sgemm, targetPercent: nil) {
            let a = uniform([n, n], seed: 1), b = uniform([n, n], seed: 2)
            let c = TensorStorage(count: n * n)
            let n32 = Int32(n)
            let threads = Int32(ComputeThreads.count)
            return {
                openblas_set_num_threads(threads)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n32, n32, n32, 1,
                            a.storage.pointer, n32, b.storage.pointer, n32, 0, c.pointer, n32)
                openblas_set_num_threads(1)
            }
        }
    }

    /// The same product through `matmul`, which allocates its result.
    static func matmul(_ n: Int = 2048) -> BenchCase {
        BenchCase(op: "matmul", shape: "[\(n),\(n)]@[\(n),\(n)]", work: .flops(2 * pow(Double(n), 3)),
                  reference: .sgemm, targetPercent: 95) {
            let a = uniform([n, n], seed: 1), b = uniform([n, n], seed: 2)
            return { _ = Tensors.matmul(a, b) }
        }
    }

    static let conv = (n: 2, cin: 320, cout: 320, h: 64, w: 64, k: 3)
    /// Multiply-adds of the 3×3 convolution: N·Cout·Ho·Wo·Cin·9 (padding 1
    /// keeps Ho = H; taps on the zero border are counted, as every GEMM-based
    /// convolution computes them).
    static var convFlops: Double {
        2 * Double(conv.n * conv.cout * conv.h * conv.w * conv.cin * conv.k * conv.k)
    }

    static func conv2d() -> BenchCase {
        let c = conv
        return BenchCase(op: "conv2d", shape: "x[\(c.n),\(c.cin),\(c.h),\(c.w)] w[\(c.cout),\(c.cin),3,3] pad1 +bias",
                         work: .flops(convFlops), reference: .sgemm, targetPercent: 75) {
            let x = uniform([c.n, c.cin, c.h, c.w], seed: 3)
            let w = uniform([c.cout, c.cin, c.k, c.k], seed: 4, scale: 0.05)
            let b = uniform([c.cout], seed: 5)
            return { _ = Tensors.conv2d(x, weight: w, bias: b, padding: 1) }
        }
    }

    /// dx and dW (not the bias) through the tape: each is one GEMM of the
    /// forward's size, so 2× the forward's FLOPs.
    static func conv2dBackward() -> BenchCase {
        let c = conv
        return BenchCase(op: "conv2d_bwd", shape: "dx+dW of conv2d above", work: .flops(2 * convFlops),
                         reference: .sgemm, targetPercent: nil) {
            let tape = Tape()
            let x = tape.watch(uniform([c.n, c.cin, c.h, c.w], seed: 3))
            let w = tape.watch(uniform([c.cout, c.cin, c.k, c.k], seed: 4, scale: 0.05))
            let y = Tensors.conv2d(x, weight: w, bias: uniform([c.cout], seed: 5), padding: 1)
            let dy = uniform(y.shape, seed: 6)
            return { gradients(tape, of: y, wrt: [x, w], seed: dy) }
        }
    }

    static let attn = (tokens: 4096, heads: 8, d: 40, textTokens: 77)

    /// QKᵀ and P·V per head: 2·(2·Nq·Nk·d) FLOPs per head; the softmax is not counted.
    static func attentionFlops(queries: Int, keys: Int) -> Double {
        4 * Double(attn.heads * queries * keys * attn.d)
    }

    static func attention() -> BenchCase {
        let a = attn, c = a.heads * a.d
        return BenchCase(op: "attention", shape: "q=k=v[1,\(a.tokens),\(c)] \(a.heads) heads d\(a.d)",
                         work: .flops(attentionFlops(queries: a.tokens, keys: a.tokens)),
                         reference: .sgemm, targetPercent: 60) {
            let q = uniform([1, a.tokens, c], seed: 7), k = uniform([1, a.tokens, c], seed: 8)
            let v = uniform([1, a.tokens, c], seed: 9)
            return { _ = Tensors.attention(q: q, k: k, v: v, heads: a.heads) }
        }
    }

    static func crossAttention() -> BenchCase {
        let a = attn, c = a.heads * a.d
        return BenchCase(op: "cross_attention", shape: "q[1,\(a.tokens),\(c)] k=v[1,\(a.textTokens),\(c)]",
                         work: .flops(attentionFlops(queries: a.tokens, keys: a.textTokens)),
                         reference: .sgemm, targetPercent: nil) {
            let q = uniform([1, a.tokens, c], seed: 7), k = uniform([1, a.textTokens, c], seed: 8)
            let v = uniform([1, a.textTokens, c], seed: 9)
            return { _ = Tensors.attention(q: q, k: k, v: v, heads: a.heads) }
        }
    }

    /// dQ, dK, dV through the tape. FLOPs count the five products of a
    /// backward that rebuilds P instead of storing it (S = QKᵀ again,
    /// dP = dO·Vᵀ, dV = Pᵀ·dO, dQ = dS·K, dK = dSᵀ·Q): 2.5× the forward, as
    /// FlashAttention's papers count it.
    static func attentionBackward() -> BenchCase {
        let a = attn, c = a.heads * a.d
        return BenchCase(op: "attention_bwd", shape: "dq,dk,dv of attention above",
                         work: .flops(2.5 * attentionFlops(queries: a.tokens, keys: a.tokens)),
                         reference: .sgemm, targetPercent: nil) {
            let tape = Tape()
            let q = tape.watch(uniform([1, a.tokens, c], seed: 7)), k = tape.watch(uniform([1, a.tokens, c], seed: 8))
            let v = tape.watch(uniform([1, a.tokens, c], seed: 9))
            let y = Tensors.attention(q: q, k: k, v: v, heads: a.heads)
            let dy = uniform(y.shape, seed: 10)
            return { gradients(tape, of: y, wrt: [q, k, v], seed: dy) }
        }
    }

    // MARK: Memory-bound, measured against a plain copy

    /// 256 MiB copied with one `memcpy` per thread over disjoint halves:
    /// far larger than the caches, so this is what DRAM sustains.
    static func copy(megabytes: Int = 256) -> BenchCase {
        let count = megabytes << 18   // floats
        return BenchCase(op: "copy", shape: "memcpy \(megabytes) MiB", work: .bytes(2 * Double(count * 4)),
                         reference: .copy, targetPercent: nil) {
            let src = TensorStorage(count: count), dst = TensorStorage(count: count)
            src.pointer.initialize(repeating: 1, count: count)
            dst.pointer.initialize(repeating: 0, count: count)
            let threads = ComputeThreads.count
            return {
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let lo = count * t / threads, hi = count * (t + 1) / threads
                    memcpy(dst.pointer + lo, src.pointer + lo, (hi - lo) * MemoryLayout<Float>.size)
                }
            }
        }
    }

    static let image = [2, 320, 64, 64]

    static func groupNorm() -> BenchCase {
        memoryBound(op: "group_norm", shape: "\(shapeText(image)) 32 groups +affine", elements: image,
                    targetPercent: 50) {
            let x = uniform(image, seed: 11), w = uniform([320], seed: 12), b = uniform([320], seed: 13)
            return { _ = Tensors.groupNorm(x, groups: 32, weight: w, bias: b) }
        }
    }

    static func layerNorm() -> BenchCase {
        let shape = [2, attn.tokens, attn.heads * attn.d]
        return memoryBound(op: "layer_norm", shape: "\(shapeText(shape)) +affine", elements: shape) {
            let x = uniform(shape, seed: 14), w = uniform([shape[2]], seed: 15), b = uniform([shape[2]], seed: 16)
            return { _ = Tensors.layerNorm(x, weight: w, bias: b) }
        }
    }

    static func softmax() -> BenchCase {
        let shape = [attn.heads, attn.tokens, attn.textTokens]
        return memoryBound(op: "softmax", shape: "\(shapeText(shape)) last dim", elements: shape) {
            let x = uniform(shape, seed: 17, scale: 4)
            return { _ = Tensors.softmax(x) }
        }
    }

    static func silu() -> BenchCase {
        memoryBound(op: "silu", shape: shapeText(image), elements: image) {
            let x = uniform(image, seed: 18, scale: 4)
            return { _ = x.silu() }
        }
    }

    /// The transformer block's GEGLU after its projection: `[2, 4096, 2·1280]`
    /// → `h · gelu(gate)`; reads the input once, writes half as much.
    static func geglu() -> BenchCase {
        let shape = [2, attn.tokens, 8 * attn.heads * attn.d]
        let out = Shape.count(shape) / 2
        return BenchCase(op: "geglu", shape: "\(shapeText(shape)) -> h*gelu(gate)",
                         work: .bytes(Double((Shape.count(shape) + out) * 4)), reference: .copy, targetPercent: nil) {
            let x = uniform(shape, seed: 21, scale: 4)
            return { _ = x.geglu() }
        }
    }

    /// A ResNet block's `h + temb[:, :, None, None]`.
    static func addBroadcast() -> BenchCase {
        let t = [image[0], image[1], 1, 1]
        return BenchCase(op: "add_bcast", shape: "\(shapeText(image)) + \(shapeText(t))",
                         work: .bytes(Double((2 * Shape.count(image) + Shape.count(t)) * 4)),
                         reference: .copy, targetPercent: nil) {
            let x = uniform(image, seed: 19), temb = uniform(t, seed: 20)
            return { _ = x + temb }
        }
    }

    // MARK: Helpers

    /// A case that reads `elements` floats once and writes as many.
    private static func memoryBound(op: String, shape: String, elements: [Int], targetPercent: Double? = nil,
                                    prepare: @escaping () -> () -> Void) -> BenchCase {
        BenchCase(op: op, shape: shape, work: .bytes(2 * Double(Shape.count(elements) * 4)),
                  reference: .copy, targetPercent: targetPercent, prepare: prepare)
    }

    /// Uniform in [-scale, scale) from SplitMix64, reproducible per seed.
    static func uniform(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor.uniform(shape, low: -scale, high: scale, using: &rng)
    }

    static func shapeText(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ",") + "]"
    }

    /// One backward sweep; `retainGraph` keeps the tape for the next repetition.
    private static func gradients(_ tape: Tape, of y: Tensor, wrt xs: [Tensor], seed: Tensor) {
        do {
            _ = try tape.gradient(of: y, wrt: xs, seed: seed, retainGraph: true)
        } catch {
            fatalError("backward benchmark: \(error)")
        }
    }
}
