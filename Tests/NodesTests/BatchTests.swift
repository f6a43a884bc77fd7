import Diffusion
import Foundation
import Imaging
@testable import Nodes
import Tensors
import Workflow
import XCTest

/// `batch` on Sample and PILOTOptimize: N candidates in shared UNet calls,
/// candidate i being the run of seed + i, written by SaveImage as NAME-i
/// with the workflow of that one image.
final class BatchTests: XCTestCase {
    private static let tolerance: Float = 1e-4

    /// Row `k` of a latent batch.
    private func row(_ latent: Tensor, _ k: Int) -> [Float] {
        let size = latent.count / latent.dim(0)
        return Array(latent.scalars[(k * size)..<((k + 1) * size)])
    }

    private func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "compared \(a.count) values with \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// Asserts that each row of `batch` equals the single run of seed + row.
    private func assertRowsMatchSingleRuns(_ batch: Tensor, count: Int, _ what: String,
                                           single: (Int) throws -> Tensor) throws {
        XCTAssertEqual(batch.dim(0), count, "\(what): expected a latent with a row per candidate")
        for k in 0..<count {
            let alone = try single(k)
            XCTAssertEqual(alone.dim(0), 1, "\(what): a run without batch has one row")
            let difference = maxDifference(row(batch, k), alone.scalars)
            XCTAssertLessThanOrEqual(difference, Self.tolerance,
                                     "\(what): expected candidate \(k) of the batch to equal the run of seed + \(k) within 1e-4")
        }
    }

    /// PILOTOptimize (both stages run: coherence 0.5) and Blend.
    private func pilot(seed: Int, batch: Int, noiseSource: String = "ours", unet: String = "model.unet",
                       extra: String = "") throws -> Tensor {
        try Fixture.runLatent("""
            \(Fixture.workflowHead())
            \(Fixture.exampleSourceNodes)
            \(extra)
              pilot:   {type: PILOTOptimize, inputs: {unet: \(unet), conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 4, interval: 2, inner_steps: 2, coherence: 0.5, seed: \(seed), batch: \(batch), noise_source: \(noiseSource)}}
              blend:   {type: Blend, inputs: {state: pilot.state}}
            outputs:
              latent: blend.latent
            """)
    }

    func testPILOTBatchOfThreeEqualsThreeSingleRunsOfConsecutiveSeeds() throws {
        for source in ["ours", "torch-cpu"] {
            let batch = try pilot(seed: 11, batch: 3, noiseSource: source)
            try assertRowsMatchSingleRuns(batch, count: 3, "PILOT batch (\(source))") {
                try pilot(seed: 11 + $0, batch: 1, noiseSource: source)
            }
            XCTAssertGreaterThan(maxDifference(row(batch, 0), row(batch, 1)), 1e-3,
                                 "expected the candidates (\(source)) to differ from each other")
        }
    }

    func testPILOTBatchWithAControlNetAndAnIPAdapterMatchesSingleRuns() throws {
        let tiny = Fixture.tinyAdapters
        let examples = Fixture.repository.appendingPathComponent("Examples").path
        let adapters = """
              edges:   {type: CannyEdges, inputs: {image: picture.image}}
              cn:      {type: LoadControlNet, params: {path: \(tiny["controlnet"]!)}}
              ip:      {type: LoadIPAdapter, params: {path: \(tiny["ip_adapter"]!), image_encoder: \(tiny["image_encoder"]!)}}
              look:    {type: LoadImage, params: {path: "\(examples)/source.png"}}
              control: {type: ApplyControlNet, inputs: {unet: model.unet, control_net: cn.control_net, hint: edges.image}}
              both:    {type: ApplyIPAdapter, inputs: {unet: control.unet, ip_adapter: ip.ip_adapter, image: look.image}}
            """
        let batch = try pilot(seed: 4, batch: 2, unet: "both.unet", extra: adapters)
        try assertRowsMatchSingleRuns(batch, count: 2, "PILOT batch with ControlNet and IP-Adapter") {
            try pilot(seed: 4 + $0, batch: 1, unet: "both.unet", extra: adapters)
        }
    }

