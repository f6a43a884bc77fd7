import Foundation
import Imaging

/// The example inputs in `Examples/`, drawn procedurally (no third-party
/// photos): a 128×128 landscape (sky gradient, sun, hills, a path) and a mask
/// whose white disc marks the region to inpaint. `NodesTests` checks the
/// committed PNGs equal these drawings (PILOT_WRITE_EXAMPLES=1 rewrites them).
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
}
