import Tensors
import XCTest

/// Every differentiable op against central finite differences (see
/// `checkGradients` for the tolerance reasoning).
final class GradientTests: XCTestCase {
    func testElementwiseBinaryOpsWithBroadcasting() {
        let a = detTensor([2, 3, 4], seed: 1)
        let b = detTensor([3, 1], seed: 2, scale: 0.5, offset: 2)   // away from 0 for division
        checkGradients([a, b], "add") { $0[0] + $0[1] }
        checkGradients([a, b], "sub") { $0[0] - $0[1] }
        checkGradients([a, b], "mul") { $0[0] * $0[1] }
        checkGradients([a, b], "div") { $0[0] / $0[1] }
        checkGradients([b, a], "broadcast on the left") { $0[0] * $0[1] }
    }

    func testUnaryOps() {
        let x = detTensor([64], seed: 3, scale: 2)
        let positive = detTensor([64], seed: 4, scale: 0.5, offset: 1.5)
        checkGradients([x], "neg") { -$0[0] }
        checkGradients([x], "exp") { $0[0].exp() }
        checkGradients([positive], "log") { $0[0].log() }
        checkGradients([positive], "sqrt") { $0[0].sqrt() }
        checkGradients([positive], "rsqrt") { $0[0].rsqrt() }
        checkGradients([positive], "pow") { $0[0].pow(2.5) }
        checkGradients([x], "square") { $0[0].squared() }
        checkGradients([x], "sigmoid") { $0[0].sigmoid() }
        checkGradients([x], "tanh") { $0[0].tanh() }
        checkGradients([x], "silu") { $0[0].silu() }
        checkGradients([x], "gelu") { $0[0].gelu() }
        checkGradients([detTensor([2, 2, 40], seed: 5, scale: 2)], "geglu") { $0[0].geglu() }
        checkGradients([x], "gelu tanh") { $0[0].gelu(approximateTanh: true) }
        checkGradients([x], "quick gelu") { $0[0].quickGelu() }
        checkGradients([x], "scalar ops") { ($0[0] * 3 + 1) / 2 - 0.5 }
        checkGradients([positive], "abs/relu away from 0") { $0[0].abs() + $0[0].relu() }
        checkGradients([x], "clamp (no element within ε of a bound)") { $0[0].clamped(-0.75, 0.5) }
        checkGradients([detTensor([1, 2, 3, 3], seed: 3)], "zero padding") { $0[0].padded(left: 1, right: 2, bottom: 1) }
    }

    func testLayoutOps() {
        let x = detTensor([2, 3, 4], seed: 5)
        let y = detTensor([2, 2, 4], seed: 6)
        checkGradients([x], "reshape") { $0[0].reshaped([4, -1]) }
        checkGradients([x], "permute") { $0[0].permuted([2, 0, 1]) }
        checkGradients([x], "transpose") { $0[0].transposed() }
        checkGradients([x], "slice") { $0[0].sliced(axis: 1, 1..<3) }
        checkGradients([x, y], "concat") { concat([$0[0], $0[1]], axis: 1) }
        checkGradients([x], "chunk") { let c = $0[0].chunked(2, axis: 2); return c[0] * c[1] }
        checkGradients([detTensor([3, 1], seed: 7)], "broadcast") { $0[0].broadcast(to: [2, 3, 5]) }
    }

    func testReductions() {
        let x = detTensor([3, 4, 5], seed: 8)
        checkGradients([x], "sum all") { $0[0].sum() }
        checkGradients([x], "sum axes") { $0[0].sum(axes: [0, 2]) }
        checkGradients([x], "sum keepDims") { $0[0].sum(axes: [1], keepDims: true) }
        checkGradients([x], "mean") { $0[0].mean(axes: [-1]) }
    }

    func testMatmulAllTransposesAndBroadcastBatches() {
        let a = detTensor([2, 3, 4], seed: 9), b = detTensor([2, 4, 5], seed: 10)
        checkGradients([a, b], "bmm") { matmul($0[0], $0[1]) }
        let at = detTensor([2, 4, 3], seed: 11), bt = detTensor([2, 5, 4], seed: 12)
        checkGradients([at, b], "Aᵀ·B") { matmul($0[0], $0[1], transposeA: true) }
        checkGradients([a, bt], "A·Bᵀ") { matmul($0[0], $0[1], transposeB: true) }
        checkGradients([at, bt], "Aᵀ·Bᵀ") { matmul($0[0], $0[1], transposeA: true, transposeB: true) }
        let shared = detTensor([4, 5], seed: 13)
        checkGradients([a, shared], "shared right operand") { matmul($0[0], $0[1]) }
        checkGradients([shared.transposed().detached, a], "shared left operand") { matmul($0[0], $0[1], transposeB: true) }
    }

