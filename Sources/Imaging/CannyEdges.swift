import Foundation

/// Canny edge detection (Canny 1986), the preprocessor of canny ControlNets
/// and T2I-Adapters.
///
/// Gradients, thresholds and the result follow OpenCV's `cv2.Canny`, which
/// ControlNet's canny annotator calls with thresholds 100 and 200: samples
/// are taken as 8-bit values (0–255), the 3×3 Sobel operator is applied
/// unnormalised with replicated borders, each pixel takes the gradient of
/// its strongest channel, the magnitude is |gx| + |gy| (or the Euclidean
/// norm), non-maximum suppression quantises the gradient direction to four
/// neighbours with OpenCV's tie rule (a pixel beats its left/upper neighbour
/// strictly and its right/lower one or equal), pixels above `high` seed
/// edges and pixels above `low` join them when 8-connected (hysteresis).
/// Unlike `cv2.Canny`, which leaves smoothing to the caller, a Gaussian blur
/// of standard deviation `sigma` comes first (the classic algorithm; 0
/// skips it and reproduces `cv2.Canny`).
public enum CannyEdges {
    /// ControlNet's canny annotator defaults.
    public static let defaultLow: Float = 100
    public static let defaultHigh: Float = 200

    /// tan 22.5° and tan 67.5°: the direction sectors of non-maximum suppression.
    static let tan22: Float = 0.414_213_56
    static let tan67: Float = 2.414_213_6

    /// The edges of `image`: 1 on edge pixels, 0 elsewhere.
    ///
    /// - Parameters:
    ///   - low: weak-edge threshold on the gradient magnitude (0–255 samples, unnormalised Sobel).
    ///   - high: strong-edge threshold; pixels above it start edges.
    ///   - sigma: standard deviation in pixels of the Gaussian blur applied first (0 = none).
    ///   - l2Gradient: Euclidean gradient magnitude instead of |gx| + |gy| (`cv2.Canny`'s `L2gradient`).
    public static func detect(_ image: Image, low: Float = defaultLow, high: Float = defaultHigh,
                              sigma: Float = 1, l2Gradient: Bool = false) -> Mask {
        let (w, h) = (image.width, image.height)
        let n = w * h
        // 8-bit samples, as cv2 sees the picture.
        var channels = (0..<Image.channelCount).map { c in
            image.plane(c).map { ($0.clamped01 * 255).rounded() }
        }
        if sigma > 0 { channels = channels.map { gaussianBlur($0, width: w, height: h, sigma: sigma) } }

        // The gradient of the channel with the largest magnitude.
        var gx = [Float](repeating: 0, count: n), gy = gx, magnitude = gx
        for plane in channels {
            let (dx, dy) = sobel(plane, width: w, height: h)
            for p in 0..<n {
                let m = l2Gradient ? (dx[p] * dx[p] + dy[p] * dy[p]).squareRoot() : abs(dx[p]) + abs(dy[p])
                if m > magnitude[p] {
                    magnitude[p] = m
                    gx[p] = dx[p]
                    gy[p] = dy[p]
                }
            }
        }

        // Non-maximum suppression: candidates above `low`, strong above `high`.
        enum State: UInt8 { case none, weak, strong }
        var state = [State](repeating: .none, count: n)
        func mag(_ x: Int, _ y: Int) -> Float {
            x >= 0 && x < w && y >= 0 && y < h ? magnitude[y * w + x] : 0
        }
        var stack: [Int] = []
        for y in 0..<h {
            for x in 0..<w {
                let p = y * w + x, m = magnitude[p]
                guard m > low else { continue }
                let ax = abs(gx[p]), ay = abs(gy[p])
                let isMaximum: Bool
                if ay < ax * tan22 {
                    isMaximum = m > mag(x - 1, y) && m >= mag(x + 1, y)
                } else if ay > ax * tan67 {
                    isMaximum = m > mag(x, y - 1) && m >= mag(x, y + 1)
                } else {
                    // Diagonal: gradients of equal sign point along the main diagonal (y grows downwards).
                    let s = (gx[p] < 0) != (gy[p] < 0) ? -1 : 1
                    isMaximum = m > mag(x - s, y - 1) && m > mag(x + s, y + 1)
                }
                guard isMaximum else { continue }
                if m > high {
                    state[p] = .strong
                    stack.append(p)
                } else {
                    state[p] = .weak
                }
            }
        }

        // Hysteresis: weak pixels 8-connected to a strong one become edges.
        while let p = stack.popLast() {
            let (x, y) = (p % w, p / w)
            for dy in -1...1 {
                for dx in -1...1 {
                    let (nx, ny) = (x + dx, y + dy)
                    guard nx >= 0, nx < w, ny >= 0, ny < h else { continue }
                    let q = ny * w + nx
                    if state[q] == .weak {
                        state[q] = .strong
                        stack.append(q)
                    }
                }
            }
        }
        let values = state.map { $0 == .strong ? Float(1) : 0 }
        return try! Mask(width: w, height: h, values: values)  // the image's own size, already checked
    }

    /// The 3×3 Sobel derivatives (unnormalised, replicated borders).
    static func sobel(_ plane: [Float], width w: Int, height h: Int) -> (dx: [Float], dy: [Float]) {
        var dx = [Float](repeating: 0, count: w * h), dy = dx
        for y in 0..<h {
            let up = max(y - 1, 0) * w, row = y * w, down = min(y + 1, h - 1) * w
            for x in 0..<w {
                let left = max(x - 1, 0), right = min(x + 1, w - 1)
                dx[row + x] = (plane[up + right] + 2 * plane[row + right] + plane[down + right])
                    - (plane[up + left] + 2 * plane[row + left] + plane[down + left])
                dy[row + x] = (plane[down + left] + 2 * plane[down + x] + plane[down + right])
                    - (plane[up + left] + 2 * plane[up + x] + plane[up + right])
            }
        }
        return (dx, dy)
    }

    /// A separable Gaussian blur over ±⌈3σ⌉ pixels, replicated borders.
    static func gaussianBlur(_ plane: [Float], width w: Int, height h: Int, sigma: Float) -> [Float] {
        GaussianBlur.apply(plane, width: w, height: h, sigma: Double(sigma), radius: max(1, Int((3 * sigma).rounded(.up))),
                           border: .replicate)
    }
}

extension Float {
    /// In [0, 1]; NaN becomes 0.
    var clamped01: Float { self > 0 ? (self < 1 ? self : 1) : 0 }
}
