import Foundation

// Bit-exact reproductions of PyTorch's `torch.randn` noise, so a seed gives
// the same initial latents here as in diffusers, ComfyUI or AUTOMATIC1111.
//
// `TorchCPUGenerator`         torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
// `TorchCUDAPhiloxGenerator`  AUTOMATIC1111's "NV" source (`modules/rng_philox.py`):
//                             its CPU imitation of torch.randn on a CUDA device.
//
// Fixtures: Tests/Reference/make_torch_noise_fixtures.py →
// Tests/Fixtures/noise/torch_randn.json, checked by TorchNoiseTests.

// MARK: - CPU (mt19937)

/// `torch.randn` on the CPU, float32, bit for bit:
///
///     g = torch.Generator("cpu").manual_seed(seed)
///     torch.randn(shape, generator=g)            # == TorchCPUGenerator(seed: seed).randn(shape)
///
/// Successive calls continue the stream exactly as successive `torch.randn`
/// calls on one generator do (including the Box–Muller value torch caches
/// between calls with fewer than 16 elements).
///
/// What torch does (ATen `normal_kernel`, CPU, torch 2.13):
/// - `manual_seed(s)` seeds a standard MT19937 with `s & 0xFFFFFFFF` (Python's
///   negative seeds are taken modulo 2^64 first, so pass
///   `UInt64(bitPattern: Int64(seed))`). Seeds 5 and 2^32 + 5 give the same noise.
/// - numel ≥ 16 (`normal_fill`): every element first gets a uniform
///   `Float(next32() & 0xFFFFFF) * 2^-24`; then each block of 16 is a Box–Muller
///   of 8 pairs: `u1 = 1 - d[j]`, `u2 = d[j + 8]`, `r = sqrt(-2 log u1)`,
///   `θ = 2π u2`, `d[j] = r cos θ`, `d[j + 8] = r sin θ`. When numel is not a
///   multiple of 16 the last 16 elements are redone from 16 fresh uniforms.
/// - numel < 16: one double-precision Box–Muller per two elements from 53-bit
///   uniforms (`log1p`, `sin`, `cos` in Double), the sine cached for the next
///   element, then rounded to Float.
///
/// The Box–Muller block depends on the CPU kernel torch dispatches to, hence
/// `Kernel`:
/// - `.avx2` (default): torch's AVX2 kernel, used on every x86-64 CPU with
///   AVX2 (Intel since 2013, AMD since 2015), AVX-512 CPUs included: torch
///   2.13 compiles this kernel only for DEFAULT and AVX2, and its AVX512
///   dispatch falls back to AVX2 (checked on an AVX-512 machine: identical
///   output with `ATEN_CPU_CAPABILITY=avx2`). It computes log and sincos with
///   Cephes polynomials in float32 (`avx_mathfun.h`, Pommier/Garberoglio), and
///   GCC contracted several of its multiply–adds into FMAs in the shipped
///   binary. Those are reproduced operation by operation below (read off the
///   disassembly of `NormalFill16<float, true>` in libtorch_cpu.so 2.13.0);
///   without the FMAs about 1% of elements differ by 1–2 ulp. The arithmetic
///   is plain Swift, so this kernel gives the same bits on any machine.
/// - `.scalar`: torch's generic kernel (`ATEN_CPU_CAPABILITY=default`, CPUs
///   without AVX2, and non-x86 builds such as aarch64): float32 `logf`, `cosf`,
///   `sinf` from the C library, with `θ = Float(2π_double * Double(u2))`. It
///   calls the platform's libm, so it matches torch on the same platform;
///   verified against glibc (Linux x86-64) only.
///
/// Other torch versions: the same structure goes back to torch 1.x, but the
/// FMA contraction in `.avx2` depends on the compiler that built the wheel;
/// only 2.13.0+cpu (Linux x86-64 wheel) has been checked.
public struct TorchCPUGenerator: Sendable {
    /// Which of torch's CPU Box–Muller kernels to reproduce (see the type's documentation).
    public enum Kernel: String, Sendable, CaseIterable {
        /// `NormalFill16<float>` AVX2 specialisation: Cephes log/sincos with torch 2.13's FMAs.
        case avx2
        /// The generic kernel: the C library's `logf`, `cosf`, `sinf`.
        case scalar
    }

    public let kernel: Kernel
    private var engine: MT19937
    /// torch's `next_double_normal_sample`: the sine half of the last
    /// double-precision Box–Muller (small tensors only).
    private var cachedNormal: Double?

