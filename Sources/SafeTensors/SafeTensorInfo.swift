/// What the header says about one tensor, after validation.
public struct SafeTensorInfo: Sendable, Equatable {
    /// The tensor's key in the header, e.g. `"down_blocks.0.resnets.0.conv1.weight"`.
    public let name: String
    /// Element type of the stored bytes.
    public let dtype: SafeTensorsDType
    /// Dimensions, outermost first; `[]` is a scalar holding one element.
    public let shape: [Int]
    /// Where the tensor's bytes lie, relative to the start of the data
    /// section (the first byte after the header), as the header's
    /// `data_offsets` give it.
    public let byteRange: Range<Int>
    /// Product of `shape` (1 for a scalar); always `byteRange.count / dtype.byteSize`.
    public let elementCount: Int

    /// Creates a description; the reader validates every field before calling this.
    public init(name: String, dtype: SafeTensorsDType, shape: [Int], byteRange: Range<Int>, elementCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
        self.elementCount = elementCount
    }
}
