import Foundation

/// Winograd F(2×2, 3×3) and F(4×4, 3×3) for 3×3, stride-1, ungrouped
/// convolutions.
///
/// The output is cut into m×m tiles (m = 2 or 4); tile (ty, tx) reads the
/// α×α input patch (α = m + 2) at rows m·ty − padH ..< +α, columns
/// m·tx − padW ..< +α (zero outside the image). Every patch d becomes
/// V = Bᵀ d B, every filter g becomes U = G g Gᵀ, and for each of the α²
/// positions ξ of the transformed tile the sum over input channels is one
/// GEMM, M_ξ [Cout × T] = U_ξ [Cout × Cin] · V_ξ [Cin × T], with the T tiles
/// of all images side by side. Each output tile is Y = Aᵀ m A.
///
/// F(2×2, 3×3), interpolation points 0, ±1, ∞:
///
///     Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
///     G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
///     Aᵀ = [1 1 1 0; 0 1 −1 −1]
///
/// 16 GEMMs of Cout·Cin·T replace one of 9·Cout·Cin·4T: 2.25× fewer
/// multiplies. F(4×4, 3×3), points 0, ±1, ±2, ∞:
///
///     Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
///           0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
///     G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
///     Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
///
/// 36 GEMMs of Cout·Cin·T replace one of 9·Cout·Cin·16T: 4× fewer
/// multiplies, at the price of a filter transform 4× the weights' size
/// (2.25× for F(2×2)) and larger rounding (the constants reach 8 and 1/24).
/// Which one a convolution gets: `tile(cin:cout:n:ho:wo:)`.
///
/// Tiles go through in chunks of whole tile rows so that V and M stay
/// within `scratchBytes` whatever the image size.
///
/// The input gradient of such a convolution is itself one: dx is dy
/// convolved (correlation, padding 2 − p) with the filters rotated 180° and
/// Cin/Cout swapped. The filter transform reads the weights that way
/// (`FilterLayout.rotatedTransposed`), so the GEMMs are the forward's.
enum Winograd {
    /// Output tile side.
    enum Tile: Int, Sendable, Equatable, CaseIterable {
        /// F(2×2, 3×3): 4×4 patches, 16 products.
        case two = 2
        /// F(4×4, 3×3): 6×6 patches, 36 products.
        case four = 4

        var m: Int { rawValue }
        var alpha: Int { rawValue + 2 }
        var positions: Int { alpha * alpha }
    }

    enum Mode: Sendable, Equatable {
        /// im2col always.
        case off
        /// Winograd where it is measured to pay (`worthIt`), with the tile
        /// `tile(cin:cout:n:ho:wo:)` picks.
        case auto
        /// Winograd for every 3×3 stride-1 ungrouped convolution, the tile
        /// picked as in `auto` (tests).
        case always
        /// Winograd with this tile for every 3×3 stride-1 ungrouped convolution (tests).
        case only(Tile)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var storedMode: Mode = {
        switch ProcessInfo.processInfo.environment["PILOT_WINOGRAD"]?.lowercased() {
        case "0", "off", "false", "no": return .off
        case "always", "force": return .always
        case "2": return .only(.two)
        case "4": return .only(.four)
        default: return .auto
        }
    }()

    /// Which convolutions take this path: `PILOT_WINOGRAD=0` turns it off,
    /// `=2` or `=4` forces that tile.
    static var mode: Mode {
        get { lock.lock(); defer { lock.unlock() }; return storedMode }
        set { lock.lock(); defer { lock.unlock() }; storedMode = newValue }
    }

    /// Below these sizes the transforms cost more than the GEMMs save.
    static let minChannels = 32
    static let minTiles = 64

    /// Bound on the transformed input and output of one chunk of tiles.
    static let scratchBytes: Int =
        (ProcessInfo.processInfo.environment["PILOT_WINOGRAD_SCRATCH_MB"].flatMap { Int($0) } ?? 16) << 20

    /// Tiles per chunk, at least, where scratch allows.
    static let minChunkTiles = 256

