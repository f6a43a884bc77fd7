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
    linear(x, weight: weight, bias: bias, reloadWeight: nil)
}

/// `linear` whose backward, for an untraced weight, fetches the weight again
/// through `reloadWeight` instead of keeping it (a model's compact 16-bit
/// weights are widened again rather than held wide by the tape). Whatever
/// the weight, the input is kept only when the weight is traced: ∂/∂x needs
/// the weight and the output gradient alone.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, reloadWeight: (() -> Tensor)?) -> Tensor {
    let y = Backends.backend(for: x, weight, bias).linear(x, weight: weight, bias: bias)
    let weightTraced = weight.trace != nil
    let cx: Tensor? = weightTraced ? x.detached : nil
    let held: Tensor? = weightTraced || reloadWeight == nil ? weight.detached : nil
    let xShape = x.shape, outF = weight.shape[0], inF = weight.shape[1]
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return Tape.record(y, inputs: inputs) { g, needs in
        let g2 = Tensor(shape: [g.count / outF, outF], storage: g.storage)
        var grads: [Tensor?] = [nil, nil, nil]
        if needs[0] {
            let cw = held ?? reloadWeight!().detached
            let be = Backends.backend(for: g, cw)
            grads[0] = Tensor(shape: xShape, storage: be.matmul(g2, cw, transposeA: false, transposeB: false).storage)
        }
        if needs[1], let cx {
            let x2 = Tensor(shape: [cx.count / inF, inF], storage: cx.storage)
            grads[1] = Backends.backend(for: g, cx).matmul(g2, x2, transposeA: true, transposeB: false)
        }
        if needs.count > 2 && needs[2] { grads[2] = Backends.backend(for: g).sum(g2, axes: [0], keepDims: false) }
        return Array(grads.prefix(needs.count))
    }
}

/// 2-D convolution, NCHW input and OIHW weight (PyTorch's `F.conv2d`).
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                   groups: Int = 1) -> Tensor {
    conv2d(x, weight: weight, bias: bias, Conv2DParameters(stride: stride, padding: padding, groups: groups))
}

public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters) -> Tensor {
    conv2d(x, weight: weight, bias: bias, p, reloadWeight: nil)
}

/// `conv2d` whose backward fetches an untraced weight again through
/// `reloadWeight` (see `linear(_:weight:bias:reloadWeight:)`); the input is
/// kept only when the weight is traced.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParameters,
                   reloadWeight: (() -> Tensor)?) -> Tensor {
    let y = Backends.backend(for: x, weight, bias).conv2d(x, weight: weight, bias: bias, p)
    let weightTraced = weight.trace != nil
    let cx: Tensor? = weightTraced ? x.detached : nil
    let held: Tensor? = weightTraced || reloadWeight == nil ? weight.detached : nil
    let xShape = x.shape, weightShape = weight.shape
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return Tape.record(y, inputs: inputs) { g, needs in
        var grads: [Tensor?] = [nil, nil, nil]
        if needs[0] {
            let cw = held ?? reloadWeight!().detached
            grads[0] = Backends.backend(for: g, cw).conv2dBackwardInput(g, weight: cw, inputShape: xShape, p)
        }
        if needs[1], let cx {
            grads[1] = Backends.backend(for: g, cx).conv2dBackwardWeight(g, input: cx, weightShape: weightShape, p)
        }
        if needs.count > 2 && needs[2] { grads[2] = Backends.backend(for: g).sum(g, axes: [0, 2, 3], keepDims: false) }
        return Array(grads.prefix(needs.count))
    }
}
