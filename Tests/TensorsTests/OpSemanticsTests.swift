import Foundation
import Tensors
import XCTest

/// Hand-computed values for layout, elementwise, reduction and product ops.
final class OpSemanticsTests: XCTestCase {
    let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])

    func testReshapeInfersOneDimensionAndSharesStorage() {
        let y = x.reshaped([3, -1])
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertTrue(y.storage === x.storage, "reshape of a contiguous tensor must not copy")
    }

    func testPermuteTransposeSliceConcat() {
        XCTAssertEqual(x.transposed().scalars, [1, 4, 2, 5, 3, 6], "transpose of [[1,2,3],[4,5,6]]")
        let t = Tensor(shape: [2, 2, 2], values: [0, 1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(t.permuted([2, 0, 1]).scalars, [0, 2, 4, 6, 1, 3, 5, 7], "permute [2,0,1]")
        XCTAssertEqual(x.sliced(axis: 1, 1..<3).scalars, [2, 3, 5, 6], "columns 1..<3")
        XCTAssertEqual(concat([x, x.sliced(axis: 1, 0..<1)], axis: 1).scalars, [1, 2, 3, 1, 4, 5, 6, 4])
        XCTAssertEqual(concat([x, x], axis: 0).shape, [4, 3])
        XCTAssertEqual(x.chunked(3, axis: 1).map(\.scalars), [[1, 4], [2, 5], [3, 6]])
    }

    func testBroadcastingArithmetic() {
        let col = Tensor(shape: [2, 1], values: [10, 20])
        let row = Tensor(shape: [3], values: [1, 0, -1])
        XCTAssertEqual((x + col).scalars, [11, 12, 13, 24, 25, 26])
        XCTAssertEqual((x * row).scalars, [1, 0, -3, 4, 0, -6])
        XCTAssertEqual((col - row).shape, [2, 3], "[2,1] − [3] broadcasts to [2,3]")
        XCTAssertEqual((col - row).scalars, [9, 10, 11, 19, 20, 21])
        XCTAssertEqual((x / Tensor(scalar: 2)).scalars, [0.5, 1, 1.5, 2, 2.5, 3])
        XCTAssertEqual((2 - x).scalars, [1, 0, -1, -2, -3, -4])
        let big = Tensor.ones([2, 3, 4, 5]) * Tensor(shape: [3, 1, 1], values: [1, 2, 3])
        XCTAssertEqual(big.sum(axes: [0, 2, 3]).scalars, [40, 80, 120], "per-channel broadcast over NCHW")
    }

    func testReductions() {
        XCTAssertEqual(x.sum().item, 21)
        XCTAssertEqual(x.sum(axes: [0]).scalars, [5, 7, 9])
        XCTAssertEqual(x.sum(axes: [1], keepDims: true).shape, [2, 1])
        XCTAssertEqual(x.mean(axes: [1]).scalars, [2, 5])
        XCTAssertEqual(x.max(alongAxis: 0).scalars, [4, 5, 6])
        XCTAssertEqual(x.max(alongAxis: -1).scalars, [3, 6])
    }

    func testUnaryFunctionsAtKnownPoints() {
        let v = Tensor(shape: [3], values: [-1, 0, 2])
        assertClose(v.exp(), Tensor(shape: [3], values: [0.367_879_44, 1, 7.389_056]), tolerance: 1e-6, "exp")
        assertClose(v.sigmoid(), Tensor(shape: [3], values: [0.268_941_43, 0.5, 0.880_797_1]), tolerance: 1e-6, "sigmoid")
        assertClose(v.silu(), Tensor(shape: [3], values: [-0.268_941_43, 0, 1.761_594_2]), tolerance: 1e-6, "silu")
        assertClose(v.gelu(), Tensor(shape: [3], values: [-0.158_655_25, 0, 1.954_499_7]), tolerance: 1e-6, "gelu")
        assertClose(v.gelu(approximateTanh: true), Tensor(shape: [3], values: [-0.158_808, 0, 1.954_597_7]),
                    tolerance: 1e-6, "gelu tanh")
        assertClose(v.quickGelu(), Tensor(shape: [3], values: [-0.154_204_2, 0, 1.935_658_7]), tolerance: 1e-6, "quick gelu")
    }

    func testFastExpAcrossTheFloatRange() {
        let xs = stride(from: -87.0 as Float, through: 88, by: 0.173).map { $0 }
        let y = Tensor(shape: [xs.count], values: xs).exp().scalars
        for (x, e) in zip(xs, y) {
            let ref = Float(Foundation.exp(Double(x)))
            XCTAssertLessThanOrEqual(abs(e - ref) / ref, 4e-7, "exp(\(x)) = \(e), expected \(ref)")
        }
    }

    func testGeluAndItsSlopeAreAccurateAcrossTheRange() throws {
        // 37 values: two 16-lane blocks and a scalar tail, both signs, far tails.
        let xs: [Float] = (0..<37).map { -9 + Float($0) * 0.47 }
        let tape = Tape()
        let input = tape.watch(Tensor(shape: [xs.count], values: xs))
        let out = input.gelu()
        let y = out.scalars
        let slopes = try XCTUnwrap(try? tape.gradient(of: out.sum(), wrt: [input]).first).scalars
        for (k, (x, v)) in zip(xs, y).enumerated() {
            let d = Double(x), cdf = 0.5 * erfc(-d / 2.0.squareRoot()), ref = d * cdf
            XCTAssertLessThanOrEqual(abs(Double(v) - ref), 2e-7 * max(1, abs(d)), "gelu(\(x)) = \(v), expected \(ref)")
            let slope = cdf + d * Foundation.exp(-d * d / 2) / (2 * Double.pi).squareRoot()
            XCTAssertLessThanOrEqual(abs(Double(slopes[k]) - slope), 4e-7 * max(1, abs(d)),
                                     "gelu′(\(x)) = \(slopes[k]), expected \(slope)")
            if x < -3 {
                XCTAssertLessThanOrEqual(abs(Double(v) - ref) / abs(ref), 1e-5,
                                         "gelu(\(x)) keeps its relative accuracy in the far tail: \(v), expected \(ref)")
            }
        }
    }

    func testGegluIsTheFirstHalfTimesGeluOfTheSecond() {
        // Last dimension 2·21: a 16-lane block and a tail in each half.
        let x = detTensor([3, 2, 42], seed: 11, scale: 3)
        let parts = x.chunked(2, axis: -1)
        assertClose(x.geglu(), parts[0] * parts[1].gelu(), tolerance: 1e-6, "geglu")
        XCTAssertEqual(x.geglu().shape, [3, 2, 21])
    }

    func testMatmulAndLinearByHand() {
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4]), b = Tensor(shape: [2, 2], values: [5, 6, 7, 8])
        XCTAssertEqual(matmul(a, b).scalars, [19, 22, 43, 50])
        XCTAssertEqual(matmul(a, b, transposeA: true).scalars, [26, 30, 38, 44])
        XCTAssertEqual(matmul(a, b, transposeB: true).scalars, [17, 23, 39, 53])
        let batched = matmul(Tensor(shape: [3, 2, 2], values: Array(repeating: [1, 2, 3, 4], count: 3).flatMap { $0 }), b)
        XCTAssertEqual(batched.shape, [3, 2, 2])
        XCTAssertEqual(Array(batched.scalars.suffix(4)), [19, 22, 43, 50], "a shared right operand applies to every batch")
        let y = linear(Tensor(shape: [1, 2], values: [1, -1]), weight: a, bias: Tensor(shape: [2], values: [0.5, 0]))
        XCTAssertEqual(y.scalars, [-0.5, -1], "x·Wᵀ + b")
    }

    func testConvolutionByHand() {
        // 3×3 ones kernel over a 3×3 ramp with padding 1: each output is the sum of its neighbourhood.
        let img = Tensor(shape: [1, 1, 3, 3], values: (1...9).map(Float.init))
        let y = conv2d(img, weight: Tensor.ones([1, 1, 3, 3]), padding: 1)
        XCTAssertEqual(y.scalars, [12, 21, 16, 27, 45, 33, 24, 39, 28])
        let s2 = conv2d(img, weight: Tensor.ones([1, 1, 3, 3]), bias: Tensor(shape: [1], values: [1]), stride: 2, padding: 1)
        XCTAssertEqual(s2.scalars, [13, 17, 25, 29], "stride 2 keeps the corners, plus bias")
    }

    func testLargeConvolutionTilesMatchDirectSum() {
        // 1×64×160×160 with 3×3 kernels needs several column tiles (32 MiB budget);
        // compare sampled outputs with a direct sum.
        let x = detTensor([1, 64, 160, 160], seed: 40)
        let w = detTensor([3, 64, 3, 3], seed: 41, scale: 0.0625)
        let y = conv2d(x, weight: w, padding: 1)
        let xs = x.scalars, ws = w.scalars, ys = y.scalars
        var gen = SplitMix64(seed: 42)
        for _ in 0..<200 {
            let o = Int(gen.nextUInt64() % 3), i = Int(gen.nextUInt64() % 160), j = Int(gen.nextUInt64() % 160)
            var acc: Double = 0
            for c in 0..<64 {
                for ki in 0..<3 {
                    for kj in 0..<3 {
                        let ii = i + ki - 1, jj = j + kj - 1
                        guard ii >= 0, ii < 160, jj >= 0, jj < 160 else { continue }
                        acc += Double(xs[(c * 160 + ii) * 160 + jj]) * Double(ws[((o * 64 + c) * 3 + ki) * 3 + kj])
                    }
                }
            }
            XCTAssertEqual(Double(ys[(o * 160 + i) * 160 + j]), acc, accuracy: 1e-4, "output (\(o), \(i), \(j))")
        }
    }

    func testSoftmaxRowsSumToOneAndSurviveLargeInputs() {
        let s = softmax(Tensor(shape: [2, 3], values: [1000, 1000, 1000, -5, 0, 5])).scalars
        XCTAssertEqual(s[0], 1.0 / 3, accuracy: 1e-6, "a constant row of large values is uniform")
        XCTAssertEqual(s[3] + s[4] + s[5], 1, accuracy: 1e-6)
        XCTAssertEqual(s[5], 0.993_262, accuracy: 1e-5)
    }

    func testAttentionMaskMultipliesProbabilitiesWithoutRenormalising() {
        // One head, two keys with equal scores: probabilities ½, ½; mask [1, 0] keeps half of v0.
        let q = Tensor(shape: [1, 1, 2], values: [0, 0])
        let k = Tensor(shape: [1, 2, 2], values: [1, 0, 0, 1])
        let v = Tensor(shape: [1, 2, 1], values: [4, 8])
        XCTAssertEqual(attention(q: q, k: k, v: v, heads: 1).scalars, [6])
        let masked = attention(q: q, k: k, v: v, heads: 1, mask: Tensor(shape: [1, 2], values: [1, 0]))
        XCTAssertEqual(masked.scalars, [2], "expected ½·4 (masked key dropped, no renormalisation)")
    }

    func testAttentionHeadsReadTheirOwnChannels() {
        // Two heads of width 1: each head's output must come from its own v column.
        let q = Tensor(shape: [1, 1, 2], values: [0, 0]), k = Tensor.zeros([1, 3, 2])
        let v = Tensor(shape: [1, 3, 2], values: [1, 10, 2, 20, 3, 30])
        XCTAssertEqual(attention(q: q, k: k, v: v, heads: 2).scalars, [2, 20], "uniform weights average each head's values")
    }

    func testUpsampleAndEmbedding() {
        let u = upsampleNearest(Tensor(shape: [1, 1, 1, 2], values: [1, 2]))
        XCTAssertEqual(u.scalars, [1, 1, 2, 2, 1, 1, 2, 2])
        let table = Tensor(shape: [3, 2], values: [0, 1, 10, 11, 20, 21])
        XCTAssertEqual(embedding(table, ids: [2, 0]).scalars, [20, 21, 0, 1])
    }

    func testResultsDoNotDependOnThreadCount() {
        let x = detTensor([2, 32, 24, 24], seed: 50), w = detTensor([32, 32, 3, 3], seed: 51, scale: 0.125)
        let q = detTensor([1, 300, 64], seed: 52)
        let saved = ComputeThreads.count
        defer { ComputeThreads.count = saved }
        func run() -> [Float] {
            let c = groupNorm(conv2d(x, weight: w, padding: 1), groups: 8).silu()
            return c.scalars + attention(q: q, k: q, v: q, heads: 4).scalars + softmax(q).scalars
        }
        ComputeThreads.count = 1
        let one = run()
        ComputeThreads.count = 2
        XCTAssertEqual(ComputeThreads.count, 2)
        let two = run()
        XCTAssertEqual(relativeError(two, one), 0, accuracy: 1e-6, "1 and 2 threads should agree")
    }

    func testFixtureGeneratorMatchesPublishedVectors() {
        // Test vectors from Tests/Reference/README.md (seed 650 includes a rounding tie).
        var g0 = SplitMix64(seed: 0)
        XCTAssertEqual(g0.fixtureValues(3).map(\.bitPattern), [0x3F44_4150, 0xBE0C_3B10, 0xBF72_7746])
        var g650 = SplitMix64(seed: 650)
        XCTAssertEqual(g650.fixtureValues(3, scale: 2, offset: 3).map(\.bitPattern), [0x404B_FC2A, 0x4094_CD06, 0x403D_2F0D])
    }
}

