import Foundation
import XCTest
@testable import SafeTensors

/// Whatever the writer stores, the reader gives back, for every dtype.
final class RoundTripTests: XCTestCase {
    func testF32ValuesComeBackBitForBit() throws {
        let values: [Float] = [0, -0.0, 1, -1.5, .pi, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -.infinity]
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [3, 3], floats: values, dtype: .F32)
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.info("w").dtype, .F32, "expected the stored dtype to be F32")
        XCTAssertEqual(try file.info("w").shape, [3, 3], "expected the shape to survive the round trip")
        assertSameBits(try file.floats("w"), values, "F32 round trip")
    }

    func testF16ValuesRepresentableInHalfComeBackExactly() throws {
        let values: [Float] = [0, -0.0, 1, -2, 0.5, 65504, -65504, 0x1p-24, 0x1p-14, .infinity, -.infinity, 1.0009765625]
        var writer = SafeTensorsWriter()
        try writer.add("h", shape: [values.count], floats: values, dtype: .F16)
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.info("h").byteRange.count, values.count * 2, "expected 2 bytes per F16 element")
        assertSameBits(try file.floats("h"), values, "F16 round trip")
    }

    func testBF16ValuesRepresentableInBFloatComeBackExactly() throws {
        let values: [Float] = [0, -0.0, 1, -2, 0.5, 3.0, 0x1p-133, 0x1p100, .infinity, -.infinity]
        var writer = SafeTensorsWriter()
        try writer.add("b", shape: [2, 5], floats: values, dtype: .BF16)
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.info("b").byteRange.count, values.count * 2, "expected 2 bytes per BF16 element")
        assertSameBits(try file.floats("b"), values, "BF16 round trip")
    }

    func testNaNStaysNaNInEveryFloatDType() throws {
        var writer = SafeTensorsWriter()
        for dtype: SafeTensorsDType in [.F32, .F16, .BF16] {
            try writer.add(dtype.rawValue, shape: [2], floats: [.nan, -.nan], dtype: dtype)
        }
        let file = try SafeTensorsFile(data: writer.serialized())
        for name in file.names {
            let read = try file.floats(name)
            XCTAssertTrue(read.allSatisfy(\.isNaN), "expected \(name) NaNs to read back as NaN, got \(read)")
            XCTAssertEqual(read.map { $0.sign }, [.plus, .minus], "expected \(name) NaN signs to survive")
        }
    }

    func testI64ValuesComeBackExactly() throws {
        let values: [Int64] = [0, 1, -1, .max, .min, 1 << 40]
        var writer = SafeTensorsWriter()
        try writer.add("ids", shape: [6], int64s: values)
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.info("ids").dtype, .I64, "expected int64s to be stored as I64")
        XCTAssertEqual(try file.int64s("ids"), values, "expected every Int64 to survive, including the extremes")
    }

    func testRawBytesOfEveryDTypeComeBackUnchangedAndConvert() throws {
        // One case per dtype: stored little-endian bytes, and what floats() should give.
        let cases: [(SafeTensorsDType, [UInt8], [Float])] = [
            (.F64, bytes(of: [1.5, -0.25] as [Double]), [1.5, -0.25]),
            (.F32, bytes(of: [Float(2.5)].map(\.bitPattern)), [2.5]),
            (.F16, bytes(of: [UInt16(0x3C00), 0xC000]), [1, -2]),
            (.BF16, bytes(of: [UInt16(0x3F80), 0xC040]), [1, -3]),
            (.I64, bytes(of: [Int64(-7), 9]), [-7, 9]),
            (.I32, bytes(of: [Int32(-70000), 70000]), [-70000, 70000]),
            (.I16, bytes(of: [Int16(-300), 300]), [-300, 300]),
            (.I8, [0x80, 0x7F], [-128, 127]),
            (.U8, [0, 255], [0, 255]),
            (.BOOL, [0, 1, 2], [0, 1, 1]),
        ]
        XCTAssertEqual(Set(cases.map(\.0)), Set(SafeTensorsDType.allCases), "expected one case per dtype")
        var writer = SafeTensorsWriter()
        for (dtype, stored, expected) in cases {
            try writer.add(dtype.rawValue, dtype: dtype, shape: [expected.count], rawBytes: Data(stored))
        }
        let file = try SafeTensorsFile(data: writer.serialized())
        for (dtype, stored, expected) in cases {
            let name = dtype.rawValue
            XCTAssertEqual(try file.info(name).dtype, dtype, "expected \(name) to keep its dtype")
            try file.withUnsafeRawBytes(name) { raw in
                XCTAssertEqual(Array(raw), stored, "expected the stored bytes of \(name) unchanged")
            }
            XCTAssertEqual(try file.floats(name), expected, "expected \(name) to widen to \(expected)")
        }
    }

    func testIntegerDTypesWidenToInt64WithSignExtension() throws {
        var writer = SafeTensorsWriter()
        try writer.add("i32", dtype: .I32, shape: [2], rawBytes: Data(bytes(of: [Int32.min, Int32.max])))
        try writer.add("i16", dtype: .I16, shape: [2], rawBytes: Data(bytes(of: [Int16.min, Int16.max])))
        try writer.add("i8", dtype: .I8, shape: [2], rawBytes: Data([0x80, 0x7F]))
        try writer.add("u8", dtype: .U8, shape: [2], rawBytes: Data([0xFF, 0x00]))
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.int64s("i32"), [Int64(Int32.min), Int64(Int32.max)], "expected I32 sign-extended")
        XCTAssertEqual(try file.int64s("i16"), [Int64(Int16.min), Int64(Int16.max)], "expected I16 sign-extended")
        XCTAssertEqual(try file.int64s("i8"), [-128, 127], "expected I8 sign-extended")
        XCTAssertEqual(try file.int64s("u8"), [255, 0], "expected U8 zero-extended")
    }

    func testWrittenFileReadsBackThroughTheMemoryMap() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.safetensors").path
        var writer = SafeTensorsWriter()
        try writer.add("a", shape: [2], floats: [1, 2], dtype: .F16)
        try writer.add("b", shape: [], int64s: [42])
        try writer.write(to: path)

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.source, path, "expected a mapped file to be named by its path")
        XCTAssertEqual(try file.floats("a"), [1, 2], "expected the F16 tensor to read back from disk")
        XCTAssertEqual(try file.int64s("b"), [42], "expected the scalar to read back from disk")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.safetensors"],
            "expected the atomic write to leave no temporary file behind")
    }

    func testEmptyAndScalarShapesRoundTrip() throws {
        var writer = SafeTensorsWriter()
        try writer.add("empty", shape: [0, 4], floats: [])
        try writer.add("scalar", shape: [], floats: [3])
        let file = try SafeTensorsFile(data: writer.serialized())
        XCTAssertEqual(try file.info("empty").elementCount, 0, "expected a zero dimension to give no elements")
        XCTAssertEqual(try file.floats("empty"), [], "expected an empty tensor to read as no values")
        XCTAssertEqual(try file.info("scalar").elementCount, 1, "expected shape [] to hold one element")
        XCTAssertEqual(try file.floats("scalar"), [3], "expected the scalar's value back")
    }
}

/// The little-endian bytes of `values`.
private func bytes<T: FixedWidthInteger>(of values: [T]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

/// The little-endian bytes of `values`.
private func bytes(of values: [Double]) -> [UInt8] {
    bytes(of: values.map(\.bitPattern))
}