    /// The tile for a convolution producing `n`×`cout`×`ho`×`wo` from `cin`
    /// channels. F(4×4) divides the GEMMs' work by 1.78 again, but its filter
    /// transform writes 36·Cin·Cout floats on every call and its GEMMs are
    /// narrower (T/4); it pays from 128 4×4 tiles (a 32×32 output in two
    /// images), with U within 100 MiB. Measured on two Zen 5 cores
    /// (`WinogradTimingTests`, the arena warm), forward F2 → F4: 320 ch at
    /// 2×64×64 33.8 → 22.7 ms, 640 ch at 2×32×32 33.8 → 27.2, 1280 ch at
    /// 2×32×32 125 → 99; 640 ch at 1×32×32 (64 tiles) 17.9 → 18.4 and
    /// 1280 ch at 2×16×16 (32 tiles) 40 → 57. Inside the UNet, where the
    /// arena changes size from layer to layer, the 1280-channel layer at
    /// 2×32×32 (U of 225 MiB, freshly faulted in) took 158–172 ms with F4
    /// against 130 with F2, and 1280→640 (U of 112 MiB) gained nothing,
    /// hence the bound on U.
    static func tile(cin: Int, cout: Int, n: Int, ho: Int, wo: Int) -> Tile {
        switch mode {
        case .only(let t): return t
        default:
            let tiles4 = n * ((ho + 3) / 4) * ((wo + 3) / 4)
            return tiles4 >= 128 && 36 * cin * cout * 4 <= 100 << 20 ? .four : .two
        }
    }

    static func appliesForward(_ g: ConvGeometry) -> Bool {
        guard isEligible(g) else { return false }
        return worthIt(cin: g.cin, cout: g.cout, tiles: g.n * ((g.ho + 1) / 2) * ((g.wo + 1) / 2))
    }

    /// dx as a convolution of dy needs padding 2 − p ≥ 0.
    static func appliesBackwardInput(_ g: ConvGeometry) -> Bool {
        guard isEligible(g), g.p.padH <= 2, g.p.padW <= 2 else { return false }
        return worthIt(cin: g.cout, cout: g.cin, tiles: g.n * ((g.h + 1) / 2) * ((g.w + 1) / 2))
    }

    private static func isEligible(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.p.strideH == 1 && g.p.strideW == 1 && g.groups == 1
    }

    private static func worthIt(cin: Int, cout: Int, tiles: Int) -> Bool {
        switch mode {
        case .off: return false
        case .always, .only: return true
        case .auto: return cin >= minChannels && cout >= minChannels && tiles >= minTiles
        }
    }

    // MARK: Filter transform

    /// Where filter (row r, column c) of U's [rows × cols] matrices comes from.
    enum FilterLayout {
        /// `w [rows, cols, 3, 3]`: the forward's filters.
        case direct
        /// `w [cols, rows, 3, 3]`, each rotated 180°: the input gradient's.
        case rotatedTransposed
    }

