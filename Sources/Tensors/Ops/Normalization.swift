/// Group normalisation over `[N, C, ...]` (PyTorch's `F.group_norm`).
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    let (y, stats) = Backends.backend(for: x, weight, bias).groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    let cx = x.detached, cw = weight?.detached
    return recordNorm(y, x: x, weight: weight, bias: bias, biasAxis: 1) { g in
        Backends.backend(for: g, cx, cw).groupNormBackward(g, input: cx, groups: groups, weight: cw, statistics: stats)
    }
}

/// Layer normalisation over the last dimension.
public func layerNorm(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    let (y, stats) = Backends.backend(for: x, weight, bias).layerNorm(x, weight: weight, bias: bias, eps: eps)
    let cx = x.detached, cw = weight?.detached
    return recordNorm(y, x: x, weight: weight, bias: bias, biasAxis: x.rank - 1) { g in
        Backends.backend(for: g, cx, cw).layerNormBackward(g, input: cx, weight: cw, statistics: stats)
    }
}

/// Records a normalisation whose backward yields (dx, dweight, dbias). The
/// backend's dbias comes with the weight; a bias without a weight gets Σdy
/// over every axis but `biasAxis`.
private func recordNorm(_ y: Tensor, x: Tensor, weight: Tensor?, bias: Tensor?, biasAxis: Int,
                        backward: @escaping (Tensor) -> (Tensor, Tensor?, Tensor?)) -> Tensor {
    var inputs = [x]
    var slots: [Int] = [0]
    if let weight { inputs.append(weight); slots.append(1) }
    if let bias { inputs.append(bias); slots.append(2) }
    let hasWeight = weight != nil
    return Tape.record(y, inputs: inputs) { g, needs in
        let (dx, dw, db) = backward(g)
        return slots.enumerated().map { k, slot -> Tensor? in
            guard needs[k] else { return nil }
            switch slot {
            case 0: return dx
            case 1: return dw
            default:
                if hasWeight { return db }
                let axes = (0..<g.rank).filter { $0 != biasAxis }
                return Backends.backend(for: g).sum(g, axes: axes, keepDims: false)
            }
        }
    }
}

/// Softmax over the last dimension.
public func softmax(_ x: Tensor) -> Tensor {
    let y = Backends.backend(for: x).softmax(x)
    let cy = y
    return Tape.record(y, inputs: [x]) { g, _ in [Backends.backend(for: g, cy).softmaxBackward(output: cy, gradOutput: g)] }
}
