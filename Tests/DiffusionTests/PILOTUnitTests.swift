@testable import Diffusion
import Foundation
import Tensors
import XCTest

/// PILOT's schedules, masks and degenerate cases (PILOT.md).
final class PILOTScheduleTests: XCTestCase {
    func testLambdaScheduleAtItsBoundaries() {
        let c: Float = 10
        XCTAssertEqual(PILOTLoss.lambda(timestep: 0, scale: c), 1, "0.1·C below t = 300")
        XCTAssertEqual(PILOTLoss.lambda(timestep: 299, scale: c), 1, "0.1·C just below t = 300")
        XCTAssertEqual(PILOTLoss.lambda(timestep: 300, scale: c), 1, "the ramp starts at 0.1·C")
        XCTAssertEqual(PILOTLoss.lambda(timestep: 999, scale: c), 10, accuracy: 1e-5, "the ramp reaches C at t = 999")
        XCTAssertEqual(PILOTLoss.lambda(timestep: 649, scale: c), 1 + 9 * 349 / 699, accuracy: 1e-5, "linear in between")
    }

    func testLearningRateSchedule() {
        XCTAssertEqual(PILOTLoss.learningRate(timestep: 1000, base: 0.025), 0.025, "η = lr at t = 1000")
        XCTAssertEqual(PILOTLoss.learningRate(timestep: 991, base: 0.025), 0.025 * Float(pow(1.002, 9.0)), accuracy: 1e-9)
        XCTAssertEqual(PILOTLoss.learningRate(timestep: 1, base: 0.025), 0.025 * Float(pow(1.002, 999.0)), accuracy: 1e-6,
                       "η grows as t falls: ×1.002 per timestep")
    }

    func testCoherenceThresholdAsATimestepRule() {
        var p = PILOTParameters()
        p.coherence = 1
        XCTAssertEqual(p.coherenceThreshold, 0, "γ = 1: every step may optimise, none blends")
        p.coherence = 0
        XCTAssertEqual(p.coherenceThreshold, 1000, "γ = 0: every step blends (blended latent diffusion)")
        p.coherence = 0.8
        XCTAssertEqual(p.coherenceThreshold, 200, accuracy: 1e-4, "γ = 0.8: optimise while t ≥ 200")
    }
}

final class PILOTMaskTests: XCTestCase {
    /// A pixel mask with the given (y, x) pixels set to "inpaint".
    func mask(_ h: Int, _ w: Int, holes: [(Int, Int)] = [], fill: Float = 0) -> Tensor {
        var v = [Float](repeating: fill, count: h * w)
        for (y, x) in holes { v[y * w + x] = 1 }
        return Tensor(shape: [h, w], values: v)
    }

    func testEmptyMaskKeepsEverythingAndHasNoHoleAnywhere() throws {
        let m = try InpaintingMasks(pixelMask: mask(128, 128))
        XCTAssertEqual(m.keepCount, 256)
        XCTAssertFalse(m.hasHole)
        for (n, f) in m.hole { XCTAssertEqual(f.scalars.reduce(0, +), 0, "F at \(n) queries is all background") }
        XCTAssertNil(PILOTAttentionControl(masks: m).crossAttentionMask(layer: "x", queries: 256, keys: 77, batch: 1),
                     "no SBC without a hole (the reference drops the attention masks)")
    }

    func testFullMaskIsAllHoleWithoutDividingByZero() throws {
        let m = try InpaintingMasks(pixelMask: mask(128, 128, fill: 1))
        XCTAssertEqual(m.keepCount, 0)
        XCTAssertFalse(m.hasBackground)
        for (n, f) in m.hole { XCTAssertEqual(f.scalars.reduce(0, +), Float(n), "F at \(n) queries is all hole") }
        let p = Tensor.full([1, 2, 256, 77], 1 / 77)
        XCTAssertNil(PILOTLoss.centralisationTerm(probabilities: p, hole: m.hole[256]!, wordTokens: [1, 2]),
                     "an all-hole layer contributes nothing (no background to divide by)")
        let bg = PILOTLoss.background(reconstruction: Tensor.ones([1, 4, 16, 16]), source: Tensor.zeros([1, 4, 16, 16]), keep: m.keep)
        XCTAssertEqual(bg.item, 0, "nothing kept: L_bg = 0")
    }

    func testOnePixelHoleFollowsTheNearestRule() throws {
        // Only pixels on the 8-pixel grid reach the latent mask.
        let onGrid = try InpaintingMasks(pixelMask: mask(64, 64, holes: [(16, 24)]))
        XCTAssertEqual(onGrid.keepCount, 63, "pixel (16, 24) is latent cell (2, 3)")
        XCTAssertEqual(onGrid.keep.scalars[2 * 8 + 3], 0)
        XCTAssertEqual(onGrid.hole[16]!.scalars.reduce(0, +), 0, "a one-cell hole is not fully hole at 4×4")
        let offGrid = try InpaintingMasks(pixelMask: mask(64, 64, holes: [(17, 24)]))
        XCTAssertEqual(offGrid.keepCount, 64, "pixel (17, 24) is not sampled by the nearest rule")
        let dilated = try InpaintingMasks(pixelMask: mask(64, 64, holes: [(16, 24)]), dilation: 1)
        XCTAssertEqual(dilated.keepCount, 64 - 9, "dilation 1 grows the hole to 3×3 cells")
    }

