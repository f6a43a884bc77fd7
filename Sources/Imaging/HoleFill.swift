/// Fills a hole from its surroundings before diffusion repaints it (an
/// "infill"): a pre-fill that continues the colours around the hole inward
/// gives the sampler a far better start than grey or stretched edges.
public enum HoleFill {
    /// Fast-marching fill after Telea (2004): hole pixels are visited in
    /// order of their distance T to the known region (the eikonal equation
    /// |∇T| = 1 solved by fast marching); each takes a weighted mean of the
    /// known pixels within `radius`, each extrapolated to it along its own
    /// image gradient (I(k) + ∇I(k)·r, so smooth ramps continue), weighted
    /// by direction (how well the offset lines up with ∇T), distance
    /// (1/|r|²) and level (1/(1 + ΔT)); values are clamped to [0, 1].
    /// Pixels outside the hole are returned unchanged. Runs in
    /// O(n log n + n·r²).
    public static func telea(_ image: Image, hole: [Bool], radius: Int = 5) throws -> Image {
        let (w, h) = (image.width, image.height), n = w * h
        guard hole.count == n else { throw ImagingError.invalidImage("hole has \(hole.count) pixels, the image \(w)×\(h)") }
        guard hole.contains(false) else { throw ImagingError.invalidImage("the hole covers the whole image: nothing to fill from") }
        enum Flag: UInt8 { case known, band, inside }
        var flag = hole.map { $0 ? Flag.inside : .known }
        var t = hole.map { $0 ? Float.greatestFiniteMagnitude : 0 }
        var planes = image.planes
        var heap = MinHeap()
        // The band: known pixels next to the hole.
        for p in 0..<n where flag[p] == .known {
            let (x, y) = (p % w, p / w)
            if (x > 0 && hole[p - 1]) || (x < w - 1 && hole[p + 1]) || (y > 0 && hole[p - w]) || (y < h - 1 && hole[p + w]) {
                flag[p] = .band
                heap.push(0, p)
            }
        }
        func solve(_ a: Int?, _ b: Int?) -> Float {
            let ta = a.flatMap { flag[$0] != .inside ? t[$0] : nil }, tb = b.flatMap { flag[$0] != .inside ? t[$0] : nil }
            switch (ta, tb) {
            case let (t1?, t2?):
                let r = (2 - (t1 - t2) * (t1 - t2)).squareRoot()
                if r.isNaN { return 1 + min(t1, t2) }
                let s = (t1 + t2 - r) / 2
                if s >= t1, s >= t2 { return s }
                let s2 = s + r
                return s2 >= t1 && s2 >= t2 ? s2 : 1 + min(t1, t2)
            case let (t1?, nil): return 1 + t1
            case let (nil, t2?): return 1 + t2
            default: return .greatestFiniteMagnitude
            }
        }
        let r2 = Float(radius * radius)
        while let (_, p) = heap.pop() {
            flag[p] = .known
            let (px, py) = (p % w, p / w)
            for (qx, qy) in [(px - 1, py), (px + 1, py), (px, py - 1), (px, py + 1)] where qx >= 0 && qx < w && qy >= 0 && qy < h {
                let q = qy * w + qx
                guard flag[q] == .inside else { continue }
                let left = qx > 0 ? q - 1 : nil, right = qx < w - 1 ? q + 1 : nil
                let up = qy > 0 ? q - w : nil, down = qy < h - 1 ? q + w : nil
                t[q] = min(solve(up, left), solve(down, left), solve(up, right), solve(down, right))
                flag[q] = .band
                // ∇T at q from the neighbours already reached.
                func reached(_ i: Int?) -> Float? { i.flatMap { flag[$0] != .inside ? t[$0] : nil } }
                var gx: Float = 0, gy: Float = 0
                if let a = reached(right), let b = reached(left) { gx = (a - b) / 2 } else if let a = reached(right) { gx = a - t[q] }
                else if let b = reached(left) { gx = t[q] - b }
                if let a = reached(down), let b = reached(up) { gy = (a - b) / 2 } else if let a = reached(down) { gy = a - t[q] }
                else if let b = reached(up) { gy = t[q] - b }
                let gradient = (gx * gx + gy * gy).squareRoot()
                var sum: [Float] = [0, 0, 0], weights: Float = 0
                for ky in max(qy - radius, 0)...min(qy + radius, h - 1) {
                    for kx in max(qx - radius, 0)...min(qx + radius, w - 1) {
                        let k = ky * w + kx
                        guard flag[k] == .known, k != q else { continue }
                        let (rx, ry) = (Float(qx - kx), Float(qy - ky)), length2 = rx * rx + ry * ry
                        guard length2 <= r2 else { continue }
                        let length = length2.squareRoot()
                        var direction = gradient > 0 ? abs(rx * gx + ry * gy) / (length * gradient) : 1
                        if direction < 0.01 { direction = 0.01 }
                        let weight = direction / length2 / (1 + abs(t[k] - t[q]))
                        // ∇I at k from its known neighbours (central where both are known).
                        let kl = kx > 0 && flag[k - 1] == .known ? k - 1 : nil, kr = kx < w - 1 && flag[k + 1] == .known ? k + 1 : nil
                        let ku = ky > 0 && flag[k - w] == .known ? k - w : nil, kd = ky < h - 1 && flag[k + w] == .known ? k + w : nil
                        for c in 0..<3 {
                            let base = c * n
                            func slope(_ before: Int?, _ after: Int?) -> Float {
                                switch (before, after) {
                                case let (b?, a?): (planes[base + a] - planes[base + b]) / 2
                                case let (b?, nil): planes[base + k] - planes[base + b]
                                case let (nil, a?): planes[base + a] - planes[base + k]
                                default: 0
                                }
                            }
                            sum[c] += weight * (planes[base + k] + slope(kl, kr) * rx + slope(ku, kd) * ry)
                        }
                        weights += weight
                    }
                }
                if weights > 0 {
                    for c in 0..<3 { planes[c * n + q] = min(max(sum[c] / weights, 0), 1) }
                } else {
                    // Only the pixel it was reached from is known nearby.
                    for c in 0..<3 { planes[c * n + q] = planes[c * n + p] }
                }
                heap.push(t[q], q)
            }
        }
        return try Image(width: w, height: h, planes: planes)
    }
}

/// A binary min-heap of (priority, index).
private struct MinHeap {
    private var items: [(Float, Int)] = []

    mutating func push(_ priority: Float, _ index: Int) {
        items.append((priority, index))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].0 < items[parent].0 else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (Float, Int)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < items.count, items[l].0 < items[smallest].0 { smallest = l }
                if r < items.count, items[r].0 < items[smallest].0 { smallest = r }
                if smallest == i { break }
                items.swapAt(i, smallest)
                i = smallest
            }
        }
        return top
    }
}
