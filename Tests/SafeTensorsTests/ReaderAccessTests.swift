import Foundation
import XCTest
@testable import SafeTensors

/// Looking tensors up, and refusing what cannot be returned.
final class ReaderAccessTests: XCTestCase {
    func testNamesAreSortedAndInfoDescribesEachTensor() throws {
        var writer = SafeTensorsWriter()
        try writer.add("b", shape: [2], floats: [1, 2])
        try writer.add("a", shape: [1, 3], floats: [1, 2, 3], dtype: .BF16)
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(file.names, ["a", "b"], "expected names in sorted order")
        XCTAssertEqual(
            try file.info("a"),
            SafeTensorInfo(name: "a", dtype: .BF16, shape: [1, 3], byteRange: 0..<6, elementCount: 3),
            "expected a at data bytes 0..<6 as the first tensor in name order")
        XCTAssertEqual(try file.info("b").byteRange, 6..<14, "expected b to follow a contiguously")
        XCTAssertTrue(file.contains("a") && !file.contains("c"), "expected contains to reflect the header")
    }

    func testMissingTensorIsReportedByName() throws {
        var writer = SafeTensorsWriter()
        try writer.add("present", shape: [1], floats: [1])
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertThrowsError(try file.floats("absent"), "expected reading an absent tensor to throw") { error in
            XCTAssertTrue(
                "\(error)".contains("<memory>: tensor \"absent\": no tensor of this name"),
                "expected the error to name the source and the missing tensor, got: \(error)")
        }
    }

    func testInt64sRefusesFloatingPointTensors() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [1.5])
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertThrowsError(try file.int64s("w"), "expected int64s on an F32 tensor to throw") { error in
            XCTAssertTrue(
                "\(error)".contains("dtype F32 cannot be read as Int64"),
                "expected the error to say F32 is not an integer dtype, got: \(error)")
        }
    }

    func testRawBytesAreTheStoredLittleEndianBytes() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2], floats: [1, -2])
        let file = try SafeTensorsFile(data: writer.serialized())
        let raw = try file.withUnsafeRawBytes("w") { Array($0) }
        XCTAssertEqual(raw, [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0], "expected 1.0 and -2.0 as little-endian F32")
    }

    func testMissingFileIsReportedWithItsPath() {
        let path = "/nonexistent-\(UUID().uuidString)/model.safetensors"
        XCTAssertThrowsError(try SafeTensorsFile(path: path), "expected opening a missing file to throw") { error in
            XCTAssertTrue(
                "\(error)".contains(path) && "\(error)".contains("open failed"),
                "expected the error to name the path and the failed open, got: \(error)")
        }
    }

    func testDirectoryIsRefusedAsNotARegularFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertThrowsError(try SafeTensorsFile(path: directory.path), "expected opening a directory to throw") { error in
            XCTAssertTrue("\(error)".contains("regular file"), "expected 'regular file' in the error, got: \(error)")
        }
    }

    func testShortFileOnDiskIsRefusedWithItsPath() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in [("empty", Data()), ("short", Data([1, 2, 3]))] {
            let path = directory.appendingPathComponent(name).path
            try contents.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafeTensorsFile(path: path), "expected a \(name) file to be refused") { error in
                XCTAssertTrue(
                    "\(error)".contains(path) && "\(error)".contains("at least 8"),
                    "expected the error to name \(path) and the 8-byte minimum, got: \(error)")
            }
        }
    }
}