    func testHoleTouchingTheBorderAtEveryResolution() throws {
        // Right-most 32 pixel columns of a 128×128 image: latent columns 12…15.
        var holes: [(Int, Int)] = []
        for y in 0..<128 { for x in 96..<128 { holes.append((y, x)) } }
        let m = try InpaintingMasks(pixelMask: mask(128, 128, holes: holes))
        XCTAssertEqual(m.keepCount, 16 * 12)
        XCTAssertEqual(m.hole[64]!.scalars, (0..<64).map { $0 % 8 >= 6 ? 1 : 0 }, "8×8: columns 6, 7")
        XCTAssertEqual(m.hole[16]!.scalars, (0..<16).map { $0 % 4 == 3 ? 1 : 0 }, "4×4: column 3")
        XCTAssertEqual(m.hole[4]!.scalars, [0, 0, 0, 0], "2×2: no cell is entirely hole (the right cell samples latent columns 11 and 12; 11 is background)")
    }

    func testBilinearMatchesPyTorchAlignCornersFalse() {
        // 4 → 2 averages pairs; 8 → 2 samples columns 1, 2 and 5, 6 only (no antialias).
        // Expected values from torch.nn.functional.interpolate (torch 2.13).
        XCTAssertEqual(InpaintingMasks.bilinear([1, 2, 3, 4], 1, 4, 1, 2), [1.5, 3.5])
        XCTAssertEqual(InpaintingMasks.bilinear([0, 1, 1, 0, 0, 0, 1, 0], 1, 8, 1, 2), [1, 0.5])
        XCTAssertEqual(InpaintingMasks.bilinear([5, 7], 1, 2, 1, 4), [5, 5.5, 6.5, 7], "upsampling clamps at the edges")
    }

    func testNonSquareImages() throws {
        let m = try InpaintingMasks(pixelMask: mask(128, 192, holes: [(64, 96)]))
        XCTAssertEqual(m.latentHeight, 16)
        XCTAssertEqual(m.latentWidth, 24)
        XCTAssertEqual(Set(m.hole.keys), [16 * 24, 8 * 12, 4 * 6, 2 * 3])
        XCTAssertThrowsError(try InpaintingMasks(pixelMask: mask(100, 128)), "sides must be multiples of 8") { error in
            XCTAssertTrue("\(error)".contains("divisible by 8"), "\(error)")
        }
    }

    func testCentralisationTermByHand() {
        // One head, 4 queries (2 hole, 2 background), 3 keys; word tokens = {1}.
        let f = Tensor(shape: [4], values: [1, 1, 0, 0])
        let p = Tensor(shape: [1, 1, 4, 3], values: [0.2, 0.6, 0.2, 0.5, 0.4, 0.1, 0.7, 0.2, 0.1, 0.9, 0.0, 0.1])
        let term = PILOTLoss.centralisationTerm(probabilities: p, hole: f, wordTokens: [1])!
        // out = (0.2 + 0.0)/2 = 0.1, in = (0.6 + 0.4)/2 = 0.5 → −0.4
        XCTAssertEqual(term.item, -0.4, accuracy: 1e-6)
    }

    func testCentralisationTermOfABatchIsTheSumOfEachCandidatesTerm() throws {
        // Two candidates, two heads, 4 queries, 3 keys: each row keeps its own normalisation.
        let f = Tensor(shape: [4], values: [1, 0, 1, 0])
        let values = (0..<48).map { Float(($0 * 7) % 11) / 10 }
        let batch = Tensor(shape: [2, 2, 4, 3], values: values)
        let rows = batch.chunked(2, axis: 0)
        let each = try rows.map { try XCTUnwrap(PILOTLoss.centralisationTerm(probabilities: $0, hole: f, wordTokens: [1, 2])).item }
        let together = try XCTUnwrap(PILOTLoss.centralisationTerm(probabilities: batch, hole: f, wordTokens: [1, 2])).item
        XCTAssertEqual(together, each[0] + each[1], accuracy: 1e-6,
                       "expected the batch's term to be the sum of the candidates' terms, so each gradient is its own")
        XCTAssertNotEqual(each[0], each[1], accuracy: 1e-3, "the two candidates' terms must differ for the test to mean anything")
    }

    func testSBCMaskKeepsBOSAndMasksWordsOutsideTheHole() throws {
        var holes: [(Int, Int)] = []
        for y in 0..<64 { for x in 0..<32 { holes.append((y, x)) } }
        let m = try InpaintingMasks(pixelMask: mask(64, 64, holes: holes))
        let control = PILOTAttentionControl(masks: m)
        let sbc = try XCTUnwrap(control.crossAttentionMask(layer: "l", queries: 64, keys: 5, batch: 2))
        XCTAssertEqual(sbc.shape, [64, 5])
        let v = sbc.scalars
        XCTAssertEqual(v[0 * 5 + 0], 1, "BOS column kept in the background")
        XCTAssertEqual(v[0 * 5 + 1], 1, "query 0 is in the hole (left half): words kept")
        XCTAssertEqual(v[7 * 5 + 0], 1, "BOS kept everywhere")
        XCTAssertEqual(v[7 * 5 + 3], 0, "query 7 is background (right half): words masked")
        control.sbc = false
        XCTAssertNil(control.crossAttentionMask(layer: "l", queries: 64, keys: 5, batch: 2), "SBC off: no mask")
    }
}
