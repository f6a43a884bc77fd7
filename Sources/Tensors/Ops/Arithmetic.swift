// Differentiable elementwise ops. Each forward calls a backend kernel; each
// backward is written beside it.

extension Tensor {
    /// Sums `self` down to `shape` (the adjoint of broadcasting to `self.shape`).
    public func reduced(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        precondition(lead >= 0, "cannot reduce \(shape) to higher-rank \(target)")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let s = Backends.backend(for: self).sum(self, axes: axes, keepDims: true)
        return Tensor(shape: target, storage: s.storage)
    }
}

func binaryOp(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
    let y = Backends.backend(for: a, b).binary(op, a, b)
    let (ca, cb) = (a.detached, b.detached)
    return Tape.record(y, inputs: [a, b]) { g, needs in
        let be = Backends.backend(for: g, ca, cb)
        var ga: Tensor?, gb: Tensor?
        switch op {
        case .add:
            if needs[0] { ga = g.reduced(toShape: ca.shape) }
            if needs[1] { gb = g.reduced(toShape: cb.shape) }
        case .sub:
            if needs[0] { ga = g.reduced(toShape: ca.shape) }
            if needs[1] { gb = be.unary(.neg, g).reduced(toShape: cb.shape) }
        case .mul:
            if needs[0] { ga = be.binary(.mul, g, cb).reduced(toShape: ca.shape) }
            if needs[1] { gb = be.binary(.mul, g, ca).reduced(toShape: cb.shape) }
        case .div:
            if needs[0] { ga = be.binary(.div, g, cb).reduced(toShape: ca.shape) }
            if needs[1] {
                // d(a/b)/db = −a/b²
                let q = be.binary(.div, be.binary(.mul, g, ca), be.unary(.square, cb))
                gb = be.unary(.neg, q).reduced(toShape: cb.shape)
            }
        }
        return [ga, gb]
    }
}

func unaryOp(_ op: UnaryOp, _ x: Tensor) -> Tensor {
    let y = x.backend.unary(op, x)
    let cx = x.detached
    return Tape.record(y, inputs: [x]) { g, _ in
        [Backends.backend(for: g, cx).unaryBackward(op, cx, gradOutput: g)]
    }
}

public func + (a: Tensor, b: Tensor) -> Tensor { binaryOp(.add, a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { binaryOp(.sub, a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { binaryOp(.mul, a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { binaryOp(.div, a, b) }
public prefix func - (x: Tensor) -> Tensor { unaryOp(.neg, x) }
public func + (a: Tensor, c: Float) -> Tensor { unaryOp(.shift(c), a) }
public func + (c: Float, a: Tensor) -> Tensor { unaryOp(.shift(c), a) }
public func - (a: Tensor, c: Float) -> Tensor { unaryOp(.shift(-c), a) }
public func - (c: Float, a: Tensor) -> Tensor { unaryOp(.shift(c), unaryOp(.neg, a)) }
public func * (a: Tensor, c: Float) -> Tensor { unaryOp(.scale(c), a) }
public func * (c: Float, a: Tensor) -> Tensor { unaryOp(.scale(c), a) }
public func / (a: Tensor, c: Float) -> Tensor { unaryOp(.scale(1 / c), a) }

extension Tensor {
    public func exp() -> Tensor { unaryOp(.exp, self) }
    public func log() -> Tensor { unaryOp(.log, self) }
    public func sqrt() -> Tensor { unaryOp(.sqrt, self) }
    public func rsqrt() -> Tensor { unaryOp(.rsqrt, self) }
    public func squared() -> Tensor { unaryOp(.square, self) }
    public func abs() -> Tensor { unaryOp(.abs, self) }
    public func relu() -> Tensor { unaryOp(.relu, self) }
    public func sigmoid() -> Tensor { unaryOp(.sigmoid, self) }
    public func tanh() -> Tensor { unaryOp(.tanh, self) }
    /// `x·σ(x)` (SiLU / swish).
    public func silu() -> Tensor { unaryOp(.silu, self) }
    /// GELU, exact (erf) by default or with the tanh approximation.
    public func gelu(approximateTanh: Bool = false) -> Tensor { unaryOp(approximateTanh ? .geluTanh : .gelu, self) }
    /// CLIP's `x·σ(1.702x)`.
    public func quickGelu() -> Tensor { unaryOp(.quickGelu, self) }

    /// GEGLU (diffusers' `GEGLU` after its projection): with `self` split in
    /// halves `h | g` on the last axis, `h · gelu(g)`, in one pass without
    /// the halves' copies; shape `[..., n]` for `[..., 2n]`.
    public func geglu() -> Tensor {
        let y = Backends.backend(for: self).geglu(self)
        let cx = detached
        return Tape.record(y, inputs: [self]) { g, _ in [Backends.backend(for: g, cx).gegluBackward(cx, gradOutput: g)] }
    }
    public func pow(_ c: Float) -> Tensor { unaryOp(.pow(c), self) }
    /// Limits values to `lo...hi`.
    public func clamped(_ lo: Float, _ hi: Float) -> Tensor { unaryOp(.clamp(lo, hi), self) }

    /// Zero padding of the last two dimensions (NCHW: left/right on W, top/bottom on H).
    public func padded(left: Int = 0, right: Int = 0, top: Int = 0, bottom: Int = 0) -> Tensor {
        precondition(rank >= 2 && min(left, right, top, bottom) >= 0, "padding must be non-negative on a rank ≥ 2 tensor")
        var x = self
        var s = x.shape
        if left + right > 0 {
            var parts: [Tensor] = []
            s[rank - 1] = left
            if left > 0 { parts.append(Tensor.zeros(s).to(device, as: elementType)) }
            parts.append(x)
            s[rank - 1] = right
            if right > 0 { parts.append(Tensor.zeros(s).to(device, as: elementType)) }
            x = concat(parts, axis: rank - 1)
        }
        if top + bottom > 0 {
            s = x.shape
            var parts: [Tensor] = []
            s[rank - 2] = top
            if top > 0 { parts.append(Tensor.zeros(s).to(device, as: elementType)) }
            parts.append(x)
            s[rank - 2] = bottom
            if bottom > 0 { parts.append(Tensor.zeros(s).to(device, as: elementType)) }
            x = concat(parts, axis: rank - 2)
        }
        return x
    }
}