    /// U [positions, rows.count, cols] = G·g·Gᵀ for the filters g of rows
    /// `rows` (of `totalRows`) of `w`, laid out as `layout` says.
    static func transformFilters(_ w: UnsafePointer<Float>, rows: Range<Int>, totalRows: Int, cols: Int,
                                 layout: FilterLayout, tile: Tile, into u: UnsafeMutablePointer<Float>) {
        let plane = rows.count * cols, block = 64, positions = tile.positions, first = rows.lowerBound
        parallelFor(rows.count) { local in
            let r = (local.lowerBound + first)..<(local.upperBound + first)
            // `positions` rows of `block` filters, then copied out row by row:
            // long streams instead of scattered stores per filter.
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: positions * block)
            var g = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
            defer { tmp.deallocate() }
            for row in r {
                var c0 = 0
                while c0 < cols {
                    let count = Swift.min(block, cols - c0)
                    for k in 0..<count {
                        switch layout {
                        case .direct:
                            let p = w + (row * cols + c0 + k) * 9
                            g = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])
                        case .rotatedTransposed:
                            let p = w + ((c0 + k) * totalRows + row) * 9
                            g = (p[8], p[7], p[6], p[5], p[4], p[3], p[2], p[1], p[0])
                        }
                        switch tile {
                        case .two: filter2(g, tmp + k, block)
                        case .four: filter4(g, tmp + k, block)
                        }
                    }
                    for xi in 0..<positions {
                        (u + xi * plane + (row - first) * cols + c0).update(from: tmp + xi * block, count: count)
                    }
                    c0 += count
                }
            }
        }
    }

    typealias Filter = (Float, Float, Float, Float, Float, Float, Float, Float, Float)

    /// U = G·g·Gᵀ for F(2×2): U[4i + j] at t[(4i + j)·stride].
    @inline(__always)
    private static func filter2(_ g: Filter, _ t: UnsafeMutablePointer<Float>, _ stride: Int) {
        // G applied to 3 values.
        @inline(__always) func gv(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float) {
            (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
        }
        // h = g·Gᵀ (3 rows of 4), then U = G·h column by column.
        let h0 = gv(g.0, g.1, g.2), h1 = gv(g.3, g.4, g.5), h2 = gv(g.6, g.7, g.8)
        let c0 = gv(h0.0, h1.0, h2.0), c1 = gv(h0.1, h1.1, h2.1), c2 = gv(h0.2, h1.2, h2.2), c3 = gv(h0.3, h1.3, h2.3)
        t[0] = c0.0; t[stride] = c1.0; t[2 * stride] = c2.0; t[3 * stride] = c3.0
        t[4 * stride] = c0.1; t[5 * stride] = c1.1; t[6 * stride] = c2.1; t[7 * stride] = c3.1
        t[8 * stride] = c0.2; t[9 * stride] = c1.2; t[10 * stride] = c2.2; t[11 * stride] = c3.2
        t[12 * stride] = c0.3; t[13 * stride] = c1.3; t[14 * stride] = c2.3; t[15 * stride] = c3.3
    }

    /// U = G·g·Gᵀ for F(4×4): U[6i + j] at t[(6i + j)·stride].
    @inline(__always)
    private static func filter4(_ g: Filter, _ t: UnsafeMutablePointer<Float>, _ stride: Int) {
        @inline(__always) func gv(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float, Float, Float) {
            let s = a + c
            return (0.25 * a, -(s + b) / 6, (b - s) / 6, a / 24 + b / 12 + c / 6, a / 24 - b / 12 + c / 6, c)
        }
        // h = g·Gᵀ (3 rows of 6), then U = G·h column by column: U[6i + j] = (G·h[·][j])[i].
        let h0 = gv(g.0, g.1, g.2), h1 = gv(g.3, g.4, g.5), h2 = gv(g.6, g.7, g.8)
        @inline(__always) func put(_ j: Int, _ c: (Float, Float, Float, Float, Float, Float)) {
            t[j * stride] = c.0; t[(6 + j) * stride] = c.1; t[(12 + j) * stride] = c.2
            t[(18 + j) * stride] = c.3; t[(24 + j) * stride] = c.4; t[(30 + j) * stride] = c.5
        }
        put(0, gv(h0.0, h1.0, h2.0)); put(1, gv(h0.1, h1.1, h2.1)); put(2, gv(h0.2, h1.2, h2.2))
        put(3, gv(h0.3, h1.3, h2.3)); put(4, gv(h0.4, h1.4, h2.4)); put(5, gv(h0.5, h1.5, h2.5))
    }

    // MARK: Convolution

    /// `out [n, cout, ho, wo]` = 3×3 stride-1 correlation of `x [n, cin, h, w]`
    /// padded by (padH, padW) with filters `weight [cout, cin, 3, 3]`, or with
    /// `.rotatedTransposed` the 180° rotations of `weight [cin, cout, 3, 3]`
    /// with the channel roles swapped (the input gradient of that convolution).
    static func convolve(_ x: UnsafePointer<Float>, n: Int, cin: Int, h: Int, w: Int,
                         cout: Int, ho: Int, wo: Int, padH: Int, padW: Int,
                         weight: UnsafePointer<Float>, layout: FilterLayout,
                         bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let tile = tile(cin: cin, cout: cout, n: n, ho: ho, wo: wo)
        let m = tile.m, positions = tile.positions
        let th = (ho + m - 1) / m, tw = (wo + m - 1) / m
        let totalRows = n * th
        let bytesPerRow = tw * positions * (cin + cout) * MemoryLayout<Float>.size
        // Every chunk's GEMMs read all of U: chunks of at least
        // `minChunkTiles` tiles (up to 64 MiB of scratch) keep that read
        // small next to the products.
        let minRows = Swift.min(Swift.max(1, (minChunkTiles + tw - 1) / tw), Swift.max(1, (64 << 20) / Swift.max(bytesPerRow, 1)))
        let maxRows = Swift.min(totalRows, Swift.max(minRows, scratchBytes / Swift.max(bytesPerRow, 1)))
        let chunks = (totalRows + maxRows - 1) / maxRows
        let rowsPerChunk = (totalRows + chunks - 1) / chunks
        let maxT = rowsPerChunk * tw
        // With all tiles in one chunk (the low-resolution, wide layers), U is
        // made and used a block of output channels at a time, each block's
        // GEMMs reading it while it is still in cache; the whole U of those
        // layers (105 MiB at 1280 channels, 210 at 2560 → 1280) would be
        // written, faulted in and read back once. With several chunks every
        // chunk reads all of U, so it is made once.
        let blocked = chunks == 1
        let block = blocked ? Swift.min(cout, Swift.max(16, (filterBlockBytes / (positions * cin * 4)) & ~15)) : cout
        let uCount = positions * cin * block
        WinogradArena.shared.with(count: uCount + positions * (cin + block) * maxT) { arena in
            let u = arena, v = arena + uCount, mBuf = v + positions * cin * maxT
            let geo = TileGeometry(n: n, h: h, w: w, ho: ho, wo: wo, padH: padH, padW: padW, th: th, tw: tw)
            if !blocked {
                transformFilters(weight, rows: 0..<cout, totalRows: cout, cols: cin, layout: layout, tile: tile, into: u)
            }
            var r0 = 0
            while r0 < totalRows {
                let r1 = Swift.min(totalRows, r0 + rowsPerChunk)
                let t = (r1 - r0) * tw
                parallelFor(cin) { cr in
                    geo.transformInput(tile, x, channels: cr, cin: cin, rows: r0..<r1, v: v, ld: t)
                }
                var c0 = 0
                while c0 < cout {
                    let c1 = Swift.min(cout, c0 + block), rows = c1 - c0
                    if blocked {
                        transformFilters(weight, rows: c0..<c1, totalRows: cout, cols: cin, layout: layout, tile: tile,
                                         into: u)
                    }
                    // U's rows for this block (all of U holds every block when made once).
                    let uBlock = blocked ? u : u + c0 * cin, uStride = (blocked ? rows : cout) * cin
                    let box = UnsafeSendableBox((UnsafePointer(uBlock), UnsafePointer(v), mBuf))
                    // The products side by side, one single-threaded GEMM per worker.
                    parallelFor(positions) { r in
                        let (u, v, mBuf) = box.value
                        for xi in r {
                            serialSgemm(m: rows, n: t, k: cin, a: u + xi * uStride, lda: cin,
                                        b: v + xi * cin * t, ldb: t, c: mBuf + xi * rows * t, ldc: t)
                        }
                    }
                    let first = c0
                    parallelFor(rows) { local in
                        let cr = (local.lowerBound + first)..<(local.upperBound + first)
                        geo.transformOutput(tile, mBuf, channels: cr, first: first, mRows: rows, cout: cout,
                                            rows: r0..<r1, ld: t, bias: bias, out: out)
                    }
                    c0 = c1
                }
                r0 = r1
            }
        }
    }

    /// Bound on a block of U made and used at once (`convolve`).
    static let filterBlockBytes = 8 << 20
}

