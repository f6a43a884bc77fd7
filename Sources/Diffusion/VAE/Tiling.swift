import Tensors

/// Runs a spatial map over overlapping tiles and blends the results.
///
/// Each tile's output is weighted by a separable ramp that rises linearly
/// across the overlap on every side that touches another tile (and stays 1 on
/// the image border); outputs are accumulated with their weights and divided
/// by the summed weights, so every output pixel is a convex combination of
/// tile outputs and the seams are smooth. Large VAE decodes and encodes fit
/// in memory this way; the result differs from an untiled pass only through
/// the group-norm statistics of each tile.
struct SpatialTiler {
    /// Tile and overlap sizes in input pixels.
    let tile: Int
    let overlap: Int
    /// Output pixels per input pixel (8 for decode, 1/8 expressed as `divide`).
    let multiply: Int
    let divide: Int

    func starts(_ size: Int) -> [Int] {
        guard size > tile else { return [0] }
        let stride = tile - overlap
        var s = Array(Swift.stride(from: 0, to: size - tile, by: stride))
        s.append(size - tile)
        return s
    }

    func ramp(length: Int, blendStart: Int, blendEnd: Int) -> [Float] {
        (0..<length).map { i in
            var w: Float = 1
            if blendStart > 0, i < blendStart { w = min(w, Float(i + 1) / Float(blendStart + 1)) }
            if blendEnd > 0, i >= length - blendEnd { w = min(w, Float(length - i) / Float(blendEnd + 1)) }
            return w
        }
    }

    func run(_ x: Tensor, _ f: (Tensor) throws -> Tensor) throws -> Tensor {
        let (h, w) = (x.dim(2), x.dim(3))
        let ys = starts(h), xs = starts(w)
        if ys.count == 1 && xs.count == 1 { return try f(x) }
        var out: Tensor?
        var weight: Tensor?
        let (oh, ow) = (h * multiply / divide, w * multiply / divide)
        for (yi, y0) in ys.enumerated() {
            for (xi, x0) in xs.enumerated() {
                let th = min(tile, h - y0), tw = min(tile, w - x0)
                let part = try f(x.sliced(axis: 2, y0..<(y0 + th)).sliced(axis: 3, x0..<(x0 + tw)))
                let (ph, pw) = (part.dim(2), part.dim(3))
                let o = overlap * multiply / divide
                let wy = ramp(length: ph, blendStart: yi > 0 ? o : 0, blendEnd: yi < ys.count - 1 ? o : 0)
                let wx = ramp(length: pw, blendStart: xi > 0 ? o : 0, blendEnd: xi < xs.count - 1 ? o : 0)
                let wt = Tensor(shape: [1, 1, ph, 1], values: wy) * Tensor(shape: [1, 1, 1, pw], values: wx)
                let (oy, ox) = (y0 * multiply / divide, x0 * multiply / divide)
                let placed = (part * wt).padded(left: ox, right: ow - ox - pw, top: oy, bottom: oh - oy - ph)
                let placedW = wt.padded(left: ox, right: ow - ox - pw, top: oy, bottom: oh - oy - ph)
                out = out.map { $0 + placed } ?? placed
                weight = weight.map { $0 + placedW } ?? placedW
            }
        }
        return out! / weight!
    }
}

extension AutoencoderKL {
    /// `decode` over overlapping latent tiles of `tile` cells (overlap
    /// `overlap` cells), for images too large to decode at once.
    public func decodeTiled(_ latent: Tensor, tile: Int = 64, overlap: Int = 16) throws -> Tensor {
        precondition(tile > overlap && overlap >= 0, "tile must exceed overlap")
        let tiler = SpatialTiler(tile: tile, overlap: overlap, multiply: config.downscale, divide: 1)
        return try tiler.run(latent) { try self.decode($0) }
    }

    /// `encode` (posterior mean) over overlapping image tiles of `tile`
    /// pixels (overlap `overlap` pixels, both multiples of the downscale).
    public func encodeTiled(_ image: Tensor, tile: Int = 512, overlap: Int = 128) throws -> Tensor {
        let d = config.downscale
        precondition(tile > overlap && tile % d == 0 && overlap % d == 0, "tile and overlap must be multiples of \(d)")
        let tiler = SpatialTiler(tile: tile, overlap: overlap, multiply: 1, divide: d)
        return try tiler.run(image) { try self.encode($0).mean }
    }
}
