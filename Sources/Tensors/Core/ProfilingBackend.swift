import Foundation

/// Where a backend's time goes, kernel by kernel: every call through
/// `ProfilingBackend` adds its wall time to a row keyed by the kernel's name
/// and a short description of its operands (for products and convolutions
/// the geometry, so the costly layers stand out). A profiler's view, as
/// `torch.profiler`'s table is: the kernels run exactly as they would
/// unprofiled, one after another on the calling thread, each parallel inside.
public final class OpProfile: @unchecked Sendable {
    public struct Row: Sendable {
        public var kernel: String
        public var detail: String
        public var calls: Int
        public var seconds: Double
    }

    private let lock = NSLock()
    private var rows: [String: Row] = [:]

    public init() {}

    func add(_ kernel: String, _ detail: String, seconds: Double) {
        let key = kernel + "\u{1F}" + detail
        lock.lock()
        defer { lock.unlock() }
        rows[key, default: Row(kernel: kernel, detail: detail, calls: 0, seconds: 0)].calls += 1
        rows[key]!.seconds += seconds
    }

    public func reset() {
        lock.lock()
        rows = [:]
        lock.unlock()
    }

    /// Rows, costliest first.
    public var snapshot: [Row] {
        lock.lock()
        defer { lock.unlock() }
        return rows.values.sorted { $0.seconds > $1.seconds }
    }

    /// Time per kernel over every operand shape, costliest first.
    public var byKernel: [Row] {
        var totals: [String: Row] = [:]
        for r in snapshot {
            totals[r.kernel, default: Row(kernel: r.kernel, detail: "", calls: 0, seconds: 0)].calls += r.calls
            totals[r.kernel]!.seconds += r.seconds
        }
        return totals.values.sorted { $0.seconds > $1.seconds }
    }

    /// A Markdown table: the per-kernel totals, then the `top` costliest
    /// (kernel, operands) rows.
    public func table(top: Int = 25) -> String {
        let kernels = byKernel
        let total = kernels.reduce(0) { $0 + $1.seconds }
        func pct(_ s: Double) -> String { total > 0 ? String(format: "%.1f%%", 100 * s / total) : "-" }
        var out = "| kernel | calls | total ms | share |\n|:--|--:|--:|--:|\n"
        for r in kernels {
            out += "| \(r.kernel) | \(r.calls) | \(String(format: "%.1f", r.seconds * 1000)) | \(pct(r.seconds)) |\n"
        }
        out += "| all | \(kernels.reduce(0) { $0 + $1.calls }) | \(String(format: "%.1f", total * 1000)) | 100% |\n\n"
        out += "| kernel | operands | calls | total ms | ms/call | share |\n|:--|:--|--:|--:|--:|--:|\n"
        for r in snapshot.prefix(top) {
            out += "| \(r.kernel) | \(r.detail) | \(r.calls) | \(String(format: "%.1f", r.seconds * 1000)) | "
                + "\(String(format: "%.2f", r.seconds * 1000 / Double(r.calls))) | \(pct(r.seconds)) |\n"
        }
        return out
    }
}

/// A backend that forwards every kernel to `inner` and times it into
/// `profile`. Installed for the CPU with `Backends.profile(into:)`.
public final class ProfilingBackend: Backend, @unchecked Sendable {
    public let inner: any Backend
    public let profile: OpProfile
    public var device: Device { inner.device }

    public init(_ inner: any Backend, profile: OpProfile) {
        self.inner = inner
        self.profile = profile
    }

