import Foundation
import XCTest
@testable import SafeTensors

/// The writer's layout matches the format's conventions, and it refuses
/// inputs that would produce a broken file.
final class WriterTests: XCTestCase {
    private func header(of bytes: Data) -> String {
        let length = Int(bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        return String(decoding: bytes.dropFirst(8).prefix(length), as: UTF8.self)
    }

    func testHeaderIsSortedContiguousAndPaddedToEightBytes() throws {
        var writer = SafeTensorsWriter()
        writer.metadata = ["z": "1", "a": "2"]
        try writer.add("up.weight", shape: [3], floats: [1, 2, 3], dtype: .F16)
        try writer.add("down.weight", shape: [1], int64s: [7])
        let bytes = writer.serialized()
        let text = header(of: bytes)
        let expectedJSON = #"{"__metadata__":{"a":"2","z":"1"},"#
            + #""down.weight":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"#
            + #""up.weight":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}"#
        XCTAssertEqual(
            text.trimmingCharacters(in: .whitespaces), expectedJSON,
            "expected sorted keys with metadata first and offsets contiguous in name order")
        XCTAssertEqual(text.utf8.count % 8, 0, "expected the header padded to a multiple of 8 bytes, got \(text.utf8.count)")
        XCTAssertTrue(
            text.dropFirst(expectedJSON.utf8.count).allSatisfy { $0 == " " },
            "expected the padding to be spaces")
        XCTAssertEqual(bytes.count, 8 + text.utf8.count + 14, "expected prefix + header + 14 data bytes")
    }

    func testSerialisationIsDeterministic() throws {
        var first = SafeTensorsWriter()
        var second = SafeTensorsWriter()
        try first.add("a", shape: [1], floats: [1])
        try first.add("b", shape: [1], floats: [2])
        try second.add("b", shape: [1], floats: [2])
        try second.add("a", shape: [1], floats: [1])
        XCTAssertEqual(first.serialized(), second.serialized(), "expected insertion order not to change the bytes")
    }

    func testDuplicateNameIsRefused() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [1])
        XCTAssertThrowsError(try writer.add("w", shape: [1], floats: [2]), "expected a second \"w\" to be refused") { error in
            XCTAssertTrue("\(error)".contains("tensor \"w\": a tensor of this name was already added"), "got: \(error)")
        }
    }

    func testReservedMetadataNameIsRefused() {
        var writer = SafeTensorsWriter()
        XCTAssertThrowsError(try writer.add("__metadata__", shape: [1], floats: [1]), "expected the reserved name to be refused") {
            XCTAssertTrue("\($0)".contains("reserved"), "expected 'reserved' in the error, got: \($0)")
        }
    }

    func testValueCountDisagreeingWithShapeIsRefused() {
        var writer = SafeTensorsWriter()
        XCTAssertThrowsError(try writer.add("w", shape: [2, 2], floats: [1, 2, 3]), "expected 3 values for [2, 2] to be refused") {
            XCTAssertTrue("\($0)".contains("holds 4 elements, but 3 values"), "expected counts in the error, got: \($0)")
        }
        XCTAssertThrowsError(try writer.add("n", shape: [-1], int64s: []), "expected a negative dimension to be refused") {
            XCTAssertTrue("\($0)".contains("dimension 0"), "expected the bad dimension in the error, got: \($0)")
        }
        XCTAssertThrowsError(
            try writer.add("r", dtype: .I32, shape: [2], rawBytes: Data(count: 7)), "expected 7 bytes for 2 I32 to be refused"
        ) {
            XCTAssertTrue("\($0)".contains("expected 8"), "expected the required byte count in the error, got: \($0)")
        }
    }

    func testFloatsCannotBeStoredAsAnIntegerDType() {
        var writer = SafeTensorsWriter()
        XCTAssertThrowsError(try writer.add("w", shape: [1], floats: [1], dtype: .I32), "expected floats as I32 to be refused") {
            XCTAssertTrue("\($0)".contains("F32, F16, BF16"), "expected the accepted dtypes in the error, got: \($0)")
        }
    }

    func testWriteIntoMissingDirectoryFailsNamingThePath() throws {
        let path = "/nonexistent-\(UUID().uuidString)/out.safetensors"
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [1])
        XCTAssertThrowsError(try writer.write(to: path), "expected writing into a missing directory to throw") { error in
            XCTAssertTrue("\(error)".contains(path), "expected the error to name \(path), got: \(error)")
        }
    }

    func testWriteReplacesAnExistingFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.safetensors").path
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: path))
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [5])
        try writer.write(to: path)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: path)), writer.serialized(),
            "expected the file on disk to equal serialized() after replacing the old file")
    }
}
