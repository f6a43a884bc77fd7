import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// Records what the UNet's cross-attention hook sees.
final class RecordingControl: AttentionControl {
    var captured: [(String, Tensor)] = []
    var masks: [String: Tensor] = [:]
    var maskCalls: [String] = []
    var capture = true

    func capturesProbabilities(layer: String) -> Bool { capture }
    func record(layer: String, probabilities: Tensor) { captured.append((layer, probabilities)) }
    func crossAttentionMask(layer: String, queries: Int, keys: Int, batch: Int) -> Tensor? {
        maskCalls.append(layer)
        return masks[layer] ?? masks["*"].map { m in m.sliced(axis: 0, 0..<queries) }
    }
}

final class AttentionHookTests: XCTestCase {
    func inputs(_ fx: SDFixture) throws -> (Tensor, [Float], Tensor) {
        (try fx.tensor("unet.0.sample"), try fx.floats("unet.0.timestep"), try fx.tensor("unet.0.encoder_hidden_states"))
    }

    func testEveryCrossAttentionLayerIsVisitedByItsDiffusersName() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        let (x, t, ctx) = try inputs(fx)
        let control = RecordingControl()
        _ = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx, attentionControl: control))
        let expected = (0..<2).map { "down_blocks.0.attentions.\($0).transformer_blocks.0.attn2" }
            + (0..<2).map { "down_blocks.1.attentions.\($0).transformer_blocks.0.attn2" }
            + ["mid_block.attentions.0.transformer_blocks.0.attn2"]
            + (0..<3).map { "up_blocks.1.attentions.\($0).transformer_blocks.0.attn2" }
            + (0..<3).map { "up_blocks.2.attentions.\($0).transformer_blocks.0.attn2" }
        XCTAssertEqual(control.maskCalls, expected, "hook calls in forward order, self-attention (attn1) never")
        XCTAssertEqual(control.captured.map(\.0), expected)
        for (name, p) in control.captured {
            XCTAssertEqual(p.dim(0), 2, "\(name): batch")
            XCTAssertEqual(p.dim(1), 2, "\(name): heads (attention_head_dim 2)")
            XCTAssertEqual(p.dim(3), 77, "\(name): one column per context token")
            let rowSums = p.sum(axes: [3]).scalars
            XCTAssertLessThan(rowSums.map { abs($0 - 1) }.max()!, 1e-5, "\(name): probabilities sum to 1 over keys")
        }
        XCTAssertEqual(control.captured[0].1.dim(2), 256, "16×16 latent → 256 queries at full resolution")
        XCTAssertEqual(control.captured[4].1.dim(2), 16, "mid block at 4×4")
    }

    func testMaskOfOnesChangesNothingAndAMaskChangesTheOutput() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        let (x, t, ctx) = try inputs(fx)
        let plain = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx))
        let ones = RecordingControl()
        ones.capture = false
        ones.masks["*"] = Tensor.ones([256, 77])
        let same = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx, attentionControl: ones))
        XCTAssertEqual(same.scalars, plain.scalars, "a mask of ones is the identity")
        let bosOnly = RecordingControl()
        bosOnly.capture = false
        bosOnly.masks["*"] = Tensor.ones([256, 1]).padded(right: 76)           // keep only the BOS column
        let masked = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx, attentionControl: bosOnly))
        XCTAssertGreaterThan(relativeError(masked, plain), 1e-3, "masking all but BOS must change the prediction")
    }

    func testCapturedProbabilitiesAreDifferentiableWithRespectToTheLatent() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        let (x, t, ctx) = try inputs(fx)
        let control = RecordingControl()
        let tape = Tape()
        let xw = tape.watch(x)
        _ = try model.unet(xw, timesteps: t, conditioning: UNetConditioning(context: ctx, attentionControl: control))
        let p = control.captured[2].1
        XCTAssertTrue(p.isTraced, "captured probabilities are on the tape")
        // A PILOT-like term: attention mass on token 1 over all queries.
        let loss = p.sliced(axis: 3, 1..<2).sum()
        let g = try tape.gradient(of: loss, wrt: [xw])[0]
        XCTAssertGreaterThan(g.scalars.map(abs).max()!, 0, "the loss depends on the latent")

        // Central difference along a random direction (Float32; see TensorsTests for the reasoning).
        var rng = SplitMix64(seed: 9)
        let v = Tensor.randn(x.shape, using: &rng)
        func lossAt(_ x: Tensor) throws -> Double {
            let c = RecordingControl()
            _ = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx, attentionControl: c))
            return c.captured[2].1.sliced(axis: 3, 1..<2).scalars.reduce(0.0) { $0 + Double($1) }
        }
        let eps: Float = 1e-2
        let numeric = (try lossAt(x + v * eps) - lossAt(x - v * eps)) / (2 * Double(eps))
        let analytic = zip(g.scalars, v.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(abs(numeric), 1e-3),
                       "directional derivative of the attention loss: autograd \(analytic), finite difference \(numeric)")
    }

    func testOlderVAEAttentionNamesLoad() throws {
        let fx = try SDFixture("sd1")
        let reference = try fx.loadFolder()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-vae-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: SDFixture.root.appendingPathComponent("sd1"), to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let url = tmp.appendingPathComponent("vae/diffusion_pytorch_model.safetensors")
        let original = try SafeTensorsFile(path: url.path)
        var writer = SafeTensorsWriter()
        let renames = ["to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."]
        for name in original.names {
            var renamed = name
            for (new, old) in renames where name.contains("attentions.0.\(new)") {
                renamed = name.replacingOccurrences(of: "attentions.0.\(new)", with: "attentions.0.\(old)")
            }
            try writer.add(renamed, shape: try original.info(name).shape, floats: try original.floats(name))
        }
        try writer.write(to: url.path)
        let old = try StableDiffusionModel.load(path: tmp.path)
        let z = try fx.tensor("vae.decode.latent")
        XCTAssertEqual(try old.vae.decode(z).scalars, try reference.vae.decode(z).scalars,
                       "query/key/value/proj_attn names load the same weights as to_q/to_k/to_v/to_out.0")
    }
}
