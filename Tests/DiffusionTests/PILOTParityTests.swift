@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// PILOT against `Tests/Reference/pilot_reference.py` (float64 PyTorch on the
/// tiny SD1 model, 20 steps, τ = 5, 3 inner steps). Tolerances, relative to
/// each reference's max |value|: losses 1e-4, ∂L/∂x 1e-4, ∂L_sc/∂x 1e-3,
/// latents after each optimisation step 1e-3, final latent 2e-3. The
/// reference's own float32 rerun stays within ~1e-5 of float64 on all of
/// these, so the bounds leave room for our different float32 summation
/// order while a wrong sign, missing term or mask error (each ≥ 3e-4 of the
/// gradient, SBC ≈ 30 % of the latents) fails. L_sc terms are differences
/// near zero, so they are measured against max(|out_ℓ|, |in_ℓ|).
final class PILOTParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/pilot").standardized

    var inputs: SafeTensorsFile!
    var model: StableDiffusionModel!

    override func setUpWithError() throws {
        inputs = try SafeTensorsFile(path: Self.folder.appendingPathComponent("inputs.safetensors").path)
        model = try SDFixture("sd1").loadFolder()
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { inputs = nil; model = nil }

    func input(_ name: String) throws -> Tensor { try Tensor(inputs, name) }

    func masks() throws -> InpaintingMasks { try InpaintingMasks(pixelMask: try input("pixel_mask")) }

    /// Word-token positions: the fixture stores a 0/1 indicator over the 77 positions.
    func wordTokens() throws -> [Int] {
        try input("word_tokens").scalars.enumerated().filter { $0.element > 0.5 }.map(\.offset)
    }

    func testWordTokensMatchOurTokenizer() throws {
        let tokens = try model.tokenizer().tokenize("a red fox in the snow", padding: model.promptPadding)
        XCTAssertEqual(tokens.wordTokenIndices, try wordTokens(), "prompt word positions (not BOS/EOS/padding)")
        XCTAssertEqual(tokens.ids.map(Float.init), try input("prompt_ids").scalars, "prompt ids")
    }

    func parameters(gamma: Float, sbc: Bool, lambdaZero: Bool) -> PILOTParameters {
        var p = PILOTParameters()
        p.steps = 20
        p.interval = 5
        p.innerSteps = 3
        p.coherence = gamma
        p.sbc = sbc
        if lambdaZero { p.coef = 0 }
        return p
    }

    func testMasksEqualTheReference() throws {
        let m = try masks()
        XCTAssertEqual(m.keep.scalars, try input("K").scalars, "K by the nearest rule")
        for s in [16, 8, 4] {
            XCTAssertEqual(m.hole[s * s]!.scalars, try input("F.\(s)").scalars, "F at \(s)×\(s)")
        }
        let edges = try SafeTensorsFile(path: Self.folder.appendingPathComponent("masks_edge_cases.safetensors").path)
        let cases = try JSONSerialization.jsonObject(with: Data(edges.metadata["cases"]!.utf8)) as! [String: [String: Any]]
        for (name, c) in cases {
            let size = c["image_size"] as! [Int]
            var px = [Float](repeating: 0, count: size[0] * size[1])
            for r in c["hole_rects"] as! [[Int]] {
                for y in r[0]..<r[1] { for x in r[2]..<r[3] { px[y * size[1] + x] = 1 } }
            }
            let mm = try InpaintingMasks(pixelMask: Tensor(shape: size, values: px))
            XCTAssertEqual(mm.keep.scalars, try edges.floats("\(name).K"), "\(name): K")
            var (h, w) = (mm.latentHeight, mm.latentWidth)
            for _ in 0..<4 {
                XCTAssertEqual(mm.hole[h * w]!.scalars, try edges.floats("\(name).F.\(h)"), "\(name): F at \(h)×\(w)")
                (h, w) = ((h + 1) / 2, (w + 1) / 2)
            }
            let c0 = Float(150) * Float(mm.keepCount) / 1499
            XCTAssertEqual(c0, try edges.floats("\(name).C")[0], accuracy: 1e-4, "\(name): C")
        }
    }

    /// ∂L/∂x and ∂L_sc/∂x at the first iteration of optimisation step k,
    /// from the building blocks (UNet + control + losses + tape).
    func gradients(at x: Tensor, timestep t: Int, lambda: Float, sbc: Bool) throws -> (Tensor, Tensor) {
        let m = try masks()
        let schedule = DDIMScheduler(config: model.schedule, steps: 20)
        let a = schedule.alphaCumprod(t)
        let tokens = try wordTokens()
        func run(_ includeBackground: Bool, _ weight: Float) throws -> Tensor {
            let control = PILOTAttentionControl(masks: m, sbc: sbc)
            control.capturing = true
            let tape = Tape()
            let xw = tape.watch(x)
            let eps = try model.unet(xw, timesteps: [Float(t)],
                                     conditioning: UNetConditioning(context: try input("prompt_embeds"), attentionControl: control))
            let x0 = (xw - eps * (1 - a).squareRoot()) / a.squareRoot()
            var lsc: Tensor?
            for (_, p) in control.captured {
                if let term = PILOTLoss.centralisationTerm(probabilities: p, hole: m.hole[p.dim(2)]!, wordTokens: tokens) {
                    lsc = lsc.map { $0 + term } ?? term
                }
            }
            XCTAssertEqual(control.captured.count, 6, "the six below-full-resolution layers feed the loss")
            let sc = lsc! * (1 / Float(control.captured.count))
            let loss = includeBackground ? PILOTLoss.background(reconstruction: x0, source: try input("z_src"), keep: m.keep) + sc * weight : sc
            return try tape.gradient(of: loss, wrt: [xw])[0]
        }
        return (try run(true, lambda), try run(false, 1))
    }

    func checkRun(_ config: String, gamma: Float, sbc: Bool, lambdaZero: Bool) throws {
        let ref = try SafeTensorsFile(path: Self.folder.appendingPathComponent("\(config).safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(ref, k) }
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule,
                                   parameters: parameters(gamma: gamma, sbc: sbc, lambdaZero: lambdaZero))
        var stepLatents: [Int: Tensor] = [:]
        sampler.onStep = { stepLatents[$0] = $1 }
        let tokens = try wordTokens()
        let blend = try (10..<20).reduce(into: [Int: Tensor]()) { $0[$1] = try input("blend_noise.\($1)") }
        let final = try sampler.run(noise: try input("x_T"), source: try input("z_src"), masks: try masks(),
                                    positive: try input("prompt_embeds"), negative: try input("negative_prompt_embeds"),
                                    wordTokens: tokens, blendNoise: { blend[$0]! })

        // Losses of every inner iteration of the first two optimisation steps.
        for k in 0..<2 {
            for j in 0..<3 {
                let rec = sampler.records[k * 3 + j]
                let p = "opt.\(k).iter.\(j)"
                XCTAssertEqual(rec.background, try ref.floats("\(p).loss_bg")[0],
                               accuracy: 1e-4 * abs(try ref.floats("\(p).loss_bg")[0]), "\(config) \(p) L_bg")
                XCTAssertEqual(rec.lambda, try ref.floats("\(p).lambda")[0], accuracy: 1e-4 * max(1, abs(rec.lambda)), "\(config) \(p) λ")
                XCTAssertEqual(rec.learningRate, try ref.floats("\(p).eta")[0], accuracy: 1e-6, "\(config) \(p) η")
                XCTAssertEqual(rec.total, try ref.floats("\(p).total")[0], accuracy: 1e-4 * abs(try ref.floats("\(p).total")[0]),
                               "\(config) \(p) total loss")
                let out = try ref.floats("\(p).loss_sc_out"), inn = try ref.floats("\(p).loss_sc_in")
                let terms = try ref.floats("\(p).loss_sc_layers")
                for l in 0..<6 {
                    let scale = max(abs(out[l]), abs(inn[l]), 1e-12)
                    XCTAssertEqual(rec.layerTerms[l], terms[l], accuracy: 1e-4 * scale, "\(config) \(p) L_\(l)")
                }
                let scScale = max(out.map(abs).max()!, inn.map(abs).max()!)
                XCTAssertEqual(rec.centralisation, try ref.floats("\(p).loss_sc")[0], accuracy: 1e-4 * scScale, "\(config) \(p) L_sc")
            }
        }
        // Gradients at the first iteration of optimisation steps 0 and 1.
        let timesteps = try input("timesteps").scalars.map { Int($0) }
        for (k, i) in [(0, 0), (1, 5)] {
            let x = i == 0 ? try input("x_T") : try r("step.\(i - 1).latent")
            let lambda = sampler.records[k * 3].lambda
            let (g, gsc) = try gradients(at: x, timestep: timesteps[i], lambda: lambda, sbc: sbc)
            assertClose(g, try r("opt.\(k).iter.0.grad"), tolerance: 1e-4, "\(config) ∂L/∂x at optimisation step \(k)")
            assertClose(gsc, try r("opt.\(k).iter.0.grad_sc"), tolerance: 1e-3, "\(config) ∂L_sc/∂x at optimisation step \(k)")
        }
        // Latents after every optimisation step, every step, and at the end.
        XCTAssertEqual(sampler.optimisedLatents.count, gamma == 1 ? 4 : 2, "\(config): optimisation steps run")
        for (k, x) in sampler.optimisedLatents.enumerated() {
            assertClose(x, try r("opt.\(k).x_after"), tolerance: 1e-3, "\(config) latent after optimisation step \(k)")
        }
        for i in 0..<20 {
            assertClose(stepLatents[i]!, try r("step.\(i).latent"), tolerance: 2e-3, "\(config) latent after step \(i)")
        }
        assertClose(final, try r("final_latent"), tolerance: 2e-3, "\(config) final latent")
    }

    func testNoBlendGammaOne() throws { try checkRun("gamma1", gamma: 1, sbc: true, lambdaZero: false) }
    func testBlendStageGammaHalfWithGivenNoise() throws { try checkRun("gamma05", gamma: 0.5, sbc: true, lambdaZero: false) }
    func testSemanticBoundaryControlOff() throws { try checkRun("sbc_off", gamma: 1, sbc: false, lambdaZero: false) }
    func testBackgroundLossOnlyLambdaZero() throws { try checkRun("lambda0", gamma: 1, sbc: true, lambdaZero: true) }

    /// The tiny SD 2 model predicts v: PILOT's x̂₀ (background loss) and the
    /// DDIM step must read the output as v. The fixture also records how far
    /// the final latent lands when v is taken for ε, so this cannot pass by
    /// accident.
    func testVPredictionModelRunsAsTheReferenceExtendedToV() throws {
        let ref = try SafeTensorsFile(path: Self.folder.appendingPathComponent("vpred_sd2.safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(ref, k) }
        let sd2 = try SDFixture("sd2").loadFolder()
        XCTAssertEqual(sd2.schedule.prediction, .vPrediction, "the SD 2 fixture's scheduler says v_prediction")
        let m = try InpaintingMasks(pixelMask: try r("input.pixel_mask"))
        XCTAssertEqual(m.keep.scalars, try r("input.K").scalars, "K by the nearest rule")
        let tokens = try r("input.word_tokens").scalars.enumerated().filter { $0.element > 0.5 }.map(\.offset)
        let sampler = PILOTSampler(unet: sd2.unet, schedule: sd2.schedule,
                                   parameters: parameters(gamma: 0.5, sbc: true, lambdaZero: false))
        var stepLatents: [Int: Tensor] = [:]
        sampler.onStep = { stepLatents[$0] = $1 }
        let blend = try (10..<20).reduce(into: [Int: Tensor]()) { $0[$1] = try r("input.blend_noise.\($1)") }
        let final = try sampler.run(noise: try r("input.x_T"), source: try r("input.z_src"), masks: m,
                                    positive: try r("input.prompt_embeds"), negative: try r("input.negative_prompt_embeds"),
                                    wordTokens: tokens, blendNoise: { blend[$0]! })
        for k in 0..<2 {
            for j in 0..<3 {
                let rec = sampler.records[k * 3 + j], p = "opt.\(k).iter.\(j)"
                let bg = try ref.floats("\(p).loss_bg")[0], total = try ref.floats("\(p).total")[0]
                XCTAssertEqual(rec.background, bg, accuracy: 1e-4 * abs(bg), "v-prediction \(p) L_bg (x̂₀ = √ᾱ·x − √(1−ᾱ)·v)")
                XCTAssertEqual(rec.total, total, accuracy: 1e-4 * abs(total), "v-prediction \(p) total loss")
            }
        }
        XCTAssertEqual(sampler.optimisedLatents.count, 2, "optimisation steps while t ≥ 500")
        for (k, x) in sampler.optimisedLatents.enumerated() {
            assertClose(x, try r("opt.\(k).x_after"), tolerance: 1e-3, "v-prediction latent after optimisation step \(k)")
        }
        for i in 0..<20 {
            assertClose(stepLatents[i]!, try r("step.\(i).latent"), tolerance: 2e-3, "v-prediction latent after step \(i)")
        }
        assertClose(final, try r("final_latent"), tolerance: 2e-3, "v-prediction final latent")
    }
}
