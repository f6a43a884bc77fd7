@testable import Diffusion
import Foundation
import Tensors
import XCTest

/// PILOT on the tiny SDXL fixture model: its objective's latent gradient
/// (through added conditioning, SBC and the captured attention of every
/// SDXL cross-attention layer) against central finite differences.
final class SDXLPILOTTests: XCTestCase {
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
