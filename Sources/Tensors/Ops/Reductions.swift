extension Tensor {
    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = (axes ?? Array(0..<rank)).map { Shape.axis($0, rank: rank) }
        let y = Backends.backend(for: self).sum(self, axes: ax, keepDims: keepDims)
        let s = shape
        var kept = shape
        for a in ax { kept[a] = 1 }
        return Tape.record(y, inputs: [self]) { g, _ in
            let gk = Tensor(shape: kept, storage: g.storage)
            return [Backends.backend(for: gk).broadcast(gk, to: s)]
        }
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = (axes ?? Array(0..<rank)).map { Shape.axis($0, rank: rank) }
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Largest value along `axis` (not differentiable: the result is a constant).
    public func max(alongAxis axis: Int, keepDims: Bool = false) -> Tensor {
        Backends.backend(for: self).max(self, axis: axis, keepDims: keepDims)
    }
}