    /// `torch.Generator("cpu").manual_seed(seed)`; only the low 32 bits matter.
    public init(seed: UInt64, kernel: Kernel = .avx2) {
        self.kernel = kernel
        engine = MT19937(seed: UInt32(truncatingIfNeeded: seed))
        cachedNormal = nil
    }

    /// `torch.randn(shape, generator=g)` as a flat row-major array.
    public mutating func randn(_ shape: [Int]) -> [Float] {
        randn(count: shape.reduce(1, *))
    }

    /// `torch.randn(shape, generator=g)` as a tensor.
    public mutating func randnTensor(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: randn(shape))
    }

    /// `torch.randn(count, generator=g)`.
    public mutating func randn(count: Int) -> [Float] {
        precondition(count >= 0, "randn: negative element count \(count)")
        if count == 0 { return [] }
        if count < 16 { return smallRandn(count) }
        var data = [Float](repeating: 0, count: count)
        let kernel = self.kernel
        data.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            engine.fillUniform24(p, count)
            var i = 0
            while i + 16 <= count {
                Self.boxMuller16(p + i, kernel)
                i += 16
            }
            if count % 16 != 0 {
                // torch redraws the last 16 (overlapping the last full block).
                engine.fillUniform24(p + count - 16, 16)
                Self.boxMuller16(p + count - 16, kernel)
            }
        }
        return data
    }

    /// The next raw 32-bit output of the Mersenne Twister (torch's `random()`).
    public mutating func nextUInt32() -> UInt32 { engine.next() }

    // The numel < 16 path: at::normal_distribution<double> per element.
    private mutating func smallRandn(_ count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for k in 0..<count {
            if let cached = cachedNormal {
                cachedNormal = nil
                out[k] = Float(cached * 1 + 0)
                continue
            }
            let u1 = uniform53(), u2 = uniform53()
            let r = (-2 * Foundation.log1p(-u2)).squareRoot()
            let theta = 2 * Double.pi * u1
            cachedNormal = r * Foundation.sin(theta)
            // `val * std + mean` with std 1, mean 0 (turns −0 into +0, as torch does).
            out[k] = Float(r * Foundation.cos(theta) * 1 + 0)
        }
        return out
    }

    /// torch's `random64()` (two outputs, first one high) masked to 53 bits.
    private mutating func uniform53() -> Double {
        let hi = UInt64(engine.next()), lo = UInt64(engine.next())
        return Double((hi << 32 | lo) & (1 << 53 - 1)) * 0x1p-53
    }

    @inline(__always)
    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>, _ kernel: Kernel) {
        switch kernel {
        case .avx2:
            for j in 0..<8 {
                let radius = (-2 * cephesLog(1 - d[j])).squareRoot()
                let (s, c) = cephesSinCos(Float(2 * Double.pi) * d[j + 8])
                // torch stores fma(n, std, mean) = n * 1 + 0: only −0 changes (to +0).
                d[j] = radius * c + 0
                d[j + 8] = radius * s + 0
            }
        case .scalar:
            for j in 0..<8 {
                let radius = (-2 * logf(1 - d[j])).squareRoot()
                let theta = Float(2 * Double.pi * Double(d[j + 8]))
                d[j] = radius * cosf(theta) + 0
                d[j + 8] = radius * sinf(theta) + 0
            }
        }
    }

    // Cephes logf as in avx_mathfun.h's log256_ps, with the FMAs of torch
    // 2.13's AVX2 build. `a.addingProduct(b, c)` is the fused a + b·c.
    @inline(__always)
    static func cephesLog(_ input: Float) -> Float {
        var x = Swift.max(input, Float.leastNormalMagnitude)
        let bits = x.bitPattern
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        x = Float(bitPattern: (bits & ~0x7F80_0000) | 0x3F00_0000)  // mantissa in [0.5, 1)
        let below = x < Float(0.707106781186547524)                   // √½
        let tmp: Float = below ? x : 0
        x = x - 1
        e = e - (below ? 1 : 0)
        x = x + tmp
        let z = x * x
        var y: Float = 7.0376836292E-2
        y = Float(-1.1514610310E-1).addingProduct(y, x)
        y = Float(1.1676998740E-1).addingProduct(y, x)
        y = Float(-1.2420140846E-1).addingProduct(y, x)
        y = Float(1.4249322787E-1).addingProduct(y, x)
        y = Float(-1.6668057665E-1).addingProduct(y, x)
        y = Float(2.0000714765E-1).addingProduct(y, x)
        y = Float(-2.4999993993E-1).addingProduct(y, x)
        y = Float(3.3333331174E-1).addingProduct(y, x)
        y = y * x
        y = (e * Float(-2.12194440e-4)).addingProduct(y, z)
        y = y.addingProduct(-z, 0.5)
        x = x + y
        x = x.addingProduct(e, 0.693359375)
        // log256_ps returns NaN for x ≤ 0; u1 = 1 − u is always in [2^-24, 1].
        return input > 0 ? x : .nan
    }

    // Cephes sincosf as in avx_mathfun.h's sincos256_ps, with torch 2.13's FMAs.
    // Valid for the |x| < 8192 the routine is written for; θ is in [0, 2π).
    @inline(__always)
    static func cephesSinCos(_ input: Float) -> (sin: Float, cos: Float) {
        var x = Swift.abs(input)
        var j = Int32(x * Float(1.27323954473516))       // 4/π, truncated
        j = (j &+ 1) & ~1
        let q = Float(j)
        let sinSign = (input.bitPattern & 0x8000_0000) ^ (UInt32(bitPattern: j & 4) << 29)
        let cosSign = UInt32(bitPattern: ~(j &- 2) & 4) << 29
        let sinUsesSinPoly = (j & 2) == 0
        // Extended-precision reduction x − q·π/4, each step fused.
        x = x.addingProduct(q, -0.78515625)
        x = x.addingProduct(q, -2.4187564849853515625e-4)
        x = x.addingProduct(q, -3.77489497744594108e-8)
        let z = x * x
        var c = Float(-1.388731625493765E-003).addingProduct(2.443315711809948E-005, z)
        c = Float(4.166664568298827E-002).addingProduct(c, z)
        c = z * c
        c = (-(z * 0.5)).addingProduct(z, c)
        c = c + 1
        var s = Float(8.3321608736E-3).addingProduct(-1.9515295891E-4, z)
        s = Float(-1.6666654611E-1).addingProduct(s, z)
        s = z * s
        s = x.addingProduct(x, s)
        // The vector code selects with masks and adds a zero: 0 + v keeps v, −0 becomes +0.
        let sinValue = sinUsesSinPoly ? s + 0 : c + 0
        let cosValue = sinUsesSinPoly ? c + 0 : s + 0
        return (Float(bitPattern: sinValue.bitPattern ^ sinSign),
                Float(bitPattern: cosValue.bitPattern ^ cosSign))
    }
}