    func testABatchRunInGroupsEqualsOneCall() throws {
        let whole = try pilot(seed: 2, batch: 3)
        setenv("PILOT_BATCH_PER_CALL", "2", 1)
        defer { unsetenv("PILOT_BATCH_PER_CALL") }
        let grouped = try pilot(seed: 2, batch: 3)
        XCTAssertLessThanOrEqual(maxDifference(whole.scalars, grouped.scalars), Self.tolerance,
                                 "expected a batch of 3 run 2 + 1 per UNet call to equal the batch in one call")
    }

    /// Sample in its three modes.
    private func sample(_ params: String, seed: Int, batch: Int, inpaint: Bool = false, source: Bool = false) throws -> Tensor {
        let inputs = inpaint ? ", source: source.latent, mask: hole.mask" : source ? ", source: source.latent" : ""
        return try Fixture.runLatent("""
            \(Fixture.workflowHead())
            \(Fixture.exampleSourceNodes)
              sample:  {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning\(inputs)},
                        params: {steps: 3, width: 64, height: 64, seed: \(seed), batch: \(batch), \(params)}}
            outputs:
              latent: sample.latent
            """)
    }

    func testSampleBatchEqualsSingleRunsInEveryMode() throws {
        let cases: [(String, String, Bool, Bool)] = [
            ("text to image, Euler ancestral (per-step noise)", "scheduler: euler_a", false, false),
            ("text to image, DDIM η 0.5, torch-cpu noise", "scheduler: ddim, eta: 0.5, noise_source: torch-cpu", false, false),
            ("image to image, DPM++ 2M SDE Karras", "scheduler: dpmpp_2m_sde, sigmas: karras, strength: 0.6", false, true),
            ("blended inpainting", "scheduler: ddim", true, false),
        ]
        for (what, params, inpaint, source) in cases {
            let batch = try sample(params, seed: 21, batch: 2, inpaint: inpaint, source: source)
            try assertRowsMatchSingleRuns(batch, count: 2, what) {
                try sample(params, seed: 21 + $0, batch: 1, inpaint: inpaint, source: source)
            }
        }
    }

    func testSaveImageWritesEachCandidateWithTheWorkflowThatRemakesIt() throws {
        let folder = Fixture.temporaryFolder("batch-save")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("w.yaml")
        try """
            version: 1
            inputs:
              seed: {type: Int, default: 30}
            nodes:
              model:   {type: LoadCheckpoint, params: {path: "\(Fixture.tinyModel)"}}
              text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: a ball}}
            \(Fixture.exampleSourceNodes)
              pilot:   {type: PILOTOptimize, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 4, interval: 2, inner_steps: 1, coherence: 0.5, seed: $seed, batch: 3}}
              blend:   {type: Blend, inputs: {state: pilot.state}}
              decode:  {type: VAEDecode, inputs: {vae: model.vae, latent: blend.latent}}
              paste:   {type: CompositeMasked, inputs: {image: decode.image, source: picture.image, mask: hole.mask}}
              save:    {type: SaveImage, inputs: {image: paste.image}, params: {name: cand}}
            outputs: {image: paste.image}
            """.write(to: file, atomically: true, encoding: .utf8)
        let output = folder.appendingPathComponent("out")
        let runner = WorkflowRunner()
        let result = try runner.run(runner.validate(file), file: file, outputDirectory: output)
        let names = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
        XCTAssertEqual(names, ["cand-0.png", "cand-1.png", "cand-2.png"], "expected one PNG per candidate, NAME-i")
        XCTAssertEqual(result.files.map(\.name), names, "expected the run's result to list the files SaveImage wrote, in order")
        for written in result.files {
            let data = try Data(contentsOf: output.appendingPathComponent(written.name))
            XCTAssertEqual(written.sha256, Digest.sha256Hex(data), "expected the recorded SHA-256 of \(written.name) to be its bytes'")
            XCTAssertEqual(written.bytes, data.count, "expected the recorded size of \(written.name)")
            XCTAssertEqual(written.nodeID, "save", "expected the writing node recorded")
        }

        let pngs = try (0..<3).map { try PNG.read(path: output.appendingPathComponent("cand-\($0).png").path) }
        for (i, png) in pngs.enumerated() {
            XCTAssertEqual(png.text(forKey: "pilot:seed"), "\(30 + i)", "expected candidate \(i)'s seed, 30 + \(i)")
            XCTAssertEqual(png.text(forKey: "pilot:candidate"), #"{"count":3,"index":\#(i)}"#,
                           "expected candidate \(i) of 3 recorded")
            let embedded = try XCTUnwrap(png.text(forKey: "pilot:workflow"), "candidate \(i): the workflow")
            let graph = WorkflowParser.parse(embedded, file: "<png>").0
            XCTAssertEqual(graph.nodes["pilot"]?.params["batch"]?.source, .literal(.int(1)),
                           "expected candidate \(i)'s workflow to run one candidate")
            XCTAssertEqual(graph.inputs["seed"]?.defaultValue, .int(30 + i),
                           "expected the seed input (used only by the batched node) to default to 30 + \(i)")
        }
        XCTAssertNotEqual(pngs[0].image, pngs[1].image, "expected the candidates to differ")

        // Candidate 2's workflow, run alone, makes candidate 2's image.
        let elsewhere = Fixture.temporaryFolder("batch-rerun")
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        let recovered = elsewhere.appendingPathComponent("recovered.json")
        try XCTUnwrap(pngs[2].text(forKey: "pilot:workflow")).write(to: recovered, atomically: true, encoding: .utf8)
        let again = WorkflowRunner()
        _ = try again.run(again.validate(recovered), file: recovered, outputDirectory: elsewhere.appendingPathComponent("out"))
        let rerun = try PNG.read(path: elsewhere.appendingPathComponent("out/cand.png").path)
        let difference = zip(rerun.image.planes, pngs[2].image.planes).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThanOrEqual(difference, 1.5 / 255, "expected candidate 2's own workflow to remake its image (8-bit)")
    }

