import Foundation
import Imaging

/// The example inputs in `Examples/`, drawn procedurally (no third-party
/// photos): a 128×128 landscape (sky gradient, sun, hills, a path), a mask
/// whose white disc marks the region to inpaint, a pen sketch of a flower
/// inside that disc (the scribble templates' hint) and a picture of a
/// striped ball (the canny templates' edge source, the IP-Adapter
/// templates' reference). `NodesTests` checks the committed PNGs equal
/// these drawings (PILOT_WRITE_EXAMPLES=1 rewrites them).
public enum ExampleImages {
    public static let size = 128

    public static func source() -> Image {
        let n = size
        var planes = [Float](repeating: 0, count: 3 * n * n)
        for y in 0..<n {
            for x in 0..<n {
                let fx = Float(x) / Float(n - 1), fy = Float(y) / Float(n - 1)
                var rgb: (Float, Float, Float) = (0.35 + 0.3 * fy, 0.55 + 0.3 * fy, 0.95 - 0.1 * fy)  // sky
                let sun = (fx - 0.78) * (fx - 0.78) + (fy - 0.2) * (fy - 0.2)
                if sun < 0.008 { rgb = (1.0, 0.85, 0.3) }
                let hill = 0.62 + 0.08 * sin(fx * 7.0) + 0.04 * cos(fx * 13.0)
                if fy > hill {
                    let shade = (fy - hill) * 0.8
                    rgb = (0.2 + shade * 0.3, 0.55 - shade * 0.4, 0.2)  // grass
                    if abs(fx - 0.5 + (fy - 1) * 0.35) < 0.06 * fy { rgb = (0.75, 0.65, 0.45) }  // path
                }
                planes[y * n + x] = rgb.0
                planes[n * n + y * n + x] = rgb.1
                planes[2 * n * n + y * n + x] = rgb.2
            }
        }
        return try! Image(width: n, height: n, planes: planes.map { min(max($0, 0), 1) })
    }

    /// White (1) disc in the lower middle = inpaint.
    public static func mask() -> Mask {
        let n = size
        var values = [Float](repeating: 0, count: n * n)
        for y in 0..<n {
            for x in 0..<n {
                let dx = Float(x) - 64, dy = Float(y) - 76
                if dx * dx + dy * dy <= 30 * 30 { values[y * n + x] = 1 }
            }
        }
        return try! Mask(width: n, height: n, values: values)
    }

    /// Black pen strokes on white paper: a flower (a ring of five petals
    /// around a disc, a stem, two leaves) inside the mask's disc.
    public static func scribble() -> Image {
        let n = size
        var ink = [Bool](repeating: false, count: n * n)
        func stroke(_ distance: (Float, Float) -> Float) {
            for y in 0..<n {
                for x in 0..<n where distance(Float(x), Float(y)) <= 1.2 { ink[y * n + x] = true }
            }
        }
        let (cx, cy): (Float, Float) = (64, 66)
        stroke { x, y in abs(((x - cx) * (x - cx) + (y - cy) * (y - cy)).squareRoot() - 6) }     // centre
        for k in 0..<5 {                                                                            // petals
            let angle = Float(k) * 2 * .pi / 5 - .pi / 2
            let (px, py) = (cx + 13 * cos(angle), cy + 13 * sin(angle))
            stroke { x, y in abs(((x - px) * (x - px) + (y - py) * (y - py)).squareRoot() - 6.5) }
        }
        stroke { x, y in y >= 80 && y <= 100 ? abs(x - 64) : .infinity }                          // stem
        stroke { x, y in abs(((x - 56) * (x - 56) / 4 + (y - 92) * (y - 92)).squareRoot() - 3) }   // leaves
        stroke { x, y in abs(((x - 72) * (x - 72) / 4 + (y - 88) * (y - 88)).squareRoot() - 3) }
        let paper = ink.map { $0 ? Float(0) : 1 }
        return try! Image(width: n, height: n, planes: paper + paper + paper)
    }

    /// A red ball with a yellow band and a highlight, on a light grey ground.
    public static func object() -> Image {
        let n = size
        var planes = [Float](repeating: 0.85, count: 3 * n * n)
        for y in 0..<n {
            for x in 0..<n {
                let dx = Float(x) - 64, dy = Float(y) - 72
                let r = (dx * dx + dy * dy).squareRoot()
                guard r <= 26 else { continue }
                let shade = 1 - 0.35 * r / 26
                var rgb: (Float, Float, Float) = (0.85 * shade, 0.12 * shade, 0.1 * shade)
                if abs(dy + 0.3 * dx) < 5 { rgb = (0.95 * shade, 0.8 * shade, 0.15 * shade) }   // band
                if (dx + 9) * (dx + 9) + (dy + 10) * (dy + 10) < 20 { rgb = (1, 0.95, 0.9) }  // highlight
                planes[y * n + x] = rgb.0
                planes[n * n + y * n + x] = rgb.1
                planes[2 * n * n + y * n + x] = rgb.2
            }
        }
        return try! Image(width: n, height: n, planes: planes)
    }
}
