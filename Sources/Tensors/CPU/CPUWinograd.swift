import Foundation

/// Winograd F(2×2, 3×3) for 3×3, stride-1, ungrouped convolutions.
///
/// The output is cut into 2×2 tiles; tile (ty, tx) reads the 4×4 input
/// patch at rows 2·ty − padH ..< +4, columns 2·tx − padW ..< +4 (zero
/// outside the image). With the F(2, 3) matrices
///
///     Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
///     G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
///     Aᵀ = [1 1 1 0; 0 1 −1 −1]
///
/// every patch d becomes V = Bᵀ d B, every filter g becomes U = G g Gᵀ,
/// and for each of the 16 positions ξ of the 4×4 transformed tile the sum
/// over input channels is one GEMM, M_ξ [Cout × T] = U_ξ [Cout × Cin] ·
/// V_ξ [Cin × T], with the T tiles of all images side by side. Each output
/// tile is Y = Aᵀ m A. 16 GEMMs of Cout·Cin·T replace one of 9·Cout·Cin·4T:
/// 2.25× fewer multiplies, plus transforms that are linear in the data.
///
/// Tiles go through in chunks of whole tile rows so that V and M stay
/// within `scratchBytes` whatever the image size.
///
/// The input gradient of such a convolution is itself one: dx is dy
/// convolved (correlation, padding 2 − p) with the filters rotated 180° and
/// Cin/Cout swapped. Rotating g by 180° swaps rows 0 ↔ 3 of G·J, so its
/// transform is U with indices 0 and 3 swapped in both directions: the
/// backward pass reuses U, read transposed at the permuted position.
enum Winograd {
    enum Mode: Sendable, Equatable {
        /// im2col always.
        case off
        /// Winograd where it is measured to pay (`worthIt`).
        case auto
        /// Winograd for every 3×3 stride-1 ungrouped convolution (tests).
        case always
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var storedMode: Mode = {
        switch ProcessInfo.processInfo.environment["PILOT_WINOGRAD"]?.lowercased() {
        case "0", "off", "false", "no": return .off
        case "always", "force": return .always
        default: return .auto
        }
    }()

    /// Which convolutions take this path; `PILOT_WINOGRAD=0` turns it off.
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

