import Foundation
import XCTest
@testable import SafeTensors

/// `__metadata__` survives writing and reading, and its absence is fine.
final class MetadataTests: XCTestCase {
    func testMetadataRoundTripsIncludingCharactersThatNeedEscaping() throws {
        let metadata = [
            "format": "pt",
            "quote\"and\\backslash": "line\nbreak\ttab\u{1}control",
            "ünïcode ✓": "🙂 emoji",
            "": "empty key",
        ]
        var writer = SafeTensorsWriter()
        writer.metadata = metadata
        try writer.add("x", shape: [1], floats: [1])
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(file.metadata, metadata, "expected metadata to come back unchanged")
    }

    func testFileWithoutMetadataHasEmptyMetadataAndOmitsTheKey() throws {
        var writer = SafeTensorsWriter()
        try writer.add("x", shape: [1], floats: [1])
        let bytes = writer.serialized()
        XCTAssertFalse(
            String(decoding: bytes, as: UTF8.self).contains("__metadata__"),
            "expected no __metadata__ key when the writer has no metadata")
        XCTAssertEqual(try SafeTensorsFile(data: bytes).metadata, [:], "expected empty metadata")
    }

    func testMetadataIsNotListedAsATensor() throws {
        var writer = SafeTensorsWriter()
        writer.metadata = ["k": "v"]
        try writer.add("x", shape: [1], floats: [1])
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(file.names, ["x"], "expected __metadata__ to be excluded from the tensor names")
    }

    func testMetadataWithANonStringValueIsRefused() {
        let header = #"{"__metadata__":{"epoch":3}}"#
        assertRefused(safetensorsBytes(header: header), mentioning: ["__metadata__", "string", "epoch"])
    }

    func testMetadataThatIsNotAnObjectIsRefused() {
        let header = #"{"__metadata__":["a"]}"#
        assertRefused(safetensorsBytes(header: header), mentioning: ["__metadata__", "object"])
    }
}
