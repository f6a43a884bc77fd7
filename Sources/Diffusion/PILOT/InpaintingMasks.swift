import Tensors

/// PILOT's masks for one image (PILOT.md, "Masks").
///
/// - `keep` is the latent keep-mask K `[1, 1, h, w]`: 1 = background to
///   preserve, 0 = hole. Latent cell (i, j) takes pixel (8i, 8j) of the
///   binarised pixel mask (the reference's nearest rule), optionally with the
///   hole dilated by `dilation` latent cells.
/// - `hole[N]` is F_s for the attention resolution with N = h_s·w_s query
///   tokens: `1 − K` resized bilinearly (PyTorch, align_corners=False, no
///   antialias) and every value below 1 set to 0, so a cell is "hole" only
///   if it is entirely hole.
public struct InpaintingMasks {
    public let keep: Tensor
    public let latentHeight: Int, latentWidth: Int
    /// F_s by query count, each `[N]` (row-major over h_s × w_s).
    public let hole: [Int: Tensor]
    /// Number of latent cells kept (K ≥ 0.5).
    public let keepCount: Int
    /// ΣK: the kept mass (equal to `keepCount` for a hard mask); the
    /// centralisation weight C scales with it.
    public let keepMass: Float

    /// `pixelMask` is `[H, W]` (or `[1, 1, H, W]`) in [0, 1] with the user
    /// convention **1 (white) = inpaint**; values ≥ 0.5 count as hole.
    public init(pixelMask: Tensor, downscale: Int = 8, levels: Int = 4, dilation: Int = 0) throws {
        let (h, w, _) = try Self.latentSize(of: pixelMask, downscale: downscale)
        var k = try Self.nearestHole(pixelMask, downscale: downscale).map { $0 ? Float(0) : 1 }
        if dilation > 0 { k = InpaintingMasks.dilateHole(k, h, w, dilation) }
        self.init(keep: k, height: h, width: w, levels: levels)
    }

    /// A soft keep-mask: `pixelMask` (1 = inpaint) averaged over each
    /// `downscale` × `downscale` cell, K = 1 − mean. A cell partly in the
    /// hole is partly kept: L_bg weighs it by K, differential blending lets
    /// it go when the schedule passes K; the attention masks F_s follow the
    /// same rule as for hard masks (a query is hole only where K = 0).
    public init(softPixelMask pixelMask: Tensor, downscale: Int = 8, levels: Int = 4) throws {
        let (h, w, pw) = try Self.latentSize(of: pixelMask, downscale: downscale)
        let px = pixelMask.scalars
        var k = [Float](repeating: 1, count: h * w)
        let area = Float(downscale * downscale)
        for i in 0..<h {
            for j in 0..<w {
                var sum: Float = 0
                for y in (i * downscale)..<((i + 1) * downscale) {
                    for x in (j * downscale)..<((j + 1) * downscale) { sum += min(max(px[y * pw + x], 0), 1) }
                }
                k[i * w + j] = 1 - sum / area
            }
        }
        self.init(keep: k, height: h, width: w, levels: levels)
    }

    /// Latent cell (i, j) is hole when pixel (8i, 8j) of the pixel mask
    /// (`[H, W]` or `[1, 1, H, W]`, 1 = inpaint) is at least 0.5: the
    /// reference's nearest rule, PyTorch's `interpolate` default, which
    /// diffusers' inpainting pipeline uses too. Row-major over h × w.
    static func nearestHole(_ pixelMask: Tensor, downscale: Int) throws -> [Bool] {
        let (h, w, pw) = try latentSize(of: pixelMask, downscale: downscale)
        let px = pixelMask.scalars
        return (0..<(h * w)).map { px[(($0 / w) * downscale) * pw + ($0 % w) * downscale] >= 0.5 }
    }

    /// The latent height and width of a pixel mask, and its pixel width.
    private static func latentSize(of pixelMask: Tensor, downscale: Int) throws -> (Int, Int, Int) {
        let (ph, pw) = (pixelMask.dim(-2), pixelMask.dim(-1))
        guard ph % downscale == 0, pw % downscale == 0 else {
            throw ModelInputError.shape(what: "mask", expected: "sides divisible by \(downscale)", found: pixelMask.shape)
        }
        return (ph / downscale, pw / downscale, pw)
    }

    /// From a latent keep-mask (1 = keep) directly.
    public init(keep k: [Float], height h: Int, width w: Int, levels: Int = 4) {
        precondition(k.count == h * w, "keep mask has \(k.count) cells, expected \(h)×\(w)")
        keep = Tensor(shape: [1, 1, h, w], values: k)
        latentHeight = h
        latentWidth = w
        keepCount = k.reduce(0) { $0 + ($1 >= 0.5 ? 1 : 0) }
        keepMass = k.reduce(0, +)
        let holeFull = k.map { 1 - $0 }
        var hole: [Int: Tensor] = [:]
        var (sh, sw) = (h, w)
        for _ in 0..<levels {
            let r = InpaintingMasks.bilinear(holeFull, h, w, sh, sw).map { $0 < 1 ? Float(0) : 1 }
            hole[sh * sw] = Tensor(shape: [sh * sw], values: r)
            (sh, sw) = ((sh + 1) / 2, (sw + 1) / 2)
        }
        self.hole = hole
    }

    /// Grows the hole (K = 0) by `n` cells in every direction (square window).
    static func dilateHole(_ k: [Float], _ h: Int, _ w: Int, _ n: Int) -> [Float] {
        var out = k
        for i in 0..<h {
            for j in 0..<w where k[i * w + j] < 0.5 {
                for di in -n...n {
                    for dj in -n...n {
                        let (y, x) = (i + di, j + dj)
                        if y >= 0, y < h, x >= 0, x < w { out[y * w + x] = 0 }
                    }
                }
            }
        }
        return out
    }

    /// PyTorch's `F.interpolate(mode="bilinear", align_corners=False)` of one
    /// plane, in the same arithmetic order.
    static func bilinear(_ src: [Float], _ ih: Int, _ iw: Int, _ oh: Int, _ ow: Int) -> [Float] {
        func coords(_ o: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Float, Float) {
            let scale = Float(inSize) / Float(outSize)
            let s = max((Float(o) + 0.5) * scale - 0.5, 0)
            let i0 = min(Int(s), inSize - 1)
            let i1 = i0 < inSize - 1 ? i0 + 1 : i0
            let l1 = s - Float(i0)
            return (i0, i1, 1 - l1, l1)
        }
        var out = [Float](repeating: 0, count: oh * ow)
        for y in 0..<oh {
            let (y0, y1, hy0, hy1) = coords(y, ih, oh)
            for x in 0..<ow {
                let (x0, x1, wx0, wx1) = coords(x, iw, ow)
                out[y * ow + x] = hy0 * (wx0 * src[y0 * iw + x0] + wx1 * src[y0 * iw + x1])
                    + hy1 * (wx0 * src[y1 * iw + x0] + wx1 * src[y1 * iw + x1])
            }
        }
        return out
    }

    /// Whether there is anything to inpaint and anything to keep.
    public var hasHole: Bool { keep.scalars.contains { $0 < 1 } }
    public var hasBackground: Bool { keep.scalars.contains { $0 > 0 } }
}