/// MT19937 (Matsumoto–Nishimura), 32-bit outputs, as `at::mt19937`.
struct MT19937: Sendable {
    private static let n = 624, m = 397
    private var state: [UInt32]
    private var index: Int

    init(seed: UInt32) {
        var s = [UInt32](repeating: 0, count: Self.n)
        s[0] = seed
        for i in 1..<Self.n {
            s[i] = 1_812_433_253 &* (s[i - 1] ^ (s[i - 1] >> 30)) &+ UInt32(i)
        }
        state = s
        index = Self.n
    }

    @inline(__always)
    private static func temper(_ value: UInt32) -> UInt32 {
        var y = value
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        state.withUnsafeMutableBufferPointer { s in
            @inline(__always) func mix(_ i: Int, _ next: Int, _ far: Int) {
                let y = (s[i] & 0x8000_0000) | (s[next] & 0x7FFF_FFFF)
                s[i] = s[far] ^ (y >> 1) ^ ((y & 1) &* 0x9908_B0DF)
            }
            for i in 0..<(Self.n - Self.m) { mix(i, i + 1, i + Self.m) }
            for i in (Self.n - Self.m)..<(Self.n - 1) { mix(i, i + 1, i + Self.m - Self.n) }
            mix(Self.n - 1, 0, Self.m - 1)
        }
        index = 0
    }

    mutating func next() -> UInt32 {
        if index >= Self.n { twist() }
        let y = state[index]
        index += 1
        return Self.temper(y)
    }

    /// `count` uniforms `Float(next() & 0xFFFFFF) * 2^-24` (torch's float `uniform_real`).
    mutating func fillUniform24(_ out: UnsafeMutablePointer<Float>, _ count: Int) {
        var done = 0
        while done < count {
            if index >= Self.n { twist() }
            let take = Swift.min(count - done, Self.n - index)
            let start = index
            state.withUnsafeBufferPointer { s in
                for k in 0..<take {
                    out[done + k] = Float(Self.temper(s[start + k]) & 0xFF_FFFF) * 0x1p-24
                }
            }
            index += take
            done += take
        }
    }
}

// MARK: - CUDA (Philox4x32-10), unverified on a GPU

