/// The element types this reader understands, spelled exactly as they appear
/// in the `"dtype"` field of a safetensors header.
///
/// The format defines more types (for example `F8_E4M3`, `U32`, `C64`); a
/// header naming one of those is refused as an unknown dtype rather than read
/// with a guessed layout.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// IEEE 754 binary64.
    case F64
    /// IEEE 754 binary32.
    case F32
    /// IEEE 754 binary16 (half precision).
    case F16
    /// bfloat16: the top 16 bits of an IEEE 754 binary32.
    case BF16
    /// Signed 64-bit two's-complement integer.
    case I64
    /// Signed 32-bit two's-complement integer.
    case I32
    /// Signed 16-bit two's-complement integer.
    case I16
    /// Signed 8-bit two's-complement integer.
    case I8
    /// Unsigned 8-bit integer.
    case U8
    /// One byte per element; zero is false, anything else is true.
    case BOOL

    /// Bytes one element occupies in the data section (all little-endian).
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// Whether the type holds floating-point values.
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: return true
        case .I64, .I32, .I16, .I8, .U8, .BOOL: return false
        }
    }
}
