/// An n-dimensional array of Float32 values on one device (stored on a
/// device as float32, float16 or bfloat16: `elementType`).
///
/// A `Tensor` is a value: its storage is never written after the op that made
/// it returns, so copies share storage freely. A tensor may carry a `trace`
/// that links it to a `Tape`; ops on traced tensors record their backward.
public struct Tensor {
    public let shape: [Int]
    public let storage: TensorStorage
    /// The tape entry this tensor is the output of, when it is being traced.
    public internal(set) var trace: Trace?

    /// Wraps existing storage. `storage.count` must equal the shape's size.
    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(Shape.count(shape) == storage.count,
                     "shape \(shape) holds \(Shape.count(shape)) elements but storage holds \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.trace = nil
    }

    /// A tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(Shape.count(shape) == values.count,
                     "shape \(shape) needs \(Shape.count(shape)) values, got \(values.count)")
        let s = TensorStorage(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { s.pointer.update(from: base, count: values.count) }
        }
        self.init(shape: shape, storage: s)
    }

    /// A rank-0 tensor.
    public init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    public var rank: Int { shape.count }
    public var count: Int { storage.count }
    public var device: Device { storage.device }
    public var backend: any Backend { Backends.backend(for: device) }
    /// Whether the elements are in host memory.
    public var isOnHost: Bool { device == .cpu }

    /// The same values with no tape link: a constant for autograd.
    public var detached: Tensor {
        var t = self
        t.trace = nil
        return t
    }

    /// Whether this tensor is recorded on a tape.
    public var isTraced: Bool { trace != nil }

    /// How the elements are stored (`.float32` on the host).
    public var elementType: ElementType { storage.elementType }

    /// The elements, copied to the host in row-major order (a device
    /// tensor is copied down first, which waits for its kernels).
    public var scalars: [Float] {
        let host = onHost
        return withExtendedLifetime(host) { Array(UnsafeBufferPointer(start: host.storage.pointer, count: count)) }
    }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item() needs exactly one element, shape is \(shape)")
        let host = onHost
        return withExtendedLifetime(host) { host.storage.pointer[0] }
    }

    /// This tensor on the host (itself when it is there), untraced.
    private var onHost: Tensor {
        guard device != .cpu else { return self }
        guard let b = Backends.deviceBackend(for: device) else {
            fatalError("no backend for \(device) to copy a tensor to the host")
        }
        return b.download(detached)
    }

    /// The same values on `device` (as `elementType` there; the host holds
    /// float32 only). Differentiable: the gradient comes back to this
    /// tensor's device. Returns `self` when nothing changes.
    public func to(_ target: Device, as type: ElementType? = nil) -> Tensor {
        let wanted = target == .cpu ? ElementType.float32 : (type ?? elementType)
        if target == device && wanted == elementType { return self }
        let source = device, sourceType = elementType
        let y: Tensor
        if target == .cpu {
            y = onHost
        } else {
            guard let b = Backends.deviceBackend(for: target) else {
                fatalError("no backend for \(target) (see `pilot info`)")
            }
            y = b.upload(detached, as: wanted)
        }
        return Tape.record(y, inputs: [self]) { g, _ in [g.to(source, as: sourceType).detached] }
    }

    /// Size of dimension `axis` (negative counts from the end).
    public func dim(_ axis: Int) -> Int { shape[Shape.axis(axis, rank: rank)] }

    /// Read-only access to host elements; a device tensor is copied down.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let host = onHost
        return try withExtendedLifetime(host) {
            try body(UnsafeBufferPointer(start: host.storage.pointer, count: count))
        }
    }
}

// MARK: - Creation

extension Tensor {
    public static func zeros(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: .zeros(count: Shape.count(shape)))
    }

    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        let s = TensorStorage(count: Shape.count(shape))
        s.pointer.initialize(repeating: value, count: s.count)
        return Tensor(shape: shape, storage: s)
    }

    /// `start, start+step, …` below `end`, as a 1-D tensor.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange step must be non-zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor(shape: [n], values: (0..<n).map { start + Float($0) * step })
    }

    /// Standard normal samples from `random`.
    public static func randn<R: RandomSource>(_ shape: [Int], using random: inout R) -> Tensor {
        Tensor(shape: shape, values: random.normals(Shape.count(shape)))
    }

    /// Uniform samples in [low, high) from `random`.
    public static func uniform<R: RandomSource>(_ shape: [Int], low: Float = 0, high: Float = 1,
                                                using random: inout R) -> Tensor {
        let n = Shape.count(shape)
        return Tensor(shape: shape, values: (0..<n).map { _ in low + (high - low) * random.nextUniform() })
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = count <= 8 || device != .cpu ? "" : " first: \(Array(scalars.prefix(8)))"
        let all = count <= 8 && device == .cpu ? " \(scalars)" : ""
        let type = elementType == .float32 ? "" : ", \(elementType)"
        return "Tensor(\(shape), \(device)\(type)\(traced))\(all)\(head)"
    }
    private var traced: String { isTraced ? ", traced" : "" }
}