    /// The 16 GEMMs run side by side, one single-threaded product per
    /// worker, rather than one after another each split into panels.
    static let sideBySide: Bool = ProcessInfo.processInfo.environment["PILOT_WINOGRAD_GEMM"] != "split"

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
        case .always: return true
        case .auto: return cin >= minChannels && cout >= minChannels && tiles >= minTiles
        }
    }

    // MARK: Filter transform

    /// U [16, cout, cin] = G·g·Gᵀ for every filter of `w` [cout, cin, 3, 3].
    static func transformFilters(_ w: UnsafePointer<Float>, cout: Int, cin: Int,
                                 into u: UnsafeMutablePointer<Float>) {
        let plane = cout * cin, block = 64
        parallelFor(cout) { r in
            // 16 rows of `block` filters, then copied out row by row: 16 long
            // streams instead of 16 scattered stores per filter.
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: 16 * block)
            defer { tmp.deallocate() }
            for co in r {
                var c0 = 0
                while c0 < cin {
                    let count = Swift.min(block, cin - c0)
                    for k in 0..<count {
                        let g = w + (co * cin + c0 + k) * 9
                        // Rows: h = g·Gᵀ (3×4), then U = G·h (4×4).
                        let h00 = g[0], h03 = g[2], h01 = 0.5 * (g[0] + g[1] + g[2]), h02 = 0.5 * (g[0] - g[1] + g[2])
                        let h10 = g[3], h13 = g[5], h11 = 0.5 * (g[3] + g[4] + g[5]), h12 = 0.5 * (g[3] - g[4] + g[5])
                        let h20 = g[6], h23 = g[8], h21 = 0.5 * (g[6] + g[7] + g[8]), h22 = 0.5 * (g[6] - g[7] + g[8])
                        let t = tmp + k
                        t[0] = h00; t[block] = h01; t[2 * block] = h02; t[3 * block] = h03
                        t[4 * block] = 0.5 * (h00 + h10 + h20); t[5 * block] = 0.5 * (h01 + h11 + h21)
                        t[6 * block] = 0.5 * (h02 + h12 + h22); t[7 * block] = 0.5 * (h03 + h13 + h23)
                        t[8 * block] = 0.5 * (h00 - h10 + h20); t[9 * block] = 0.5 * (h01 - h11 + h21)
                        t[10 * block] = 0.5 * (h02 - h12 + h22); t[11 * block] = 0.5 * (h03 - h13 + h23)
                        t[12 * block] = h20; t[13 * block] = h21; t[14 * block] = h22; t[15 * block] = h23
                    }
                    for xi in 0..<16 {
                        (u + xi * plane + co * cin + c0).update(from: tmp + xi * block, count: count)
                    }
                    c0 += count
                }
            }
        }
    }

    /// Position of 180°-rotated filter's transform at ξ = 4i + j in U.
    @inline(__always)
    static func rotated(_ xi: Int) -> Int {
        let i = xi / 4, j = xi % 4
        return 4 * (i == 0 || i == 3 ? 3 - i : i) + (j == 0 || j == 3 ? 3 - j : j)
    }

    // MARK: Convolution

    /// `out [n, cout, ho, wo]` = 3×3 stride-1 correlation of `x [n, cin, h, w]`
    /// padded by (padH, padW) with filters `weight [cout, cin, 3, 3]`, or with
    /// `rotatedTransposed` the 180° rotations of `weight [cin, cout, 3, 3]`
    /// with the channel roles swapped (the input gradient of that convolution).
    static func convolve(_ x: UnsafePointer<Float>, n: Int, cin: Int, h: Int, w: Int,
                         cout: Int, ho: Int, wo: Int, padH: Int, padW: Int,
                         weight: UnsafePointer<Float>, rotatedTransposed: Bool,
                         bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let th = (ho + 1) / 2, tw = (wo + 1) / 2
        let totalRows = n * th
        let bytesPerRow = tw * 16 * (cin + cout) * MemoryLayout<Float>.size
        // Every chunk's 16 GEMMs read all of U: chunks of at least
        // `minChunkTiles` tiles (up to 64 MiB of scratch) keep that read
        // small next to the products.
        let minRows = Swift.min(Swift.max(1, (minChunkTiles + tw - 1) / tw), Swift.max(1, (64 << 20) / Swift.max(bytesPerRow, 1)))
        let maxRows = Swift.min(totalRows, Swift.max(minRows, scratchBytes / Swift.max(bytesPerRow, 1)))
        let chunks = (totalRows + maxRows - 1) / maxRows
        let rowsPerChunk = (totalRows + chunks - 1) / chunks
        let maxT = rowsPerChunk * tw
        let uCount = 16 * cin * cout
        WinogradArena.shared.with(count: uCount + 16 * (cin + cout) * maxT) { arena in
            let u = arena, v = arena + uCount, m = v + 16 * cin * maxT
            // U [16, cout, cin] (or [16, cin, cout] for the rotated filters).
            if rotatedTransposed {
                transformFilters(weight, cout: cin, cin: cout, into: u)
            } else {
                transformFilters(weight, cout: cout, cin: cin, into: u)
            }
            let geo = TileGeometry(n: n, h: h, w: w, ho: ho, wo: wo, padH: padH, padW: padW, th: th, tw: tw)
            var r0 = 0
            while r0 < totalRows {
                let r1 = Swift.min(totalRows, r0 + rowsPerChunk)
                let t = (r1 - r0) * tw
                parallelFor(cin) { cr in
                    geo.transformInput(x, channels: cr, cin: cin, rows: r0..<r1, v: v, ld: t)
                }
                let box = UnsafeSendableBox((UnsafePointer(u), UnsafePointer(v), m))
                let gemm = { (xi: Int) in
                    let (u, v, m) = box.value
                    let vx = v + xi * cin * t, mx = m + xi * cout * t
                    if rotatedTransposed {
                        serialOrSplit(transA: true, m: cout, n: t, k: cin, a: u + rotated(xi) * cin * cout, lda: cout,
                                      b: vx, ldb: t, c: mx, ldc: t)
                    } else {
                        serialOrSplit(transA: false, m: cout, n: t, k: cin, a: u + xi * cout * cin, lda: cin,
                                      b: vx, ldb: t, c: mx, ldc: t)
                    }
                }
                if sideBySide {
                    parallelFor(16) { r in for xi in r { gemm(xi) } }
                } else {
                    for xi in 0..<16 { gemm(xi) }
                }
                parallelFor(cout) { cr in
                    geo.transformOutput(m, channels: cr, cout: cout, rows: r0..<r1, ld: t, bias: bias, out: out)
                }
                r0 = r1
            }
        }
    }

    @inline(__always)
    private static func serialOrSplit(transA: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                      b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if sideBySide {
            serialSgemm(transA: transA, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        } else {
            sgemm(transA: transA, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        }
    }
}

/// One buffer for U, V and M, kept between calls: the filter transforms of
/// wide layers (105 MB at 1280 channels) are bigger than the host buffer
/// cache takes, and fresh pages cost more to fault in than the transform
/// itself. It shrinks when a call needs less than half of it, so the
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
            let own = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { own.deallocate() }
            return body(own)
        }
        busy = true
        if capacity < count || count < capacity / 2 {
            buffer?.deallocate()
            buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            capacity = count
        }
        let p = buffer!
        lock.unlock()
        defer { lock.lock(); busy = false; lock.unlock() }
        return body(p)
    }
}

