import Foundation
import XCTest
@testable import SafeTensors

/// Files written by the reference Python library (see
/// Tests/Reference/make_safetensors_fixture.py) read back as PyTorch saw them.
final class PythonFixtureTests: XCTestCase {
    /// The script's `1e-40`, a Float subnormal, converted from Double as torch does.
    private let tinyBF16Input = Float(1e-40 as Double)

    private static let fixturePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/safetensors/python_written.safetensors")
        .standardized.path

    private func openFixture() throws -> SafeTensorsFile {
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: Self.fixturePath),
            "expected the committed fixture at \(Self.fixturePath)")
        return try SafeTensorsFile(path: Self.fixturePath)
    }

    func testPythonFileListsItsTensorsAndMetadata() throws {
        let file = try openFixture()
        XCTAssertEqual(
            file.names, ["scalar.f32", "steps.i64", "weight.bf16", "weight.f16", "weight.f32"],
            "expected the five tensors the script wrote, sorted")
        XCTAssertEqual(
            file.metadata,
            ["format": "pt", "origin": "make_safetensors_fixture.py", "note": "ünïcode ✓"],
            "expected the script's metadata, including non-ASCII text")
    }

    func testPythonF32TensorsReadExactly() throws {
        let file = try openFixture()
        XCTAssertEqual(try file.info("weight.f32").shape, [2, 3], "expected weight.f32 to have shape [2, 3]")
        assertSameBits(try file.floats("weight.f32"), [1, -2, 0.5, 3.25, -0.0, 1e-3], "weight.f32")
        XCTAssertEqual(try file.info("scalar.f32").shape, [], "expected scalar.f32 to be a scalar")
        XCTAssertEqual(try file.floats("scalar.f32"), [7], "expected scalar.f32 to hold 7")
    }

    func testPythonF16TensorWidensToTheValuesPyTorchPrinted() throws {
        let file = try openFixture()
        // torch printed: [0.333251953125, 65504.0, 5.960464477539063e-08, -inf, 0.0999755859375]
        let expected: [Float] = [0.333251953125, 65504, 0x1p-24, -.infinity, 0.0999755859375]
        assertSameBits(try file.floats("weight.f16"), expected, "weight.f16")
        XCTAssertEqual(
            try file.withUnsafeRawBytes("weight.f16") { raw in
                (0..<5).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
            },
            [0x3555, 0x7BFF, 0x0001, 0xFC00, 0x2E66],
            "expected the F16 bit patterns PyTorch stored")
        XCTAssertEqual(
            [Float(1.0 / 3.0), 65504, 0x1p-24, -.infinity, 0.1].map(HalfPrecision.float16Bits(from:)),
            [0x3555, 0x7BFF, 0x0001, 0xFC00, 0x2E66],
            "expected our F16 narrowing to round exactly as PyTorch's .half() did")
    }

    func testPythonBF16TensorWidensToTheValuesPyTorchPrinted() throws {
        let file = try openFixture()
        // torch printed: [[0.333984375, -2.5], [3.00405527047391e+38, 9.183549615799121e-41]]
        let storedBits: [UInt16] = [0x3EAB, 0xC020, 0x7F62, 0x0001]
        let expected = storedBits.map { Float(bitPattern: UInt32($0) << 16) }
        XCTAssertEqual(expected[0], 0.333984375, "expected the first BF16 value to be 0.333984375")
        XCTAssertEqual(try file.info("weight.bf16").shape, [2, 2], "expected weight.bf16 to have shape [2, 2]")
        assertSameBits(try file.floats("weight.bf16"), expected, "weight.bf16")
        XCTAssertEqual(
            [Float(1.0 / 3.0), -2.5, 3e38, tinyBF16Input].map(HalfPrecision.bfloat16Bits(from:)), storedBits,
            "expected our BF16 narrowing to round exactly as PyTorch's .bfloat16() did")
    }

    func testPythonI64TensorReadsExactly() throws {
        let file = try openFixture()
        XCTAssertEqual(
            try file.int64s("steps.i64"), [0, -1, 1 << 40, -(1 << 62)],
            "expected the I64 values the script wrote")
    }

    func testOurWriterReproducesThePythonTensorsBitForBit() throws {
        // Layout differs (Python orders data by dtype size), but the values
        // we narrow and store must equal what PyTorch stored.
        let python = try openFixture()
        var writer = SafeTensorsWriter()
        try writer.add("weight.f16", shape: [5], floats: [1.0 / 3.0, 65504, 0x1p-24, -.infinity, 0.1], dtype: .F16)
        try writer.add("weight.bf16", shape: [2, 2], floats: [1.0 / 3.0, -2.5, 3e38, tinyBF16Input], dtype: .BF16)
        let ours = try SafeTensorsFile(data: writer.serialized())
        for name in ours.names {
            let theirs = try python.withUnsafeRawBytes(name) { Array($0) }
            XCTAssertEqual(try ours.withUnsafeRawBytes(name) { Array($0) }, theirs, "expected \(name) bytes equal to Python's")
        }
    }
}
