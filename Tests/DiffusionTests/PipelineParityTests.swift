import Diffusion
import Tensors
import XCTest

/// A full text-to-image run through diffusers' StableDiffusionPipeline
/// (3 DDIM steps, CFG 7.5, given initial latents) against ours: prompt
/// embeddings from our tokenizer and text encoder, latents after every step
/// ≤ 1e-3 relative, decoded image ≤ 2/255 per pixel.
final class PipelineParityTests: XCTestCase {
    func run(_ v: String) throws {
        let fx = try SDFixture(v)
        let model = try fx.loadFolder()
        let tokenizer = try model.tokenizer()
        let positive = try model.encode(prompt: "a red fox in the snow", tokenizer: tokenizer).embedding
        let negative = try model.encode(prompt: "", tokenizer: tokenizer).embedding
        assertClose(positive, try fx.tensor("pipeline.prompt_embeds"), tolerance: 1e-4, "\(v) prompt embedding")
        assertClose(negative, try fx.tensor("pipeline.negative_prompt_embeds"), tolerance: 1e-4, "\(v) negative embedding")

        var scheduler = DDIMScheduler(config: model.schedule, steps: 3)
        XCTAssertEqual(scheduler.timesteps, try fx.floats("pipeline.timesteps"), "\(v) pipeline timesteps")
        let sampler = GuidedSampler(unet: model.unet, guidanceScale: 7.5)
        let latents = try sampler.run(scheduler: &scheduler, noise: try fx.tensor("pipeline.latents_in"),
                                      positive: positive, negative: negative)
        // Step-by-step comparison, replaying the loop to see where any drift starts.
        var s2 = DDIMScheduler(config: model.schedule, steps: 3)
        var x = try fx.tensor("pipeline.latents_in")
        for i in 0..<3 {
            let out = try sampler.guidedOutput(x, timestep: s2.timesteps[i], positive: positive, negative: negative)
            x = s2.step(out, step: i, sample: x, noise: nil)
            assertClose(x, try fx.tensor("pipeline.step.\(i).latents"), tolerance: 1e-3, "\(v) latents after step \(i)")
        }
        assertClose(latents, try fx.tensor("pipeline.latents_out"), tolerance: 1e-3, "\(v) final latents")

        let image = try model.vae.decodeToImage(scaledLatent: latents)          // [1, 3, H, W]
        let expected = try fx.tensor("pipeline.image").permuted([0, 3, 1, 2])     // NHWC → NCHW
        let maxDiff = zip(image.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(maxDiff, 2.0 / 255, "\(v) decoded image: expected ≤ 2/255 per pixel, got \(maxDiff * 255)/255")
    }

    func testSD1TextToImageMatchesDiffusers() throws { try run("sd1") }
    func testSD2VPredictionTextToImageMatchesDiffusers() throws { try run("sd2") }

    func testProgressHandlerCancels() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        var scheduler = DDIMScheduler(config: model.schedule, steps: 3)
        let ctx = try fx.tensor("pipeline.prompt_embeds")
        var seen: [Int] = []
        XCTAssertThrowsError(try GuidedSampler(unet: model.unet).run(
            scheduler: &scheduler, noise: try fx.tensor("pipeline.latents_in"), positive: ctx, negative: ctx, progress: { p in
                seen.append(p.step)
                return p.step < 2
            }), "returning false from the progress handler must cancel") { XCTAssertTrue($0 is CancelledError) }
        XCTAssertEqual(seen, [1, 2], "cancel takes effect at the step boundary")
    }
}
