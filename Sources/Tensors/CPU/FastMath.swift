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
        let n = magic.addingProduct(xc, 1.442_695_04) - magic
        // Fused multiply-adds (one rounding each; vfmadd on the hot targets' CPU).
        let r = xc.addingProduct(n, -0.693_359_375).addingProduct(n, 2.121_944_4e-4)
        var p: Float = 1.0 / 720
        p = (1.0 / 120 as Float).addingProduct(p, r)
        p = (1.0 / 24 as Float).addingProduct(p, r)
        p = (1.0 / 6 as Float).addingProduct(p, r)
        p = (0.5 as Float).addingProduct(p, r)
        p = (1 as Float).addingProduct(p, r)
        p = (1 as Float).addingProduct(p, r)
        let bits = UInt32(bitPattern: Int32(n) &+ 127) << 23
        return p * Float(bitPattern: bits)
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    // Φ of the standard normal, for GELU: Φ(x) = ½·erfc(−x/√2). erfc(a) for
    // a ≥ 0 is t·e^(−a² + P(t)), t = 1/(1 + a/2), with the degree-9
    // Chebyshev-fitted P of Numerical Recipes' `erfcc` (fractional error
    // below 1.2·10⁻⁷ for every a, so far tails keep their relative accuracy).
    // Φ(x) is ½·erfc(|x|/√2) for x < 0 and 1 − ½·erfc(x/√2) otherwise.

    /// Φ(x).
    @inline(__always)
    static func normalCDF(_ x: Float) -> Float {
        let a = Swift.abs(x * 0.707_106_77)
        let t = 1 / (1 + 0.5 * a)
        var p: Float = 0.170_872_77 * t - 0.822_152_23
        p = p * t + 1.488_515_87
        p = p * t - 1.135_203_98
        p = p * t + 0.278_868_07
        p = p * t - 0.186_288_06
        p = p * t + 0.096_784_18
        p = p * t + 0.374_091_96
        p = p * t + 1.000_023_68
        p = p * t - 1.265_512_23
        let half = 0.5 * t * exp(p - a * a)
        return x < 0 ? half : 1 - half
    }

    /// GELU, x·Φ(x).
    @inline(__always)
    static func gelu(_ x: Float) -> Float { x * normalCDF(x) }

    /// d GELU / dx = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
    @inline(__always)
    static func geluSlope(_ x: Float) -> Float { normalCDF(x) + x * (0.398_942_28 * exp(-0.5 * x * x)) }

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

    /// out = exp(x − shift) elementwise; returns Σ out. `out` may alias `x`.
    /// Two passes, so that the exponential's loop (a pure map) vectorises; a
    /// loop that also accumulated the sum would be an ordered float
    /// reduction, which LLVM runs one lane at a time. The row is still in
    /// cache for the second pass.
    @inline(__always)
    static func expShiftSum(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int,
                            shift: Float) -> Float {
        for k in 0..<n { out[k] = exp(x[k] - shift) }
        return sum(out, n)
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
}
