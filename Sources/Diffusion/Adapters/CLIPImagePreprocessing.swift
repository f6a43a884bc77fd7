import Foundation
import Tensors

/// transformers' `CLIPImageProcessor` for RGB images: resize the shortest
/// side to `size` with PIL's bicubic filter (antialiased when shrinking),
/// centre-crop `size`×`size`, scale to [0, 1] and normalise with CLIP's
/// mean and standard deviation.
///
/// The resize reproduces Pillow's 8-bit `ImagingResample` exactly: the same
/// filter support and window bounds, coefficients normalised in double then
/// rounded to 22-bit fixed point, a horizontal pass then a vertical pass,
/// each rounded and clipped to 0…255.
public enum CLIPImagePreprocessing {
    public static let mean: [Float] = [0.481_454_66, 0.457_827_5, 0.408_210_73]
    public static let std: [Float] = [0.268_629_54, 0.261_302_58, 0.275_777_11]

    /// Pixel values `[1, 3, size, size]` for an RGB image `[3, H, W]` (or `[1, 3, H, W]`) in [0, 1].
    public static func pixelValues(_ image: Tensor, size: Int = 224) -> Tensor {
        let (h, w) = (image.dim(-2), image.dim(-1))
        // 8-bit samples, as PIL sees the image.
        let bytes = image.scalars.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
        // Shortest side → size; the long side as transformers computes it: int(size · long / short).
        let (oh, ow) = h <= w ? (size, Int(Double(size) * Double(w) / Double(h))) : (Int(Double(size) * Double(h) / Double(w)), size)
        var planes: [[UInt8]] = []
        for c in 0..<3 {
            let plane = Array(bytes[(c * h * w)..<((c + 1) * h * w)])
            planes.append(resample(plane, h, w, oh, ow))
        }
        let top = (oh - size) / 2, left = (ow - size) / 2
        var out = [Float](repeating: 0, count: 3 * size * size)
        for c in 0..<3 {
            for y in 0..<size {
                for x in 0..<size {
                    let v = Float(planes[c][(y + top) * ow + x + left]) / 255
                    out[(c * size + y) * size + x] = (v - mean[c]) / std[c]
                }
            }
        }
        return Tensor(shape: [1, 3, size, size], values: out)
    }

    static let precisionBits = 32 - 8 - 2

    static func bicubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Window start, length and fixed-point coefficients per output sample.
    static func coefficients(inSize: Int, outSize: Int) -> [(Int, [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var k = (0..<xmax).map { bicubic((Double($0 + xmin) - center + 0.5) / filterScale) }
            let total = k.reduce(0, +)
            if total != 0 { k = k.map { $0 / total } }
            let fixed = k.map { v -> Int32 in
                let s = v * Double(1 << precisionBits)
                return Int32(v < 0 ? (-0.5 + s) : (0.5 + s))
            }
            return (xmin, fixed)
        }
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> Int32(precisionBits)
        return UInt8(max(0, min(255, s)))
    }

    /// Pillow-exact 8-bit bicubic resample of one plane.
    static func resample(_ src: [UInt8], _ h: Int, _ w: Int, _ oh: Int, _ ow: Int) -> [UInt8] {
        let half = Int32(1 << (precisionBits - 1))
        var horizontal = src, hw = w
        if ow != w {
            let kx = coefficients(inSize: w, outSize: ow)
            horizontal = [UInt8](repeating: 0, count: h * ow)
            for y in 0..<h {
                for x in 0..<ow {
                    let (xmin, k) = kx[x]
                    var ss = half
                    for i in k.indices { ss &+= Int32(src[y * w + xmin + i]) &* k[i] }
                    horizontal[y * ow + x] = clip8(ss)
                }
            }
            hw = ow
        }
        guard oh != h else { return horizontal }
        let ky = coefficients(inSize: h, outSize: oh)
        var out = [UInt8](repeating: 0, count: oh * hw)
        for y in 0..<oh {
            let (ymin, k) = ky[y]
            for x in 0..<hw {
                var ss = half
                for i in k.indices { ss &+= Int32(horizontal[(ymin + i) * hw + x]) &* k[i] }
                out[y * hw + x] = clip8(ss)
            }
        }
        return out
    }
}