    func testBadBatchesAreRefusedWithTheReason() throws {
        // Given noise is one candidate's.
        let folder = Fixture.temporaryFolder("batch-errors")
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try Fixture.runLatent("""
            \(Fixture.workflowHead())
              first:   {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning}, params: {steps: 1, width: 64, height: 64}}
              sample:  {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning, latent: first.latent},
                        params: {steps: 1, batch: 2}}
            outputs: {latent: sample.latent}
            """)) { error in
            XCTAssertTrue("\(error)".contains("'latent'") && "\(error)".contains("batch is 2"),
                          "expected the error to name the port and the batch: \(error)")
        }
        // A batch into a node that takes one image.
        XCTAssertThrowsError(try Fixture.runLatent("""
            \(Fixture.workflowHead())
              sample:  {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                        params: {steps: 1, width: 64, height: 64, batch: 2}}
              decode:  {type: VAEDecode, inputs: {vae: model.vae, latent: sample.latent}}
              encode:  {type: VAEEncode, inputs: {vae: model.vae, image: decode.image}}
            outputs: {latent: encode.latent}
            """)) { error in
            XCTAssertTrue("\(error)".contains("expected one image, found a batch of 2"),
                          "expected the error to say the node takes one image: \(error)")
        }
        // Seeds past the largest.
        XCTAssertThrowsError(try sample("scheduler: ddim", seed: Int.max, batch: 2)) { error in
            XCTAssertTrue("\(error)".contains("largest seed"), "expected the error to name the seed range: \(error)")
        }
    }

    func testTheMemoryRuleTakesEveryCandidateThatFitsHalfTheMemory() {
        // 64×64 latent: 2.5 GiB per gradient candidate; 16 GiB → 8 GiB for the call → 3.
        XCTAssertEqual(BatchMemory.candidatesPerCall(memory: 16 << 30, cells: 4096, gradient: true), 3,
                       "expected ⌊8 GiB / 2.5 GiB⌋ candidates per gradient call")
        XCTAssertEqual(BatchMemory.candidatesPerCall(memory: 16 << 30, cells: 4096, gradient: false), 12,
                       "expected ⌊8 GiB / 0.625 GiB⌋ candidates per guided call")
        XCTAssertEqual(BatchMemory.candidatesPerCall(memory: 1 << 30, cells: 16384, gradient: true), 1,
                       "expected at least one candidate per call however little memory there is")
    }
}
