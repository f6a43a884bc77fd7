import Foundation

/// A device whose memory is the host's: every kernel is the CPU's, but its
/// tensors are tagged with another device, so code that mixes devices, moves
/// tensors and reads results runs exactly as it would with a GPU. The test
/// suites register it (`Backends.register(EmulatedDeviceBackend(.cuda(7)), …)`)
/// to prove the device plumbing (weights placement, host constants flowing
/// into device ops, gradients, downloads) on machines without a GPU.
///
/// It stores float32 whatever type is asked for, and counts its copies.
public final class EmulatedDeviceBackend: DeviceBackend, @unchecked Sendable {
    public let device: Device
    private let cpu = Backends.cpu
    private let lock = NSLock()
    private var uploads = 0, downloads = 0

    public init(_ device: Device) {
        precondition(device != .cpu, "an emulated device must not be the CPU")
        self.device = device
    }

    /// Host→device and device→host copies so far.
    public var copies: (uploads: Int, downloads: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (uploads, downloads)
    }

    /// `x` as a host tensor over the same memory (no copy).
    private func host(_ x: Tensor) -> Tensor {
        guard x.device != .cpu else { return x }
        precondition(x.device == device, "a \(x.device) tensor given to the \(device) backend")
        return Tensor(shape: x.shape, storage: TensorStorage(borrowing: x.storage.pointer, count: x.count, owner: x.storage))
    }

    private func host(_ x: Tensor?) -> Tensor? { x.map { host($0) } }

    /// Tags a host result as this device's.
    private func tag(_ x: Tensor) -> Tensor {
        let s = x.storage
        return Tensor(shape: x.shape, storage: TensorStorage(device: device, address: UInt64(UInt(bitPattern: s.pointer)),
                                                             count: x.count, elementType: .float32, owner: s))
    }

    public func upload(_ x: Tensor, as elementType: ElementType) -> Tensor {
        if x.device == device { return x.detached }
        lock.lock(); uploads += 1; lock.unlock()
        let copy = Tensor(shape: x.shape, values: x.scalars)
        return tag(copy)
    }

    public func download(_ x: Tensor) -> Tensor {
        lock.lock(); downloads += 1; lock.unlock()
        let h = host(x)
        return Tensor(shape: h.shape, values: Array(UnsafeBufferPointer(start: h.storage.pointer, count: h.count)))
    }

    public func synchronize() {}

    public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor { tag(cpu.permute(host(x), perm)) }
    public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor { tag(cpu.slice(host(x), axis: axis, range: range)) }
    public func unslice(_ x: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor {
        tag(cpu.unslice(host(x), shape: shape, axis: axis, range: range))
    }
    public func concat(_ xs: [Tensor], axis: Int) -> Tensor { tag(cpu.concat(xs.map { host($0) }, axis: axis)) }
    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor { tag(cpu.broadcast(host(x), to: shape)) }
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor { tag(cpu.binary(op, host(a), host(b))) }
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor { tag(cpu.unary(op, host(x))) }
    public func unaryBackward(_ op: UnaryOp, _ x: Tensor, gradOutput: Tensor) -> Tensor {
        tag(cpu.unaryBackward(op, host(x), gradOutput: host(gradOutput)))
    }
    public func geglu(_ x: Tensor) -> Tensor { tag(cpu.geglu(host(x))) }
    public func gegluBackward(_ x: Tensor, gradOutput: Tensor) -> Tensor { tag(cpu.gegluBackward(host(x), gradOutput: host(gradOutput))) }
    public func sum(_ x: Tensor, axes: [Int], keepDims: Bool) -> Tensor { tag(cpu.sum(host(x), axes: axes, keepDims: keepDims)) }
    public func max(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor { tag(cpu.max(host(x), axis: axis, keepDims: keepDims)) }
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        tag(cpu.matmul(host(a), host(b), transposeA: transposeA, transposeB: transposeB))
    }
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor { tag(cpu.linear(host(x), weight: host(weight), bias: host(bias))) }
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
        tag(cpu.conv2d(host(x), weight: host(weight), bias: host(bias), p))
    }
    public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2DParameters) -> Tensor {
        tag(cpu.conv2dBackwardInput(host(gradOutput), weight: host(weight), inputShape: inputShape, p))
    }
    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], _ p: Conv2DParameters) -> Tensor {
        tag(cpu.conv2dBackwardWeight(host(gradOutput), input: host(input), weightShape: weightShape, p))
    }
    private func tagStats(_ s: NormStatistics) -> NormStatistics { NormStatistics(mean: tag(s.mean), rstd: tag(s.rstd)) }
    private func hostStats(_ s: NormStatistics) -> NormStatistics { NormStatistics(mean: host(s.mean), rstd: host(s.rstd)) }
    private func tag3(_ r: (Tensor, Tensor?, Tensor?)) -> (Tensor, Tensor?, Tensor?) { (tag(r.0), r.1.map(tag), r.2.map(tag)) }
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        let (y, s) = cpu.groupNorm(host(x), groups: groups, weight: host(weight), bias: host(bias), eps: eps)
        return (tag(y), tagStats(s))
    }
    public func groupNormBackward(_ gradOutput: Tensor, input: Tensor, groups: Int, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        tag3(cpu.groupNormBackward(host(gradOutput), input: host(input), groups: groups, weight: host(weight), statistics: hostStats(statistics)))
    }
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        let (y, s) = cpu.layerNorm(host(x), weight: host(weight), bias: host(bias), eps: eps)
        return (tag(y), tagStats(s))
    }
    public func layerNormBackward(_ gradOutput: Tensor, input: Tensor, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        tag3(cpu.layerNormBackward(host(gradOutput), input: host(input), weight: host(weight), statistics: hostStats(statistics)))
    }
    public func softmax(_ x: Tensor) -> Tensor { tag(cpu.softmax(host(x))) }
    public func softmaxBackward(output: Tensor, gradOutput: Tensor) -> Tensor { tag(cpu.softmaxBackward(output: host(output), gradOutput: host(gradOutput))) }
    public func attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, _ p: AttentionParameters) -> Tensor {
        tag(cpu.attention(q: host(q), k: host(k), v: host(v), mask: host(mask), p))
    }
    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, gradOutput: Tensor,
                                  _ p: AttentionParameters) -> (Tensor, Tensor, Tensor) {
        let (a, b, c) = cpu.attentionBackward(q: host(q), k: host(k), v: host(v), mask: host(mask), gradOutput: host(gradOutput), p)
        return (tag(a), tag(b), tag(c))
    }
    public func upsampleNearest(_ x: Tensor, factor: Int) -> Tensor { tag(cpu.upsampleNearest(host(x), factor: factor)) }
    public func upsampleNearestBackward(_ gradOutput: Tensor, factor: Int) -> Tensor { tag(cpu.upsampleNearestBackward(host(gradOutput), factor: factor)) }
    public func embedding(_ table: Tensor, ids: [Int32], idsShape: [Int]) -> Tensor { tag(cpu.embedding(host(table), ids: ids, idsShape: idsShape)) }
    public func embeddingBackward(_ gradOutput: Tensor, ids: [Int32], vocabulary: Int) -> Tensor {
        tag(cpu.embeddingBackward(host(gradOutput), ids: ids, vocabulary: vocabulary))
    }
}
