import Imaging
import XCTest

final class PNGTextChunkTests: XCTestCase {
    private let image = Image(width: 2, height: 2, red: 0.5)

    func testASCIITextRoundTripsInOrderAsTEXt() throws {
        let text = [PNGTextEntry(key: "Title", value: "A cat on a mat"),
                    PNGTextEntry(key: "Comment", value: ""),
                    PNGTextEntry(key: "Title", value: "repeated keys are kept")]
        let data = try PNG.encode(image, text: text)
        XCTAssertEqual(try PNG.decode(data).text, text, "expected the entries back, in order, repeats included")
        XCTAssertEqual(PNGBytes.chunks(of: data).filter { $0.type == "tEXt" }.count, 3,
                       "expected ASCII values to be stored as three tEXt chunks")
    }

    func testUnicodeTextRoundTripsThroughITXt() throws {
        let text = [PNGTextEntry(key: "prompt", value: "日本の猫が窓辺で眠る 🐱"),
                    PNGTextEntry(key: "negative", value: "blurry, Ωmega")]
        let data = try PNG.encode(image, text: text)
        XCTAssertEqual(try PNG.decode(data).text, text, "expected non-Latin-1 values to round trip unchanged")
        XCTAssertEqual(PNGBytes.chunks(of: data).filter { $0.type == "iTXt" }.count, 2,
                       "expected values outside Latin-1 to be stored as iTXt")
    }

    func testLatin1TextUsesTEXtAndDecodesToTheSameString() throws {
        let text = [PNGTextEntry(key: "Author", value: "Zoë Ångström, café ±1°")]
        let data = try PNG.encode(image, text: text)
        let chunk = PNGBytes.chunks(of: data).first { $0.type == "tEXt" }
        XCTAssertEqual(chunk?.data, Array("Author".utf8) + [0] + "Zoë Ångström, café ±1°".unicodeScalars.map { UInt8($0.value) },
                       "expected a tEXt chunk holding the value in Latin-1, one byte per character")
        XCTAssertEqual(try PNG.decode(data).text, text, "expected Latin-1 to decode back to the same Unicode string")
    }

    func testLongValuesAreCompressedAndRoundTrip() throws {
        let workflow = String(repeating: "nodes:\n  model: {type: LoadCheckpoint}\n", count: 200)
        let text = [PNGTextEntry(key: "workflow", value: workflow),
                    PNGTextEntry(key: "prompt", value: String(repeating: "猫", count: 2000))]
        let data = try PNG.encode(image, text: text)
        let types = PNGBytes.chunks(of: data).map(\.type)
        XCTAssertTrue(types.contains("zTXt"), "expected a long Latin-1 value to be stored as zTXt, got \(types)")
        XCTAssertLessThan(data.count, workflow.utf8.count, "expected the repetitive workflow text to be compressed")
        XCTAssertEqual(try PNG.decode(data).text, text, "expected compressed zTXt and iTXt values to round trip")
    }

    func testTextAfterImageDataIsReadAfterTextBeforeIt() throws {
        let data = try PNG.encode(image, text: [PNGTextEntry(key: "before", value: "1")])
        var chunks = PNGBytes.chunks(of: data)
        chunks.insert(PNGChunk(type: "tEXt", data: Array("after\u{0}2".utf8)), at: chunks.count - 1)
        let decoded = try PNG.decode(PNGBytes.assemble(chunks))
        XCTAssertEqual(decoded.text, [PNGTextEntry(key: "before", value: "1"), PNGTextEntry(key: "after", value: "2")],
                       "expected the text chunk after IDAT to be read too, after the one before it")
        XCTAssertEqual(decoded.text(forKey: "after"), "2", "expected lookup by key to find the post-IDAT entry")
    }

    func testTextThatInflatesPastTheChunkLimitIsSkippedWithAWarning() throws {
        // 200 KB of one letter deflates to a few hundred bytes: a small
        // zTXt "bomb". The image still decodes; the text does not.
        let bomb = PNGTextEntry(key: "bomb", value: String(repeating: "a", count: 200_000))
        let data = try PNG.encode(image, text: [bomb, PNGTextEntry(key: "kept", value: "yes")])
        XCTAssertLessThan(data.count, 2_000, "expected the repetitive value to compress to a small file")
        let decoded = try PNG.decode(data, limits: PNGLimits(maxChunkBytes: 10_000))
        XCTAssertNil(decoded.text(forKey: "bomb"), "expected text inflating past maxChunkBytes to be skipped")
        XCTAssertEqual(decoded.text(forKey: "kept"), "yes", "expected the small entry to survive")
        XCTAssertFalse(decoded.warnings.isEmpty, "expected a warning saying the chunk was skipped")
        XCTAssertEqual(try PNG.decode(data).text(forKey: "bomb")?.count, 200_000,
                       "expected the default 8 MiB limit to admit the same text")
    }

    func testInvalidKeysAreRefusedWithTheReason() {
        let cases: [(key: String, reason: String)] = [
            ("", "1 to 79"), (String(repeating: "k", count: 80), "1 to 79"),
            (" lead", "start or end with a space"), ("two  spaces", "two spaces"),
            ("キー", "Latin-1"), ("tab\there", "Latin-1"),
        ]
        for (key, reason) in cases {
            assertImagingError(try PNG.encode(image, text: [PNGTextEntry(key: key, value: "v")]),
                               "invalidText for key \"\(key)\"",
                               matches: { if case .invalidText(key, _) = $0 { return true } else { return false } },
                               mentioning: [reason])
        }
    }

    func testNULInAValueIsRefused() {
        assertImagingError(try PNG.encode(image, text: [PNGTextEntry(key: "k", value: "a\u{0}b")]),
                           "invalidText for a NUL in the value",
                           matches: { if case .invalidText("k", _) = $0 { return true } else { return false } },
                           mentioning: ["NUL"])
    }
}
