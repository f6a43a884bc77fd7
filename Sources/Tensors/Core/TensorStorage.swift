import Foundation

/// Where a tensor's elements live.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    /// A CUDA device by ordinal (the backend lands with the GPU issue).
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}

/// Reference-counted Float32 buffer backing one or more `Tensor` values.
///
/// Host storage is 64-byte aligned so SIMD loads and OpenBLAS see cache-line
/// aligned rows. Tensors never mutate shared storage: every op writes a fresh
/// buffer, so value semantics hold without copy-on-write bookkeeping.
public final class TensorStorage: @unchecked Sendable {
    public let device: Device
    public let count: Int
    /// Host pointer for `.cpu` storage.
    public let pointer: UnsafeMutablePointer<Float>
    private let owner: AnyObject?

    /// Allocates `count` floats, contents uninitialised.
    public init(count: Int, device: Device = .cpu) {
        precondition(count >= 0, "storage size must be non-negative, got \(count)")
        precondition(device == .cpu, "only CPU storage is allocated on the host")
        var raw: UnsafeMutableRawPointer?
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes for a tensor")
        }
        self.pointer = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        self.count = count
        self.device = device
        self.owner = nil
    }

    /// Storage over memory someone else owns (e.g. a read-only file
    /// mapping), kept alive by `owner`. Tensors never write into existing
    /// storage, so a read-only mapping is safe to wrap.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.device = .cpu
        self.owner = owner
    }

    deinit {
        if owner == nil { free(pointer) }
    }

    /// A zero-filled buffer.
    public static func zeros(count: Int) -> TensorStorage {
        let s = TensorStorage(count: count)
        s.pointer.initialize(repeating: 0, count: count)
        return s
    }
}
