@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// A PILOT run with LoRA (kohya, merged), ControlNet and IP-Adapter together,
/// against `pilot_reference.py`'s `adapters` configuration (float64, γ 0.8,
/// 20 steps, τ 5, 3 inner steps), and a finite-difference check of ∂L/∂x
/// through the UNet and the ControlNet.
final class PILOTAdapterParityTests: XCTestCase {
    let pilotFolder = PILOTParityTests.folder
    let adapterFolder = AdapterParityTests.folder

    func setUp(_ body: (StableDiffusionModel, AdapterStack, SafeTensorsFile, SafeTensorsFile, InpaintingMasks,
                        (Tensor, Tensor), [Int]) throws -> Void) throws {
        let inputs = try SafeTensorsFile(path: pilotFolder.appendingPathComponent("inputs.safetensors").path)
        let ref = try SafeTensorsFile(path: pilotFolder.appendingPathComponent("adapters.safetensors").path)
        let adapterInputs = try SafeTensorsFile(path: adapterFolder.appendingPathComponent("inputs.safetensors").path)
        let lora = try LoRA.load(path: adapterFolder.appendingPathComponent("lora_kohya.safetensors").path)
        let model = try StableDiffusionModel.load(path: SDFixture("sd1").folder, loras: [(lora, 1)])
        let tok = try model.tokenizer()
        let positive = try model.encode(prompt: "a red fox in the snow", tokenizer: tok)
        let negative = try model.encode(prompt: "", tokenizer: tok).embedding
        assertClose(positive.embedding, try Tensor(ref, "prompt_embeds"), tolerance: 1e-4, "LoRA-merged prompt embedding")
        assertClose(negative, try Tensor(ref, "negative_prompt_embeds"), tolerance: 1e-4, "LoRA-merged negative embedding")

        let stack = AdapterStack()
        let cn = try ControlNetModel.load(path: adapterFolder.appendingPathComponent("controlnet").path)
        stack.controlNets = [.init(model: cn, hint: try Tensor(adapterInputs, "cond_image").sliced(axis: 0, 0..<1), scale: 1)]
        let encoder = try CLIPVisionModel.load(folder: adapterFolder.appendingPathComponent("image_encoder").path)
        let pixels = CLIPImagePreprocessing.pixelValues((try Tensor(adapterInputs, "ip_source_image") * (1 / 255)).permuted([2, 0, 1]))
        let embeds = try encoder.imageEmbeds(pixels)
        assertClose(embeds, try Tensor(ref, "ip_image_embeds"), tolerance: 1e-4, "IP image embeds")
        let ip = try IPAdapter(path: adapterFolder.appendingPathComponent("ip_adapter.safetensors").path, unet: model.unet,
                               imageEmbedDim: encoder.config.projectionDim)
        stack.imagePrompt = (ip, embeds, 0.6)
        let masks = try InpaintingMasks(pixelMask: try Tensor(inputs, "pixel_mask"))
        try body(model, stack, inputs, ref, masks, (positive.embedding, negative), positive.tokens.wordTokenIndices)
    }