/// `torch.randn` on a CUDA device as AUTOMATIC1111 imitates it on the CPU
/// (the "NV" random number source, `modules/rng_philox.py`; stable-diffusion.cpp's
/// `PhiloxRNG` ports the same algorithm, with float32 instead of float64 math):
///
/// - element `i` of the `k`-th `randn` call (k = 0, 1, …) runs Philox4x32 with
///   10 rounds on the counter `(k, 0, i, 0)` with the key
///   `(seed & 0xFFFFFFFF, seed >> 32)`; the key is bumped by
///   (0x9E3779B9, 0xBB67AE85) between rounds;
/// - the first two output words `x`, `y` give
///   `u = x·2^-32 + 2^-33`, `v = y·c + c/2` with `c = Float(2π·2^-32)`,
///   and the element is `Float(sqrt(-2 ln u) · sin v)`, evaluated in Double as
///   numpy does there.
///
/// Matches A1111's numpy code bit for bit (checked against an independent
/// numpy implementation, `make_torch_noise_fixtures.py`, and against A1111's
/// own code for seed 0). It is not expected to be bit-exact to a real GPU
/// (unverified: nothing here has run on one):
/// - torch's CUDA kernel (`curand_normal4`) does the Box–Muller in float32
///   with the fast `__sincosf`; the values A1111's docstring lists for seed 0
///   (presumably printed on a GPU) differ from A1111's own code by up to 6 ulp.
/// - torch gives element `i` its own Philox counter only while the tensor has
///   at most as many elements as the GPU has resident threads
///   (multiprocessors × max threads per multiprocessor: 270,336 on an H100,
///   125,952 on an RTX 3090, 43,008 on an RTX 3060). Beyond that one thread
///   serves up to 4 elements from the other output words, and the per-call
///   offset grows by more than 1, so this imitation (A1111's too) diverges
///   completely for such tensors and for every call after one.
///
/// `Tests/Reference/make_torch_noise_fixtures.py` records real CUDA output when
/// run on a machine with a GPU.
public struct TorchCUDAPhiloxGenerator: Sendable {
    public let seed: UInt64
    /// Number of `randn` calls so far: the counter's first word.
    public private(set) var offset: UInt32

    public init(seed: UInt64) {
        self.seed = seed
        offset = 0
    }

    /// One `randn` call: a flat row-major array of `shape`'s element count.
    public mutating func randn(_ shape: [Int]) -> [Float] {
        randn(count: shape.reduce(1, *))
    }

    public mutating func randnTensor(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: randn(shape))
    }

    /// One `randn` call of `count` elements (the counter's element word is
    /// 32 bits, as in A1111: at most 2^32 elements per call).
    public mutating func randn(count: Int) -> [Float] {
        precondition(count >= 0 && UInt64(count) <= 1 << 32, "randn: element count \(count) out of range")
        let k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        let call = offset
        offset &+= 1
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<count {
                let (x, y) = Self.philox(call, UInt32(truncatingIfNeeded: i), k0, k1)
                o[i] = Self.boxMuller(x, y)
            }
        }
        return out
    }

    /// Words 0 and 1 of Philox4x32-10 on counter (c0, 0, c2, 0), key (k0, k1).
    @inline(__always)
    static func philox(_ c0: UInt32, _ c2: UInt32, _ k0: UInt32, _ k1: UInt32) -> (UInt32, UInt32) {
        var a = c0, b: UInt32 = 0, c = c2, d: UInt32 = 0
        var key0 = k0, key1 = k1
        for _ in 0..<10 {
            let p0 = UInt64(a) &* 0xD251_1F53
            let p1 = UInt64(c) &* 0xCD9E_8D57
            let na = UInt32(truncatingIfNeeded: p1 >> 32) ^ b ^ key0
            let nc = UInt32(truncatingIfNeeded: p0 >> 32) ^ d ^ key1
            b = UInt32(truncatingIfNeeded: p1)
            d = UInt32(truncatingIfNeeded: p0)
            a = na
            c = nc
            key0 &+= 0x9E37_79B9
            key1 &+= 0xBB67_AE85
        }
        return (a, b)
    }

    /// A1111's constants are float32 arrays, the arithmetic float64.
    private static let inv32 = Double(Float(2.3283064e-10))
    private static let inv32Half = Double(Float(2.3283064e-10) / 2)
    private static let inv32TwoPi = Double(Float(Double(2.3283064e-10) * Double(6.2831855)))
    private static let inv32TwoPiHalf = Double(Float(Double(2.3283064e-10) * Double(6.2831855)) / 2)

    @inline(__always)
    static func boxMuller(_ x: UInt32, _ y: UInt32) -> Float {
        let u = Double(x) * inv32 + inv32Half
        let v = Double(y) * inv32TwoPi + inv32TwoPiHalf
        let s = (-2 * Foundation.log(u)).squareRoot()
        return Float(s * Foundation.sin(v))
    }
}
