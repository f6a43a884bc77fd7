import XCTest
@testable import SafeTensors

/// F16 and BF16 conversions are exact when widening and round to nearest,
/// ties to even, when narrowing.
final class HalfPrecisionTests: XCTestCase {
    func testF16SpecialValuesWidenExactly() {
        let cases: [(UInt16, Float, String)] = [
            (0x0000, 0, "+0"),
            (0x8000, -0.0, "-0"),
            (0x0001, 0x1p-24, "smallest subnormal"),
            (0x03FF, 0x1.FF8p-15, "largest subnormal"),
            (0x8001, -0x1p-24, "negative subnormal"),
            (0x0400, 0x1p-14, "smallest normal"),
            (0x3C00, 1, "one"),
            (0x3555, 0x1.554p-2, "1/3 rounded to F16"),
            (0x7BFF, 65504, "max"),
            (0xFBFF, -65504, "-max"),
            (0x7C00, .infinity, "+inf"),
            (0xFC00, -.infinity, "-inf"),
        ]
        for (bits, expected, label) in cases {
            let widened = HalfPrecision.float(fromFloat16Bits: bits)
            XCTAssertEqual(
                widened.bitPattern, expected.bitPattern,
                "expected F16 \(label) (0x\(String(bits, radix: 16))) to widen to \(expected), got \(widened)")
        }
    }

    func testF16NaNWidensToNaNKeepingSignAndPayload() {
        let quiet = HalfPrecision.float(fromFloat16Bits: 0x7E00)
        let signalingWithPayload = HalfPrecision.float(fromFloat16Bits: 0xFC01)
        XCTAssertTrue(quiet.isNaN, "expected 0x7E00 to widen to NaN, got \(quiet)")
        XCTAssertTrue(signalingWithPayload.isNaN, "expected 0xFC01 to widen to NaN, got \(signalingWithPayload)")
        XCTAssertEqual(signalingWithPayload.sign, .minus, "expected the NaN sign to survive widening")
        XCTAssertEqual(signalingWithPayload.bitPattern, 0xFF80_2000, "expected the payload shifted up by 13 bits")
    }

    func testF16NarrowingRoundsOneThirdAndTiesToEven() {
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1.0 / 3.0), 0x3555, "expected 1/3 to round down to 0x3555")
        // 1 + 2^-11 is exactly halfway between 1 and the next F16 (1 + 2^-10): ties go to the even mantissa, 1.
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1 + 0x1p-11), 0x3C00, "expected a tie to round to even (down)")
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up.
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1 + 3 * 0x1p-11), 0x3C02, "expected a tie to round to even (up)")
        XCTAssertEqual(HalfPrecision.float16Bits(from: 65519), 0x7BFF, "expected 65519 to round down to max")
        XCTAssertEqual(HalfPrecision.float16Bits(from: 65520), 0x7C00, "expected 65520 to round up to infinity")
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1p-25), 0x0000, "expected 2^-25 (a tie) to round to +0")
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1.8p-25), 0x0001, "expected 1.5·2^-25 to round up to 2^-24")
        XCTAssertEqual(HalfPrecision.float16Bits(from: -0x1p-30), 0x8000, "expected a tiny negative to become -0")
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1.FFCp-15), 0x0400, "expected rounding to carry into the smallest normal")
        XCTAssertEqual(HalfPrecision.float16Bits(from: -.infinity), 0xFC00, "expected -inf to stay -inf")
        XCTAssertEqual(HalfPrecision.float16Bits(from: .nan) & 0x7E00, 0x7E00, "expected NaN to stay a quiet NaN")
    }

    #if !(os(macOS) && arch(x86_64))
    func testF16WideningAgreesWithSwiftFloat16ForEveryBitPattern() {
        var mismatches: [UInt16] = []
        for bits in 0...UInt16.max {
            let ours = HalfPrecision.float(fromFloat16Bits: bits)
            let reference = Float(Float16(bitPattern: bits))
            let agree = ours.isNaN ? reference.isNaN : ours.bitPattern == reference.bitPattern
            if !agree { mismatches.append(bits) }
        }
        XCTAssertEqual(
            mismatches.count, 0,
            "expected every F16 bit pattern to widen exactly as Float(Float16) does; first mismatches: \(mismatches.prefix(10))")
    }

    func testF16NarrowingAgreesWithSwiftFloat16AtEveryMidpoint() {
        // Midpoints between neighbouring F16 values, and their Float neighbours,
        // are where a rounding mistake would show.
        var mismatches: [Float] = []
        for bits in UInt16(0)..<0x7C00 {
            let low = Float(Float16(bitPattern: bits))
            let high = Float(Float16(bitPattern: bits + 1))
            let middle = low + (high - low) / 2
            for value in [middle, middle.nextUp, middle.nextDown, -middle, low] {
                if HalfPrecision.float16Bits(from: value) != Float16(value).bitPattern {
                    mismatches.append(value)
                }
            }
        }
        XCTAssertEqual(
            mismatches.count, 0,
            "expected narrowing to match Float16(_:) (ties to even) at every midpoint; first mismatches: \(mismatches.prefix(10))")
    }
    #endif

    func testBF16SpecialValuesWidenExactly() {
        let cases: [(UInt16, Float, String)] = [
            (0x0000, 0, "+0"),
            (0x8000, -0.0, "-0"),
            (0x0001, Float(bitPattern: 0x0001_0000), "smallest subnormal"),
            (0x3F80, 1, "one"),
            (0x3EAB, 0x1.56p-2, "1/3 rounded to BF16"),
            (0x7F7F, Float(bitPattern: 0x7F7F_0000), "max"),
            (0x7F80, .infinity, "+inf"),
            (0xFF80, -.infinity, "-inf"),
        ]
        for (bits, expected, label) in cases {
            let widened = HalfPrecision.float(fromBFloat16Bits: bits)
            XCTAssertEqual(
                widened.bitPattern, expected.bitPattern,
                "expected BF16 \(label) (0x\(String(bits, radix: 16))) to widen to \(expected), got \(widened)")
        }
        XCTAssertTrue(HalfPrecision.float(fromBFloat16Bits: 0x7FC0).isNaN, "expected BF16 0x7FC0 to widen to NaN")
    }

    func testBF16NarrowingRoundsToNearestEven() {
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: 1.0 / 3.0), 0x3EAB, "expected 1/3 to round up to 0x3EAB")
        XCTAssertEqual(
            HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x3F80_8000)), 0x3F80,
            "expected a tie above 1 to round to the even mantissa (down)")
        XCTAssertEqual(
            HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x3F81_8000)), 0x3F82,
            "expected a tie above an odd mantissa to round up")
        XCTAssertEqual(
            HalfPrecision.bfloat16Bits(from: .greatestFiniteMagnitude), 0x7F80,
            "expected Float's max (above BF16's max by more than half an ulp) to round to infinity")
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: -0.0), 0x8000, "expected -0 to stay -0")
        let nan = HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x7F80_0001))
        XCTAssertTrue(
            HalfPrecision.float(fromBFloat16Bits: nan).isNaN,
            "expected a NaN whose payload lies only in the low bits to stay NaN, got 0x\(String(nan, radix: 16))")
    }
}
