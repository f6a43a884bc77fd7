import Foundation

/// Elementwise binary kernels (NumPy broadcasting).
public enum BinaryOp: Sendable {
    case add, sub, mul, div
}

/// Elementwise unary kernels. Parameterised cases carry their constant.
public enum UnaryOp: Equatable, Sendable {
    case neg, exp, log, sqrt, rsqrt, square, abs, relu
    case sigmoid, tanh, silu
    /// Exact GELU, `x·Φ(x)` with the error function.
    case gelu
    /// GELU with the tanh approximation (`approximate="tanh"`).
    case geluTanh
    /// CLIP's `x·σ(1.702·x)`.
    case quickGelu
    /// `x·c`.
    case scale(Float)
    /// `x + c`.
    case shift(Float)
    /// `x^c` (for x > 0, or integral c).
    case pow(Float)
    /// `min(max(x, lo), hi)`; the gradient passes only strictly inside.
    case clamp(Float, Float)
}

/// Geometry of a 2-D convolution over NCHW tensors with OIHW weights.
public struct Conv2DParameters: Equatable, Sendable {
    public var strideH: Int, strideW: Int
    public var padH: Int, padW: Int
    public var groups: Int

    public init(stride: Int = 1, padding: Int = 0, groups: Int = 1) {
        self.init(stride: (stride, stride), padding: (padding, padding), groups: groups)
    }

    public init(stride: (Int, Int), padding: (Int, Int), groups: Int = 1) {
        strideH = stride.0; strideW = stride.1
        padH = padding.0; padW = padding.1
        self.groups = groups
    }

    /// Output spatial size for an input of `h`×`w` and a `kh`×`kw` kernel.
    public func outputSize(h: Int, w: Int, kh: Int, kw: Int) -> (Int, Int) {
        ((h + 2 * padH - kh) / strideH + 1, (w + 2 * padW - kw) / strideW + 1)
    }
}

/// Scaled dot-product attention over `[B, N, heads·d]` tensors.
public struct AttentionParameters: Equatable, Sendable {
    public var heads: Int
    /// Multiplies QKᵀ; defaults to 1/√d.
    public var scale: Float?
    /// Upper bound on the scratch (scores for one query chunk), in bytes.
    public var scratchBytes: Int
    /// Query i attends only to keys 0...i (CLIP's text encoder).
    public var causal: Bool

    public init(heads: Int, scale: Float? = nil, scratchBytes: Int = 64 << 20, causal: Bool = false) {
        self.heads = heads
        self.scale = scale
        self.scratchBytes = scratchBytes
        self.causal = causal
    }
}

/// Per-group (or per-row) statistics saved by a normalisation's forward,
/// as float32 tensors on the backend's device (so a device backend's
/// backward needs no copy to the host).
public struct NormStatistics {
    public let mean: Tensor
    public let rstd: Tensor

    public init(mean: Tensor, rstd: Tensor) {
        self.mean = mean
        self.rstd = rstd
    }

    /// Host statistics (the CPU backend's).
    public init(mean: [Float], rstd: [Float]) {
        self.init(mean: Tensor(shape: [mean.count], values: mean), rstd: Tensor(shape: [rstd.count], values: rstd))
    }
}

/// The kernels a device provides. Ops (with autograd) are written once on
/// top of this; a backend implements forward and backward kernels and never
/// sees the tape. Every kernel returns a fresh tensor on the backend's device.
public protocol Backend: AnyObject, Sendable {
    var device: Device { get }

