import Foundation
import XCTest
@testable import SafeTensors

/// Every malformed or hostile input is refused with an error that names the
/// file, the tensor where there is one, and the specific problem.
final class HostileHeaderTests: XCTestCase {
    /// A valid entry for tensor "t": 2 F32 elements at data bytes 0..<8.
    private let validEntry = #""t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    private let eightBytes = [UInt8](repeating: 0, count: 8)

    // MARK: Length prefix

    func testFileShorterThanEightBytesIsRefused() {
        assertRefused(Data([1, 0, 0]), mentioning: ["3 bytes", "at least 8"])
        assertRefused(Data(), mentioning: ["0 bytes", "at least 8"])
    }

    func testHeaderLengthBeyondTheFileIsRefused() {
        let bytes = safetensorsBytes(header: "{}", declaredLength: 50)
        assertRefused(bytes, mentioning: ["header length 50", "beyond", "only 2 bytes"])
    }

    func testAbsurdHeaderLengthIsRefusedBeforeAnyAllocation() {
        let bytes = safetensorsBytes(header: "{}", declaredLength: UInt64.max)
        assertRefused(bytes, mentioning: ["header length \(UInt64.max)", "limit of \(100 << 20)"])
        let small = SafeTensorsLimits(maxHeaderBytes: 16, maxElements: 1 << 36)
        let padded = safetensorsBytes(header: "{}" + String(repeating: " ", count: 30))
        assertRefused(padded, limits: small, mentioning: ["header length 32", "limit of 16"])
    }

    // MARK: Header text

