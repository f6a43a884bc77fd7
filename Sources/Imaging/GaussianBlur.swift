import Foundation

/// A separable Gaussian blur of one plane (`[height][width]`), summed in
/// Double: CannyEdges' pre-smoothing and FeatherMask share it.
enum GaussianBlur {
    /// What the kernel reads past an edge.
    enum Border {
        /// The edge pixel again (OpenCV's BORDER_REPLICATE).
        case replicate
        /// Half-sample symmetric, repeated: d c b a | a b c d | d c b a (SciPy's `reflect`).
        case mirror
    }

    /// `plane` blurred with standard deviation `sigma`, the kernel cut at
    /// `radius` taps either side and normalised to sum 1.
    static func apply(_ plane: [Float], width w: Int, height h: Int, sigma: Double, radius: Int, border: Border) -> [Float] {
        var kernel = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        func index(_ i: Int, _ n: Int) -> Int {
            switch border {
            case .replicate:
                return min(max(i, 0), n - 1)
            case .mirror:
                let period = 2 * n
                var j = i % period
                if j < 0 { j += period }
                return j < n ? j : period - 1 - j
            }
        }
        var rows = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                var sum = 0.0
                for (k, weight) in kernel.enumerated() { sum += weight * Double(plane[y * w + index(x + k - radius, w)]) }
                rows[y * w + x] = Float(sum)
            }
        }
        var out = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                var sum = 0.0
                for (k, weight) in kernel.enumerated() { sum += weight * Double(rows[index(y + k - radius, h) * w + x]) }
                out[y * w + x] = Float(sum)
            }
        }
        return out
    }
}
