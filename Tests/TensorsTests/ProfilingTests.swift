import XCTest
@testable import Tensors

/// `ProfilingBackend` and `OpProfile`: results unchanged, calls counted per kernel and operands.
final class ProfilingTests: XCTestCase {
    override func tearDown() {
        Backends.profile(into: nil)
        super.tearDown()
    }

    func testProfiledKernelsGiveTheSameResultsAndAreCountedByShape() {
        let x = detTensor([1, 4, 8, 8], seed: 1), w = detTensor([6, 4, 3, 3], seed: 2, scale: 0.3)
        let plain = conv2d(x, weight: w, padding: 1).silu()
        let profile = OpProfile()
        Backends.profile(into: profile)
        let profiled = conv2d(x, weight: w, padding: 1).silu()
        _ = conv2d(x, weight: w, padding: 1)
        Backends.profile(into: nil)
        _ = conv2d(x, weight: w, padding: 1)   // after profiling stopped: not counted
        XCTAssertEqual(profiled.scalars, plain.scalars, "expected profiling not to change results")
        let rows = profile.snapshot
        let conv = rows.first { $0.kernel == "conv2d" }
        XCTAssertEqual(conv?.calls, 2, "expected the two profiled convolutions in one row, got \(rows)")
        XCTAssertEqual(conv?.detail, "3×3 s1 4→6 at 1×8×8", "expected the row keyed by the conv's geometry")
        XCTAssertEqual(rows.first { $0.kernel == "unary.silu" }?.calls, 1)
        XCTAssertEqual(profile.byKernel.map(\.calls).reduce(0, +), 3, "expected 3 kernel calls in all")
        let table = profile.table(top: 5)
        XCTAssertTrue(table.contains("| conv2d | 2 |"), "expected a per-kernel row in:\n\(table)")
        profile.reset()
        XCTAssertTrue(profile.snapshot.isEmpty)
    }
}