    func testHeaderThatIsNotUTF8IsRefused() {
        let bytes = safetensorsBytes(headerBytes: Array(#"{"a"#.utf8) + [0xFF] + Array(#"":{}}"#.utf8))
        assertRefused(bytes, mentioning: ["UTF-8", "offset 3"])
    }

    func testHeaderThatIsNotJSONIsRefused() {
        assertRefused(safetensorsBytes(header: #"{"t": {"dtype": "F32",}"#), mentioning: ["not valid JSON"])
        assertRefused(safetensorsBytes(header: "{} x"), mentioning: ["not valid JSON", "after the top-level value"])
        assertRefused(safetensorsBytes(header: ""), mentioning: ["not valid JSON", "end of header"])
    }

    func testDeeplyNestedHeaderIsRefusedWithoutExhaustingTheStack() {
        let header = #"{"t":"# + String(repeating: "[", count: 100_000)
        assertRefused(safetensorsBytes(header: header), mentioning: ["not valid JSON", "nested deeper"])
    }

    func testDuplicateTensorKeysAreRefused() {
        let header = "{\(validEntry),\(validEntry)}"
        assertRefused(safetensorsBytes(header: header, data: eightBytes), mentioning: ["duplicate key \"t\""])
    }

    func testHeaderThatIsNotAnObjectIsRefused() {
        assertRefused(safetensorsBytes(header: "[1, 2]"), mentioning: ["must be a JSON object", "[1, 2]"])
    }

    func testHeaderPaddedWithTrailingSpacesIsAccepted() throws {
        let bytes = safetensorsBytes(header: "{\(validEntry)}     ", data: eightBytes)
        XCTAssertEqual(try SafeTensorsFile(data: bytes).names, ["t"], "expected trailing spaces after the JSON to be ignored")
    }

    // MARK: Entries

    func testEntryThatIsNotAnObjectIsRefused() {
        assertRefused(safetensorsBytes(header: #"{"t":[1]}"#), mentioning: ["tensor \"t\"", "must be an object", "[1]"])
    }

    func testEntryMissingAFieldIsRefused() {
        let header = #"{"t":{"dtype":"F32","data_offsets":[0,8]}}"#
        assertRefused(safetensorsBytes(header: header, data: eightBytes), mentioning: ["tensor \"t\"", "missing", "\"shape\""])
    }

    func testEntryWithWrongTypedFieldsIsRefused() {
        let dtypeNumber = #"{"t":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#
        assertRefused(
            safetensorsBytes(header: dtypeNumber, data: eightBytes),
            mentioning: ["tensor \"t\"", "\"dtype\" must be a string", "found 32"])
        let shapeString = #"{"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#
        assertRefused(
            safetensorsBytes(header: shapeString, data: eightBytes),
            mentioning: ["\"shape\" must be an array", "found \"2\""])
        let offsetsObject = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":{}}}"#
        assertRefused(
            safetensorsBytes(header: offsetsObject, data: eightBytes),
            mentioning: ["\"data_offsets\" must be an array"])
    }

    func testUnknownDTypeIsRefused() {
        let header = #"{"t":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#
        assertRefused(safetensorsBytes(header: header, data: [0, 0]), mentioning: ["unknown dtype \"F8_E4M3\"", "BF16"])
    }

    func testNegativeShapeDimensionIsRefused() {
        let header = #"{"t":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}"#
        assertRefused(safetensorsBytes(header: header, data: eightBytes), mentioning: ["dimension 1", "non-negative integer", "-1"])
    }

    func testNonIntegerShapeDimensionIsRefused() {
        for dimension in ["2.0", "2e0", "true", "\"2\"", "null", "99999999999999999999"] {
            let header = #"{"t":{"dtype":"F32","shape":["# + dimension + #"],"data_offsets":[0,8]}}"#
            assertRefused(
                safetensorsBytes(header: header, data: eightBytes),
                mentioning: ["dimension 0", "non-negative integer", "found \(dimension)"])
        }
    }

    func testElementCountOverflowIsRefusedWithoutTrapping() {
        let huge = 1 << 40
        let header = #"{"t":{"dtype":"F32","shape":["# + "\(huge),\(huge)" + #"],"data_offsets":[0,8]}}"#
        assertRefused(safetensorsBytes(header: header, data: eightBytes), mentioning: ["tensor \"t\"", "overflows"])
    }

    func testAbsurdElementCountIsRefused() {
        let header = #"{"t":{"dtype":"U8","shape":[65536,65536,32],"data_offsets":[0,8]}}"#
        assertRefused(
            safetensorsBytes(header: header, data: eightBytes),
            mentioning: ["element count 137438953472", "limit of 68719476736"])
    }

    func testDataOffsetsThatAreNotABeginEndPairAreRefused() {
        for offsets in ["[0]", "[0,8,16]", "[8,0]", "[-8,0]", "[0,8.0]", "[\"0\",8]"] {
            let header = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":"# + offsets + "}}"
            assertRefused(
                safetensorsBytes(header: header, data: eightBytes),
                mentioning: ["tensor \"t\"", "[begin, end]", "begin <= end"])
        }
    }

    func testDataOffsetsEndingBeyondTheDataSectionAreRefused() {
        let header = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertRefused(
            safetensorsBytes(header: header, data: eightBytes),
            mentioning: ["tensor \"t\"", "end 12", "beyond the data section of 8 bytes"])
    }

    func testByteCountDisagreeingWithShapeAndDTypeIsRefused() {
        let header = #"{"t":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#
        assertRefused(
            safetensorsBytes(header: header, data: eightBytes),
            mentioning: ["tensor \"t\"", "span 8 bytes", "expected 6", "3 elements of F16"])
    }

    func testOverlappingTensorsAreRefused() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertRefused(
            safetensorsBytes(header: header, data: [UInt8](repeating: 0, count: 12)),
            mentioning: ["tensor \"b\"", "overlap", "\"a\"", "0..<8"])
    }

    func testGapsBetweenTensorsAreAllowed() throws {
        // The reference library demands contiguous tensors; we only demand
        // that they do not overlap, and never read the unused bytes.
        let header = #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"#
            + #""b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}"#
        let file = try SafeTensorsFile(data: safetensorsBytes(header: header, data: [1, 2, 9, 9, 9, 9, 3, 4, 9]))
        XCTAssertEqual(try file.int64s("a"), [1, 2], "expected tensor a to read its own bytes")
        XCTAssertEqual(try file.int64s("b"), [3, 4], "expected tensor b to read its own bytes after the gap")
    }

    func testEmptyTensorInsideAnotherDoesNotCountAsOverlap() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#
        let file = try SafeTensorsFile(data: safetensorsBytes(header: header, data: eightBytes))
        XCTAssertEqual(file.names, ["a", "e"], "expected an empty tensor, which owns no bytes, to be accepted")
    }
}
