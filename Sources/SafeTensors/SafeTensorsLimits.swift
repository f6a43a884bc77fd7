/// Bounds past which a header is treated as hostile instead of trusted.
///
/// A safetensors file states its own sizes; without bounds a few corrupt
/// bytes could ask the reader for terabytes. The defaults admit every real
/// checkpoint (the largest diffusion headers are a few MiB).
public struct SafeTensorsLimits: Sendable, Equatable {
    /// Largest accepted JSON header, in bytes.
    public var maxHeaderBytes: Int
    /// Largest accepted element count for any single tensor.
    public var maxElements: Int

    /// Creates limits; see `default` for the usual values.
    public init(maxHeaderBytes: Int, maxElements: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxElements = maxElements
    }

    /// 100 MiB of header (the bound the reference Rust implementation uses)
    /// and 2^36 elements per tensor.
    public static let `default` = SafeTensorsLimits(maxHeaderBytes: 100 << 20, maxElements: 1 << 36)
}
