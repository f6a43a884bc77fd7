import Diffusion
import Foundation
import XCTest

/// The Stable Diffusion reference prompts (`Tests/Fixtures/sd/prompts.json`,
/// transformers 4.57.6 slow `CLIPTokenizer`, no ftfy): every prompt must give
/// exactly transformers' ids, from the bundled BPE file and from the SD1
/// `tokenizer/` folder's vocab.json + merges.txt alike.
final class TokenizerFixtureTests: XCTestCase {
    /// One prompt: the 77-id rows and the untruncated `[BOS] + tokens + [EOS]`.
    struct Prompt {
        let reference: ReferenceCase
        let untruncatedSD1: [Int32]
        let untruncatedSD2: [Int32]
    }

    static let promptsFile = TestPaths.sdFixtures.appendingPathComponent("prompts.json")
    static let sd1TokenizerFolder = TestPaths.sdFixtures.appendingPathComponent("sd1/tokenizer")

    static func prompts() throws -> [Prompt] {
        guard FileManager.default.fileExists(atPath: promptsFile.path) else {
            throw XCTSkip("\(promptsFile.path) is not here yet (it comes with the SD reference fixtures)")
        }
        let document = try loadJSON(promptsFile) as? [String: Any]
        guard let entries = document?["prompts"] as? [[String: Any]] else {
            throw FixtureError("prompts.json: expected {\"prompts\": [...]}")
        }
        return try entries.enumerated().map { number, entry in
            guard let text = entry["text"] as? String else { throw FixtureError("prompt \(number): no text") }
            return Prompt(reference: ReferenceCase(prompt: text, sd1: try ids(entry["sd1"], "prompt \(number) sd1"),
                                                   sd2: try ids(entry["sd2"], "prompt \(number) sd2")),
                          untruncatedSD1: try ids(entry["ids_sd1"], "prompt \(number) ids_sd1"),
                          untruncatedSD2: try ids(entry["ids_sd2"], "prompt \(number) ids_sd2"))
        }
    }

    func testBundledTokenizerMatchesEveryReferencePrompt() throws {
        let prompts = try Self.prompts()
        XCTAssertGreaterThanOrEqual(prompts.count, 200, "expected the full fixture of at least 200 prompts")
        assertMatchesReference(prompts.map(\.reference), tokenizer: try CLIPTokenizer.bundled(), source: "prompts.json")
    }

    func testVocabularyAndMergesFilesMatchEveryReferencePrompt() throws {
        let prompts = try Self.prompts()
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        for name in ["vocab.json", "merges.txt"] {
            let packed = try Data(contentsOf: Self.sd1TokenizerFolder.appendingPathComponent(name + ".gz"))
            try folder.write(name, Gunzip.decompress(packed))
        }
        let tokenizer = try CLIPTokenizer(folder: folder.url.path)
        XCTAssertEqual(tokenizer.vocabularySize, 49408, "expected CLIP's 49,408-token vocabulary from vocab.json")
        assertMatchesReference(prompts.map(\.reference), tokenizer: tokenizer, source: "prompts.json via vocab.json")
    }

    func testUntruncatedRowsMatchTransformersForEveryPrompt() throws {
        let prompts = try Self.prompts()
        let tokenizer = try CLIPTokenizer.bundled()
        var mismatches: [String] = []
        for prompt in prompts {
            let text = prompt.reference.prompt
            let sd1 = [tokenizer.startTokenID] + tokenizer.encode(text, padding: .sd1) + [tokenizer.endTokenID]
            let sd2 = [tokenizer.startTokenID] + tokenizer.encode(text, padding: .sd2) + [tokenizer.endTokenID]
            if sd1 != prompt.untruncatedSD1 { mismatches.append("SD1 \(String(reflecting: text).prefix(80))") }
            if sd2 != prompt.untruncatedSD2 { mismatches.append("SD2 \(String(reflecting: text).prefix(80))") }
        }
        XCTAssertTrue(mismatches.isEmpty, "expected every untruncated row to equal ids_sd1 / ids_sd2; differ: \(mismatches)")
    }

    func testTruncatedFlagAgreesWithTheReferenceLengths() throws {
        let prompts = try Self.prompts()
        let tokenizer = try CLIPTokenizer.bundled()
        let long = prompts.filter { $0.untruncatedSD1.count > 77 }
        XCTAssertFalse(long.isEmpty, "expected the fixture to hold prompts longer than 75 tokens")
        for prompt in prompts {
            let row = tokenizer.tokenize(prompt.reference.prompt, padding: .sd1)
            XCTAssertEqual(row.truncated, prompt.untruncatedSD1.count > 77,
                           "expected truncated only when transformers' untruncated row exceeds 77 ids: \(String(reflecting: prompt.reference.prompt).prefix(80))")
        }
    }
}
