@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// PILOT on the tiny SDXL fixture model: its objective's latent gradient
/// (through added conditioning, SBC and the captured attention of every
/// SDXL cross-attention layer) against central finite differences.
final class SDXLPILOTTests: XCTestCase {
    /// `Tests/Reference/pilot_reference.py`'s PILOT (float64 PyTorch)
    /// extended to SDXL and run on the tiny SDXL model: γ 0.5, 20 DDIM steps,
    /// τ 5, K 3, all 28 cross-attention layers in L_sc, pooled text and time
    /// ids in every UNet call, zero negative. The reference records that each
    /// wiring mistake of the added conditioning moves the final latent by
    /// more than 10× the tolerance below.
    func testPILOTOnSDXLMatchesTheReferenceExtendedToSDXL() throws {
        let ref = try SafeTensorsFile(path: PILOTParityTests.folder.appendingPathComponent("sdxl.safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(ref, k) }
        let model = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        let prompts = try model.promptEncoder().encode(prompt: "a red fox in the snow", negative: "")
        XCTAssertEqual(prompts.positive.tokens.ids.map(Float.init), try r("input.prompt_ids").scalars, "the reference's prompt ids")
        assertClose(prompts.positive.embedding, try r("input.prompt_embeds"), tolerance: 1e-4, "prompt embeddings")
        assertClose(prompts.positive.pooled!, try r("input.pooled_prompt_embeds"), tolerance: 1e-4, "pooled embedding")
        let masks = try InpaintingMasks(pixelMask: try r("input.pixel_mask"))
        XCTAssertEqual(masks.keep.scalars, try r("input.K").scalars, "K by the nearest rule")
        let tokens = try r("input.word_tokens").scalars.enumerated().filter { $0.element > 0.5 }.map(\.offset)
        XCTAssertEqual(tokens, prompts.positive.tokens.wordTokenIndices, "word tokens")

        var parameters = PILOTParameters()
        parameters.steps = 20
        parameters.interval = 5
        parameters.innerSteps = 3
        parameters.coherence = 0.5
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: parameters)
        let ids = try r("input.time_ids")
        sampler.added = PromptPair(negative: AddedConditioning(textEmbeds: try r("input.negative_pooled_prompt_embeds"), timeIds: ids),
                                   positive: AddedConditioning(textEmbeds: try r("input.pooled_prompt_embeds"), timeIds: ids))
        var stepLatents: [Int: Tensor] = [:]
        sampler.onStep = { stepLatents[$0] = $1 }
        let blend = try (10..<20).reduce(into: [Int: Tensor]()) { $0[$1] = try r("input.blend_noise.\($1)") }
        let final = try sampler.run(noise: try r("input.x_T"), source: try r("input.z_src"), masks: masks,
                                    positive: try r("input.prompt_embeds"), negative: try r("input.negative_prompt_embeds"),
                                    wordTokens: tokens, blendNoise: { blend[$0]! })
        XCTAssertEqual(sampler.records.count, 6, "two optimisation steps (t ≥ 500) of three iterations")
        for k in 0..<2 {
            for j in 0..<3 {
                let rec = sampler.records[k * 3 + j], p = "opt.\(k).iter.\(j)"
                XCTAssertEqual(rec.layerTerms.count, 28, "\(p): every SDXL cross-attention layer is a loss layer")
                let bg = try ref.floats("\(p).loss_bg")[0], sc = try ref.floats("\(p).loss_sc")[0]
                let total = try ref.floats("\(p).total")[0]
                XCTAssertEqual(rec.background, bg, accuracy: 1e-4 * abs(bg), "\(p) L_bg")
                XCTAssertEqual(rec.centralisation, sc, accuracy: 1e-4 * max(abs(sc), 1e-3), "\(p) L_sc")
                XCTAssertEqual(rec.total, total, accuracy: 1e-4 * abs(total), "\(p) total loss")
            }
        }
        for (k, x) in sampler.optimisedLatents.enumerated() {
            assertClose(x, try r("opt.\(k).x_after"), tolerance: 1e-3, "SDXL latent after optimisation step \(k)")
        }
        for i in 0..<20 {
            assertClose(stepLatents[i]!, try r("step.\(i).latent"), tolerance: 2e-3, "SDXL latent after step \(i)")
        }
        assertClose(final, try r("final_latent"), tolerance: 2e-3, "SDXL final latent")
    }

    /// ∂L/∂x at the first optimisation iteration equals the reference's.
    func testSDXLObjectiveGradientMatchesTheReference() throws {
        let ref = try SafeTensorsFile(path: PILOTParityTests.folder.appendingPathComponent("sdxl.safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(ref, k) }
        let model = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        var parameters = PILOTParameters()
        parameters.steps = 20
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: parameters)
        let ids = try r("input.time_ids")
        sampler.added = PromptPair(negative: AddedConditioning(textEmbeds: try r("input.negative_pooled_prompt_embeds"), timeIds: ids),
                                   positive: AddedConditioning(textEmbeds: try r("input.pooled_prompt_embeds"), timeIds: ids))
        let tokens = try r("input.word_tokens").scalars.enumerated().filter { $0.element > 0.5 }.map(\.offset)
        let masks = try InpaintingMasks(pixelMask: try r("input.pixel_mask"))
        let state = try sampler.start(noise: try r("input.x_T"), source: try r("input.z_src"), masks: masks,
                                      positive: try r("input.prompt_embeds"), negative: try r("input.negative_prompt_embeds"),
                                      wordTokens: tokens)
        let t = state.scheduler.integerTimesteps[0]
        let lambda = try ref.floats("opt.0.iter.0.lambda")[0]
        let tape = Tape()
        let xw = tape.watch(state.latent)
        let objective = try sampler.objective(xw, state: state, step: 0, timestep: t, lambda: lambda, control: state.control)
        let g = try tape.gradient(of: objective.total, wrt: [xw])[0]
        assertClose(g, try r("opt.0.iter.0.grad"), tolerance: 1e-4, "SDXL ∂L/∂x at the first iteration")
    }

    func testObjectiveGradientOnSDXLPassesFiniteDifferences() throws {
        let model = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        let prompts = try model.promptEncoder().encode(prompt: "a red ball", negative: "")
        var pixels = [Float](repeating: 0, count: 128 * 128)
        for y in 40..<96 { for x in 32..<88 { pixels[y * 128 + x] = 1 } }
        let masks = try InpaintingMasks(pixelMask: Tensor(shape: [128, 128], values: pixels))
        var random = SplitMix64(seed: 2024)
        let noise = Tensor.randn([1, 4, 16, 16], using: &random)
        let source = Tensor.randn([1, 4, 16, 16], using: &random) * 0.5
        let ids = AddedConditioning.timeIds(originalSize: (128, 128), targetSize: (128, 128))

        var parameters = PILOTParameters()
        parameters.steps = 20
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: parameters)
        sampler.added = PromptPair(negative: AddedConditioning(textEmbeds: prompts.negative.pooled!, timeIds: ids),
                                   positive: AddedConditioning(textEmbeds: prompts.positive.pooled!, timeIds: ids))
        let state = try sampler.start(noise: noise, source: source, masks: masks, positive: prompts.positive.embedding,
                                      negative: prompts.negative.embedding,
                                      wordTokens: prompts.positive.tokens.wordTokenIndices)
        let t = state.scheduler.integerTimesteps[2]
        let lambda = PILOTLoss.lambda(timestep: t, scale: parameters.coef * Float(masks.keepCount) / parameters.coefNormaliser)
        func loss(_ x: Tensor) throws -> PILOTObjective {
            try sampler.objective(x, state: state, step: 2, timestep: t, lambda: lambda, control: state.control)
        }

        let tape = Tape()
        let xw = tape.watch(state.latent)
        let objective = try loss(xw)
        XCTAssertGreaterThan(objective.layerTerms.count, 0, "the SDXL UNet's cross-attention layers are captured")
        XCTAssertNotNil(objective.centralisation, "a hole gives a centralisation term")
        let g = try tape.gradient(of: objective.total, wrt: [xw])[0].scalars
        let scale = g.map(abs).max()!
        XCTAssertGreaterThan(scale, 0, "the gradient is not zero")
        let x = state.latent.scalars
        for j in [5, 300, 517, 900] {
            var xp = x, xm = x
            let h: Float = 1e-2
            xp[j] += h; xm[j] -= h
            let lp = try loss(Tensor(shape: state.latent.shape, values: xp)).total.item
            let lm = try loss(Tensor(shape: state.latent.shape, values: xm)).total.item
            let numeric = (lp - lm) / (2 * h)
            XCTAssertEqual(numeric, g[j], accuracy: 2e-2 * max(abs(g[j]), scale * 0.05),
                           "coordinate \(j): finite difference \(numeric) vs autograd \(g[j])")
        }
    }
}
