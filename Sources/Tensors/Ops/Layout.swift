// Differentiable shape and layout ops. Tensors are always contiguous, so a
// reshape shares storage and the others copy.

extension Tensor {
    /// The same elements with a new shape; one dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(Shape.count(s) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let y = Tensor(shape: s, storage: storage)
        let original = shape
        return Tape.record(y, inputs: [self]) { g, _ in [Tensor(shape: original, storage: g.storage)] }
    }

    public func flattened() -> Tensor { reshaped([count]) }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        var s = shape
        s.insert(1, at: axis < 0 ? axis + rank + 1 : axis)
        return reshaped(s)
    }

    /// Reorders dimensions: output dimension i is input dimension `perm[i]`.
    public func permuted(_ perm: [Int]) -> Tensor {
        let y = Backends.backend(for: self).permute(self, perm)
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return Tape.record(y, inputs: [self]) { g, _ in [Backends.backend(for: g).permute(g, inverse)] }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var perm = Array(0..<rank)
        perm.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permuted(perm)
    }

    /// Elements `range` along `axis`.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let y = Backends.backend(for: self).slice(self, axis: axis, range: range)
        let s = shape
        return Tape.record(y, inputs: [self]) { g, _ in [Backends.backend(for: g).unslice(g, shape: s, axis: axis, range: range)] }
    }

    /// `parts` equal pieces along `axis`.
    public func chunked(_ parts: Int, axis: Int) -> [Tensor] {
        let n = dim(axis)
        precondition(parts > 0 && n % parts == 0, "cannot split dimension of size \(n) into \(parts) equal chunks")
        let step = n / parts
        return (0..<parts).map { sliced(axis: axis, ($0 * step)..<(($0 + 1) * step)) }
    }

    /// Broadcasts to `target` (copies).
    public func broadcast(to target: [Int]) -> Tensor {
        let y = Backends.backend(for: self).broadcast(self, to: target)
        let s = shape
        return Tape.record(y, inputs: [self]) { g, _ in [g.reduced(toShape: s)] }
    }
}

/// Joins tensors along `axis`.
public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
    precondition(!xs.isEmpty, "concat of no tensors")
    let y = Backends.backend(forAll: xs).concat(xs, axis: axis)
    let sizes = xs.map { $0.dim(axis) }
    return Tape.record(y, inputs: xs) { g, needs in
        var start = 0
        return sizes.enumerated().map { i, n in
            defer { start += n }
            return needs[i] ? Backends.backend(for: g).slice(g, axis: axis, range: start..<(start + n)) : nil
        }
    }
}
