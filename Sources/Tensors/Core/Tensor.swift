/// An n-dimensional array of Float32 values on one device.
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

    /// The same values with no tape link: a constant for autograd.
    public var detached: Tensor {
        var t = self
        t.trace = nil
        return t
    }

    /// Whether this tensor is recorded on a tape.
    public var isTraced: Bool { trace != nil }

    /// The elements, copied to the host in row-major order.
    public var scalars: [Float] {
        precondition(device == .cpu, "scalars of a \(device) tensor: copy it to the CPU first")
        return Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item() needs exactly one element, shape is \(shape)")
        return storage.pointer[0]
    }

    /// Size of dimension `axis` (negative counts from the end).
    public func dim(_ axis: Int) -> Int { shape[Shape.axis(axis, rank: rank)] }

    /// Read-only access to host elements.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(device == .cpu, "host access to a \(device) tensor")
        return try body(UnsafeBufferPointer(start: storage.pointer, count: count))
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
        return "Tensor(\(shape), \(device)\(traced))\(all)\(head)"
    }
    private var traced: String { isTraced ? ", traced" : "" }
}
