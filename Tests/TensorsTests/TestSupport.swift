import Foundation
import Tensors
import XCTest

/// Max |a − e| divided by max |e| (the reference's scale), the error measure
/// the fixture tolerances are stated in.
func relativeError(_ actual: [Float], _ expected: [Float]) -> Float {
    precondition(actual.count == expected.count)
    var maxDiff: Float = 0, scale: Float = 0
    for (a, e) in zip(actual, expected) {
        maxDiff = max(maxDiff, abs(a - e))
        scale = max(scale, abs(e))
    }
    return maxDiff / max(scale, 1e-30)
}

func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(what): expected shape \(expected.shape), got \(actual.shape)",
                   file: file, line: line)
    guard actual.shape == expected.shape else { return }
    assertClose(actual.scalars, expected.scalars, tolerance: tolerance, what, file: file, line: line)
}

func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): expected \(expected.count) values", file: file, line: line)
    guard actual.count == expected.count else { return }
    let err = relativeError(actual, expected)
    XCTAssertLessThanOrEqual(err, tolerance,
        "\(what): expected max relative error ≤ \(tolerance), got \(err) (first values \(Array(actual.prefix(4))) vs \(Array(expected.prefix(4))))",
        file: file, line: line)
}

/// Deterministic test input: splitmix64-v1 values in [−scale, scale) + offset.
func detTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
    var g = SplitMix64(seed: seed)
    return Tensor(shape: shape, values: g.fixtureValues(shape.reduce(1, *), scale: scale, offset: offset))
}

/// Checks reverse-mode gradients of `f` against central finite differences.
///
/// The scalar checked is `L = Σ f(x)·r` for a fixed random `r`, summed in
/// Double. For each input we compare (a) the directional derivative along a
/// random dense direction v, `(L(x+εv) − L(x−εv)) / 2ε`, with `⟨∇L, v⟩`,
/// and (b) the partial derivatives at a few single elements. The bound is
/// |numeric − analytic| ≤ tolerance·(|analytic| + scale) with `scale` the
/// largest gradient magnitude (single elements) or mean |∇L|·√n
/// (directions, the typical size of ⟨∇L, v⟩). With ε = 1e-2 on O(1)
/// inputs, truncation error is O(ε²·f‴) ≈ 1e-5 and the Float32 rounding of
/// f(x) contributes ≈ 6e-8·√n·max|f|/ε ≪ 1e-4, so the default 2e-3 leaves
/// headroom while a gradient off by 1% fails.
func checkGradients(_ inputs: [Tensor], _ what: String, epsilon: Float = 1e-2, tolerance: Float = 2e-3,
                    elements: Int = 6, file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) -> Tensor) {
    let probe = f(inputs)
    let r = detTensor(probe.shape, seed: 0xF00D)
    let rs = r.scalars
    func loss(_ xs: [Tensor]) -> Double {
        zip(f(xs).scalars, rs).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    let tape = Tape()
    let watched = inputs.map { tape.watch($0) }
    let l = (f(watched) * r).sum()
    guard let grads = try? tape.gradient(of: l, wrt: watched) else {
        XCTFail("\(what): gradient computation threw", file: file, line: line)
        return
    }
    for (i, x) in inputs.enumerated() {
        let g = grads[i].scalars
        let gScale = g.map(abs).max() ?? 0
        // (a) directional derivative
        let v = detTensor(x.shape, seed: 0xD1 &+ UInt64(i))
        var plus = inputs, minus = inputs
        plus[i] = x + v * epsilon
        minus[i] = x - v * epsilon
        let numeric = Float((loss(plus) - loss(minus)) / (2 * Double(epsilon)))
        let vs = v.scalars
        var analytic: Float = 0, l1: Float = 0
        for k in 0..<g.count { analytic += g[k] * vs[k]; l1 += abs(g[k]) }
        let dirScale = l1 / Float(g.count) * Float(g.count).squareRoot()
        XCTAssertLessThanOrEqual(abs(numeric - analytic), tolerance * (abs(analytic) + dirScale) + 1e-5,
            "\(what): input \(i) directional derivative: finite difference \(numeric) vs autograd \(analytic)",
            file: file, line: line)
        // (b) single elements
        var gen = SplitMix64(seed: 0xE1E &+ UInt64(i))
        for _ in 0..<min(elements, x.count) {
            let j = Int(gen.nextUInt64() % UInt64(x.count))
            var xp = x.scalars, xm = x.scalars
            xp[j] += epsilon
            xm[j] -= epsilon
            var p = inputs, m = inputs
            p[i] = Tensor(shape: x.shape, values: xp)
            m[i] = Tensor(shape: x.shape, values: xm)
            let num = Float((loss(p) - loss(m)) / (2 * Double(epsilon)))
            XCTAssertLessThanOrEqual(abs(num - g[j]), tolerance * (abs(g[j]) + gScale) + 1e-5,
                "\(what): input \(i) element \(j): finite difference \(num) vs autograd \(g[j])",
                file: file, line: line)
        }
    }
}
