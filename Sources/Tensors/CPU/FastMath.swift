/// Vectorisable transcendental approximations for the hot loops.
enum FastMath {
    /// `eˣ` to ~2 ulp over the float range: Cody–Waite reduction by ln 2 and a
    /// degree-6 Taylor polynomial on |r| ≤ ln2/2; saturates outside
    /// [-87.3, 88.7]. Written lane-wise so LLVM vectorises loops over it.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let xc = Swift.min(Swift.max(x, -87.33), 88.72)
        let n = (xc * 1.442_695_04).rounded(.toNearestOrEven)
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
}
