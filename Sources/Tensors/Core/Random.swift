import Foundation

/// A source of random bits. Seeds reproduce results on this project's own
/// generators; fixtures that must match PyTorch pass their noise in instead.
public protocol RandomSource {
    mutating func nextUInt64() -> UInt64
}

extension RandomSource {
    /// Uniform in [0, 1) with 24 random bits (exact in Float32).
    public mutating func nextUniform() -> Float {
        Float(nextUInt64() >> 40) * 0x1p-24
    }

    /// Standard normal samples (Box–Muller, both outputs used).
    public mutating func normals(_ n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            // 53-bit uniforms in (0, 1] for the log, computed in Double.
            let u1 = (Double(nextUInt64() >> 11) + 1) * 0x1p-53
            let u2 = Double(nextUInt64() >> 11) * 0x1p-53
            let r = (-2 * Foundation.log(u1)).squareRoot()
            out[i] = Float(r * cos(2 * Double.pi * u2))
            if i + 1 < n { out[i + 1] = Float(r * sin(2 * Double.pi * u2)) }
            i += 2
        }
        return out
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and trivially
/// reproducible in any language. `Tests/Reference/detrand.py` implements the
/// same sequence, so test inputs are regenerated instead of stored.
public struct SplitMix64: RandomSource, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The fixture generator "splitmix64-v1": element i is
    /// `(Float(k) * 2^-23 - 1) * scale + offset` with `k = next() >> 40`,
    /// evaluated in Float32.
    public mutating func fixtureValues(_ n: Int, scale: Float = 1, offset: Float = 0) -> [Float] {
        (0..<n).map { _ in
            let u = Float(nextUInt64() >> 40) * 0x1p-23 - 1
            return u * scale + offset
        }
    }
}
