import Foundation

/// A safetensors file opened for reading: the header is parsed and validated
/// once, up front, and tensor data is read from the mapping only when asked.
///
/// The file is memory-mapped, never read wholesale, so opening a multi-GiB
/// checkpoint costs only its header. The object is immutable after `init`
/// and safe to share between threads.
///
/// Layout (all integers little-endian):
///
///     [u64 N][N bytes of UTF-8 JSON header][data section ...]
///
/// where each header entry's `data_offsets` are relative to the data section.
public final class SafeTensorsFile: Sendable {
    /// Where the bytes came from: a path, or `"<memory>"`. Every error names it.
    public let source: String
    /// The header's `"__metadata__"` map, empty when there is none.
    public let metadata: [String: String]
    /// Every tensor name, in ascending UTF-8 byte order.
    public let names: [String]

    private let tensors: [String: SafeTensorInfo]
    private let storage: Storage
    /// Offset of the data section from the start of the bytes: 8 + N.
    private let dataStart: Int

    /// Maps and validates the file at `path`.
    ///
    /// - Throws: `SafeTensorsError` naming `path` if the file cannot be
    ///   mapped or its header fails any check described on `SafeTensorsError.Problem`.
    public convenience init(path: String, limits: SafeTensorsLimits = .default) throws {
        let mapped = try MappedFile(path: path)
        try self.init(storage: .mapped(mapped), source: path, limits: limits)
    }

    /// Validates safetensors bytes held in memory (a test fixture, a network
    /// frame). The bytes are kept, not copied again, for later reads.
    ///
    /// - Parameter source: the name errors use; `"<memory>"` by default.
    public convenience init(data: Data, source: String = "<memory>", limits: SafeTensorsLimits = .default) throws {
        try self.init(storage: .memory(data), source: source, limits: limits)
    }

    private init(storage: Storage, source: String, limits: SafeTensorsLimits) throws(SafeTensorsError) {
        let (header, dataStart) = try storage.withBytes { bytes throws(SafeTensorsError) in
            try Self.parseLayout(bytes, source: source, limits: limits)
        }
        self.source = source
        self.storage = storage
        self.dataStart = dataStart
        self.tensors = header.tensors
        self.names = header.names
        self.metadata = header.metadata
    }

    /// Splits `bytes` into length prefix, header and data section, and
    /// validates the header against the data section's length.
    private static func parseLayout(
        _ bytes: UnsafeRawBufferPointer, source: String, limits: SafeTensorsLimits
    ) throws(SafeTensorsError) -> (SafeTensorsHeader, dataStart: Int) {
        guard bytes.count >= 8 else {
            throw SafeTensorsError(source: source, problem: .fileTooShort(byteCount: bytes.count))
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        // Compared as UInt64 first: a declared length above Int.max must not trap on conversion.
        guard declared <= UInt64(max(limits.maxHeaderBytes, 0)) else {
            throw SafeTensorsError(
                source: source, problem: .headerLengthAbsurd(declared: declared, limit: limits.maxHeaderBytes))
        }
        let available = bytes.count - 8
        guard declared <= UInt64(available) else {
            throw SafeTensorsError(
                source: source, problem: .headerLengthBeyondFile(declared: declared, available: available))
        }
        let dataStart = 8 + Int(declared)
        let header = try SafeTensorsHeader(
            json: UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]),
            dataSectionLength: bytes.count - dataStart, limits: limits, source: source)
        return (header, dataStart)
    }

    /// Every tensor's description, in the order of `names`.
    public var tensorInfos: [SafeTensorInfo] {
        names.map { tensors[$0]! }
    }

    /// Whether a tensor called `name` exists.
    public func contains(_ name: String) -> Bool {
        tensors[name] != nil
    }

    /// The description of the tensor called `name`.
    ///
    /// - Throws: `SafeTensorsError` with `.noSuchTensor` if there is none.
    public func info(_ name: String) throws -> SafeTensorInfo {
        try lookUp(name)
    }

    /// Calls `body` with the tensor's stored bytes, little-endian and in
    /// `info(name).dtype`, without copying. The pointer is valid only inside
    /// `body` and need not be aligned for the element type (use
    /// `loadUnaligned`).
    public func withUnsafeRawBytes<Result>(
        _ name: String, _ body: (UnsafeRawBufferPointer) throws -> Result
    ) throws -> Result {
        let info = try lookUp(name)
        return try storage.withBytes { bytes in
            let start = dataStart + info.byteRange.lowerBound
            return try body(UnsafeRawBufferPointer(rebasing: bytes[start..<start + info.byteRange.count]))
        }
    }

    func lookUp(_ name: String) throws(SafeTensorsError) -> SafeTensorInfo {
        guard let info = tensors[name] else {
            throw SafeTensorsError(source: source, tensor: name, problem: .noSuchTensor(available: tensors.count))
        }
        return info
    }
}

extension SafeTensorsFile {
    /// What keeps the bytes alive: a mapping of a file, or caller-provided data.
    /// Whether the bytes come from a file mapping, whose addresses stay valid
    /// for this object's lifetime (in-memory `Data` may not be addressable
    /// outside `withUnsafeRawBytes`).
    public var isMapped: Bool {
        if case .mapped = storage { return true }
        return false
    }

    fileprivate enum Storage: Sendable {
        case mapped(MappedFile)
        case memory(Data)

        func withBytes<Result, Failure: Error>(
            _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
        ) throws(Failure) -> Result {
            switch self {
            case let .mapped(file):
                return try body(file.bytes)
            case let .memory(data):
                // Data's withUnsafeBytes is rethrows-untyped; carry the typed error out by hand.
                let outcome: Swift.Result<Result, Failure> = data.withUnsafeBytes { bytes in
                    do throws(Failure) { return .success(try body(bytes)) } catch { return .failure(error) }
                }
                return try outcome.get()
            }
        }
    }
}
