/// Exact conversions between `Float` and the two 16-bit float formats
/// safetensors stores, done on bit patterns so they behave the same on every
/// platform (Swift's `Float16` is missing on macOS x86_64).
public enum HalfPrecision {
    // MARK: IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.

    /// The `Float` equal to the binary16 value with bit pattern `bits`.
    ///
    /// Exact for every input (binary32 holds every binary16 value):
    /// subnormals become normal floats, infinities stay infinite, and a NaN
    /// keeps its sign and payload (shifted into the top of the wider mantissa).
    public static func float(fromFloat16Bits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa × 2^-24, exact in binary32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
        default:
            // Rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
    }

    /// The binary16 bit pattern nearest to `value`, ties to even (IEEE 754's
    /// default rounding, as `Float16(value)` and PyTorch's `.half()` do).
    ///
    /// Values at or beyond 65520 round to infinity; values below half the
    /// smallest subnormal (2^-25) round to a signed zero. NaN stays NaN,
    /// quieted, keeping the top payload bits.
    public static func float16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: bits >> 16) & 0x8000
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x007F_FFFF

        if exponent == 0xFF {
            guard mantissa != 0 else { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        let halfExponent = exponent - 112  // rebias from 127 to 15
        if halfExponent >= 0x1F {
            return sign | 0x7C00
        }
        if halfExponent >= 1 {
            // Normal: drop 13 mantissa bits with rounding. A carry out of the
            // mantissa correctly bumps the exponent, up to infinity (0x7C00).
            let rounded = roundedShift(UInt32(halfExponent) << 23 | mantissa, by: 13)
            return sign | UInt16(truncatingIfNeeded: rounded)
        }
        // Subnormal or zero in binary16: the value in units of 2^-24 is
        // (1.mantissa × 2^23) × 2^(exponent - 126 - 23 + 23) = significand >> (126 - exponent).
        let shift = 126 - exponent
        guard exponent != 0, shift <= 24 else { return sign }  // below 2^-25: rounds to zero
        let significand = 0x0080_0000 | mantissa
        return sign | UInt16(truncatingIfNeeded: roundedShift(significand, by: shift))
    }

    /// `value >> shift`, rounded to nearest with ties to even.
    private static func roundedShift(_ value: UInt32, by shift: Int) -> UInt32 {
        let quotient = value >> UInt32(shift)
        let remainder = value & ((1 << UInt32(shift)) - 1)
        let half: UInt32 = 1 << UInt32(shift - 1)
        if remainder > half || (remainder == half && quotient & 1 == 1) {
            return quotient + 1
        }
        return quotient
    }

    // MARK: bfloat16: the top 16 bits of a binary32.

    /// The `Float` equal to the bfloat16 value with bit pattern `bits`; exact.
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The bfloat16 bit pattern nearest to `value`, ties to even (as
    /// PyTorch's `.bfloat16()` does). NaN stays NaN, quieted.
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        // Adding 0x7FFF plus the lowest kept bit rounds half to even; a carry
        // into the exponent is the correct result, up to infinity.
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }
}
