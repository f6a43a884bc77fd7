import Foundation

/// Where a tensor's elements live.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    /// A CUDA device by ordinal.
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}

/// How a buffer stores each element. Host storage is always `float32`;
/// device storage may hold half or bfloat16 elements (the precision a model
/// was uploaded in), and kernels compute in float32 whatever the storage.
public enum ElementType: String, Sendable, CaseIterable {
    case float32, float16, bfloat16

    public var byteSize: Int { self == .float32 ? 4 : 2 }
}

/// Reference-counted buffer backing one or more `Tensor` values.
///
/// Host storage is 64-byte aligned Float32 so SIMD loads and OpenBLAS see
/// cache-line aligned rows. Device storage is an address on that device,
/// owned by `owner` (the device allocator's block), and is never
/// dereferenced on the host: `Tensor.scalars` copies it down. Tensors never
/// mutate shared storage: every op writes a fresh buffer, so value semantics
/// hold without copy-on-write bookkeeping.
public final class TensorStorage: @unchecked Sendable {
    public let device: Device
    public let count: Int
    /// Element format; `.float32` for every host buffer.
    public let elementType: ElementType
    /// Host pointer for `.cpu` storage; for device storage, the device
    /// address (see `deviceAddress`), never to be dereferenced on the host.
    public let pointer: UnsafeMutablePointer<Float>
    private let owner: AnyObject?

    /// The device address of device storage.
    public var deviceAddress: UInt64 { UInt64(UInt(bitPattern: pointer)) }

    /// Bytes the elements occupy.
    public var byteCount: Int { count * elementType.byteSize }

    /// Storage at `address` on `device`, kept alive (and freed) by `owner`.
    public init(device: Device, address: UInt64, count: Int, elementType: ElementType, owner: AnyObject) {
        precondition(device != .cpu, "device storage needs a device other than the CPU")
        precondition(address != 0, "null device address")
        self.device = device
        self.count = count
        self.elementType = elementType
        self.pointer = UnsafeMutablePointer(bitPattern: UInt(address))!
        self.owner = owner
    }

    /// Allocates `count` floats, contents uninitialised.
    public init(count: Int, device: Device = .cpu) {
        precondition(count >= 0, "storage size must be non-negative, got \(count)")
        precondition(device == .cpu, "only CPU storage is allocated on the host")
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        let raw: UnsafeMutableRawPointer
        if let reused = HostBufferCache.shared.take(bytes: bytes) {
            raw = reused
        } else {
            guard let fresh = HostMemory.allocate(bytes: bytes) else {
                fatalError("out of memory allocating \(bytes) bytes for a tensor")
            }
            raw = fresh
        }
        self.pointer = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        self.count = count
        self.device = device
        self.elementType = .float32
        self.owner = nil
    }

    /// Storage over memory someone else owns (e.g. a read-only file
    /// mapping), kept alive by `owner`. Tensors never write into existing
    /// storage, so a read-only mapping is safe to wrap.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.device = .cpu
        self.elementType = .float32
        self.owner = owner
    }

    deinit {
        guard owner == nil else { return }
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        if !HostBufferCache.shared.give(UnsafeMutableRawPointer(pointer), bytes: bytes) {
            HostMemory.deallocate(UnsafeMutableRawPointer(pointer), bytes: bytes)
        }
    }

    /// A zero-filled buffer.
    public static func zeros(count: Int) -> TensorStorage {
        let s = TensorStorage(count: count)
        s.pointer.initialize(repeating: 0, count: count)
        return s
    }
}

/// Recently freed large host buffers, kept for reuse by exact size.
///
/// Most buffers of 1–32 MiB are the same few sizes over and over (a
/// product's output, a layer's activations); glibc hands such sizes back to
/// the kernel on free, and the next allocation pays a page fault per 4 KiB
/// touched (a 16 MiB result costs milliseconds). Keeping the most recent
/// ones, up to a byte cap (default 32 MiB, `PILOT_BUFFER_CACHE_MB`; 0 turns
/// it off), skips that. The least recently freed buffers go first.
final class HostBufferCache: @unchecked Sendable {
    static let shared = HostBufferCache(
        capacity: (ProcessInfo.processInfo.environment["PILOT_BUFFER_CACHE_MB"].flatMap { Int($0) } ?? 32) << 20)

    static let smallest = 1 << 20

    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var order: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
    private var held = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = Swift.max(0, capacity)
    }

    /// A cached buffer of exactly `bytes`, if one is held.
    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= Self.smallest, bytes <= capacity else { return nil }
        lock.lock()
        defer { lock.unlock() }
        guard let pointer = free[bytes]?.popLast() else { return nil }
        if let index = order.lastIndex(where: { $0.pointer == pointer }) { order.remove(at: index) }
        held -= bytes
        return pointer
    }

    /// Keeps `pointer` (of `bytes`) for reuse; false when the caller should free it.
    func give(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= Self.smallest, bytes <= capacity else { return false }
        var evicted: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
        lock.lock()
        free[bytes, default: []].append(pointer)
        order.append((bytes, pointer))
        held += bytes
        while held > capacity, !order.isEmpty {
            let oldest = order.removeFirst()
            if var list = free[oldest.bytes], let index = list.firstIndex(of: oldest.pointer) {
                list.remove(at: index)
                free[oldest.bytes] = list.isEmpty ? nil : list
            }
            held -= oldest.bytes
            evicted.append(oldest)
        }
        lock.unlock()
        for buffer in evicted { HostMemory.deallocate(buffer.pointer, bytes: buffer.bytes) }
        return true
    }

    /// Bytes held now.
    var heldBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return held
    }
}