/// One buffer for U, V and M, kept between calls: a call's buffer (up to
/// 105 MiB of whole U at 1280 channels when its tiles span several chunks,
/// plus up to 64 MiB of V and M) is bigger than the host buffer cache
/// takes, and fresh pages cost more to fault in than the transform itself. It shrinks when a call needs less than half of it, so the
/// wide low-resolution layers' buffer is not held while the narrow
/// high-resolution layers (whose activations set the peak memory) run. A
/// call that finds it in use (another thread convolving) allocates its own.
final class WinogradArena: @unchecked Sendable {
    static let shared = WinogradArena()
    private let lock = NSLock()
    private var buffer: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var busy = false

    func with<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        lock.lock()
        if busy {
            lock.unlock()
            let own = Self.allocate(count)
            defer { HostMemory.deallocate(UnsafeMutableRawPointer(own), bytes: count * 4) }
            return body(own)
        }
        busy = true
        if capacity < count || count < capacity / 2 {
            if let buffer { HostMemory.deallocate(UnsafeMutableRawPointer(buffer), bytes: capacity * 4) }
            buffer = Self.allocate(count)
            capacity = count
        }
        let p = buffer!
        lock.unlock()
        defer { lock.lock(); busy = false; lock.unlock() }
        return body(p)
    }

    /// Huge pages where it is large (`HostMemory`): the arena is faulted in
    /// afresh whenever it changes size.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let raw = HostMemory.allocate(bytes: count * 4) else {
            fatalError("out of memory allocating \(count * 4) bytes of Winograd scratch")
        }
        return raw.bindMemory(to: Float.self, capacity: count)
    }
}

