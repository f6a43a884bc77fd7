@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// Long prompts, emphasis weights and textual inversion against
/// `Tests/Reference/make_prompt_weight_fixture.py` (AUTOMATIC1111's rule on
/// the tiny SD 1.x and SDXL text encoders).
final class PromptWeightTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures").standardized

    private func check(family folder: String, model path: String) throws {
        let root = Self.fixtures.appendingPathComponent(folder)
        let reference = try SafeTensorsFile(path: root.appendingPathComponent("prompt_weights.safetensors").path)
        let model = try StableDiffusionModel.load(path: root.appendingPathComponent(path).path)
        let encoder = try model.promptEncoder()
        let tiny = try TextualInversion.load(path: root.appendingPathComponent("embeddings/tiny.safetensors").path,
                                             name: "tiny", encoders: encoder.encoders)
        var index = 0
        while let prompt = reference.metadata["case.\(index).prompt"] {
            let expected = try reference.floats("case.\(index).embedding")
            let shape = try reference.info("case.\(index).embedding").shape
            let encoded = try encoder.encode(prompt, embeddings: [tiny])
            XCTAssertEqual(encoded.embedding.shape, shape, "\(folder) case \(index) '\(prompt.prefix(40))': expected shape \(shape)")
            if encoded.embedding.shape == shape {
                let worst = zip(encoded.embedding.scalars, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(folder) case \(index) '\(prompt.prefix(40))': expected the reference states")
            }
            XCTAssertEqual(encoded.wordTokenIndices, try reference.int64s("case.\(index).words").map { Int($0) },
                           "\(folder) case \(index): expected the reference's word-token positions across chunks")
            if reference.contains("case.\(index).pooled") {
                let pooled = try XCTUnwrap(encoded.pooled, "\(folder) case \(index): expected a pooled embedding")
                let worst = zip(pooled.scalars, try reference.floats("case.\(index).pooled")).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(folder) case \(index): expected the first chunk's pooled embedding")
            }
            index += 1
        }
        XCTAssertEqual(index, 8, "expected the fixture's 8 cases")
    }

    func testSD1PromptsMatchTheA1111Rule() throws {
        try check(family: "sd", model: "sd1")
    }

    func testSDXLPromptsMatchTheA1111Rule() throws {
        try check(family: "sdxl", model: "sdxl")
    }

    func testEmphasisSyntax() {
        typealias F = PromptEmphasis.Fragment
        func weights(_ prompt: String) -> [String] {
            PromptEmphasis.parse(prompt).map {
                switch $0 {
                case let .text(text, weight): String(format: "%@:%.4f", text, weight)
                case .chunkBreak: "BREAK"
                }
            }
        }
        XCTAssertEqual(weights("a (b) c"), ["a :1.0000", "b:1.1000", " c:1.0000"])
        XCTAssertEqual(weights("((b))"), ["b:1.2100"], "expected nested brackets to multiply")
        XCTAssertEqual(weights("[b]"), ["b:0.9091"])
        XCTAssertEqual(weights("(b:1.5) (c : 0.25 )"), ["b:1.5000", " :1.0000", "c :0.2500"])
        XCTAssertEqual(weights("\\(b\\) a:b"), ["(b) a:b:1.0000"], "expected escaped brackets and a plain colon as text")
        XCTAssertEqual(weights("b) c]"), ["b) c]:1.0000"], "expected unopened closers as text")
        XCTAssertEqual(weights("(b [c"), ["b :1.1000", "c:1.0000"], "expected unclosed brackets to reach the end")
        XCTAssertEqual(weights("a BREAK b"), ["a:1.0000", "BREAK", "b:1.0000"])
        XCTAssertEqual(weights("aBREAK b"), ["aBREAK b:1.0000"], "expected BREAK only as a word")
        XCTAssertEqual(weights(""), [":1.0000"])
        XCTAssertEqual(weights("(b:1.2.3)"), ["b:1.2.3:1.1000"], "expected a malformed number to be text")
        // Depth costs no recursion: 100,000 nested brackets parse in one pass.
        let deep = String(repeating: "(", count: 100_000) + "x" + String(repeating: ")", count: 100_000)
        XCTAssertEqual(PromptEmphasis.parse(deep).count, 1)
    }

    func testLongPromptsChunkWithCommaBacktrackAndEmbeddingsStayWhole() throws {
        let tokenizer = try CLIPTokenizer.bundled()
        let chunker = PromptChunker(tokenizer: tokenizer, padding: .endToken)
        // 70 words, a comma, 10 words: the chunk fills at 75 with the comma 5 back → break after it.
        let prompt = Array(repeating: "fox", count: 70).joined(separator: " ") + ", " + Array(repeating: "cat", count: 10).joined(separator: " ")
        let chunks = try chunker.chunks(prompt, maxChunks: 4, embedding: { _ in nil })
        XCTAssertEqual(chunks.count, 2)
        XCTAssertEqual(chunks[0].content.count, 71, "expected the first chunk to end at the comma")
        XCTAssertEqual(chunks[1].content.count, 10)
        XCTAssertEqual(chunks.map(\.ids.count), [77, 77])
        let fox = try XCTUnwrap(tokenizer.id(of: "fox</w>"))
        let filler = Array(repeating: "fox", count: 74).joined(separator: " ") + " embedding:e"
        let split = try chunker.chunks(filler, maxChunks: 4, embedding: { $0 == "e" ? (0, 3) : nil })
        XCTAssertEqual(split.count, 2, "expected a 3-vector embedding that does not fit to start the next chunk")
        XCTAssertEqual(split[0].ids[1], fox)
        XCTAssertEqual(split[1].injected.keys.sorted(), [1, 2, 3])
        XCTAssertThrowsError(try chunker.chunks(String(repeating: "fox ", count: 400), maxChunks: 4, embedding: { _ in nil })) {
            XCTAssertTrue("\($0)".contains("more than 4 chunks"), "expected the chunk limit named: \($0)")
        }
        XCTAssertThrowsError(try chunker.chunks("a embedding:missing", maxChunks: 4, embedding: { _ in nil })) {
            XCTAssertTrue("\($0)".contains("embedding:missing"), "expected the missing embedding named: \($0)")
        }
        XCTAssertEqual(PromptChunker.references(in: "embedding:a.safetensors, xembedding:b embedding:c.").map(\.name), ["a", "c"])
    }

    func testAShortUnweightedPromptEncodesAsBeforeAndAPairIsPaddedToOneLength() throws {
        let model = try StableDiffusionModel.load(path: Self.fixtures.appendingPathComponent("sd/sd1").path)
        let encoder = try model.promptEncoder()
        let row = encoder.tokenizer.tokenize("a red fox", length: 77, padding: .endToken)
        let plain = encoder.encoders[0].encode(ids: [row.ids]).hidden
        XCTAssertEqual(try encoder.encode("a red fox").embedding.scalars, plain.scalars,
                       "expected a short unweighted prompt to be the single 77-token encoding, bit for bit")
        let long = String(repeating: "red fox, ", count: 40)
        let pair = try encoder.encode(prompt: long, negative: "blurry")
        XCTAssertEqual(pair.positive.embedding.shape, [1, 154, 6])
        XCTAssertEqual(pair.negative.embedding.shape, [1, 154, 6], "expected the negative extended to the prompt's chunks")
        let empty = try encoder.encode("").embedding
        XCTAssertEqual(Array(pair.negative.embedding.scalars[(77 * 6)...]), empty.scalars,
                       "expected the extension to be the empty prompt's encoding")
    }

    func testEmbeddingsOfTheWrongShapeAreRefusedByName() throws {
        let model = try StableDiffusionModel.load(path: Self.fixtures.appendingPathComponent("sd/sd1").path)
        let sdxlFile = Self.fixtures.appendingPathComponent("sdxl/embeddings/tiny.safetensors").path
        XCTAssertThrowsError(try TextualInversion.load(path: sdxlFile, name: "tiny", encoders: model.textEncoders)) {
            XCTAssertTrue("\($0)".contains("no tensor 'emb_params'"), "expected the missing key named: \($0)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-ti-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var writer = SafeTensorsWriter()
        try writer.add("emb_params", shape: [2, 5], floats: [Float](repeating: 0, count: 10))
        let wide = folder.appendingPathComponent("wide.safetensors").path
        try writer.write(to: wide)
        XCTAssertThrowsError(try TextualInversion.load(path: wide, name: "wide", encoders: model.textEncoders)) {
            XCTAssertTrue("\($0)".contains("expected [k, 6]"), "expected the width named: \($0)")
        }
    }
}
