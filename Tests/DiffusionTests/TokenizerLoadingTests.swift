import Diffusion
import Foundation
import XCTest

/// Loading tokenizers from files, and the errors for missing or broken ones.
final class TokenizerLoadingTests: XCTestCase {
    var folder: TemporaryFolder!

    override func setUpWithError() throws {
        folder = try TemporaryFolder()
    }

    override func tearDown() {
        folder.remove()
        folder = nil   // XCTest keeps every test case until the process exits
    }

    /// Asserts that `load` throws `TokenizerError` whose message names `path`
    /// and contains `problem`.
    func assertLoadFails(_ path: String, mentioning problem: String,
                         file: StaticString = #filePath, line: UInt = #line,
                         _ load: () throws -> CLIPTokenizer) {
        XCTAssertThrowsError(try load(), file: file, line: line) { error in
            guard let error = error as? TokenizerError else {
                return XCTFail("expected a TokenizerError, got \(type(of: error)): \(error)", file: file, line: line)
            }
            XCTAssertTrue(error.description.hasPrefix(path + ":"),
                          "expected the message to start with the file \(path), got \"\(error)\"", file: file, line: line)
            XCTAssertTrue(error.description.contains(problem),
                          "expected the message to mention \"\(problem)\", got \"\(error)\"", file: file, line: line)
        }
    }

    /// A small, valid merges file and the vocabulary it implies.
    static let merges = "#version: 0.2\nc a\nca t</w>\n"
    static let vocabulary = #"{"c": 0, "a": 1, "t</w>": 2, "ca": 3, "cat</w>": 4, "<|startoftext|>": 5, "<|endoftext|>": 6}"#

    func testBundledTokenizerHasCLIPsVocabularyAndSpecialIDs() throws {
        let tokenizer = try CLIPTokenizer.bundled()
        XCTAssertEqual(tokenizer.vocabularySize, 49408, "expected 256 + 256 + 48,894 merges + 2 specials")
        XCTAssertEqual(tokenizer.startTokenID, 49406, "expected <|startoftext|> at 49406")
        XCTAssertEqual(tokenizer.endTokenID, 49407, "expected <|endoftext|> at 49407")
        XCTAssertEqual(tokenizer.id(of: "!"), 0, "expected \"!\" (the first printable byte) at 0")
        XCTAssertEqual(tokenizer.token(for: 2368), "cat</w>", "expected id 2368 to be \"cat</w>\"")
        XCTAssertTrue(try CLIPTokenizer.bundled() === tokenizer, "expected the bundled tokenizer to be loaded once")
    }

    func testMergesFileLoadsPlainAndGzippedAlike() throws {
        let plain = try folder.write("bpe.txt", Gunzip.decompress(Data(contentsOf: TestPaths.bundledMergesFile)))
        let fromPlain = try CLIPTokenizer(mergesPath: plain)
        let fromGzip = try CLIPTokenizer(mergesPath: TestPaths.bundledMergesFile.path)
        let prompt = "an astronaut riding a horse on the moon, 35mm"
        XCTAssertEqual(fromPlain.encode(prompt), fromGzip.encode(prompt), "expected the same ids from .txt and .txt.gz")
    }

    func testSmallVocabularyAndMergesEncodeAsWritten() throws {
        let vocabulary = try folder.write("vocab.json", Data(Self.vocabulary.utf8))
        let merges = try folder.write("merges.txt", Data(Self.merges.utf8))
        let tokenizer = try CLIPTokenizer(vocabularyPath: vocabulary, mergesPath: merges)
        XCTAssertEqual(tokenizer.encode("cat CAT"), [4, 4], "expected c+a then ca+t</w> to merge into cat</w> (4)")
        XCTAssertEqual(tokenizer.encode("cab"), [3, 6], "expected ca, then b</w> (not in the vocabulary) as unknown (6)")
        XCTAssertEqual(tokenizer.tokenize("cat", length: 4).ids, [5, 4, 6, 6], "expected the vocabulary's own special ids")
    }

    func testMissingVocabularyFileIsNamed() {
        let path = folder.path("vocab.json")
        let merges = folder.path("merges.txt")
        assertLoadFails(path, mentioning: "no such file") {
            try CLIPTokenizer(vocabularyPath: path, mergesPath: merges)
        }
    }

    func testMissingFolderNamesItsVocabularyFile() {
        let missing = folder.url.appendingPathComponent("nowhere")
        assertLoadFails(missing.appendingPathComponent("vocab.json").path, mentioning: "no such file") {
            try CLIPTokenizer(folder: missing.path)
        }
    }

