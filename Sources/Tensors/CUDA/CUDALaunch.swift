import Foundation

/// Launch-shape arithmetic for the kernels (host-side, tested without a GPU).
public enum LaunchShape {
    public static let threads = 256

    /// Blocks for a grid-stride loop over `n` elements: enough to fill the
    /// device (`multiprocessors` × 16 blocks of 256), no more than needed.
    public static func elementwiseBlocks(_ n: Int, multiprocessors: Int) -> Int {
        let needed = (n + threads - 1) / threads
        return Swift.max(1, Swift.min(needed, Swift.max(1, multiprocessors) * 16))
    }

    /// Blocks for a kernel that gives each of `rows` rows a block (the
    /// kernels loop when rows exceed the grid).
    public static func rowBlocks(_ rows: Int) -> Int { Swift.max(1, Swift.min(rows, 1 << 20)) }

    /// Threads per block for a row of `n` elements: a multiple of 32, at
    /// most 256 (rows under 32 still get one full warp).
    public static func rowThreads(_ n: Int) -> Int {
        let warps = Swift.max(1, Swift.min(8, (n + 31) / 32))
        return warps * 32
    }

    /// Query rows per attention chunk so the float32 scores of every head
    /// (`heads` × rows × `keys`, and as much again for the backward's second
    /// buffer) fit `budget` bytes.
    public static func attentionRows(queries: Int, keys: Int, heads: Int, budget: Int) -> Int {
        let perRow = Swift.max(1, heads * keys * 4)
        return Swift.max(1, Swift.min(queries, budget / perRow))
    }
}

/// Packs kernel arguments for `cuLaunchKernel`: each value in its own
/// 16-byte aligned slot, and an array of pointers to the slots. Struct
/// arguments are laid out by the caller with the C struct's offsets.
struct KernelArguments {
    private(set) var slots: [UnsafeMutableRawPointer] = []

    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes.count, 8), alignment: 16)
        if let base = bytes.baseAddress { p.copyMemory(from: base, byteCount: bytes.count) }
        slots.append(p)
    }

    mutating func value<T>(_ v: T) { withUnsafeBytes(of: v) { raw($0) } }
    mutating func pointer(_ address: UInt64) { value(address) }
    mutating func pointer(_ t: Tensor) { value(t.storage.deviceAddress) }
    mutating func optionalPointer(_ t: Tensor?) { value(t?.storage.deviceAddress ?? 0) }
    mutating func i64(_ v: Int) { value(Int64(v)) }
    mutating func i32(_ v: Int) { value(Int32(truncatingIfNeeded: v)) }
    mutating func f32(_ v: Float) { value(v) }
    mutating func bytes(_ b: [UInt8]) { b.withUnsafeBytes { raw($0) } }

    func release() { slots.forEach { $0.deallocate() } }
}

/// C struct layouts shared with pilot_kernels.cu.
enum KernelStructs {
    static let maxDims = 8

    /// `struct Dims { int rank; i64 size[8]; i64 sa[8]; i64 sb[8]; }` (200 bytes).
    static func dims(size: [Int], a: [Int], b: [Int] = []) -> [UInt8] {
        precondition(size.count <= maxDims, "at most \(maxDims) dimensions on the GPU, got \(size.count)")
        var out = [UInt8](repeating: 0, count: 8 + 3 * 8 * maxDims)
        put(Int32(size.count), into: &out, at: 0)
        for (i, v) in size.enumerated() { put(Int64(v), into: &out, at: 8 + 8 * i) }
        for (i, v) in a.enumerated() { put(Int64(v), into: &out, at: 8 + 64 + 8 * i) }
        for (i, v) in b.enumerated() { put(Int64(v), into: &out, at: 8 + 128 + 8 * i) }
        return out
    }

    /// `struct ReduceDims { int keptRank, reducedRank; i64 keptSize[8], keptStride[8],
    /// reducedSize[8], reducedStride[8]; i64 reducedCount; }` (272 bytes).
    static func reduceDims(keptSize: [Int], keptStride: [Int], reducedSize: [Int], reducedStride: [Int]) -> [UInt8] {
        precondition(keptSize.count <= maxDims && reducedSize.count <= maxDims, "at most \(maxDims) dimensions on the GPU")
        var out = [UInt8](repeating: 0, count: 8 + 4 * 64 + 8)
        put(Int32(keptSize.count), into: &out, at: 0)
        put(Int32(reducedSize.count), into: &out, at: 4)
        for (i, v) in keptSize.enumerated() { put(Int64(v), into: &out, at: 8 + 8 * i) }
        for (i, v) in keptStride.enumerated() { put(Int64(v), into: &out, at: 72 + 8 * i) }
        for (i, v) in reducedSize.enumerated() { put(Int64(v), into: &out, at: 136 + 8 * i) }
        for (i, v) in reducedStride.enumerated() { put(Int64(v), into: &out, at: 200 + 8 * i) }
        put(Int64(reducedSize.reduce(1, *)), into: &out, at: 264)
        return out
    }

    /// `struct ConvGeometry { int n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow; }` (48 bytes).
    static func conv(_ values: [Int]) -> [UInt8] {
        precondition(values.count == 12)
        var out = [UInt8](repeating: 0, count: 48)
        for (i, v) in values.enumerated() { put(Int32(v), into: &out, at: 4 * i) }
        return out
    }

    /// `struct AttentionRows { i64 rows, first; int heads, nk, causal; }` (32 bytes).
    static func attentionRows(rows: Int, first: Int, heads: Int, keys: Int, causal: Bool) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        put(Int64(rows), into: &out, at: 0)
        put(Int64(first), into: &out, at: 8)
        put(Int32(heads), into: &out, at: 16)
        put(Int32(keys), into: &out, at: 20)
        put(Int32(causal ? 1 : 0), into: &out, at: 24)
        return out
    }

    static func put<T: FixedWidthInteger>(_ v: T, into out: inout [UInt8], at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { b in for (i, x) in b.enumerated() { out[offset + i] = x } }
    }
}

extension UnaryOp {
    /// The kernel's op code and constants (pilot_kernels.cu, `U_*`).
    var kernelCode: (Int, Float, Float) {
        switch self {
        case .neg: return (0, 0, 0)
        case .exp: return (1, 0, 0)
        case .log: return (2, 0, 0)
        case .sqrt: return (3, 0, 0)
        case .rsqrt: return (4, 0, 0)
        case .square: return (5, 0, 0)
        case .abs: return (6, 0, 0)
        case .relu: return (7, 0, 0)
        case .sigmoid: return (8, 0, 0)
        case .tanh: return (9, 0, 0)
        case .silu: return (10, 0, 0)
        case .gelu: return (11, 0, 0)
        case .geluTanh: return (12, 0, 0)
        case .quickGelu: return (13, 0, 0)
        case .scale(let c): return (14, c, 0)
        case .shift(let c): return (15, c, 0)
        case .pow(let c): return (16, c, 0)
        case .clamp(let lo, let hi): return (17, lo, hi)
        }
    }
}

extension BinaryOp {
    var kernelCode: Int {
        switch self {
        case .add: return 0
        case .sub: return 1
        case .mul: return 2
        case .div: return 3
        }
    }
}

extension ElementType {
    /// The kernels' name suffix.
    var kernelSuffix: String {
        switch self {
        case .float32: return "f32"
        case .float16: return "f16"
        case .bfloat16: return "bf16"
        }
    }
}
