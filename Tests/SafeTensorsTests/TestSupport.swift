import Foundation
import XCTest
@testable import SafeTensors

/// Assembles safetensors bytes by hand: the 8-byte little-endian length,
/// `header` as UTF-8, then `data`. `declaredLength` overrides the length
/// prefix so tests can lie about it.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    let headerBytes = Array(header.utf8)
    return safetensorsBytes(headerBytes: headerBytes, data: data, declaredLength: declaredLength)
}

/// As `safetensorsBytes(header:data:declaredLength:)`, with raw header bytes.
func safetensorsBytes(headerBytes: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    var bytes = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(contentsOf: headerBytes)
    bytes.append(contentsOf: data)
    return bytes
}

/// Asserts that reading `data` fails with a `SafeTensorsError` whose
/// description names the in-memory source and contains every one of `fragments`.
func assertRefused(
    _ data: Data, limits: SafeTensorsLimits = .default, mentioning fragments: [String],
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        let opened = try SafeTensorsFile(data: data, limits: limits)
        XCTFail("expected the reader to refuse these bytes, but it opened \(opened.names)", file: file, line: line)
    } catch let error as SafeTensorsError {
        let text = error.description
        for fragment in ["<memory>"] + fragments {
            XCTAssertTrue(
                text.contains(fragment),
                "expected the error to mention \"\(fragment)\", got: \(text)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a SafeTensorsError, got \(type(of: error)): \(error)", file: file, line: line)
    }
}

/// Asserts two float arrays are bit-for-bit identical (so -0 ≠ +0 and NaN payloads count).
func assertSameBits(
    _ actual: [Float], _ expected: [Float], _ context: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(
        actual.map(\.bitPattern), expected.map(\.bitPattern),
        "\(context): expected \(expected), got \(actual)", file: file, line: line)
}

/// A fresh empty directory under the system temporary directory, removed by the caller.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