    func testLinear() {
        let x = detTensor([2, 3, 6], seed: 14), w = detTensor([4, 6], seed: 15), b = detTensor([4], seed: 16)
        checkGradients([x, w, b], "linear") { linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([x, w], "linear without bias") { linear($0[0], weight: $0[1]) }
    }

    func testConvolutionStridesPaddingGroups() {
        let x = detTensor([2, 4, 7, 6], seed: 17)
        let w = detTensor([6, 4, 3, 3], seed: 18, scale: 0.5), b = detTensor([6], seed: 19)
        checkGradients([x, w, b], "conv 3×3 s1 p1") { conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1) }
        checkGradients([x, w, b], "conv 3×3 s2 p1") { conv2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1) }
        checkGradients([x, w], "conv 3×3 s2 p0") { conv2d($0[0], weight: $0[1], stride: 2) }
        let wg = detTensor([6, 2, 3, 3], seed: 20, scale: 0.5)
        checkGradients([x, wg, b], "grouped conv") { conv2d($0[0], weight: $0[1], bias: $0[2], padding: 1, groups: 2) }
        let w1 = detTensor([3, 4, 1, 1], seed: 21)
        checkGradients([x, w1], "pointwise conv") { conv2d($0[0], weight: $0[1]) }
    }

    func testNormalisationAndSoftmax() {
        let x = detTensor([2, 6, 3, 3], seed: 22, scale: 2, offset: 0.5)
        let w = detTensor([6], seed: 23, scale: 0.5, offset: 1), b = detTensor([6], seed: 24)
        checkGradients([x, w, b], "group norm") { groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2]) }
        checkGradients([x], "group norm without affine") { groupNorm($0[0], groups: 2) }
        checkGradients([x, b], "group norm bias only") { groupNorm($0[0], groups: 2, bias: $0[1]) }
        let y = detTensor([3, 5, 8], seed: 25, scale: 2)
        let lw = detTensor([8], seed: 26, scale: 0.5, offset: 1), lb = detTensor([8], seed: 27)
        checkGradients([y, lw, lb], "layer norm") { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([y], "softmax") { softmax($0[0] * 2) }
    }

    func testAttentionSelfCrossAndMasked() {
        let q = detTensor([2, 5, 8], seed: 28), k = detTensor([2, 7, 8], seed: 29), v = detTensor([2, 7, 6], seed: 30)
        checkGradients([q, k, v], "cross attention") { attention(q: $0[0], k: $0[1], v: $0[2], heads: 2) }
        checkGradients([q, q, q], "self attention, one query chunk at a time") {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 2, scratchBytes: 1)
        }
        let mask = detTensor([5, 7], seed: 31, scale: 0.5, offset: 0.5)
        checkGradients([q, k, v], "attention with a probability mask") {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 2, mask: mask, scratchBytes: 64)
        }
    }

    func testResamplingAndEmbedding() {
        let x = detTensor([1, 2, 3, 4], seed: 32)
        checkGradients([x], "nearest upsample ×2") { upsampleNearest($0[0]) }
        checkGradients([x], "nearest upsample ×3") { upsampleNearest($0[0], factor: 3) }
        let table = detTensor([10, 4], seed: 33)
        checkGradients([table], "embedding with repeated ids") { embedding($0[0], ids: [3, 1, 3, 9], shape: [2, 2]) }
    }

    func testComposedUNetStyleBlock() {
        // conv → group norm → SiLU → conv, plus a residual: the shape of a ResNet block.
        let x = detTensor([1, 4, 6, 6], seed: 34)
        let w1 = detTensor([4, 4, 3, 3], seed: 35, scale: 0.25), w2 = detTensor([4, 4, 3, 3], seed: 36, scale: 0.25)
        checkGradients([x, w1, w2], "resnet-style block") { xs in
            let h = groupNorm(conv2d(xs[0], weight: xs[1], padding: 1), groups: 2).silu()
            return conv2d(h, weight: xs[2], padding: 1) + xs[0]
        }
    }
}

final class AttentionProbabilityTests: XCTestCase {
    func testProbabilitiesAgreeWithFusedAttention() {
        let q = detTensor([2, 6, 8], seed: 60), k = detTensor([2, 5, 8], seed: 61), v = detTensor([2, 5, 8], seed: 62)
        let p = attentionProbabilities(q: q, k: k, heads: 2)            // [2, 2, 6, 5]
        XCTAssertEqual(p.shape, [2, 2, 6, 5])
        // Σ_k P·V per head, re-interleaved to [B, N, heads·d], equals the fused kernel.
        let vh = v.reshaped([2, 5, 2, 4]).permuted([0, 2, 1, 3])
        let o = matmul(p, vh).permuted([0, 2, 1, 3]).reshaped([2, 6, 8])
        assertClose(o, attention(q: q, k: k, v: v, heads: 2), tolerance: 1e-5, "materialised vs fused attention")
    }

    func testProbabilitiesGradient() {
        let q = detTensor([1, 4, 6], seed: 63), k = detTensor([1, 3, 6], seed: 64)
        checkGradients([q, k], "attention probabilities") { attentionProbabilities(q: $0[0], k: $0[1], heads: 3) }
    }
}
