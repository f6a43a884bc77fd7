import Foundation

extension CPUBackend {
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let shape = Shape.broadcast(a.shape, b.shape) else {
            preconditionFailure("cannot broadcast shapes \(a.shape) and \(b.shape)")
        }
        let out = empty(shape)
        let n = out.count
        let pa = a.ptr, pb = b.ptr, po = out.ptr
        if a.shape == b.shape {
            parallelFor(n, grain: 1 << 15) { r in
                binaryRow(op, pa + r.lowerBound, 1, pb + r.lowerBound, 1, po + r.lowerBound, r.count)
            }
            return out
        }
        let plan = BroadcastPlan(shape: shape, a: a.shape, b: b.shape)
        let inner = plan.shape.last ?? 1
        let rows = n / Swift.max(inner, 1)
        parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(inner, 1))) { r in
            for row in r {
                let (oa, ob) = plan.offsets(row: row)
                binaryRow(op, pa + oa, plan.aStrides.last ?? 0, pb + ob, plan.bStrides.last ?? 0,
                          po + row * inner, inner)
            }
        }
        return out
    }

    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        let out = empty(x.shape)
        let px = x.ptr, po = out.ptr
        parallelFor(x.count, grain: 1 << 14) { r in
            let i = px + r.lowerBound, o = po + r.lowerBound, n = r.count
            switch op {
            case .neg: map(i, o, n) { -$0 }
            case .exp: map(i, o, n) { FastMath.exp($0) }
            case .log: map(i, o, n) { Foundation.log($0) }
            case .sqrt: map(i, o, n) { $0.squareRoot() }
            case .rsqrt: map(i, o, n) { 1 / $0.squareRoot() }
            case .square: map(i, o, n) { $0 * $0 }
            case .abs: map(i, o, n) { Swift.abs($0) }
            case .relu: map(i, o, n) { Swift.max($0, 0) }
            case .sigmoid: map(i, o, n) { FastMath.sigmoid($0) }
            case .tanh: map(i, o, n) { Foundation.tanh($0) }
            case .silu: map(i, o, n) { $0 / (1 + FastMath.exp(-$0)) }
            case .gelu: map(i, o, n) { FastMath.gelu($0) }
            case .geluTanh: map(i, o, n) { 0.5 * $0 * (1 + Foundation.tanh(geluTanhInner($0))) }
            case .quickGelu:
                map(i, o, n) { $0 / (1 + FastMath.exp(-1.702 * $0)) }
            case .scale(let c): map(i, o, n) { $0 * c }
            case .shift(let c): map(i, o, n) { $0 + c }
            case .pow(let c): map(i, o, n) { Foundation.pow($0, c) }
            case .clamp(let lo, let hi): map(i, o, n) { Swift.min(Swift.max($0, lo), hi) }
            }
        }
        return out
    }

    public func unaryBackward(_ op: UnaryOp, _ x: Tensor, gradOutput: Tensor) -> Tensor {
        precondition(x.shape == gradOutput.shape, "gradient shape \(gradOutput.shape) != input shape \(x.shape)")
        let out = empty(x.shape)
        let px = x.ptr, pg = gradOutput.ptr, po = out.ptr
        parallelFor(x.count, grain: 1 << 14) { r in
            let i = px + r.lowerBound, g = pg + r.lowerBound, o = po + r.lowerBound, n = r.count
            switch op {
            case .neg: map2(i, g, o, n) { _, g in -g }
            case .exp: map2(i, g, o, n) { x, g in g * FastMath.exp(x) }
            case .log: map2(i, g, o, n) { x, g in g / x }
            case .sqrt: map2(i, g, o, n) { x, g in g * 0.5 / x.squareRoot() }
            case .rsqrt: map2(i, g, o, n) { x, g in g * -0.5 / (x * x.squareRoot()) }
            case .square: map2(i, g, o, n) { x, g in g * 2 * x }
            case .abs: map2(i, g, o, n) { x, g in x > 0 ? g : (x < 0 ? -g : 0) }
            case .relu: map2(i, g, o, n) { x, g in x > 0 ? g : 0 }
            case .sigmoid: map2(i, g, o, n) { x, g in let s = FastMath.sigmoid(x); return g * s * (1 - s) }
            case .tanh: map2(i, g, o, n) { x, g in let t = Foundation.tanh(x); return g * (1 - t * t) }
            case .silu:
                map2(i, g, o, n) { x, g in let s = FastMath.sigmoid(x); return g * s * (1 + x * (1 - s)) }
            case .gelu:
                map2(i, g, o, n) { x, g in g * FastMath.geluSlope(x) }
            case .geluTanh:
                map2(i, g, o, n) { x, g in
                    let t = Foundation.tanh(geluTanhInner(x))
                    let du = 0.797_884_56 * (1 + 3 * 0.044_715 * x * x)
                    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
                }
            case .quickGelu:
                map2(i, g, o, n) { x, g in
                    let s = FastMath.sigmoid(1.702 * x)
                    return g * (s + 1.702 * x * s * (1 - s))
                }
            case .scale(let c): map2(i, g, o, n) { _, g in g * c }
            case .shift: map2(i, g, o, n) { _, g in g }
            case .pow(let c): map2(i, g, o, n) { x, g in g * c * Foundation.pow(x, c - 1) }
            case .clamp(let lo, let hi): map2(i, g, o, n) { x, g in x > lo && x < hi ? g : 0 }
            }
        }
        return out
    }
}

