import Diffusion
import Foundation
import Imaging
@testable import Nodes
import SafeTensors
import Tensors
import Workflow
import XCTest

/// Blend's recorded-noise input: a run reproduced from the noise it drew.
final class RecordedBlendNoiseTests: XCTestCase {
    private func run(noiseFile: String?) throws -> Tensor {
        try Fixture.runLatent("""
            \(Fixture.workflowHead())
            \(Fixture.exampleSourceNodes)
              pilot:   {type: PILOTOptimize, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 6, interval: 2, inner_steps: 1, coherence: 0.5, seed: 3}}
            \(noiseFile.map { "  recorded: {type: LoadLatent, params: {path: \"\($0)\"}}\n" } ?? "")\
              blend:   {type: Blend, inputs: {state: pilot.state\(noiseFile == nil ? "" : ", noise: recorded.latent")}}
            outputs:
              latent: blend.latent
            """)
    }

    /// Writes `steps` slices of noise to a LoadLatent file.
    private func noiseFile(_ slices: [Tensor]) throws -> String {
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: [slices.count] + slices[0].shape, floats: slices.flatMap(\.scalars))
        let path = Fixture.temporaryFolder("noise").appendingPathComponent("noise.safetensors").path
        try writer.write(to: path)
        return path
    }

    func testTheSeededNoiseRecordedAndGivenBackRemakesTheRun() throws {
        let seeded = try run(noiseFile: nil)
        let schedule = try StableDiffusionModel.load(path: Fixture.tinyModel).schedule
        let timesteps = DDIMScheduler(config: schedule, steps: 6).integerTimesteps
        let first = timesteps.filter { Float($0) >= 500 }.count  // the optimisation stage's steps
        let shape = [1, 4, seeded.dim(2), seeded.dim(3)]
        let draw = NoiseSource(kind: .ours, seed: 3).steps(stream: SeededNoise.blendStream, shape: shape)
        let recorded = try noiseFile((first..<6).map(draw))
        XCTAssertEqual(try run(noiseFile: recorded).scalars, seeded.scalars, "expected the recorded noise to remake the run exactly")
        let zeros = try noiseFile((first..<6).map { _ in Tensor.zeros(shape) })
        XCTAssertNotEqual(try run(noiseFile: zeros).scalars, seeded.scalars, "expected other noise to change it")
        let short = try noiseFile([Tensor.zeros(shape)])
        XCTAssertThrowsError(try run(noiseFile: short)) { error in
            XCTAssertTrue("\(error)".contains("with k ≥ \(6 - first)"), "expected the needed count named: \(error)")
        }
    }
}