    func testPILOTWithLoRAControlNetAndIPAdapterMatchesTheReference() throws {
        try setUp { model, stack, inputs, ref, masks, embeds, tokens in
            var p = PILOTParameters()
            p.steps = 20; p.interval = 5; p.innerSteps = 3; p.coherence = 0.8
            let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: p)
            sampler.adapters = stack
            var latents: [Int: Tensor] = [:]
            sampler.onStep = { latents[$0] = $1 }
            let blend = try (16..<20).reduce(into: [Int: Tensor]()) { $0[$1] = try Tensor(inputs, "blend_noise.\($1)") }
            let final = try sampler.run(noise: try Tensor(inputs, "x_T"), source: try Tensor(inputs, "z_src"), masks: masks,
                                        positive: embeds.0, negative: embeds.1, wordTokens: tokens, blendNoise: { blend[$0]! })
            for k in 0..<2 {
                for j in 0..<3 {
                    let rec = sampler.records[k * 3 + j], key = "opt.\(k).iter.\(j)"
                    let bg = try ref.floats("\(key).loss_bg")[0], total = try ref.floats("\(key).total")[0]
                    XCTAssertEqual(rec.background, bg, accuracy: 1e-4 * abs(bg), "\(key) L_bg")
                    XCTAssertEqual(rec.total, total, accuracy: 1e-4 * abs(total), "\(key) total loss")
                    let out = try ref.floats("\(key).loss_sc_out"), inn = try ref.floats("\(key).loss_sc_in")
                    let scale = max(out.map(abs).max()!, inn.map(abs).max()!)
                    XCTAssertEqual(rec.centralisation, try ref.floats("\(key).loss_sc")[0], accuracy: 1e-4 * scale, "\(key) L_sc")
                }
            }
            XCTAssertEqual(sampler.optimisedLatents.count, 4, "γ 0.8: optimisation at i = 0, 5, 10, 15")
            for (k, x) in sampler.optimisedLatents.enumerated() {
                assertClose(x, try Tensor(ref, "opt.\(k).x_after"), tolerance: 1e-3, "latent after optimisation step \(k)")
            }
            for i in 0..<20 { assertClose(latents[i]!, try Tensor(ref, "step.\(i).latent"), tolerance: 2e-3, "latent after step \(i)") }
            assertClose(final, try Tensor(ref, "final_latent"), tolerance: 2e-3, "final latent")
        }
    }

    func testGradientThroughUNetAndControlNetPassesFiniteDifferences() throws {
        try setUp { model, stack, inputs, ref, masks, embeds, tokens in
            let schedule = DDIMScheduler(config: model.schedule, steps: 20)
            let t = schedule.integerTimesteps[0], a = schedule.alphaCumprod(t)
            let lambda = PILOTLoss.lambda(timestep: t, scale: 150 * Float(masks.keepCount) / 1499)
            let source = try Tensor(inputs, "z_src")
            func loss(_ x: Tensor) throws -> Tensor {
                let control = PILOTAttentionControl(masks: masks)
                control.capturing = true
                let cond = try stack.conditioning(x: x, timestep: Float(t), step: 0, steps: 20, context: embeds.0,
                                                  attentionControl: control, guided: false)
                let eps = try model.unet(x, timesteps: [Float(t)], conditioning: cond)
                let x0 = (x - eps * (1 - a).squareRoot()) / a.squareRoot()
                var sc: Tensor?
                for (_, p) in control.captured {
                    if let term = PILOTLoss.centralisationTerm(probabilities: p, hole: masks.hole[p.dim(2)]!, wordTokens: tokens) {
                        sc = sc.map { $0 + term } ?? term
                    }
                }
                return PILOTLoss.background(reconstruction: x0, source: source, keep: masks.keep)
                    + sc! * (lambda / Float(control.captured.count))
            }
            let x = try Tensor(inputs, "x_T")
            let tape = Tape()
            let xw = tape.watch(x)
            let g = try tape.gradient(of: try loss(xw), wrt: [xw])[0]
            assertClose(g, try Tensor(ref, "opt.0.iter.0.grad"), tolerance: 1e-4, "∂L/∂x with LoRA + ControlNet + IP-Adapter")
            // Central differences on a few coordinates (L is a sum over thousands of terms:
            // ε = 1e-2 keeps Float32 rounding of L, ~1e-7·|L|/ε, near 1e-3 of a typical gradient).
            let gs = g.scalars
            var rng = SplitMix64(seed: 77)
            for _ in 0..<4 {
                let j = Int(rng.nextUInt64() % UInt64(x.count))
                var xp = x.scalars, xm = x.scalars
                xp[j] += 1e-2; xm[j] -= 1e-2
                let lp = try loss(Tensor(shape: x.shape, values: xp)).item, lm = try loss(Tensor(shape: x.shape, values: xm)).item
                let numeric = (lp - lm) / 2e-2
                XCTAssertEqual(numeric, gs[j], accuracy: 2e-2 * max(abs(gs[j]), gs.map(abs).max()! * 0.05),
                               "coordinate \(j): finite difference \(numeric) vs autograd \(gs[j])")
            }
        }
    }
}
