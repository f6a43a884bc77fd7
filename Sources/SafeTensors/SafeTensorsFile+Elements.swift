/// Typed, copying reads of a tensor's elements, converted from the stored
/// dtype. Conversion happens per call, per tensor; nothing is cached.
extension SafeTensorsFile {
    /// The dtypes `int64s(_:)` accepts.
    public static let integerDTypes: [SafeTensorsDType] = [.I64, .I32, .I16, .I8, .U8, .BOOL]

    /// The tensor's elements as `Float`, in row-major order.
    ///
    /// F32, F16 and BF16 convert exactly. F64 rounds to the nearest `Float`
    /// (values beyond `Float`'s range become infinite), as do I64 and I32
    /// values beyond 2^24 in magnitude. BOOL reads as 0 or 1.
    public func floats(_ name: String) throws -> [Float] {
        let info = try lookUp(name)
        return try withUnsafeRawBytes(name) { bytes in
            let count = info.elementCount
            switch info.dtype {
            case .F32: return Self.decode(bytes, count: count) { (bits: UInt32) in Float(bitPattern: bits) }
            case .F64: return Self.decode(bytes, count: count) { (bits: UInt64) in Float(Double(bitPattern: bits)) }
            case .F16: return Self.decode(bytes, count: count, HalfPrecision.float(fromFloat16Bits:))
            case .BF16: return Self.decode(bytes, count: count, HalfPrecision.float(fromBFloat16Bits:))
            case .I64: return Self.decode(bytes, count: count) { (value: Int64) in Float(value) }
            case .I32: return Self.decode(bytes, count: count) { (value: Int32) in Float(value) }
            case .I16: return Self.decode(bytes, count: count) { (value: Int16) in Float(value) }
            case .I8: return Self.decode(bytes, count: count) { (value: Int8) in Float(value) }
            case .U8: return Self.decode(bytes, count: count) { (value: UInt8) in Float(value) }
            case .BOOL: return Self.decode(bytes, count: count) { (value: UInt8) in value == 0 ? 0 : 1 }
            }
        }
    }

    /// The tensor's elements as `Int64`, in row-major order, sign- or
    /// zero-extended from any of `integerDTypes` (BOOL reads as 0 or 1).
    ///
    /// - Throws: `SafeTensorsError` with `.dtypeNotConvertible` for a
    ///   floating-point tensor, rather than truncating its values.
    public func int64s(_ name: String) throws -> [Int64] {
        let info = try lookUp(name)
        return try withUnsafeRawBytes(name) { bytes in
            let count = info.elementCount
            switch info.dtype {
            case .I64: return Self.decode(bytes, count: count) { (value: Int64) in value }
            case .I32: return Self.decode(bytes, count: count) { (value: Int32) in Int64(value) }
            case .I16: return Self.decode(bytes, count: count) { (value: Int16) in Int64(value) }
            case .I8: return Self.decode(bytes, count: count) { (value: Int8) in Int64(value) }
            case .U8: return Self.decode(bytes, count: count) { (value: UInt8) in Int64(value) }
            case .BOOL: return Self.decode(bytes, count: count) { (value: UInt8) in value == 0 ? 0 : 1 }
            case .F64, .F32, .F16, .BF16:
                throw SafeTensorsError(
                    source: source, tensor: name,
                    problem: .dtypeNotConvertible(dtype: info.dtype, requested: "Int64", accepted: Self.integerDTypes))
            }
        }
    }

    /// Reads `count` little-endian `Stored` values from possibly unaligned
    /// `bytes` and converts each with `convert`.
    private static func decode<Stored: FixedWidthInteger, Element>(
        _ bytes: UnsafeRawBufferPointer, count: Int, _ convert: (Stored) -> Element
    ) -> [Element] {
        precondition(bytes.count == count * MemoryLayout<Stored>.size, "header validation guarantees the span")
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            for index in 0..<count {
                let raw = bytes.loadUnaligned(fromByteOffset: index &* MemoryLayout<Stored>.size, as: Stored.self)
                buffer.initializeElement(at: index, to: convert(Stored(littleEndian: raw)))
            }
            initialized = count
        }
    }
}