    // Layout
    func permute(_ x: Tensor, _ perm: [Int]) -> Tensor
    func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor
    /// Zeros of `shape` with `x` written at `range` along `axis` (slice's adjoint).
    func unslice(_ x: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor
    func concat(_ xs: [Tensor], axis: Int) -> Tensor
    func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor

    // Elementwise
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor
    func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor
    /// `dL/dx` given `x` and `dL/dy` for `y = op(x)`.
    func unaryBackward(_ op: UnaryOp, _ x: Tensor, gradOutput: Tensor) -> Tensor
    /// GEGLU in one pass: for `x [..., 2n]` split into halves `h | g` on the
    /// last axis, `h · gelu(g)` (exact GELU), shaped `[..., n]`.
    func geglu(_ x: Tensor) -> Tensor
    /// `dL/dx [..., 2n]` for `y = geglu(x)` given `dL/dy [..., n]`.
    func gegluBackward(_ x: Tensor, gradOutput: Tensor) -> Tensor

    // Reductions
    func sum(_ x: Tensor, axes: [Int], keepDims: Bool) -> Tensor
    func max(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor

    // Products
    /// Batched `op(a)·op(b)` over `[..., M, K]` and `[..., K, N]`; batch
    /// dimensions broadcast, and a rank-2 operand is shared by every batch.
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor
    /// `x·Wᵀ + b` for `x [..., in]`, `W [out, in]`, `b [out]`.
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor
    func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2DParameters) -> Tensor
    func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], _ p: Conv2DParameters) -> Tensor

    // Normalisation
    func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics)
    /// Returns (dx, dweight, dbias); the last two are nil without weight.
    func groupNormBackward(_ gradOutput: Tensor, input: Tensor, groups: Int, weight: Tensor?,
                           statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?)
    /// Normalises over the last dimension.
    func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics)
    func layerNormBackward(_ gradOutput: Tensor, input: Tensor, weight: Tensor?,
                           statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?)
    /// Softmax over the last dimension.
    func softmax(_ x: Tensor) -> Tensor
    func softmaxBackward(output: Tensor, gradOutput: Tensor) -> Tensor

    // Attention
    /// `softmax(QKᵀ·scale) ⊙ M · V` per head, never holding more than
    /// `scratchBytes` of scores. `mask` (optional, `[Nq, Nk]` or
    /// `[B, Nq, Nk]`) multiplies probabilities after the softmax.
    func attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, _ p: AttentionParameters) -> Tensor
    /// Gradients (dq, dk, dv), recomputing probabilities chunk by chunk.
    func attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, gradOutput: Tensor,
                           _ p: AttentionParameters) -> (Tensor, Tensor, Tensor)

    // Resampling and lookup
    func upsampleNearest(_ x: Tensor, factor: Int) -> Tensor
    func upsampleNearestBackward(_ gradOutput: Tensor, factor: Int) -> Tensor
    /// Rows of `table [V, D]` for `ids`, shaped `idsShape + [D]`.
    func embedding(_ table: Tensor, ids: [Int32], idsShape: [Int]) -> Tensor
    func embeddingBackward(_ gradOutput: Tensor, ids: [Int32], vocabulary: Int) -> Tensor
}

/// A backend whose tensors live in device memory: it copies between the
/// host and its device, and converts element types.
public protocol DeviceBackend: Backend {
    /// `x` (any device) on this backend's device, stored as `elementType`.
    func upload(_ x: Tensor, as elementType: ElementType) -> Tensor
    /// A host (float32) copy of `x`, which is on this backend's device.
    func download(_ x: Tensor) -> Tensor
    /// Waits until every kernel queued so far has finished.
    func synchronize()
}

/// The backend registry: one instance per device.
public enum Backends {
    public static let cpu = CPUBackend()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cpuProfiler: ProfilingBackend?
    nonisolated(unsafe) private static var devices: [Device: any DeviceBackend] = [:]
    /// Makes the backend of a device on first use: CUDA's, unless replaced.
    nonisolated(unsafe) private static var factory: (@Sendable (Device) -> (any DeviceBackend)?)? = CUDARuntime.makeBackend

    /// Times every CPU kernel into `profile` from now on (`nil` stops).
    /// Kernels already running finish unprofiled.
    public static func profile(into profile: OpProfile?) {
        lock.lock()
        defer { lock.unlock() }
        cpuProfiler = profile.map { ProfilingBackend(cpu, profile: $0) }
    }

    /// Makes `backend` the one for `backend.device` (a device backend found
    /// at run time, or a test's emulated device); nil removes it.
    public static func register(_ backend: (any DeviceBackend)?, for device: Device) {
        precondition(device != .cpu, "the CPU backend is built in")
        lock.lock()
        defer { lock.unlock() }
        devices[device] = backend
    }

    /// Called for a device that has no backend registered yet (the CUDA
    /// loader installs itself here), so `backend(for:)` finds it lazily.
    public static func setDeviceFactory(_ make: @escaping @Sendable (Device) -> (any DeviceBackend)?) {
        lock.lock()
        defer { lock.unlock() }
        factory = make
    }

    /// The device backend for `device`, if one is available.
    public static func deviceBackend(for device: Device) -> (any DeviceBackend)? {
        lock.lock()
        if let b = devices[device] { lock.unlock(); return b }
        let make = factory
        lock.unlock()
        guard let made = make?(device) else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if let b = devices[device] { return b }
        devices[device] = made
        return made
    }

    public static func backend(for device: Device) -> any Backend {
        switch device {
        case .cpu:
            lock.lock()
            defer { lock.unlock() }
            if let profiler = cpuProfiler { return profiler }
            return cpu
        case .cuda:
            guard let b = deviceBackend(for: device) else {
                fatalError("no backend is available for \(device) (see `pilot info`)")
            }
            return b
        }
    }

    /// The backend an op over `tensors` runs on: the device of the first
    /// tensor not on the CPU (a device backend takes host operands and copies
    /// them up), else the CPU's.
    public static func backend(for tensors: Tensor?...) -> any Backend {
        for case let t? in tensors where t.device != .cpu { return backend(for: t.device) }
        return backend(for: .cpu)
    }

    /// As `backend(for:)` over an array.
    public static func backend(forAll tensors: [Tensor]) -> any Backend {
        for t in tensors where t.device != .cpu { return backend(for: t.device) }
        return backend(for: .cpu)
    }
}