extension CPUBackend {
    public func geglu(_ x: Tensor) -> Tensor {
        let width = x.shape.last ?? 0
        precondition(width % 2 == 0, "geglu needs an even last dimension, got \(x.shape)")
        let half = width / 2, rows = x.count / Swift.max(width, 1)
        let out = empty(Array(x.shape.dropLast()) + [half])
        let px = x.ptr, po = out.ptr
        parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(half, 1))) { r in
            for row in r {
                let h = px + row * width, g = h + half, o = po + row * half
                for k in 0..<half { o[k] = h[k] * FastMath.gelu(g[k]) }
            }
        }
        return out
    }

    public func gegluBackward(_ x: Tensor, gradOutput: Tensor) -> Tensor {
        let width = x.shape.last ?? 0, half = width / 2
        precondition(gradOutput.shape == Array(x.shape.dropLast()) + [half],
                     "geglu gradient shape \(gradOutput.shape) does not match input \(x.shape)")
        let rows = x.count / Swift.max(width, 1)
        let out = empty(x.shape)
        let px = x.ptr, pg = gradOutput.ptr, po = out.ptr
        parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(half, 1))) { r in
            for row in r {
                let h = px + row * width, gate = h + half, dy = pg + row * half
                let dh = po + row * width, dgate = dh + half
                // ∂/∂h = dy·gelu(gate); ∂/∂gate = dy·h·gelu′(gate).
                for k in 0..<half {
                    dh[k] = dy[k] * FastMath.gelu(gate[k])
                    dgate[k] = dy[k] * h[k] * FastMath.geluSlope(gate[k])
                }
            }
        }
        return out
    }
}

@inline(__always)
private func geluTanhInner(_ x: Float) -> Float { 0.797_884_56 * (x + 0.044_715 * x * x * x) }

@inline(__always)
func map(_ x: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int,
         _ f: (Float) -> Float) {
    for k in 0..<n { out[k] = f(x[k]) }
}

@inline(__always)
func map2(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
          _ n: Int, _ f: (Float, Float) -> Float) {
    for k in 0..<n { out[k] = f(x[k], y[k]) }
}

/// One row of a binary op with per-operand strides of 0 (broadcast) or 1.
@inline(__always)
func binaryRow(_ op: BinaryOp, _ a: UnsafeMutablePointer<Float>, _ sa: Int, _ b: UnsafeMutablePointer<Float>,
               _ sb: Int, _ o: UnsafeMutablePointer<Float>, _ n: Int) {
    switch (sa, sb) {
    case (1, 1):
        switch op {
        case .add: for k in 0..<n { o[k] = a[k] + b[k] }
        case .sub: for k in 0..<n { o[k] = a[k] - b[k] }
        case .mul: for k in 0..<n { o[k] = a[k] * b[k] }
        case .div: for k in 0..<n { o[k] = a[k] / b[k] }
        }
    case (1, 0):
        let s = b[0]
        switch op {
        case .add: for k in 0..<n { o[k] = a[k] + s }
        case .sub: for k in 0..<n { o[k] = a[k] - s }
        case .mul: for k in 0..<n { o[k] = a[k] * s }
        case .div: for k in 0..<n { o[k] = a[k] / s }
        }
    case (0, 1):
        let s = a[0]
        switch op {
        case .add: for k in 0..<n { o[k] = s + b[k] }
        case .sub: for k in 0..<n { o[k] = s - b[k] }
        case .mul: for k in 0..<n { o[k] = s * b[k] }
        case .div: for k in 0..<n { o[k] = s / b[k] }
        }
    default:
        switch op {
        case .add: for k in 0..<n { o[k] = a[k * sa] + b[k * sb] }
        case .sub: for k in 0..<n { o[k] = a[k * sa] - b[k * sb] }
        case .mul: for k in 0..<n { o[k] = a[k * sa] * b[k * sb] }
        case .div: for k in 0..<n { o[k] = a[k * sa] / b[k * sb] }
        }
    }
}

/// Broadcast iteration plan: the output shape with adjacent dimensions merged
/// wherever both operands stay contiguous-compatible, and each operand's
/// strides (0 on broadcast dimensions).
struct BroadcastPlan {
    var shape: [Int] = []
    var aStrides: [Int] = []
    var bStrides: [Int] = []

    init(shape out: [Int], a: [Int], b: [Int]) {
        let sa = BroadcastPlan.strides(of: a, in: out)
        let sb = BroadcastPlan.strides(of: b, in: out)
        for i in 0..<out.count where out[i] != 1 {
            if let last = shape.indices.last,
               aStrides[last] == sa[i] * out[i], bStrides[last] == sb[i] * out[i] {
                shape[last] *= out[i]
                aStrides[last] = sa[i]
                bStrides[last] = sb[i]
            } else {
                shape.append(out[i]); aStrides.append(sa[i]); bStrides.append(sb[i])
            }
        }
        if shape.isEmpty { shape = [1]; aStrides = [0]; bStrides = [0] }
    }

    static func strides(of s: [Int], in out: [Int]) -> [Int] {
        let st = Shape.strides(s)
        let pad = out.count - s.count
        return (0..<out.count).map { i in i < pad || s[i - pad] == 1 ? 0 : st[i - pad] }
    }

    /// Element offsets into a and b of the start of row `row` (all dims but the last).
    @inline(__always)
    func offsets(row: Int) -> (Int, Int) {
        var r = row, oa = 0, ob = 0
        var d = shape.count - 2
        while d >= 0 {
            let i = r % shape[d]
            r /= shape[d]
            oa += i * aStrides[d]
            ob += i * bStrides[d]
            d -= 1
        }
        return (oa, ob)
    }
}
