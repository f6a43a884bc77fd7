import Foundation
@testable import Nodes
import Tensors
import Workflow
import XCTest

/// TextEncode's `embeddings` folder and long, weighted prompts in a workflow.
final class TextEncodeEmbeddingTests: XCTestCase {
    private func encode(_ prompt: String, embeddings: String?) throws -> ConditioningPayload {
        let folder = Fixture.temporaryFolder("ti")
        defer { try? FileManager.default.removeItem(at: folder) }
        let sd1 = Fixture.repository.appendingPathComponent("Tests/Fixtures/sd/sd1").path
        let file = folder.appendingPathComponent("w.yaml")
        try """
            version: 1
            nodes:
              model: {type: LoadCheckpoint, params: {path: "\(sd1)"}}
              text:  {type: TextEncode, inputs: {clip: model.clip},
                      params: {prompt: "\(prompt)"\(embeddings.map { ", embeddings: \"\($0)\"" } ?? "")}}
            outputs:
              conditioning: text.conditioning
            """.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        let result = try runner.run(runner.validate(file), file: file, outputDirectory: folder)
        return try XCTUnwrap(result.outputs["conditioning"]).asObject(ConditioningPayload.self)
    }

    func testAnEmbeddingFromTheFolderAndALongPromptReachTheConditioning() throws {
        let embeddings = Fixture.repository.appendingPathComponent("Tests/Fixtures/sd/embeddings").path
        let conditioning = try encode("a photo of (embedding:tiny:1.2) " + String(repeating: "fox, ", count: 40),
                                      embeddings: embeddings)
        XCTAssertEqual(conditioning.positive.shape, [1, 154, 6], "expected two chunks for 80+ tokens")
        XCTAssertEqual(conditioning.negative.shape, [1, 154, 6], "expected the negative extended to match")
        XCTAssertTrue(conditioning.wordTokens.contains { $0 > 77 }, "expected word tokens in the second chunk")
        XCTAssertFalse(conditioning.wordTokens.contains(77), "expected the second chunk's BOS not to count as a word")
        XCTAssertThrowsError(try encode("a embedding:tiny", embeddings: nil)) {
            XCTAssertTrue("\($0)".contains("'embeddings'"), "expected the missing folder parameter named: \($0)")
        }
        XCTAssertThrowsError(try encode("a embedding:absent", embeddings: embeddings)) {
            XCTAssertTrue("\($0)".contains("no file absent.safetensors"), "expected the missing file named: \($0)")
        }
    }

    func testPILOTRunsWithATwoChunkWeightedPrompt() throws {
        let long = "(a red ball:1.3), " + String(repeating: "on a wooden table, ", count: 20)
        let latent = try Fixture.runLatent("""
            \(Fixture.workflowHead(prompt: "\"\(long)\""))
            \(Fixture.exampleSourceNodes)
              pilot:   {type: PILOTOptimize, inputs: {unet: model.unet, conditioning: text.conditioning, source: source.latent, mask: hole.mask},
                        params: {steps: 2, interval: 1, inner_steps: 1, seed: 3}}
              blend:   {type: Blend, inputs: {state: pilot.state}}
            outputs:
              latent: blend.latent
            """)
        XCTAssertTrue(latent.scalars.allSatisfy(\.isFinite), "expected a finite latent from a 154-token context")
    }
}