/// Where the 2×2 output tiles lie: global tile row r is image r / th, tile row r % th.
struct TileGeometry {
    let n: Int, h: Int, w: Int, ho: Int, wo: Int, padH: Int, padW: Int, th: Int, tw: Int

    /// V[ξ][c][t] (row stride `ld`, ξ stride cin·ld) for the tiles of tile rows `rows`.
    func transformInput(_ x: UnsafePointer<Float>, channels: Range<Int>, cin: Int, rows: Range<Int>,
                        v: UnsafeMutablePointer<Float>, ld: Int) {
        // Each of the 4 input rows of a tile row, split into even and odd
        // columns: tile tx reads even[tx], odd[tx], even[tx + 1], odd[tx + 1].
        let span = tw + 1
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: 8 * span)
        defer { buf.deallocate() }
        // Column pairs k whose both columns 2k − padW, 2k + 1 − padW are inside.
        let kLo = Swift.min(span, (padW + 1) / 2)
        let kHi = Swift.max(kLo, Swift.min(span, (w + padW) / 2))
        let xiStride = cin * ld
        for c in channels {
            for gr in rows {
                let b = gr / th, ty = gr % th
                let plane = x + (b * cin + c) * h * w
                for i in 0..<4 {
                    let even = buf + 2 * i * span, odd = even + span
                    let iy = 2 * ty - padH + i
                    guard iy >= 0 && iy < h else {
                        even.update(repeating: 0, count: span)
                        odd.update(repeating: 0, count: span)
                        continue
                    }
                    let row = plane + iy * w - padW
                    for k in 0..<kLo { edge(row, k, even, odd) }
                    for k in kLo..<kHi {
                        even[k] = row[2 * k]
                        odd[k] = row[2 * k + 1]
                    }
                    for k in kHi..<span { edge(row, k, even, odd) }
                }
                let dst = v + c * ld + (gr - rows.lowerBound) * tw
                var tx = 0
                while tx + 8 <= tw {
                    inputTiles(SIMD8<Float>.self, buf, span, tx, dst, xiStride)
                    tx += 8
                }
                while tx < tw {
                    inputTiles(Float.self, buf, span, tx, dst, xiStride)
                    tx += 1
                }
            }
        }
    }

    /// Columns 2k, 2k + 1 of `row` (already offset by −padW), zero outside the image.
    @inline(__always)
    private func edge(_ row: UnsafePointer<Float>, _ k: Int, _ even: UnsafeMutablePointer<Float>,
                      _ odd: UnsafeMutablePointer<Float>) {
        let c0 = 2 * k - padW, c1 = c0 + 1
        even[k] = c0 >= 0 && c0 < w ? row[2 * k] : 0
        odd[k] = c1 >= 0 && c1 < w ? row[2 * k + 1] : 0
    }

    /// V = Bᵀ·d·B for `L.width` consecutive tiles from `tx`.
    @inline(__always)
    private func inputTiles<L: WinogradLane>(_: L.Type, _ buf: UnsafePointer<Float>, _ span: Int, _ tx: Int,
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
    func transformOutput(_ m: UnsafePointer<Float>, channels: Range<Int>, cout: Int, rows: Range<Int>, ld: Int,
                         bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let y = UnsafeMutablePointer<Float>.allocate(capacity: 4 * tw)
        defer { y.deallocate() }
        let xiStride = cout * ld
        let pairs = wo / 2, oddTail = wo % 2 == 1
        for c in channels {
            let bv = bias?[c] ?? 0
            for gr in rows {
                let b = gr / th, ty = gr % th
                let src = m + c * ld + (gr - rows.lowerBound) * tw
                var tx = 0
                while tx + 8 <= tw {
                    outputTiles(SIMD8<Float>.self, src, tx, xiStride, y)
                    tx += 8
                }
                while tx < tw {
                    outputTiles(Float.self, src, tx, xiStride, y)
                    tx += 1
                }
                let plane = out + (b * cout + c) * ho * wo
                for i in 0..<2 {
                    let oy = 2 * ty + i
                    guard oy < ho else { break }
                    let dst = plane + oy * wo
                    let left = y + 2 * i * tw, right = left + tw
                    for k in 0..<pairs {
                        dst[2 * k] = left[k] + bv
                        dst[2 * k + 1] = right[k] + bv
                    }
                    if oddTail { dst[2 * pairs] = left[pairs] + bv }
                }
            }
        }
    }

    /// The 2×2 outputs of `L.width` consecutive tiles from `tx` into
    /// y[0·tw + tx] (top left), y[1·tw] (top right), y[2·tw], y[3·tw].
    @inline(__always)
    private func outputTiles<L: WinogradLane>(_: L.Type, _ src: UnsafePointer<Float>, _ tx: Int, _ xiStride: Int,
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
}

/// A scalar or a SIMD vector of floats, so one transform serves both the
/// vector loop and its tail.
protocol WinogradLane {
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
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
