/// Turns a user's sketch into the hint scribble ControlNets and sketch
/// T2I-Adapters were trained on: strokes white (1) on black (0).
///
/// A sketch is usually dark strokes on light paper. ControlNet's scribble
/// demo marks a pixel as stroke when its darkest channel is below 127 of
/// 255; that is `threshold` 0.5 with ``Strokes/dark``. Light strokes on a
/// dark ground (a hint drawn the trained way round) are found by the
/// brightest channel instead; ``Strokes/auto`` picks the polarity from the
/// mean brightness (a mostly light picture has dark strokes). Thin strokes
/// can be thickened by a disc-shaped dilation, as scribble models prefer
/// strokes a few pixels wide.
public enum Scribble {
    /// Which way round the sketch is drawn.
    public enum Strokes: String, Sendable, CaseIterable {
        /// Decide from the mean brightness: at least one half → dark strokes.
        case auto
        /// Dark strokes on a light ground (pen on paper).
        case dark
        /// Light strokes on a dark ground (already a hint).
        case light
    }

    /// The scribble hint of `sketch`: 1 on strokes, 0 elsewhere.
    ///
    /// - Parameters:
    ///   - threshold: the brightness (0–1) that separates strokes from the ground.
    ///   - strokes: the sketch's polarity.
    ///   - thickness: dilation radius in pixels (0 keeps strokes as drawn).
    public static func hint(_ sketch: Image, threshold: Float = 0.5, strokes: Strokes = .auto, thickness: Int = 0) -> Mask {
        let n = sketch.pixelCount
        let (r, g, b) = (sketch.plane(0), sketch.plane(1), sketch.plane(2))
        let polarity: Strokes
        if strokes == .auto {
            var total: Float = 0
            for p in 0..<n { total += (r[r.startIndex + p] + g[g.startIndex + p] + b[b.startIndex + p]) / 3 }
            polarity = total / Float(n) >= 0.5 ? .dark : .light
        } else {
            polarity = strokes
        }
        var values = [Float](repeating: 0, count: n)
        for p in 0..<n {
            let (cr, cg, cb) = (r[r.startIndex + p], g[g.startIndex + p], b[b.startIndex + p])
            let isStroke = polarity == .dark ? min(cr, cg, cb) < threshold : max(cr, cg, cb) > threshold
            if isStroke { values[p] = 1 }
        }
        if thickness > 0 { values = dilate(values, width: sketch.width, height: sketch.height, radius: thickness) }
        return try! Mask(width: sketch.width, height: sketch.height, values: values)  // the sketch's own size
    }

    /// Binary dilation by a disc of `radius` pixels.
    static func dilate(_ values: [Float], width w: Int, height h: Int, radius: Int) -> [Float] {
        var offsets: [(Int, Int)] = []
        for dy in -radius...radius {
            for dx in -radius...radius where dx * dx + dy * dy <= radius * radius { offsets.append((dx, dy)) }
        }
        var out = values
        for y in 0..<h {
            for x in 0..<w where values[y * w + x] > 0 {
                for (dx, dy) in offsets {
                    let (nx, ny) = (x + dx, y + dy)
                    if nx >= 0, nx < w, ny >= 0, ny < h { out[ny * w + nx] = 1 }
                }
            }
        }
        return out
    }
}

extension Image {
    /// A grey image whose three channels all equal `mask`'s values: how
    /// edge maps and scribbles become control hints.
    public init(grey mask: Mask) {
        let count = mask.width * mask.height
        var planes = [Float](repeating: 0, count: 3 * count)
        for c in 0..<3 { planes.replaceSubrange(c * count..<(c + 1) * count, with: mask.values) }
        try! self.init(width: mask.width, height: mask.height, planes: planes)  // a valid mask has a valid size
    }
}