    @inline(__always)
    private func timed<R>(_ kernel: String, _ detail: @autoclosure () -> String, _ body: () -> R) -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let r = body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        profile.add(kernel, detail(), seconds: seconds)
        return r
    }

    private static func dims(_ s: [Int]) -> String { s.map(String.init).joined(separator: "×") }

    private static func conv(_ x: [Int], _ w: [Int], _ p: Conv2DParameters) -> String {
        "\(w.count > 2 ? "\(w[2])×\(w[3])" : "?") s\(p.strideH) \(w.count > 1 ? w[1] * p.groups : 0)→\(w.first ?? 0) "
            + "at \(x.count == 4 ? "\(x[0])×\(x[2])×\(x[3])" : dims(x))"
    }

    public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
        timed("permute", Self.dims(x.shape)) { inner.permute(x, perm) }
    }
    public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        timed("slice", Self.dims(x.shape)) { inner.slice(x, axis: axis, range: range) }
    }
    public func unslice(_ x: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor {
        timed("unslice", Self.dims(shape)) { inner.unslice(x, shape: shape, axis: axis, range: range) }
    }
    public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
        timed("concat", xs.map { Self.dims($0.shape) }.joined(separator: " + ")) { inner.concat(xs, axis: axis) }
    }
    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor {
        timed("broadcast", Self.dims(shape)) { inner.broadcast(x, to: shape) }
    }
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        timed("binary.\(op)", "\(Self.dims(a.shape)), \(Self.dims(b.shape))") { inner.binary(op, a, b) }
    }
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        timed("unary.\(Self.name(op))", Self.dims(x.shape)) { inner.unary(op, x) }
    }
    public func unaryBackward(_ op: UnaryOp, _ x: Tensor, gradOutput: Tensor) -> Tensor {
        timed("unaryBackward.\(Self.name(op))", Self.dims(x.shape)) { inner.unaryBackward(op, x, gradOutput: gradOutput) }
    }
    public func geglu(_ x: Tensor) -> Tensor {
        timed("geglu", Self.dims(x.shape)) { inner.geglu(x) }
    }
    public func gegluBackward(_ x: Tensor, gradOutput: Tensor) -> Tensor {
        timed("gegluBackward", Self.dims(x.shape)) { inner.gegluBackward(x, gradOutput: gradOutput) }
    }
    public func sum(_ x: Tensor, axes: [Int], keepDims: Bool) -> Tensor {
        timed("sum", Self.dims(x.shape)) { inner.sum(x, axes: axes, keepDims: keepDims) }
    }
    public func max(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor {
        timed("max", Self.dims(x.shape)) { inner.max(x, axis: axis, keepDims: keepDims) }
    }
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        timed("matmul", "\(Self.dims(a.shape))\(transposeA ? "ᵀ" : "") · \(Self.dims(b.shape))\(transposeB ? "ᵀ" : "")") {
            inner.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
        }
    }
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        timed("linear", "\(Self.dims(x.shape)) · \(weight.shape.last ?? 0)→\(weight.shape.first ?? 0)") {
            inner.linear(x, weight: weight, bias: bias)
        }
    }
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
        timed("conv2d", Self.conv(x.shape, weight.shape, p)) { inner.conv2d(x, weight: weight, bias: bias, p) }
    }
    public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2DParameters) -> Tensor {
        timed("conv2dBackwardInput", Self.conv(inputShape, weight.shape, p)) {
            inner.conv2dBackwardInput(gradOutput, weight: weight, inputShape: inputShape, p)
        }
    }
    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], _ p: Conv2DParameters) -> Tensor {
        timed("conv2dBackwardWeight", Self.conv(input.shape, weightShape, p)) {
            inner.conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, p)
        }
    }
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        timed("groupNorm", Self.dims(x.shape)) { inner.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps) }
    }
    public func groupNormBackward(_ gradOutput: Tensor, input: Tensor, groups: Int, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        timed("groupNormBackward", Self.dims(input.shape)) {
            inner.groupNormBackward(gradOutput, input: input, groups: groups, weight: weight, statistics: statistics)
        }
    }
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, NormStatistics) {
        timed("layerNorm", Self.dims(x.shape)) { inner.layerNorm(x, weight: weight, bias: bias, eps: eps) }
    }
    public func layerNormBackward(_ gradOutput: Tensor, input: Tensor, weight: Tensor?,
                                  statistics: NormStatistics) -> (Tensor, Tensor?, Tensor?) {
        timed("layerNormBackward", Self.dims(input.shape)) {
            inner.layerNormBackward(gradOutput, input: input, weight: weight, statistics: statistics)
        }
    }
    public func softmax(_ x: Tensor) -> Tensor {
        timed("softmax", Self.dims(x.shape)) { inner.softmax(x) }
    }
    public func softmaxBackward(output: Tensor, gradOutput: Tensor) -> Tensor {
        timed("softmaxBackward", Self.dims(output.shape)) { inner.softmaxBackward(output: output, gradOutput: gradOutput) }
    }
    public func attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, _ p: AttentionParameters) -> Tensor {
        timed("attention", Self.attention(q, k, p, mask)) { inner.attention(q: q, k: k, v: v, mask: mask, p) }
    }
    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, gradOutput: Tensor,
                                  _ p: AttentionParameters) -> (Tensor, Tensor, Tensor) {
        timed("attentionBackward", Self.attention(q, k, p, mask)) {
            inner.attentionBackward(q: q, k: k, v: v, mask: mask, gradOutput: gradOutput, p)
        }
    }
    public func upsampleNearest(_ x: Tensor, factor: Int) -> Tensor {
        timed("upsampleNearest", Self.dims(x.shape)) { inner.upsampleNearest(x, factor: factor) }
    }
    public func upsampleNearestBackward(_ gradOutput: Tensor, factor: Int) -> Tensor {
        timed("upsampleNearestBackward", Self.dims(gradOutput.shape)) { inner.upsampleNearestBackward(gradOutput, factor: factor) }
    }
    public func embedding(_ table: Tensor, ids: [Int32], idsShape: [Int]) -> Tensor {
        timed("embedding", Self.dims(idsShape)) { inner.embedding(table, ids: ids, idsShape: idsShape) }
    }
    public func embeddingBackward(_ gradOutput: Tensor, ids: [Int32], vocabulary: Int) -> Tensor {
        timed("embeddingBackward", Self.dims(gradOutput.shape)) {
            inner.embeddingBackward(gradOutput, ids: ids, vocabulary: vocabulary)
        }
    }

    private static func attention(_ q: Tensor, _ k: Tensor, _ p: AttentionParameters, _ mask: Tensor?) -> String {
        let b = q.shape.first ?? 0, nq = q.shape.count > 1 ? q.shape[1] : 0, nk = k.shape.count > 1 ? k.shape[1] : 0
        let d = (q.shape.last ?? 0) / Swift.max(p.heads, 1)
        return "\(b)×\(p.heads) heads, \(nq)×\(nk), d \(d)\(mask == nil ? "" : ", masked")\(p.causal ? ", causal" : "")"
    }

    private static func name(_ op: UnaryOp) -> String {
        switch op {
        case .scale: return "scale"
        case .shift: return "shift"
        case .pow: return "pow"
        case .clamp: return "clamp"
        default: return "\(op)"
        }
    }
}
