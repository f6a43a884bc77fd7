import Tensors
import XCTest

/// Outputs (≤ 1e-4) and gradients (≤ 1e-3) against float64 PyTorch
/// references, relative to each reference's largest magnitude.
final class PyTorchParityTests: XCTestCase {
    let outTol: Float = 1e-4, gradTol: Float = 1e-3

    func checkConv(_ name: String) throws {
        let fx = try Fixture(name)
        let stride = fx.params["stride"] as! Int, padding = fx.params["padding"] as! Int
        let groups = fx.params["groups"] as! Int, hasBias = fx.params["bias"] as! Bool
        let inputs = [fx.input("x"), fx.input("weight")] + (hasBias ? [fx.input("bias")] : [])
        let (y, g) = try forwardBackward(inputs, dout: fx.input("dout")) { xs in
            conv2d(xs[0], weight: xs[1], bias: hasBias ? xs[2] : nil, stride: stride, padding: padding, groups: groups)
        }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.x", tolerance: gradTol)
        try fx.check(g[1], "grad.weight", tolerance: gradTol)
        if hasBias { try fx.check(g[2], "grad.bias", tolerance: gradTol) }
    }

    func testConv2dStride1() throws { try checkConv("conv2d_s1") }
    func testConv2dStride2() throws { try checkConv("conv2d_s2") }
    func testConv2dGrouped() throws { try checkConv("conv2d_grouped") }
    func testConv2dPointwise() throws { try checkConv("conv2d_1x1") }
    func testConv2dOddSizesNoPaddingNoBias() throws { try checkConv("conv2d_rect") }

    func checkGroupNorm(_ name: String) throws {
        let fx = try Fixture(name)
        let groups = fx.params["num_groups"] as! Int, eps = Float(fx.params["eps"] as! Double)
        let (y, g) = try forwardBackward([fx.input("x"), fx.input("weight"), fx.input("bias")], dout: fx.input("dout")) {
            groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2], eps: eps)
        }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.x", tolerance: gradTol)
        try fx.check(g[1], "grad.weight", tolerance: gradTol)
        try fx.check(g[2], "grad.bias", tolerance: gradTol)
    }

    func testGroupNorm() throws { try checkGroupNorm("group_norm") }
    func testGroupNormSmallEpsilonNonZeroMean() throws { try checkGroupNorm("group_norm_eps6") }

    func testLayerNorm() throws {
        let fx = try Fixture("layer_norm")
        let eps = Float(fx.params["eps"] as! Double)
        let (y, g) = try forwardBackward([fx.input("x"), fx.input("weight"), fx.input("bias")], dout: fx.input("dout")) {
            layerNorm($0[0], weight: $0[1], bias: $0[2], eps: eps)
        }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.x", tolerance: gradTol)
        try fx.check(g[1], "grad.weight", tolerance: gradTol)
        try fx.check(g[2], "grad.bias", tolerance: gradTol)
    }

    func testSoftmax() throws {
        let fx = try Fixture("softmax")
        let (y, g) = try forwardBackward([fx.input("x")], dout: fx.input("dout")) { softmax($0[0]) }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.x", tolerance: gradTol)
    }

    func checkAttention(_ name: String, scratchBytes: Int = 64 << 20) throws {
        let fx = try Fixture(name)
        let heads = fx.params["heads"] as! Int
        let (y, g) = try forwardBackward([fx.input("q"), fx.input("k"), fx.input("v")], dout: fx.input("dout")) {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: heads, scratchBytes: scratchBytes)
        }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.q", tolerance: gradTol)
        try fx.check(g[1], "grad.k", tolerance: gradTol)
        try fx.check(g[2], "grad.v", tolerance: gradTol)
    }

    func testSelfAttention1024Tokens8Heads() throws { try checkAttention("attention_self") }
    func testSelfAttentionInSmallQueryChunks() throws { try checkAttention("attention_self", scratchBytes: 1 << 20) }
    func testCrossAttention1024x77() throws { try checkAttention("attention_cross") }
    func testAttentionOddSizes() throws { try checkAttention("attention_odd", scratchBytes: 200) }

    func testLinear() throws {
        let fx = try Fixture("linear")
        let (y, g) = try forwardBackward([fx.input("x"), fx.input("weight"), fx.input("bias")], dout: fx.input("dout")) {
            linear($0[0], weight: $0[1], bias: $0[2])
        }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.x", tolerance: gradTol)
        try fx.check(g[1], "grad.weight", tolerance: gradTol)
        try fx.check(g[2], "grad.bias", tolerance: gradTol)
    }

    func testBatchedMatmul() throws {
        let fx = try Fixture("bmm")
        let (y, g) = try forwardBackward([fx.input("a"), fx.input("b")], dout: fx.input("dout")) { matmul($0[0], $0[1]) }
        try fx.check(y, "out", tolerance: outTol)
        try fx.check(g[0], "grad.a", tolerance: gradTol)
        try fx.check(g[1], "grad.b", tolerance: gradTol)
    }

    func testActivations() throws {
        let fx = try Fixture("activations")
        let fns: [(String, (Tensor) -> Tensor)] = [
            ("gelu", { $0.gelu() }), ("gelu_tanh", { $0.gelu(approximateTanh: true) }), ("silu", { $0.silu() }),
            ("quick_gelu", { $0.quickGelu() }), ("sigmoid", { $0.sigmoid() }), ("tanh", { $0.tanh() }),
        ]
        for (name, f) in fns {
            let (y, g) = try forwardBackward([fx.input("x")], dout: fx.input("dout")) { f($0[0]) }
            try fx.check(y, "\(name).out", tolerance: outTol)
            try fx.check(g[0], "\(name).grad.x", tolerance: gradTol)
        }
    }

    func testUpsampleNearest() throws {
        let fx = try Fixture("upsample_nearest")
        let (y, g) = try forwardBackward([fx.input("x")], dout: fx.input("dout")) { upsampleNearest($0[0], factor: 2) }
        try fx.check(y, "out", tolerance: 0)
        try fx.check(g[0], "grad.x", tolerance: 1e-6)
    }

    func testTimestepEmbeddingVariants() throws {
        let fx = try Fixture("timestep_embedding")
        let ts = (fx.params["timesteps"] as! [Double]).map(Float.init)
        let variants = fx.params["variants"] as! [String: [String: Any]]
        XCTAssertEqual(variants.count, 3, "expected three embedding variants in the fixture")
        for (name, v) in variants {
            let e = timestepEmbedding(ts, dim: v["dim"] as! Int, flipSinToCos: v["flip_sin_to_cos"] as! Bool,
                                      downscaleFreqShift: Float(v["downscale_freq_shift"] as! Double))
            try fx.check(e, name, tolerance: outTol)
        }
    }
}
