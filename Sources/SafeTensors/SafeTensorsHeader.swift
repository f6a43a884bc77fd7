/// The validated contents of a safetensors header: every tensor's location
/// and the optional string metadata.
///
/// Validation follows the format's reference implementation (huggingface
/// `safetensors`, `SafeTensors::deserialize` and `Metadata::validate`) with
/// one deliberate relaxation: tensors need not tile the data section
/// contiguously. Gaps between tensors, and unused bytes after the last one,
/// are accepted and never read; only overlapping byte ranges are refused.
struct SafeTensorsHeader {
    /// The reserved key holding string-to-string metadata.
    static let metadataKey = "__metadata__"

    let tensors: [String: SafeTensorInfo]
    /// Tensor names in ascending UTF-8 byte order.
    let names: [String]
    let metadata: [String: String]

    /// Validates the header JSON `bytes` against a data section of
    /// `dataSectionLength` bytes; errors name `source`.
    init(
        json bytes: UnsafeRawBufferPointer, dataSectionLength: Int,
        limits: SafeTensorsLimits, source: String
    ) throws(SafeTensorsError) {
        func fail(_ problem: SafeTensorsError.Problem, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(source: source, tensor: tensor, problem: problem)
        }
        if let badOffset = Self.firstInvalidUTF8Offset(bytes) {
            throw fail(.headerNotUTF8(byteOffset: badOffset))
        }
        let root: StrictJSON
        do {
            root = try JSONParser.parse(bytes)
        } catch {
            throw fail(.headerNotJSON(reason: "\(error.message) at header offset \(error.offset)"))
        }
        guard case var .object(entries) = root else {
            throw fail(.headerNotObject(found: root.summary))
        }

        var metadata: [String: String] = [:]
        if let rawMetadata = entries.removeValue(forKey: Self.metadataKey) {
            guard case let .object(pairs) = rawMetadata else {
                throw fail(.metadataNotStringMap(found: rawMetadata.summary))
            }
            for (key, value) in pairs {
                guard case let .string(text) = value else {
                    throw fail(.metadataNotStringMap(found: "\"\(key)\": \(value.summary)"))
                }
                metadata[key] = text
            }
        }

        let names = entries.keys.sorted(by: SafeTensorsHeader.precedes)
        var tensors: [String: SafeTensorInfo] = [:]
        tensors.reserveCapacity(names.count)
        for name in names {
            tensors[name] = try Self.validateEntry(
                entries[name]!, name: name, dataSectionLength: dataSectionLength, limits: limits, source: source)
        }
        if let (tensor, problem) = Self.firstOverlap(in: names.map { tensors[$0]! }) {
            throw fail(problem, tensor: tensor)
        }
        self.tensors = tensors
        self.names = names
        self.metadata = metadata
    }

    /// The order of `names`: byte-wise on UTF-8, so it never depends on
    /// Unicode normalisation and matches the order the writer lays data out in.
    static func precedes(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    // MARK: Entries

    private static func validateEntry(
        _ entry: StrictJSON, name: String, dataSectionLength: Int, limits: SafeTensorsLimits, source: String
    ) throws(SafeTensorsError) -> SafeTensorInfo {
        func fail(_ problem: SafeTensorsError.Problem) -> SafeTensorsError {
            SafeTensorsError(source: source, tensor: name, problem: problem)
        }
        guard case let .object(fields) = entry else { throw fail(.entryNotObject(found: entry.summary)) }
        guard let rawDType = fields["dtype"] else { throw fail(.missingField("dtype")) }
        guard let rawShape = fields["shape"] else { throw fail(.missingField("shape")) }
        guard let rawOffsets = fields["data_offsets"] else { throw fail(.missingField("data_offsets")) }

        guard case let .string(dtypeName) = rawDType else {
            throw fail(.wrongFieldType(field: "dtype", expected: "a string", found: rawDType.summary))
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else { throw fail(.unknownDType(dtypeName)) }

        guard case let .array(dimensions) = rawShape else {
            throw fail(.wrongFieldType(field: "shape", expected: "an array of integers", found: rawShape.summary))
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimensions.count)
        for (index, dimension) in dimensions.enumerated() {
            guard let size = dimension.integerValue, size >= 0 else {
                throw fail(.invalidDimension(index: index, found: dimension.summary))
            }
            shape.append(size)
        }
        let elementCount = try checkedElementCount(shape, limit: limits.maxElements, source: source, tensor: name)

        guard case let .array(offsets) = rawOffsets else {
            throw fail(.wrongFieldType(field: "data_offsets", expected: "an array [begin, end]", found: rawOffsets.summary))
        }
        guard offsets.count == 2, let begin = offsets[0].integerValue, let end = offsets[1].integerValue,
              begin >= 0, begin <= end
        else { throw fail(.invalidDataOffsets(found: rawOffsets.summary)) }
        guard end <= dataSectionLength else {
            throw fail(.dataBeyondSection(end: end, sectionLength: dataSectionLength))
        }
        // elementCount <= maxElements, and byteSize <= 8, so only a caller
        // raising the limit near Int.max could overflow here.
        let (expectedBytes, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw fail(.elementCountOverflow(shape: shape)) }
        guard end - begin == expectedBytes else {
            throw fail(.byteCountMismatch(expected: expectedBytes, found: end - begin, elementCount: elementCount, dtype: dtype))
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end, elementCount: elementCount)
    }

    /// The product of `shape` (1 for a scalar), refused if it overflows or
    /// exceeds `limit`.
    static func checkedElementCount(
        _ shape: [Int], limit: Int, source: String, tensor: String
    ) throws(SafeTensorsError) -> Int {
        var count = 1
        for size in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else {
                throw SafeTensorsError(source: source, tensor: tensor, problem: .elementCountOverflow(shape: shape))
            }
            count = product
        }
        guard count <= limit else {
            throw SafeTensorsError(source: source, tensor: tensor, problem: .elementCountAbsurd(count: count, limit: limit))
        }
        return count
    }

    /// The first pair of tensors sharing a byte, reported against the later
    /// one. Empty tensors own no bytes and so overlap nothing.
    private static func firstOverlap(in infos: [SafeTensorInfo]) -> (String, SafeTensorsError.Problem)? {
        let byStart = infos.filter { !$0.byteRange.isEmpty }.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
        }
        var furthest: SafeTensorInfo?
        for info in byStart {
            if let previous = furthest, info.byteRange.lowerBound < previous.byteRange.upperBound {
                return (info.name, .overlap(range: info.byteRange, other: previous.name, otherRange: previous.byteRange))
            }
            if furthest == nil || info.byteRange.upperBound > furthest!.byteRange.upperBound {
                furthest = info
            }
        }
        return nil
    }

    // MARK: UTF-8

    /// Offset of the first byte that does not begin a valid UTF-8 sequence, or
    /// `nil` when all of `bytes` is valid UTF-8.
    static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