    func testFolderInPlaceOfAFileIsNamed() throws {
        let path = folder.path("merges.txt")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        assertLoadFails(path, mentioning: "it is a folder, not a file") { try CLIPTokenizer(mergesPath: path) }
    }

    func testMissingMergesFileIsNamed() throws {
        let vocabulary = try folder.write("vocab.json", Data(Self.vocabulary.utf8))
        let merges = folder.path("merges.txt")
        assertLoadFails(merges, mentioning: "no such file") {
            try CLIPTokenizer(vocabularyPath: vocabulary, mergesPath: merges)
        }
    }

    func testCorruptGzipIsNamedWithZlibsReason() throws {
        var bytes = Array(try Data(contentsOf: TestPaths.bundledMergesFile).prefix(4096))
        bytes[100] ^= 0x55
        let path = try folder.write("bpe_simple_vocab_16e6.txt.gz", Data(bytes))
        assertLoadFails(path, mentioning: "gzip") { try CLIPTokenizer(mergesPath: path) }
    }

    func testTruncatedGzipIsNamed() throws {
        let bytes = try Data(contentsOf: TestPaths.bundledMergesFile).prefix(50_000)
        let path = try folder.write("merges.txt.gz", bytes)
        assertLoadFails(path, mentioning: "truncated gzip") { try CLIPTokenizer(mergesPath: path) }
    }

    func testGzNameWithoutGzipDataIsNamed() throws {
        let path = try folder.write("merges.txt.gz", Data(Self.merges.utf8))
        assertLoadFails(path, mentioning: "not gzip data") { try CLIPTokenizer(mergesPath: path) }
    }

    func testNonUTF8MergesAreNamed() throws {
        let path = try folder.write("merges.txt", Data([0x23, 0x0a, 0xff, 0xfe, 0x20, 0x61, 0x0a]))
        assertLoadFails(path, mentioning: "not UTF-8") { try CLIPTokenizer(mergesPath: path) }
    }

    func testMalformedMergeLineIsNamedWithItsNumber() throws {
        let path = try folder.write("merges.txt", Data("#version: 0.2\nc a\nthree parts here\n".utf8))
        assertLoadFails(path, mentioning: "line 3: expected two symbols separated by a space, found 3 field(s)") {
            try CLIPTokenizer(mergesPath: path)
        }
    }

    func testMergesFileWithOnlyAHeaderIsRefused() throws {
        let path = try folder.write("merges.txt", Data("#version: 0.2\n".utf8))
        assertLoadFails(path, mentioning: "no merge rules") { try CLIPTokenizer(mergesPath: path) }
    }

    func testVocabularyThatIsNotJSONIsNamed() throws {
        let vocabulary = try folder.write("vocab.json", Data("{\"a\": 1,".utf8))
        let merges = try folder.write("merges.txt", Data(Self.merges.utf8))
        assertLoadFails(vocabulary, mentioning: "not valid JSON: Unexpected end of file") {
            try CLIPTokenizer(vocabularyPath: vocabulary, mergesPath: merges)
        }
    }

    func testVocabularyThatIsNotAnObjectOfIDsIsNamed() throws {
        let merges = try folder.write("merges.txt", Data(Self.merges.utf8))
        for (contents, problem) in [("[1, 2]", "found an array at the top level"),
                                    (#"{"a": "one"}"#, "(a token of 1 characters) maps to a string"),
                                    (#"{"a": 1.5}"#, "maps to a number that is not an id"),
                                    (#"{"a": -1}"#, "maps to a number that is not an id"),
                                    (#"{"a": true}"#, "maps to a boolean"),
                                    ("{}", "empty object")] {
            let vocabulary = try folder.write("vocab.json", Data(contents.utf8))
            assertLoadFails(vocabulary, mentioning: problem) {
                try CLIPTokenizer(vocabularyPath: vocabulary, mergesPath: merges)
            }
        }
    }

    func testVocabularyWithoutTheStartTokenIsNamed() throws {
        let vocabulary = try folder.write("vocab.json", Data(#"{"c": 0, "<|endoftext|>": 1}"#.utf8))
        let merges = try folder.write("merges.txt", Data(Self.merges.utf8))
        assertLoadFails(vocabulary, mentioning: "no <|startoftext|> token") {
            try CLIPTokenizer(vocabularyPath: vocabulary, mergesPath: merges)
        }
    }
}