/// Where the m×m output tiles lie: global tile row r is image r / th, tile row r % th.
struct TileGeometry {
    let n: Int, h: Int, w: Int, ho: Int, wo: Int, padH: Int, padW: Int, th: Int, tw: Int

    // MARK: Transforms

    /// V[ξ][c][t] (row stride `ld`, ξ stride cin·ld) for the tiles of tile rows `rows`.
    func transformInput(_ tile: Winograd.Tile, _ x: UnsafePointer<Float>, channels: Range<Int>, cin: Int,
                        rows: Range<Int>, v: UnsafeMutablePointer<Float>, ld: Int) {
        // Each of the α input rows of a tile row, split into columns by phase
        // (column mod m): tile tx reads the m phases at tx, then the first
        // two again at tx + 1.
        let m = tile.m, alpha = tile.alpha, span = tw + 1
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: alpha * m * span)
        defer { buf.deallocate() }
        let xiStride = cin * ld
        for c in channels {
            for gr in rows {
                let b = gr / th, ty = gr % th
                let plane = x + (b * cin + c) * h * w
                for i in 0..<alpha {
                    gatherPhases(plane, row: m * ty - padH + i, phases: m, span: span, into: buf + m * i * span)
                }
                let dst = v + c * ld + (gr - rows.lowerBound) * tw
                var tx = 0
                while tx + 8 <= tw {
                    switch tile {
                    case .two: inputTiles2(SIMD8<Float>.self, buf, span, tx, dst, xiStride)
                    case .four: inputTiles4(SIMD8<Float>.self, buf, span, tx, dst, xiStride)
                    }
                    tx += 8
                }
                while tx < tw {
                    switch tile {
                    case .two: inputTiles2(Float.self, buf, span, tx, dst, xiStride)
                    case .four: inputTiles4(Float.self, buf, span, tx, dst, xiStride)
                    }
                    tx += 1
                }
            }
        }
    }

    /// Input row `iy` of `plane` (zero when outside the image), columns
    /// `phases`·k + j − padW for k in 0..<span as `phases` arrays of `span`.
    @inline(__always)
    private func gatherPhases(_ plane: UnsafePointer<Float>, row iy: Int, phases: Int, span: Int,
                              into buf: UnsafeMutablePointer<Float>) {
        guard iy >= 0 && iy < h else {
            buf.update(repeating: 0, count: phases * span)
            return
        }
        let row = plane + iy * w
        // Groups k whose every column is inside: phases·k − padW ≥ 0 and phases·k + phases − 1 − padW < w.
        let kLo = Swift.min(span, (padW + phases - 1) / phases)
        let top = w + padW - phases
        let kHi = top < 0 ? kLo : Swift.max(kLo, Swift.min(span, top / phases + 1))
        for k in 0..<span where k < kLo || k >= kHi {
            for j in 0..<phases {
                let col = phases * k + j - padW
                buf[j * span + k] = col >= 0 && col < w ? row[col] : 0
            }
        }
        if phases == 2 {
            let p0 = buf, p1 = buf + span
            for k in kLo..<kHi {
                let col = 2 * k - padW
                p0[k] = row[col]; p1[k] = row[col + 1]
            }
        } else {
            let p0 = buf, p1 = buf + span, p2 = p1 + span, p3 = p2 + span
            for k in kLo..<kHi {
                let col = 4 * k - padW
                p0[k] = row[col]; p1[k] = row[col + 1]; p2[k] = row[col + 2]; p3[k] = row[col + 3]
            }
        }
    }

    /// V = Bᵀ·d·B for `L.width` consecutive tiles from `tx`.
    @inline(__always)
    private func inputTiles2<L: WinogradLane>(_: L.Type, _ buf: UnsafePointer<Float>, _ span: Int, _ tx: Int,
                                              _ dst: UnsafeMutablePointer<Float>, _ xiStride: Int) {
        // e[i] = d[i]·B, row by row.
        func row(_ i: Int) -> (L, L, L, L) {
            let even = buf + 2 * i * span + tx, odd = even + span
            let d0 = L(loading: even), d1 = L(loading: odd), d2 = L(loading: even + 1), d3 = L(loading: odd + 1)
            return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
        }
        let e0 = row(0), e1 = row(1), e2 = row(2), e3 = row(3)
        let p = dst + tx
        @inline(__always) func put(_ xi: Int, _ value: L) { value.store(to: p + xi * xiStride) }
        put(0, e0.0 - e2.0); put(1, e0.1 - e2.1); put(2, e0.2 - e2.2); put(3, e0.3 - e2.3)
        put(4, e1.0 + e2.0); put(5, e1.1 + e2.1); put(6, e1.2 + e2.2); put(7, e1.3 + e2.3)
        put(8, e2.0 - e1.0); put(9, e2.1 - e1.1); put(10, e2.2 - e1.2); put(11, e2.3 - e1.3)
        put(12, e1.0 - e3.0); put(13, e1.1 - e3.1); put(14, e1.2 - e3.2); put(15, e1.3 - e3.3)
    }

    /// out tiles = Aᵀ·m·A (+ bias) for channels `channels` and tile rows `rows`.
    /// `src` holds output channels `first ..< first + mRows` (ξ stride mRows·ld);
    /// `cout` is the output's channel count.
    func transformOutput(_ tile: Winograd.Tile, _ src: UnsafePointer<Float>, channels: Range<Int>, first: Int,
                         mRows: Int, cout: Int, rows: Range<Int>, ld: Int, bias: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>) {
        let y = UnsafeMutablePointer<Float>.allocate(capacity: tile.m * tile.m * tw)
        defer { y.deallocate() }
        let xiStride = mRows * ld
        for c in channels {
            let bv = bias?[c] ?? 0
            for gr in rows {
                let b = gr / th, ty = gr % th
                let p = src + (c - first) * ld + (gr - rows.lowerBound) * tw
                var tx = 0
                while tx + 8 <= tw {
                    switch tile {
                    case .two: outputTiles2(SIMD8<Float>.self, p, tx, xiStride, y)
                    case .four: outputTiles4(SIMD8<Float>.self, p, tx, xiStride, y)
                    }
                    tx += 8
                }
                while tx < tw {
                    switch tile {
                    case .two: outputTiles2(Float.self, p, tx, xiStride, y)
                    case .four: outputTiles4(Float.self, p, tx, xiStride, y)
                    }
                    tx += 1
                }
                scatter(y, tile: tile.m, plane: out + (b * cout + c) * ho * wo, ty: ty, bias: bv)
            }
        }
    }

    /// Output rows m·ty ..< m·ty + m of a plane from y[(m·r + j)·tw + tx] (row r,
    /// column j of tile tx), plus `bias`, clipped to the output.
    @inline(__always)
    private func scatter(_ y: UnsafePointer<Float>, tile m: Int, plane: UnsafeMutablePointer<Float>, ty: Int, bias: Float) {
        let full = wo / m, rest = wo % m
        for r in 0..<m {
            let oy = m * ty + r
            guard oy < ho else { break }
            let dst = plane + oy * wo
            let src = y + m * r * tw
            if m == 2 {
                let s0 = src, s1 = src + tw
                for k in 0..<full {
                    dst[2 * k] = s0[k] + bias
                    dst[2 * k + 1] = s1[k] + bias
                }
            } else {
                let s0 = src, s1 = src + tw, s2 = s1 + tw, s3 = s2 + tw
                for k in 0..<full {
                    dst[4 * k] = s0[k] + bias
                    dst[4 * k + 1] = s1[k] + bias
                    dst[4 * k + 2] = s2[k] + bias
                    dst[4 * k + 3] = s3[k] + bias
                }
            }
            for j in 0..<rest { dst[m * full + j] = src[j * tw + full] + bias }
        }
    }

    /// The 2×2 outputs of `L.width` consecutive tiles from `tx` into
    /// y[0·tw + tx] (top left), y[1·tw] (top right), y[2·tw], y[3·tw].
    @inline(__always)
    private func outputTiles2<L: WinogradLane>(_: L.Type, _ src: UnsafePointer<Float>, _ tx: Int, _ xiStride: Int,
                                               _ y: UnsafeMutablePointer<Float>) {
        let p = src + tx
        @inline(__always) func at(_ xi: Int) -> L { L(loading: p + xi * xiStride) }
        // s[j] = (Aᵀ·m)[·][j], column by column.
        func column(_ j: Int) -> (L, L) {
            let m0 = at(j), m1 = at(4 + j), m2 = at(8 + j), m3 = at(12 + j)
            return (m0 + m1 + m2, m1 - m2 - m3)
        }
        let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3)
        (s0.0 + s1.0 + s2.0).store(to: y + tx)
        (s1.0 - s2.0 - s3.0).store(to: y + tw + tx)
        (s0.1 + s1.1 + s2.1).store(to: y + 2 * tw + tx)
        (s1.1 - s2.1 - s3.1).store(to: y + 3 * tw + tx)
    }

    // MARK: F(4×4, 3×3) tiles

    /// Bᵀ·d for F(4×4) on one 6-vector.
    @inline(__always)
    private func b4<L: WinogradLane>(_ d0: L, _ d1: L, _ d2: L, _ d3: L, _ d4: L, _ d5: L) -> (L, L, L, L, L, L) {
        let a = d4 - d2 * 4, b = d3 - d1 * 4     // r1 = a + b, r2 = a − b
        let c = d4 - d2, e = (d3 - d1) * 2       // r3 = c + e, r4 = c − e
        return (d0 * 4 - d2 * 5 + d4, a + b, a - b, c + e, c - e, d1 * 4 - d3 * 5 + d5)
    }

    @inline(__always)
    private func inputTiles4<L: WinogradLane>(_: L.Type, _ buf: UnsafePointer<Float>, _ span: Int, _ tx: Int,
                                              _ dst: UnsafeMutablePointer<Float>, _ xiStride: Int) {
        // e[i] = d[i]·B, row by row.
        @inline(__always) func row(_ i: Int) -> (L, L, L, L, L, L) {
            let p0 = buf + 4 * i * span + tx, p1 = p0 + span, p2 = p1 + span, p3 = p2 + span
            return b4(L(loading: p0), L(loading: p1), L(loading: p2), L(loading: p3),
                      L(loading: p0 + 1), L(loading: p1 + 1))
        }
        let e0 = row(0), e1 = row(1), e2 = row(2), e3 = row(3), e4 = row(4), e5 = row(5)
        let p = dst + tx
        @inline(__always) func put(_ j: Int, _ c: (L, L, L, L, L, L)) {
            c.0.store(to: p + j * xiStride); c.1.store(to: p + (6 + j) * xiStride)
            c.2.store(to: p + (12 + j) * xiStride); c.3.store(to: p + (18 + j) * xiStride)
            c.4.store(to: p + (24 + j) * xiStride); c.5.store(to: p + (30 + j) * xiStride)
        }
        // V[6i + j] = (Bᵀ·e)[i][j], column j by column.
        put(0, b4(e0.0, e1.0, e2.0, e3.0, e4.0, e5.0))
        put(1, b4(e0.1, e1.1, e2.1, e3.1, e4.1, e5.1))
        put(2, b4(e0.2, e1.2, e2.2, e3.2, e4.2, e5.2))
        put(3, b4(e0.3, e1.3, e2.3, e3.3, e4.3, e5.3))
        put(4, b4(e0.4, e1.4, e2.4, e3.4, e4.4, e5.4))
        put(5, b4(e0.5, e1.5, e2.5, e3.5, e4.5, e5.5))
    }

    /// Aᵀ·m for F(4×4) on one 6-vector.
    @inline(__always)
    private func a4<L: WinogradLane>(_ m0: L, _ m1: L, _ m2: L, _ m3: L, _ m4: L, _ m5: L) -> (L, L, L, L) {
        let s = m1 + m2, d = m1 - m2, s2 = m3 + m4, d2 = m3 - m4
        return (m0 + s + s2, d + d2 * 2, s + s2 * 4, d + d2 * 8 + m5)
    }

    /// The 4×4 outputs of `L.width` consecutive tiles from `tx`: output
    /// (row r, column j) into y[(4r + j)·tw + tx].
    @inline(__always)
    private func outputTiles4<L: WinogradLane>(_: L.Type, _ src: UnsafePointer<Float>, _ tx: Int, _ xiStride: Int,
                                               _ y: UnsafeMutablePointer<Float>) {
        let p = src + tx
        @inline(__always) func at(_ xi: Int) -> L { L(loading: p + xi * xiStride) }
        // s[j] = (Aᵀ·m)[·][j]: column j of m (positions j, 6 + j, …).
        @inline(__always) func column(_ j: Int) -> (L, L, L, L) {
            a4(at(j), at(6 + j), at(12 + j), at(18 + j), at(24 + j), at(30 + j))
        }
        let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3), s4 = column(4), s5 = column(5)
        @inline(__always) func put(_ r: Int, _ o: (L, L, L, L)) {
            o.0.store(to: y + 4 * r * tw + tx); o.1.store(to: y + (4 * r + 1) * tw + tx)
            o.2.store(to: y + (4 * r + 2) * tw + tx); o.3.store(to: y + (4 * r + 3) * tw + tx)
        }
        // Y[r][·] = (Aᵀ·m)[r][·]·A.
        put(0, a4(s0.0, s1.0, s2.0, s3.0, s4.0, s5.0))
        put(1, a4(s0.1, s1.1, s2.1, s3.1, s4.1, s5.1))
        put(2, a4(s0.2, s1.2, s2.2, s3.2, s4.2, s5.2))
        put(3, a4(s0.3, s1.3, s2.3, s3.3, s4.3, s5.3))
    }
}

/// A scalar or a SIMD vector of floats, so one transform serves both the
/// vector loop and its tail.
protocol WinogradLane {
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
    static func * (a: Self, c: Float) -> Self
    init(loading p: UnsafePointer<Float>)
    func store(to p: UnsafeMutablePointer<Float>)
}

extension Float: WinogradLane {
    @inline(__always) init(loading p: UnsafePointer<Float>) { self = p.pointee }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { p.pointee = self }
}

extension SIMD8: WinogradLane where Scalar == Float {
    @inline(__always) init(loading p: UnsafePointer<Float>) {
        self = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Float>.self)
    }
}
