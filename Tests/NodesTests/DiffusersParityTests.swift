import Foundation
import Imaging
import Nodes
import SafeTensors
import Tensors
import Workflow
import XCTest

/// Whole workflows on the tiny SD 1.x fixture model against diffusers' own
/// pipeline runs (`Tests/Reference/make_sd_fixtures.py`,
/// `make_adapter_fixtures.py`): 3 DDIM steps, CFG 7.5, the prompt "a red fox
/// in the snow", the pipeline's initial latents given through LoadLatent,
/// the result written with SaveLatent and compared ≤ 1e-3 relative to the
/// largest reference value.
final class DiffusersParityTests: XCTestCase {
    static let fixtures = Fixture.repository.appendingPathComponent("Tests/Fixtures")
    static let sd1 = fixtures.appendingPathComponent("sd/sd1").path
    static let adapters = fixtures.appendingPathComponent("adapters")

    /// Writes `latent` as `folder/noise.safetensors` (key `latent`).
    private func writeNoise(_ latent: Tensor, in folder: URL) throws {
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: latent.shape, floats: latent.scalars)
        try writer.write(to: folder.appendingPathComponent("noise.safetensors").path)
    }

    /// Runs `yaml` in `folder` and reads back `out/result.safetensors`.
    private func runForLatent(_ yaml: String, in folder: URL, checkpoint: String = DiffusersParityTests.sd1) throws -> Tensor {
        let file = folder.appendingPathComponent("workflow.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        let output = folder.appendingPathComponent("out")
        _ = try runner.run(runner.validate(file), file: file, set: ["checkpoint": checkpoint], outputDirectory: output)
        let result = try SafeTensorsFile(path: output.appendingPathComponent("result.safetensors").path)
        return Tensor(shape: try result.info("latent").shape, values: try result.floats("latent"))
    }

    private func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        let scale = expected.scalars.map(abs).max() ?? 1
        let worst = zip(actual.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst / scale, 1e-3, "\(what): max relative error", file: file, line: line)
    }

    private static let textToImage = """
        version: 1
        inputs: {checkpoint: {type: Path}}
        nodes:
          model:  {type: LoadCheckpoint, params: {path: $checkpoint}}
          text:   {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: "a red fox in the snow"}}
          noise:  {type: LoadLatent, params: {path: noise.safetensors}}
          sample: {type: Sample, inputs: {unet: UNET, conditioning: text.conditioning, latent: noise.latent},
                   params: {steps: 3, cfg: 7.5, scheduler: ddim}}
          save:   {type: SaveLatent, inputs: {latent: sample.latent}, params: {name: result}}
        """

    /// The models issue's acceptance run: StableDiffusionPipeline, DDIM, as a workflow.
    func testTextToImageWorkflowReproducesDiffusersDDIM() throws {
        let reference = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("sd/sd1_reference.safetensors").path)
        let folder = Fixture.temporaryFolder("parity")
        try writeNoise(try Tensor(reference, "pipeline.latents_in"), in: folder)
        let latent = try runForLatent(Self.textToImage.replacingOccurrences(of: "UNET", with: "model.unet"), in: folder)
        assertClose(latent, try Tensor(reference, "pipeline.latents_out"), "txt2img latent after 3 DDIM steps")
    }

    /// StableDiffusionXLPipeline (`make_sdxl_fixtures.py`: 4 DDIM steps, CFG 5,
    /// empty negative prompt, 128×128) as the same nodes that serve SD 1.x:
    /// both text encoders, zero negative, pooled text and default size
    /// conditioning reach the UNet through TextEncode and Sample.
    func testSDXLTextToImageWorkflowReproducesDiffusersSDXLPipeline() throws {
        let reference = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("sdxl/sdxl_reference.safetensors").path)
        let folder = Fixture.temporaryFolder("parity-sdxl")
        try writeNoise(try Tensor(reference, "txt2img.noise"), in: folder)
        let yaml = Self.textToImage.replacingOccurrences(of: "UNET", with: "model.unet")
            .replacingOccurrences(of: "params: {steps: 3, cfg: 7.5, scheduler: ddim}", with: "params: {steps: 4, cfg: 5, scheduler: ddim}")
        XCTAssertTrue(yaml.contains("cfg: 5"), "the workflow was adapted to the SDXL reference settings")
        let latent = try runForLatent(yaml, in: folder, checkpoint: Self.fixtures.appendingPathComponent("sdxl/sdxl").path)
        assertClose(latent, try Tensor(reference, "txt2img.latent"), "SDXL txt2img latent after 4 DDIM steps")
    }

    /// StableDiffusionControlNetPipeline (control_guidance_end 1 and 0.5) as
    /// LoadControlNet → ApplyControlNet → Sample.
    func testControlNetWorkflowReproducesDiffusersControlNetPipeline() throws {
        let reference = try SafeTensorsFile(path: Self.adapters.appendingPathComponent("controlnet_reference.safetensors").path)
        let inputs = try SafeTensorsFile(path: Self.adapters.appendingPathComponent("inputs.safetensors").path)
        let folder = Fixture.temporaryFolder("parity-cn")
        try writeNoise(try Tensor(reference, "pipeline.latents_in"), in: folder)
        // The control image (multiples of 1/255, so 8-bit PNG holds it exactly).
        let hint = try Tensor(inputs, "cond_image").sliced(axis: 0, 0..<1)
        try PNG.write(try Image(width: hint.dim(3), height: hint.dim(2), planes: hint.scalars),
                      to: folder.appendingPathComponent("hint.png").path)
        for (end, prefix) in [(1.0, "pipeline"), (0.5, "pipeline_end05")] {
            let yaml = Self.textToImage.replacingOccurrences(of: "UNET", with: "control.unet") + """

                  cn:      {type: LoadControlNet, params: {path: \(Self.adapters.appendingPathComponent("controlnet").path)}}
                  hint:    {type: LoadImage, params: {path: hint.png}}
                  control: {type: ApplyControlNet, inputs: {unet: model.unet, control_net: cn.control_net, hint: hint.image},
                            params: {scale: 1.0, end: \(end)}}
                """
            let latent = try runForLatent(yaml, in: folder)
            assertClose(latent, try Tensor(reference, "\(prefix).latents_out"), "ControlNet pipeline (end \(end)) latent")
        }
    }
}
