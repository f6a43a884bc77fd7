/// Vectorisable transcendental approximations and SIMD reductions for the
/// hot loops.
enum FastMath {
    /// `eˣ` to ~2 ulp over the float range: Cody–Waite reduction by ln 2 and a
    /// degree-6 Taylor polynomial on |r| ≤ ln2/2; saturates outside
    /// [-87.3, 88.7]. Rounds with the 1.5·2²³ trick instead of `rint`, so
    /// loops over it vectorise even without SSE4.1.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let xc = Swift.min(Swift.max(x, -87.33), 88.37)      // keeps 2ⁿ finite (n ≤ 127)
        let magic: Float = 12_582_912                      // 1.5·2²³
        let n = (xc * 1.442_695_04 + magic) - magic
        let r = (xc - n * 0.693_359_375) - n * -2.121_944_4e-4
        var p: Float = 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let bits = UInt32(bitPattern: Int32(n) &+ 127) << 23
        return p * Float(bitPattern: bits)
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// `exp` on 16 lanes, the same algorithm as the scalar version. 2ⁿ is
    /// built from the rounding sum's bits (t = 1.5·2²³ + n holds n in its
    /// mantissa), avoiding SIMD int/float conversions, which do not specialise.
    @inline(__always)
    static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias U = SIMD16<UInt32>
        var xc = x
        xc.replace(with: -87.33, where: xc .< -87.33)
        xc.replace(with: 88.37, where: xc .> 88.37)
        let magic: Float = 12_582_912
        let t = xc * 1.442_695_04 + magic
        let n = t - magic
        let r = (xc - n * 0.693_359_375) - n * -2.121_944_4e-4
        var p = V(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let nBits = unsafeBitCast(t, to: U.self) &- U(repeating: magic.bitPattern)
        return p * unsafeBitCast((nBits &+ 127) &<< 23, to: V.self)
    }

    typealias V = SIMD16<Float>

    /// Largest of `n` floats.
    @inline(__always)
    static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var k = 0
        var m = -Float.infinity
        if n >= 16 {
            var acc = V(repeating: -.infinity)
            let raw = UnsafeRawPointer(p)
            while k + 16 <= n {
                let v = raw.loadUnaligned(fromByteOffset: k * 4, as: V.self)
                acc.replace(with: v, where: v .> acc)
                k += 16
            }
            for i in 0..<16 { m = Swift.max(m, acc[i]) }
        }
        while k < n { m = Swift.max(m, p[k]); k += 1 }
        return m
    }

    /// Σ of `n` floats with 16 independent partial sums.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var k = 0
        var acc = V()
        let raw = UnsafeRawPointer(p)
        while k + 16 <= n {
            acc += raw.loadUnaligned(fromByteOffset: k * 4, as: V.self)
            k += 16
        }
        var s = acc.sum()
        while k < n { s += p[k]; k += 1 }
        return s
    }

    /// Σ aᵢ·bᵢ with 16 partial sums.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var k = 0
        var acc = V()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while k + 16 <= n {
            acc += ra.loadUnaligned(fromByteOffset: k * 4, as: V.self) * rb.loadUnaligned(fromByteOffset: k * 4, as: V.self)
            k += 16
        }
        var s = acc.sum()
        while k < n { s += a[k] * b[k]; k += 1 }
        return s
    }

    /// Σ aᵢ·bᵢ·cᵢ with 16 partial sums.
    @inline(__always)
    static func dot3(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ n: Int) -> Float {
        var k = 0
        var acc = V()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), rc = UnsafeRawPointer(c)
        while k + 16 <= n {
            let off = k * 4
            acc += ra.loadUnaligned(fromByteOffset: off, as: V.self) * rb.loadUnaligned(fromByteOffset: off, as: V.self)
                * rc.loadUnaligned(fromByteOffset: off, as: V.self)
            k += 16
        }
        var s = acc.sum()
        while k < n { s += a[k] * b[k] * c[k]; k += 1 }
        return s
    }

    /// Σ (xᵢ − c)² with 16 partial sums.
    @inline(__always)
    static func squaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, from c: Float) -> Float {
        var k = 0
        var acc = V()
        let raw = UnsafeRawPointer(p)
        let cv = V(repeating: c)
        while k + 16 <= n {
            let d = raw.loadUnaligned(fromByteOffset: k * 4, as: V.self) - cv
            acc += d * d
            k += 16
        }
        var s = acc.sum()
        while k < n { let d = p[k] - c; s += d * d; k += 1 }
        return s
    }

    /// out = exp(x·scale − shift) elementwise; returns Σ out. `out` may alias `x`.
    @inline(__always)
    static func expShiftSum(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int,
                            scale: Float = 1, shift: Float) -> Float {
        var k = 0
        var acc = V()
        let src = UnsafeRawPointer(x), dst = UnsafeMutableRawPointer(out)
        let sv = V(repeating: shift)
        while k + 16 <= n {
            let e = exp(src.loadUnaligned(fromByteOffset: k * 4, as: V.self) * scale - sv)
            dst.storeBytes(of: e, toByteOffset: k * 4, as: V.self)
            acc += e
            k += 16
        }
        var s = acc.sum()
        while k < n {
            let e = exp(x[k] * scale - shift)
            out[k] = e
            s += e
            k += 1
        }
        return s
    }

    /// out = x·c elementwise (`out` may alias `x`).
    @inline(__always)
    static func scale(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) {
        var k = 0
        let src = UnsafeRawPointer(x), dst = UnsafeMutableRawPointer(out)
        while k + 16 <= n {
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: k * 4, as: V.self) * c, toByteOffset: k * 4, as: V.self)
            k += 16
        }
        while k < n { out[k] = x[k] * c; k += 1 }
    }

    /// Applies `f` to 16 lanes at a time (`out` may alias `x`); the scalar
    /// tail uses `g`, which must compute the same function.
    @inline(__always)
    static func map(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int,
                    _ f: (V) -> V, _ g: (Float) -> Float) {
        var k = 0
        let src = UnsafeRawPointer(x), dst = UnsafeMutableRawPointer(out)
        while k + 16 <= n {
            dst.storeBytes(of: f(src.loadUnaligned(fromByteOffset: k * 4, as: V.self)), toByteOffset: k * 4, as: V.self)
            k += 16
        }
        while k < n { out[k] = g(x[k]); k += 1 }
    }
}
