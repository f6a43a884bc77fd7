import Diffusion
import Foundation
@testable import Nodes
import SafeTensors
import Tensors
import Workflow
import XCTest

/// The sampling nodes' `noise_source`: torch's generators behind the seed.
final class NoiseSourceTests: XCTestCase {
    /// Euler text to image (no per-step noise): `noise_source` only chooses the initial latent.
    private func txt2img(_ params: String, latentFile: String? = nil) throws -> Tensor {
        try Fixture.runLatent("""
            \(Fixture.workflowHead())
            \(latentFile.map { "  given: {type: LoadLatent, params: {path: \"\($0)\"}}\n" } ?? "")\
              sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning\(latentFile == nil ? "" : ", latent: given.latent")},
                       params: {steps: 3, width: 64, height: 64, scheduler: euler, \(params)}}
            outputs:
              latent: sample.latent
            """)
    }

    func testTorchCPUSourceStartsFromTorchRandnOfTheSeed() throws {
        let seed = 42
        var generator = TorchCPUGenerator(seed: UInt64(seed))
        let expected = generator.randnTensor([1, 4, 8, 8])
        var writer = SafeTensorsWriter()
        try writer.add("latent", shape: expected.shape, floats: expected.scalars)
        let folder = Fixture.temporaryFolder("noise-given")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("noise.safetensors").path
        try writer.write(to: path)
        let torch = try txt2img("seed: \(seed), noise_source: torch-cpu")
        XCTAssertEqual(torch.scalars, try txt2img("seed: 7", latentFile: path).scalars,
                       "expected noise_source torch-cpu to equal a run given torch.randn([1,4,8,8]) of seed 42")
        XCTAssertNotEqual(torch.scalars, try txt2img("seed: \(seed)").scalars, "expected ours to differ from torch's")
        XCTAssertNotEqual(torch.scalars, try txt2img("seed: \(seed), noise_source: torch-cuda").scalars,
                          "expected the CUDA generator to differ from the CPU one")
    }

    func testTorchSourceInitialNoiseMatchesTheTorchFixture() throws {
        // The node path draws the same bytes as torch.randn([1,4,64,64]) after manual_seed(42):
        // the fixture's fingerprint (TorchNoiseTests checks the generator itself).
        var source = NoiseSource(kind: .torchCPU, seed: 42)
        let tensor = source.initial([1, 4, 64, 64])
        let data = tensor.scalars.withUnsafeBytes { Data($0) }
        let url = Fixture.repository.appendingPathComponent("Tests/Fixtures/noise/torch_randn.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let entries = try XCTUnwrap(json["entries"] as? [[String: Any]])
        let entry = try XCTUnwrap(entries.first {
            $0["mode"] as? String == "torch-cpu-avx2" && $0["seed"] as? String == "42"
                && ($0["shapes"] as? [[Int]]) == [[1, 4, 64, 64]]
        }, "expected a torch-cpu-avx2 entry for seed 42, shape [1,4,64,64]")
        XCTAssertEqual(Digest.sha256Hex(data), entry["sha256"] as? String,
                       "expected the node's torch-cpu noise to hash like torch.randn's bytes")
    }

    func testTorchStepNoiseContinuesTheStreamAndIsStablePerStep() throws {
        var source = NoiseSource(kind: .torchCPU, seed: 5)
        _ = source.initial([1, 4, 8, 8])
        let steps = source.steps(stream: SeededNoise.blendStream, shape: [1, 4, 8, 8])
        var reference = TorchCPUGenerator(seed: 5)
        _ = reference.randn([1, 4, 8, 8])
        let first = reference.randn([1, 4, 8, 8]), second = reference.randn([1, 4, 8, 8])
        XCTAssertEqual(steps(10).scalars, first, "expected the first step asked for to take torch's second draw")
        XCTAssertEqual(steps(10).scalars, first, "expected a step asked again to give the same tensor")
        XCTAssertEqual(steps(11).scalars, second, "expected the next step to continue the stream")
        let again = source.steps(stream: SeededNoise.blendStream, shape: [1, 4, 8, 8])
        XCTAssertEqual(again(10).scalars, first, "expected a second run on the same state (a cached Blend) to draw the same noise")
    }

    func testPILOTWithTorchNoiseRunsAndBlendRerunsIdentically() throws {
        func pilot(_ source: String) throws -> Tensor {
            try Fixture.runLatent("""
                \(Fixture.workflowHead())
                \(Fixture.exampleSourceNodes)
                  pilot:   {type: PILOTOptimize, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                            params: {steps: 4, interval: 2, inner_steps: 1, coherence: 0.5, seed: 3, noise_source: \(source)}}
                  blend:   {type: Blend, inputs: {state: pilot.state}}
                outputs:
                  latent: blend.latent
                """)
        }
        let torch = try pilot("torch-cpu")
        XCTAssertEqual(torch.scalars, try pilot("torch-cpu").scalars, "expected a torch-cpu PILOT run to be reproducible")
        XCTAssertNotEqual(torch.scalars, try pilot("ours").scalars, "expected torch-cpu noise to differ from ours")
        XCTAssertThrowsError(try pilot("torch-mps")) { error in
            XCTAssertTrue("\(error)".contains("noise_source"), "expected the bad choice to name the parameter: \(error)")
        }
    }
}
