/// Batched matrix product `op(a)·op(b)`; batch dimensions broadcast.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let y = Backends.backend(for: a, b).matmul(a, b, transposeA: transposeA, transposeB: transposeB)
    let (ca, cb) = (a.detached, b.detached)
    return Tape.record(y, inputs: [a, b]) { g, needs in
        let be = Backends.backend(for: g, ca, cb)
        var ga: Tensor?, gb: Tensor?
        if needs[0] {
            // C = A·B: dA = dC·Bᵀ; with A transposed, dAᵀ = dC·Bᵀ → dA = B·dCᵀ.
            let r = transposeA
                ? be.matmul(cb, g, transposeA: transposeB, transposeB: true)
                : be.matmul(g, cb, transposeA: false, transposeB: !transposeB)
            ga = r.reduced(toShape: ca.shape)
        }
        if needs[1] {
            let r = transposeB
                ? be.matmul(g, ca, transposeA: true, transposeB: transposeA)
                : be.matmul(ca, g, transposeA: !transposeA, transposeB: false)
            gb = r.reduced(toShape: cb.shape)
        }
        return [ga, gb]
    }
}

/// `x·Wᵀ + b`, PyTorch's `nn.Linear` with `weight [out, in]`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let y = Backends.backend(for: x, weight, bias).linear(x, weight: weight, bias: bias)
    let (cx, cw) = (x.detached, weight.detached)
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return Tape.record(y, inputs: inputs) { g, needs in
        let be = Backends.backend(for: g, cx, cw)
        let outF = cw.shape[0], inF = cw.shape[1]
        let g2 = Tensor(shape: [g.count / outF, outF], storage: g.storage)
        var grads: [Tensor?] = [nil, nil, nil]
        if needs[0] { grads[0] = Tensor(shape: cx.shape, storage: be.matmul(g2, cw, transposeA: false, transposeB: false).storage) }
        if needs[1] {
            let x2 = Tensor(shape: [cx.count / inF, inF], storage: cx.storage)
            grads[1] = be.matmul(g2, x2, transposeA: true, transposeB: false)
        }
        if needs.count > 2 && needs[2] { grads[2] = be.sum(g2, axes: [0], keepDims: false) }
        return Array(grads.prefix(needs.count))
    }
}

/// 2-D convolution, NCHW input and OIHW weight (PyTorch's `F.conv2d`).
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                   groups: Int = 1) -> Tensor {
    conv2d(x, weight: weight, bias: bias, Conv2DParameters(stride: stride, padding: padding, groups: groups))
}

public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
    let y = Backends.backend(for: x, weight, bias).conv2d(x, weight: weight, bias: bias, p)
    let (cx, cw) = (x.detached, weight.detached)
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return Tape.record(y, inputs: inputs) { g, needs in
        let be = Backends.backend(for: g, cx, cw)
        var grads: [Tensor?] = [nil, nil, nil]
        if needs[0] { grads[0] = be.conv2dBackwardInput(g, weight: cw, inputShape: cx.shape, p) }
        if needs[1] { grads[1] = be.conv2dBackwardWeight(g, input: cx, weightShape: cw.shape, p) }
        if needs.count > 2 && needs[2] { grads[2] = be.sum(g, axes: [0, 2, 3], keepDims: false) }
        return Array(grads.prefix(needs.count))
    }
}
