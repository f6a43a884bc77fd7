import Tensors
import XCTest

final class TapeTests: XCTestCase {
    func testGradientOfSharedSubexpressionAccumulates() throws {
        let tape = Tape()
        let x = tape.watch(Tensor(shape: [2], values: [3, -1]))
        let y = (x * x + x * 2).sum()            // dy/dx = 2x + 2
        let g = try tape.gradient(of: y, wrt: [x])[0]
        XCTAssertEqual(g.scalars, [8, 0], "expected 2x + 2 at x = [3, -1]")
    }

    func testUnrelatedInputGetsZeroGradient() throws {
        let tape = Tape()
        let x = tape.watch(Tensor(shape: [3], values: [1, 2, 3]))
        let unused = tape.watch(Tensor(shape: [2, 2], values: [1, 1, 1, 1]))
        let g = try tape.gradient(of: x.squared().sum(), wrt: [unused, x])
        XCTAssertEqual(g[0].scalars, [0, 0, 0, 0], "a tensor the output does not depend on has a zero gradient")
        XCTAssertEqual(g[0].shape, [2, 2], "the zero gradient has the input's shape")
        XCTAssertEqual(g[1].scalars, [2, 4, 6], "expected 2x")
    }

    func testConstantsAreNotRecorded() {
        let tape = Tape()
        let x = tape.watch(Tensor.ones([4]))
        let w = Tensor.full([4], 2)
        _ = w * w + w                          // untraced: records nothing
        XCTAssertEqual(tape.nodeCount, 1, "only the watched leaf should be on the tape")
        let y = x * w
        XCTAssertTrue(y.isTraced, "an op with a traced input is traced")
        XCTAssertEqual(tape.nodeCount, 2)
    }

    func testTapeIsReleasedAfterDifferentiationUnlessRetained() throws {
        let tape = Tape()
        let x = tape.watch(Tensor.ones([2]))
        let y = x.exp().sum()
        _ = try tape.gradient(of: y, wrt: [x], retainGraph: true)
        XCTAssertEqual(tape.nodeCount, 3, "retainGraph keeps the nodes")
        let again = try tape.gradient(of: y, wrt: [x])
        XCTAssertEqual(again[0].scalars.map { ($0 * 1000).rounded() }, [2718, 2718], "expected e")
        XCTAssertEqual(tape.nodeCount, 0, "the graph is freed after a non-retaining gradient")
        XCTAssertThrowsError(try tape.gradient(of: y, wrt: [x]), "a consumed tape must refuse a second gradient") { error in
            XCTAssertTrue("\(error)".contains("already differentiated"), "message should say why: \(error)")
        }
    }

    func testErrorsNameTheProblem() {
        let tape = Tape()
        let x = tape.watch(Tensor.ones([2]))
        let other = Tape().watch(Tensor.ones([2]))
        XCTAssertThrowsError(try tape.gradient(of: Tensor.ones([1]), wrt: [x])) { error in
            XCTAssertTrue("\(error)".contains("not recorded"), "untraced output: \(error)")
        }
        XCTAssertThrowsError(try tape.gradient(of: x.sum(), wrt: [other])) { error in
            XCTAssertTrue("\(error)".contains("different tape"), "foreign wrt: \(error)")
        }
        XCTAssertThrowsError(try tape.gradient(of: x * 2, wrt: [x], seed: Tensor.ones([3]))) { error in
            XCTAssertTrue("\(error)".contains("[2]"), "seed shape mismatch should name the expected shape: \(error)")
        }
    }

    func testSeededGradientIsAVectorJacobianProduct() throws {
        let tape = Tape()
        let x = tape.watch(Tensor(shape: [3], values: [1, 2, 3]))
        let g = try tape.gradient(of: x * 3, wrt: [x], seed: Tensor(shape: [3], values: [1, 0, -1]))
        XCTAssertEqual(g[0].scalars, [3, 0, -3], "expected seed · 3")
    }

    func testBackwardCapturesDoNotKeepTheTapeAlive() {
        weak var weakTape: Tape?
        do {
            let tape = Tape()
            weakTape = tape
            let x = tape.watch(Tensor.ones([8]))
            _ = conv2d((x * 2).reshaped([1, 2, 2, 2]), weight: Tensor.ones([1, 2, 1, 1]))
        }
        XCTAssertNil(weakTape, "a tape must be freed once no traced tensor refers to it (no reference cycles)")
    }
}
