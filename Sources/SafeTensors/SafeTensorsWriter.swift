import Foundation

/// Builds a safetensors file in memory and serialises it.
///
/// The output matches what the Python `safetensors` library would accept and
/// is deterministic: header keys are sorted (`"__metadata__"` first, then
/// tensor names in UTF-8 byte order), tensor data is laid out contiguously in
/// that same order, and the header is padded with spaces to a multiple of 8
/// bytes so the data section starts 8-byte aligned, as the Python library
/// pads it.
public struct SafeTensorsWriter: Sendable {
    /// String metadata stored under `"__metadata__"`; omitted when empty.
    public var metadata: [String: String] = [:]

    private var entries: [String: Entry] = [:]

    private struct Entry: Sendable {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let bytes: Data
    }

    /// Creates an empty writer.
    public init() {}

    /// Tensor names added so far, in the order their data will be written.
    public var names: [String] {
        entries.keys.sorted(by: SafeTensorsHeader.precedes)
    }

    /// Adds a floating-point tensor, stored as `dtype` (F32, F16 or BF16).
    ///
    /// Narrowing to F16 or BF16 rounds to nearest, ties to even.
    ///
    /// - Throws: `SafeTensorsError` if the name is taken or reserved, the
    ///   shape is invalid or disagrees with `floats.count`, or `dtype` is
    ///   not one of the three accepted.
    public mutating func add(_ name: String, shape: [Int], floats: [Float], dtype: SafeTensorsDType = .F32) throws {
        try checkNew(name, shape: shape, valueCount: floats.count)
        let bytes: Data
        switch dtype {
        case .F32: bytes = Self.encode(floats) { $0.bitPattern }
        case .F16: bytes = Self.encode(floats, HalfPrecision.float16Bits(from:))
        case .BF16: bytes = Self.encode(floats, HalfPrecision.bfloat16Bits(from:))
        default:
            throw SafeTensorsError(
                source: Self.source, tensor: name,
                problem: .dtypeNotConvertible(dtype: dtype, requested: "a Float tensor", accepted: [.F32, .F16, .BF16]))
        }
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Adds an integer tensor stored as I64.
    ///
    /// - Throws: `SafeTensorsError` if the name is taken or reserved, or the
    ///   shape is invalid or disagrees with `int64s.count`.
    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) throws {
        try checkNew(name, shape: shape, valueCount: int64s.count)
        entries[name] = Entry(dtype: .I64, shape: shape, bytes: Self.encode(int64s) { $0 })
    }

    /// Adds a tensor of any dtype from its stored form: `rawBytes` holds the
    /// elements little-endian, row-major, `dtype.byteSize` bytes each.
    ///
    /// - Throws: `SafeTensorsError` if the name is taken or reserved, the
    ///   shape is invalid, or the byte count is not elements × dtype size.
    public mutating func add(_ name: String, dtype: SafeTensorsDType, shape: [Int], rawBytes: Data) throws {
        let elementCount = try checkNew(name, shape: shape, valueCount: nil)
        let expected = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        guard !expected.overflow, expected.partialValue == rawBytes.count else {
            throw SafeTensorsError(
                source: Self.source, tensor: name,
                problem: .byteCountMismatch(
                    expected: expected.partialValue, found: rawBytes.count, elementCount: elementCount, dtype: dtype))
        }
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: rawBytes)
    }

    /// The complete file: length prefix, padded header, data section.
    public func serialized() -> Data {
        let (header, order) = headerAndOrder()
        var output = Data(capacity: 8 + header.count + order.reduce(0) { $0 + $1.bytes.count })
        output.append(contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
        output.append(contentsOf: header)
        for entry in order {
            output.append(entry.bytes)
        }
        return output
    }

    /// Writes the file to `path` atomically: into a temporary file beside it,
    /// flushed to disk, then renamed over `path`, so a reader never sees a
    /// half-written checkpoint.
    ///
    /// - Throws: `SafeTensorsError` naming `path` if any system call fails;
    ///   the temporary file is removed and `path` is left untouched.
    public func write(to path: String) throws {
        let (header, order) = headerAndOrder()
        var prefix = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        prefix.append(contentsOf: header)
        try AtomicFileWriter.store([Data(prefix)] + order.map(\.bytes), at: path)
    }

    // MARK: Internals

    static let source = "<writer>"

    /// Refuses reused or reserved names and invalid shapes; returns the element count.
    @discardableResult
    private func checkNew(_ name: String, shape: [Int], valueCount: Int?) throws(SafeTensorsError) -> Int {
        func fail(_ problem: SafeTensorsError.Problem) -> SafeTensorsError {
            SafeTensorsError(source: Self.source, tensor: name, problem: problem)
        }
        guard name != SafeTensorsHeader.metadataKey else { throw fail(.reservedName) }
        guard entries[name] == nil else { throw fail(.duplicateName) }
        for (index, size) in shape.enumerated() where size < 0 {
            throw fail(.invalidDimension(index: index, found: String(size)))
        }
        let count = try SafeTensorsHeader.checkedElementCount(shape, limit: .max, source: Self.source, tensor: name)
        if let valueCount, valueCount != count {
            throw fail(.valueCountMismatch(shape: shape, expected: count, found: valueCount))
        }
        return count
    }

    /// The space-padded header JSON and the entries in data order.
    private func headerAndOrder() -> (header: [UInt8], order: [Entry]) {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted(by: SafeTensorsHeader.precedes).map {
                "\(JSONText.quoted($0)):\(JSONText.quoted(metadata[$0]!))"
            }
            fields.append("\(JSONText.quoted(SafeTensorsHeader.metadataKey)):{\(pairs.joined(separator: ","))}")
        }
        var order: [Entry] = []
        var offset = 0
        for name in names {
            let entry = entries[name]!
            let end = offset + entry.bytes.count
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append(
                "\(JSONText.quoted(name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(end)]}")
            order.append(entry)
            offset = end
        }
        var header = Array("{\(fields.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        return (header, order)
    }

    /// Packs `values` little-endian after mapping each to its stored integer form.
    private static func encode<Value, Stored: FixedWidthInteger>(
        _ values: [Value], _ storedForm: (Value) -> Stored
    ) -> Data {
        let size = MemoryLayout<Stored>.size
        var data = Data(count: values.count * size)
        data.withUnsafeMutableBytes { buffer in
            for (index, value) in values.enumerated() {
                buffer.storeBytes(of: storedForm(value).littleEndian, toByteOffset: index * size, as: Stored.self)
            }
        }
        return data
    }
}
