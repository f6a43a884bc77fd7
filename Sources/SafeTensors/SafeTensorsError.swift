/// Why a safetensors file could not be read or written.
///
/// The description always names the file (its path, `"<memory>"` for bytes
/// handed over in memory, or `"<writer>"` for a writer that has no path yet),
/// the tensor when one is at fault, and what was expected against what was
/// found, so that a log line alone is enough to diagnose a bad checkpoint.
public struct SafeTensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Path of the file, or `"<memory>"` / `"<writer>"`.
    public let source: String
    /// The tensor the problem concerns, if any.
    public let tensor: String?
    /// What went wrong.
    public let problem: Problem

    /// Creates an error for `problem`, found in `source` while handling `tensor`.
    public init(source: String, tensor: String? = nil, problem: Problem) {
        self.source = source
        self.tensor = tensor
        self.problem = problem
    }

    /// `"<path>: tensor \"<name>\": <problem>"`.
    public var description: String {
        if let tensor {
            return "\(source): tensor \"\(tensor)\": \(problem)"
        }
        return "\(source): \(problem)"
    }

    /// The specific defect, with the values involved.
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// An operating-system call failed (`operation` is e.g. `"open"`).
        case systemCall(operation: String, errno: Int32)
        /// The file lies outside the folders the run may read (``ReadConfinement``).
        case notReadable
        /// The path names something other than a regular file.
        case notARegularFile
        /// Fewer than the 8 bytes that hold the header length.
        case fileTooShort(byteCount: Int)
        /// The declared header length exceeds `SafeTensorsLimits.maxHeaderBytes`.
        case headerLengthAbsurd(declared: UInt64, limit: Int)
        /// The declared header length runs past the end of the file.
        case headerLengthBeyondFile(declared: UInt64, available: Int)
        /// The header bytes are not UTF-8; `byteOffset` is within the header.
        case headerNotUTF8(byteOffset: Int)
        /// The header is not well-formed JSON.
        case headerNotJSON(reason: String)
        /// The header is JSON but its top level is not an object.
        case headerNotObject(found: String)
        /// `"__metadata__"` is not an object whose values are all strings.
        case metadataNotStringMap(found: String)
        /// A tensor's entry is not a JSON object.
        case entryNotObject(found: String)
        /// A tensor's entry lacks a required field.
        case missingField(String)
        /// A field holds the wrong kind of JSON value.
        case wrongFieldType(field: String, expected: String, found: String)
        /// The dtype string is not one of `SafeTensorsDType`.
        case unknownDType(String)
        /// A shape dimension is negative, fractional or too large.
        case invalidDimension(index: Int, found: String)
        /// The product of the shape does not fit in `Int`.
        case elementCountOverflow(shape: [Int])
        /// The product of the shape exceeds `SafeTensorsLimits.maxElements`.
        case elementCountAbsurd(count: Int, limit: Int)
        /// `data_offsets` is not `[begin, end]` with `0 <= begin <= end`.
        case invalidDataOffsets(found: String)
        /// `data_offsets` ends past the end of the data section.
        case dataBeyondSection(end: Int, sectionLength: Int)
        /// The byte span disagrees with shape × dtype size.
        case byteCountMismatch(expected: Int, found: Int, elementCount: Int, dtype: SafeTensorsDType)
        /// Two tensors claim some of the same bytes.
        case overlap(range: Range<Int>, other: String, otherRange: Range<Int>)
        /// No tensor has the requested name.
        case noSuchTensor(available: Int)
        /// The tensor's dtype cannot be returned as the requested element type.
        case dtypeNotConvertible(dtype: SafeTensorsDType, requested: String, accepted: [SafeTensorsDType])
        /// A writer was given the same tensor name twice.
        case duplicateName
        /// A writer was given a name the format reserves.
        case reservedName
        /// A writer was given a number of values different from the shape's element count.
        case valueCountMismatch(shape: [Int], expected: Int, found: Int)

        /// A sentence naming what was expected and what was found.
        public var description: String {
            switch self {
            case let .systemCall(operation, code):
                return "\(operation) failed: \(SafeTensorsError.systemMessage(code)) (errno \(code))"
            case .notReadable:
                return "not readable by this job (it is missing, or it or a link in it leads outside the models, templates and allowed folders)"
            case .notARegularFile:
                return "expected a regular file"
            case let .fileTooShort(byteCount):
                return "file is \(byteCount) bytes, expected at least 8 (the little-endian header length)"
            case let .headerLengthAbsurd(declared, limit):
                return "header length \(declared) exceeds the limit of \(limit) bytes"
            case let .headerLengthBeyondFile(declared, available):
                return "header length \(declared) reaches beyond the end of the file, "
                    + "which has only \(available) bytes after the 8-byte length"
            case let .headerNotUTF8(byteOffset):
                return "header is not valid UTF-8 (bad byte at header offset \(byteOffset))"
            case let .headerNotJSON(reason):
                return "header is not valid JSON: \(reason)"
            case let .headerNotObject(found):
                return "header must be a JSON object, found \(found)"
            case let .metadataNotStringMap(found):
                return "\"__metadata__\" must be an object of string values, found \(found)"
            case let .entryNotObject(found):
                return "entry must be an object with dtype, shape and data_offsets, found \(found)"
            case let .missingField(field):
                return "entry is missing the field \"\(field)\""
            case let .wrongFieldType(field, expected, found):
                return "field \"\(field)\" must be \(expected), found \(found)"
            case let .unknownDType(name):
                let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
                return "unknown dtype \"\(name)\", expected one of \(known)"
            case let .invalidDimension(index, found):
                return "shape dimension \(index) must be a non-negative integer, found \(found)"
            case let .elementCountOverflow(shape):
                return "element count of shape \(shape) overflows a 64-bit integer"
            case let .elementCountAbsurd(count, limit):
                return "element count \(count) exceeds the limit of \(limit) elements"
            case let .invalidDataOffsets(found):
                return "data_offsets must be [begin, end] with 0 <= begin <= end, found \(found)"
            case let .dataBeyondSection(end, sectionLength):
                return "data_offsets end \(end) lies beyond the data section of \(sectionLength) bytes"
            case let .byteCountMismatch(expected, found, elementCount, dtype):
                return "data_offsets span \(found) bytes, expected \(expected) "
                    + "(\(elementCount) elements of \(dtype.rawValue) at \(dtype.byteSize) bytes each)"
            case let .overlap(range, other, otherRange):
                return "bytes \(range.lowerBound)..<\(range.upperBound) overlap tensor \"\(other)\" "
                    + "at \(otherRange.lowerBound)..<\(otherRange.upperBound)"
            case let .noSuchTensor(available):
                return "no tensor of this name (the file holds \(available) tensors)"
            case let .dtypeNotConvertible(dtype, requested, accepted):
                let list = accepted.map(\.rawValue).joined(separator: ", ")
                return "dtype \(dtype.rawValue) cannot be read as \(requested), expected one of \(list)"
            case .duplicateName:
                return "a tensor of this name was already added"
            case .reservedName:
                return "the name \"__metadata__\" is reserved by the format"
            case let .valueCountMismatch(shape, expected, found):
                return "shape \(shape) holds \(expected) elements, but \(found) values were given"
            }
        }
    }
}
