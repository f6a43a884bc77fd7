import Diffusion
import Foundation
import XCTest

/// Our own corner cases (`Tests/Fixtures/tokenizer/edge_cases.json`, made by
/// `Tests/Reference/make_tokenizer_edge_cases.py` with transformers 4.57.6,
/// no ftfy): Unicode clean-up, casing, CJK, special tokens in text, SD2's
/// "!" pad token.
final class TokenizerEdgeCaseTests: XCTestCase {
    static func cases() throws -> [ReferenceCase] {
        let document = try loadJSON(TestPaths.tokenizerEdgeCases) as? [String: Any]
        guard let entries = document?["cases"] as? [[String: Any]] else {
            throw FixtureError("edge_cases.json: expected {\"cases\": [...]}")
        }
        return try entries.enumerated().map { number, entry in
            guard let prompt = entry["prompt"] as? String else { throw FixtureError("case \(number): no prompt") }
            return ReferenceCase(prompt: prompt, sd1: try ids(entry["sd1"], "case \(number) sd1"),
                                 sd2: try ids(entry["sd2"], "case \(number) sd2"))
        }
    }

    func testBundledTokenizerMatchesTransformersOnEveryEdgeCase() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 60, "expected the full edge-case fixture")
        assertMatchesReference(cases, tokenizer: try CLIPTokenizer.bundled(), source: "edge_cases.json")
    }

    func testContentIDsMatchTransformersEncodeWithoutSpecialTokens() throws {
        let document = try loadJSON(TestPaths.tokenizerEdgeCases) as? [String: Any]
        let entries = try XCTUnwrap(document?["cases"] as? [[String: Any]])
        let tokenizer = try CLIPTokenizer.bundled()
        for entry in entries {
            let prompt = try XCTUnwrap(entry["prompt"] as? String)
            XCTAssertEqual(tokenizer.encode(prompt), try ids(entry["content"], "content"),
                           "expected transformers' encode(add_special_tokens=False) ids for \(String(reflecting: prompt))")
        }
    }
}