final class CausalAttentionTests: XCTestCase {
    func testCausalAttentionEqualsExplicitlyMaskedSoftmax() {
        let q = detTensor([2, 7, 6], seed: 70), k = detTensor([2, 7, 6], seed: 71), v = detTensor([2, 7, 6], seed: 72)
        // Reference: additive −∞ above the diagonal before the softmax, per head.
        let p = attentionProbabilities(q: q, k: k, heads: 2).scalars   // [2, 2, 7, 7] unmasked
        var masked = p
        for bh in 0..<4 {
            for i in 0..<7 {
                let row = bh * 49 + i * 7
                // Renormalise the visible prefix of the unmasked softmax: softmax over keys 0...i.
                let visible = (0...i).map { p[row + $0] }
                let z = visible.reduce(0, +)
                for j in 0..<7 { masked[row + j] = j <= i ? p[row + j] / z : 0 }
            }
        }
        let probs = Tensor(shape: [2, 2, 7, 7], values: masked)
        let vh = v.reshaped([2, 7, 2, 3]).permuted([0, 2, 1, 3])
        let expected = matmul(probs, vh).permuted([0, 2, 1, 3]).reshaped([2, 7, 6])
        for scratch in [64 << 20, 100] {
            assertClose(attention(q: q, k: k, v: v, heads: 2, causal: true, scratchBytes: scratch), expected,
                        tolerance: 1e-5, "causal attention, scratch \(scratch)")
        }
    }

    func testCausalAttentionGradient() {
        let q = detTensor([1, 5, 4], seed: 73), k = detTensor([1, 5, 4], seed: 74), v = detTensor([1, 5, 4], seed: 75)
        checkGradients([q, k, v], "causal attention") {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 2, causal: true, scratchBytes: 40)
        }
    }
}
