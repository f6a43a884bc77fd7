import Diffusion
import XCTest

/// The fixed-length rows the text encoder takes: layout, word-token
/// positions, truncation, padding presets.
final class TokenizedPromptTests: XCTestCase {
    var tokenizer: CLIPTokenizer!

    override func setUpWithError() throws {
        tokenizer = try CLIPTokenizer.bundled()
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { tokenizer = nil }

    func testRowIsStartTokenPromptTokensEndTokenThenPadding() {
        let row = tokenizer.tokenize("a photo of a cat")
        XCTAssertEqual(Array(row.ids.prefix(8)), [49406, 320, 1125, 539, 320, 2368, 49407, 49407],
                       "expected BOS, a photo of a cat, EOS, then end-token padding")
        XCTAssertEqual(row.ids.count, 77, "expected the default length of 77 ids")
        XCTAssertEqual(row.endTokenIndex, 6, "expected the closing end token right after the 5 word tokens")
        XCTAssertFalse(row.truncated, "expected a 5-token prompt not to be truncated")
    }

    func testWordTokenIndicesAreThePromptTokensOnly() {
        let row = tokenizer.tokenize("a photo of a cat")
        XCTAssertEqual(row.wordTokenIndices, [1, 2, 3, 4, 5], "expected positions 1…5: not BOS (0), EOS (6) or padding")
    }

    func testWordTokenIndicesCountEveryBPEPieceOfAWord() {
        // "supercalifragilisticexpialidocious" is 9 BPE pieces; each is a word token.
        let row = tokenizer.tokenize("supercalifragilisticexpialidocious cat")
        XCTAssertEqual(row.wordTokenIndices, Array(1 ... 10), "expected the 9 pieces and \"cat\" at positions 1…10")
        XCTAssertEqual(row.endTokenIndex, 11, "expected EOS after the 10 word tokens")
    }

    func testLiteralSpecialTokensInThePromptAreNotWordTokens() {
        let row = tokenizer.tokenize("a cat <|endoftext|> a dog")
        XCTAssertEqual(Array(row.ids.prefix(7)), [49406, 320, 2368, 49407, 320, 1929, 49407],
                       "expected the written <|endoftext|> to become id 49407, as transformers does")
        XCTAssertEqual(row.wordTokenIndices, [1, 2, 4, 5], "expected the written end token (position 3) to be left out")
        XCTAssertEqual(row.endTokenIndex, 6, "expected the closing EOS after the last word, not the written one")
    }

    func testEmptyPromptIsStartAndEndTokenThenPadding() {
        for prompt in ["", "   ", "\n\t", "\u{200B}"] {
            let row = tokenizer.tokenize(prompt)
            XCTAssertEqual(Array(row.ids.prefix(3)), [49406, 49407, 49407],
                           "expected BOS, EOS, padding for \(String(reflecting: prompt))")
            XCTAssertEqual(row.wordTokenIndices, [], "expected no word tokens for \(String(reflecting: prompt))")
            XCTAssertEqual(row.endTokenIndex, 1, "expected EOS at position 1 for \(String(reflecting: prompt))")
            XCTAssertFalse(row.truncated, "expected an empty prompt not to be truncated")
        }
    }

    func testLongPromptKeepsItsFirst75TokensAndEndsWithTheEndToken() {
        let row = tokenizer.tokenize(String(repeating: "word ", count: 80))
        XCTAssertEqual(row.ids.count, 77, "expected exactly 77 ids")
        XCTAssertTrue(row.truncated, "expected 80 tokens to be truncated to 75")
        XCTAssertEqual(row.ids[0], 49406, "expected BOS first")
        XCTAssertEqual(Array(row.ids[1 ... 75]), Array(repeating: 2653, count: 75), "expected 75 × \"word</w>\" (2653)")
        XCTAssertEqual(row.ids[76], 49407, "expected the end token last, replacing the dropped tail")
        XCTAssertEqual(row.wordTokenIndices, Array(1 ... 75), "expected every kept prompt token as a word token")
        XCTAssertEqual(row.endTokenIndex, 76, "expected EOS at the last position")
    }

    func testPromptOfExactly75TokensFitsWithoutTruncation() {
        let row = tokenizer.tokenize(String(repeating: "word ", count: 75))
        XCTAssertFalse(row.truncated, "expected 75 tokens to fit between BOS and EOS")
        XCTAssertEqual(row.ids[76], 49407, "expected EOS at position 76")
        XCTAssertEqual(tokenizer.tokenize(String(repeating: "word ", count: 76)).truncated, true,
                       "expected 76 tokens to be truncated")
    }

    func testSD2PadsWithExclamationMarkAndSplitsItOutOfText() {
        let sd1 = tokenizer.tokenize("wow!!!", padding: .sd1)
        let sd2 = tokenizer.tokenize("wow!!!", padding: .sd2)
        XCTAssertEqual(Array(sd1.ids.prefix(5)), [49406, 2781, 995, 49407, 49407],
                       "expected SD1 to merge \"!!!</w>\" (995) and pad with 49407")
        XCTAssertEqual(Array(sd2.ids.prefix(8)), [49406, 2781, 0, 0, 0, 49407, 0, 0],
                       "expected SD2 to cut each \"!\" out as its pad token (id 0) and pad with 0")
        XCTAssertEqual(sd2.wordTokenIndices, [1, 2, 3, 4], "expected the prompt's own \"!\" tokens to count as words")
    }

    func testCustomLengthAndPaddingID() {
        let row = tokenizer.tokenize("a photo of a cat", length: 5, padding: .id(7))
        XCTAssertEqual(row.ids, [49406, 320, 1125, 539, 49407], "expected 3 tokens kept in a row of 5")
        XCTAssertTrue(row.truncated, "expected 5 tokens in a 3-token window to be truncated")
        XCTAssertEqual(tokenizer.tokenize("cat", length: 6, padding: .id(7)).ids, [49406, 2368, 49407, 7, 7, 7],
                       "expected padding with the given id")
    }

    func testEncodeGivesThePromptTokensWithoutSpecialTokens() {
        XCTAssertEqual(tokenizer.encode("A Photo of a CAT"), [320, 1125, 539, 320, 2368],
                       "expected lowercased BPE ids with no BOS/EOS")
        XCTAssertEqual(tokenizer.encode(""), [], "expected no ids for empty text")
    }

    func testTokenizingFromManyThreadsGivesTheSameRows() {
        let prompts = (0 ..< 64).map { "prompt number \($0) with some words, \($0 * 7919) and more words" }
        let shared: CLIPTokenizer = tokenizer
        let expected = prompts.map { shared.tokenize($0).ids }
        let results = UnsafeSendableArray(count: prompts.count)
        DispatchQueue.concurrentPerform(iterations: prompts.count) { index in
            results.set(index, shared.tokenize(prompts[index]).ids)
        }
        XCTAssertEqual(results.values, expected, "expected concurrent tokenization to equal sequential tokenization")
    }
}

/// Results written by distinct concurrent iterations, one slot each.
private final class UnsafeSendableArray: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [[Int32]]
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ index: Int, _ value: [Int32]) { lock.withLock { values[index] = value } }
}
