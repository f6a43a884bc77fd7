import Foundation

/// Morphology, blur and set operations on soft masks (values in [0, 1]):
/// what users do to a mask before inpainting so seams do not show.
///
/// References (`Tests/Reference/make_mask_fixtures.py`): growing is
/// `scipy.ndimage.grey_dilation` / `grey_erosion` with a disk or square
/// footprint and the outside ignored (`mode="constant"`, `cval` 0 or 1);
/// blurring is `scipy.ndimage.gaussian_filter` (`mode="reflect"`, truncated
/// at 4 σ).
extension Mask {
    /// The structuring element of ``grown(by:shape:)``.
    public enum GrowShape: String, Sendable, CaseIterable {
        /// Every offset with dx² + dy² ≤ r².
        case round
        /// Every offset with |dx|, |dy| ≤ r.
        case square
    }

    /// Grey dilation (`pixels` > 0: each value becomes the largest within
    /// `pixels` of it, so the hole grows) or erosion (< 0: the smallest, so
    /// it shrinks); pixels outside the mask are ignored. Exact: values are
    /// only ever copied.
    public func grown(by pixels: Int, shape: GrowShape = .round) -> Mask {
        guard pixels != 0 else { return self }
        let r = abs(pixels), dilate = pixels > 0
        // Each row of the footprint is a horizontal run of half-width
        // `reach[dy + r]`: the 2-D filter is, per output row, the extreme
        // over dy of a 1-D running extreme of that width on row y + dy.
        let reach = (-r...r).map { dy in shape == .square ? r : Int((Double(r * r - dy * dy)).squareRoot() + 1e-9) }
        var out = [Float](repeating: dilate ? 0 : 1, count: values.count)
        var run = [Float](repeating: 0, count: width)
        values.withUnsafeBufferPointer { source in
            for y in 0..<height {
                let row = y * width
                for dy in -r...r {
                    let sy = y + dy
                    guard sy >= 0, sy < height else { continue }
                    Self.runningExtreme(source, offset: sy * width, count: width, reach: reach[dy + r], max: dilate, into: &run)
                    if dilate {
                        for x in 0..<width where run[x] > out[row + x] { out[row + x] = run[x] }
                    } else {
                        for x in 0..<width where run[x] < out[row + x] { out[row + x] = run[x] }
                    }
                }
            }
        }
        var result = self
        result.values = out
        return result
    }

    /// The largest (or smallest) of `source[offset + x − reach … offset + x + reach]`
    /// for each x, the run clipped to the row: van Herk/Gil-Werman, three
    /// comparisons a pixel whatever the reach.
    private static func runningExtreme(_ source: UnsafeBufferPointer<Float>, offset: Int, count n: Int, reach: Int,
                                       max useMax: Bool, into out: inout [Float]) {
        let pick: (Float, Float) -> Float = useMax ? { Swift.max($0, $1) } : { Swift.min($0, $1) }
        if reach == 0 {
            for x in 0..<n { out[x] = source[offset + x] }
            return
        }
        let window = 2 * reach + 1
        // Block prefix (g) and suffix (h) extremes over blocks of `window`
        // starting at −reach; out[x] = pick(h[x − reach], g[x + reach]).
        let padded = n + 2 * reach
        var g = [Float](repeating: 0, count: padded), h = [Float](repeating: 0, count: padded)
        let neutral: Float = useMax ? -.infinity : .infinity
        func value(_ i: Int) -> Float {
            let x = i - reach
            return x >= 0 && x < n ? source[offset + x] : neutral
        }
        for i in 0..<padded { g[i] = i % window == 0 ? value(i) : pick(g[i - 1], value(i)) }
        var i = padded - 1
        while i >= 0 {
            h[i] = (i % window == window - 1 || i == padded - 1) ? value(i) : pick(h[i + 1], value(i))
            i -= 1
        }
        for x in 0..<n { out[x] = pick(h[x], g[x + 2 * reach]) }
    }

    /// A Gaussian blur of standard deviation `sigma` pixels (separable,
    /// kernel truncated at 4 σ, edges mirrored half-sample as SciPy's
    /// `reflect`), clamped to [0, 1]: a feathered edge.
    public func blurred(sigma: Double) -> Mask {
        guard sigma > 0 else { return self }
        var result = self
        result.values = GaussianBlur.apply(values, width: width, height: height, sigma: sigma, radius: Int(4 * sigma + 0.5),
                                           border: .mirror).map { min(max($0, 0), 1) }
        return result
    }

    /// How two masks combine, value by value.
    public enum Combination: String, Sendable, CaseIterable {
        /// max(a, b)
        case union
        /// min(a, b)
        case intersection
        /// max(a − b, 0): a without b
        case difference
    }

    /// This mask combined with `other` (the same size) value by value.
    public func combined(with other: Mask, _ combination: Combination) throws -> Mask {
        guard other.width == width, other.height == height else {
            throw ImagingError.invalidImage("cannot combine a \(width)×\(height) mask with a \(other.width)×\(other.height) one: sizes differ")
        }
        var result = self
        switch combination {
        case .union: result.values = zip(values, other.values).map { max($0, $1) }
        case .intersection: result.values = zip(values, other.values).map { min($0, $1) }
        case .difference: result.values = zip(values, other.values).map { max($0 - $1, 0) }
        }
        return result
    }

    /// The smallest rectangle holding every value above 0, as
    /// `(x, y, width, height)`; nil for an empty mask.
    public var boundingBox: (x: Int, y: Int, width: Int, height: Int)? {
        var minX = width, minY = height, maxX = -1, maxY = -1
        for y in 0..<height {
            for x in 0..<width where values[y * width + x] > 0 {
                minX = min(minX, x); maxX = max(maxX, x)
                minY = min(minY, y); maxY = max(maxY, y)
            }
        }
        guard maxX >= 0 else { return nil }
        return (minX, minY, maxX - minX + 1, maxY - minY + 1)
    }

    /// The part of the mask inside a rectangle (which must lie inside it).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> Mask {
        guard x >= 0, y >= 0, w > 0, h > 0, x + w <= width, y + h <= height else {
            throw ImagingError.invalidImage("crop \(w)×\(h) at (\(x), \(y)) is not inside the \(width)×\(height) mask")
        }
        var out = [Float](repeating: 0, count: w * h)
        for row in 0..<h {
            for column in 0..<w { out[row * w + column] = values[(y + row) * width + x + column] }
        }
        return try Mask(width: w, height: h, values: out)
    }
}

extension Image {
    /// The part of the image inside a rectangle (which must lie inside it).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> Image {
        guard x >= 0, y >= 0, w > 0, h > 0, x + w <= width, y + h <= height else {
            throw ImagingError.invalidImage("crop \(w)×\(h) at (\(x), \(y)) is not inside the \(width)×\(height) image")
        }
        var out = [Float](repeating: 0, count: Image.channelCount * w * h)
        for c in 0..<Image.channelCount {
            for row in 0..<h {
                for column in 0..<w {
                    out[c * w * h + row * w + column] = planes[c * width * height + (y + row) * width + x + column]
                }
            }
        }
        return try Image(width: w, height: h, planes: out)
    }
}
