@testable import Tensors
import XCTest

/// Winograd F(2×2, 3×3) and F(4×4, 3×3) against im2col on the same inputs:
/// outputs and input gradients at odd sizes (partial tiles), several
/// paddings, with and without bias; the finite-difference check with each
/// tile forced.
final class WinogradTests: XCTestCase {
    override func tearDown() {
        Winograd.mode = .auto
        super.tearDown()
    }

    /// Output, dx and dW under `mode`.
    func run(_ mode: Winograd.Mode, x: Tensor, w: Tensor, b: Tensor?, dy: Tensor, padding: Int) throws -> [Tensor] {
        Winograd.mode = mode
        defer { Winograd.mode = .auto }
        let inputs = [x, w] + (b.map { [$0] } ?? [])
        let (y, g) = try forwardBackward(inputs, dout: dy) { xs in
            conv2d(xs[0], weight: xs[1], bias: b == nil ? nil : xs[2], padding: padding)
        }
        return [y] + g
    }

    func testMatchesIm2col() throws {
        let cases: [(n: Int, cin: Int, cout: Int, h: Int, w: Int, pad: Int, bias: Bool)] = [
            (1, 32, 40, 9, 7, 1, true), (2, 33, 32, 8, 8, 1, false), (1, 40, 36, 11, 13, 0, true),
            (2, 35, 48, 5, 6, 2, false), (1, 3, 5, 3, 4, 1, true), (1, 64, 64, 17, 16, 1, true),
            (1, 8, 8, 33, 31, 1, false), (1, 16, 24, 6, 9, 3, true),
            (1, 320, 96, 34, 30, 1, true),   // a UNet-wide sum over input channels
        ]
        for (i, c) in cases.enumerated() {
            let seed = UInt64(100 + 10 * i)
            let x = detTensor([c.n, c.cin, c.h, c.w], seed: seed)
            let w = detTensor([c.cout, c.cin, 3, 3], seed: seed + 1, scale: 0.2)
            let b = c.bias ? detTensor([c.cout], seed: seed + 2) : nil
            let ho = c.h + 2 * c.pad - 2, wo = c.w + 2 * c.pad - 2
            let dy = detTensor([c.n, c.cout, ho, wo], seed: seed + 3)
            let ref = try run(.off, x: x, w: w, b: b, dy: dy, padding: c.pad)
            // F(4×4)'s constants (up to 8 and 1/24) round more than F(2×2)'s.
            for (tile, tolerance) in [(Winograd.Tile.two, Float(1e-5)), (.four, 4e-5)] {
                let fast = try run(.only(tile), x: x, w: w, b: b, dy: dy, padding: c.pad)
                let what = "F(\(tile.m)×\(tile.m)) \(c)"
                assertClose(fast[0], ref[0], tolerance: tolerance, "Winograd output \(what)")
                assertClose(fast[1], ref[1], tolerance: tolerance, "Winograd dx \(what)")
                assertClose(fast[2], ref[2], tolerance: tolerance, "dW \(what)")
            }
        }
    }

    func testTileChoice() {
        Winograd.mode = .auto
        XCTAssertEqual(Winograd.tile(cin: 320, cout: 320, n: 2, ho: 64, wo: 64), .four, "512 tiles, small U")
        XCTAssertEqual(Winograd.tile(cin: 960, cout: 640, n: 2, ho: 32, wo: 32), .four, "128 tiles, U of 84 MiB")
        XCTAssertEqual(Winograd.tile(cin: 1280, cout: 1280, n: 2, ho: 32, wo: 32), .two, "U of 225 MiB")
        XCTAssertEqual(Winograd.tile(cin: 640, cout: 640, n: 1, ho: 32, wo: 32), .two, "64 tiles")
        XCTAssertEqual(Winograd.tile(cin: 1280, cout: 1280, n: 2, ho: 16, wo: 16), .two, "32 tiles")
        Winograd.mode = .only(.four)
        XCTAssertEqual(Winograd.tile(cin: 1280, cout: 1280, n: 1, ho: 8, wo: 8), .four, "forced")
    }

    func testAutoThreshold() {
        Winograd.mode = .auto
        let big = ConvGeometry(input: [1, 64, 32, 32], weight: [64, 64, 3, 3], Conv2DParameters(padding: 1))
        XCTAssertTrue(Winograd.appliesForward(big))
        XCTAssertTrue(Winograd.appliesBackwardInput(big))
        let few = ConvGeometry(input: [1, 16, 32, 32], weight: [64, 16, 3, 3], Conv2DParameters(padding: 1))
        XCTAssertFalse(Winograd.appliesForward(few))
        let strided = ConvGeometry(input: [1, 64, 32, 32], weight: [64, 64, 3, 3], Conv2DParameters(stride: 2, padding: 1))
        XCTAssertFalse(Winograd.appliesForward(strided))
        let grouped = ConvGeometry(input: [1, 64, 32, 32], weight: [64, 32, 3, 3], Conv2DParameters(padding: 1, groups: 2))
        XCTAssertFalse(Winograd.appliesForward(grouped))
        let widePad = ConvGeometry(input: [1, 64, 32, 32], weight: [64, 64, 3, 3], Conv2DParameters(padding: 3))
        XCTAssertTrue(Winograd.appliesForward(widePad))
        XCTAssertFalse(Winograd.appliesBackwardInput(widePad))
    }

    func testFiniteDifferencesForced() {
        defer { Winograd.mode = .auto }
        let x = detTensor([2, 4, 7, 6], seed: 17)
        let w = detTensor([6, 4, 3, 3], seed: 18, scale: 0.5), b = detTensor([6], seed: 19)
        for tile in Winograd.Tile.allCases {
            Winograd.mode = .only(tile)
            let f = "Winograd F(\(tile.m)×\(tile.m))"
            checkGradients([x, w, b], "\(f) conv 3×3 p1") { conv2d($0[0], weight: $0[1], bias: $0[2], padding: 1) }
            checkGradients([x, w], "\(f) conv 3×3 p0") { conv2d($0[0], weight: $0[1]) }
            checkGradients([x, w], "\(f) conv 3×3 p2") { conv2d($0[0], weight: $0[1], padding: 2) }
        }
    }
}

/// Forward and dx timings, Winograd against im2col, for choosing the
/// thresholds: `PILOT_WINOGRAD_TIMING=1 swift test -c release --filter WinogradTiming`.
final class WinogradTimingTests: XCTestCase {
    func testTimings() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["PILOT_WINOGRAD_TIMING"] != nil, "timing only on request")
        defer { Winograd.mode = .auto }
        func time(_ body: () -> Void) -> Double {
            body()
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            return best
        }
        let spec = ProcessInfo.processInfo.environment["PILOT_WINOGRAD_SHAPES"]
            ?? "2x32x64,2x64x32,2x64x16,2x128x16,2x128x8,2x320x64,2x320x32,2x640x32,2x640x16,2x1280x16,2x1280x8,2x640x8,1x512x64,1x256x128"
        for s in spec.split(separator: ",") {
            let d = s.split(separator: "x").map { Int($0)! }
            let (n, c, hw) = (d[0], d[1], d[2])
            let x = detTensor([n, c, hw, hw], seed: 1), w = detTensor([c, c, 3, 3], seed: 2, scale: 0.05)
            let b = detTensor([c], seed: 3)
            var row = "n\(n) c\(c) \(hw)×\(hw):"
            for what in ["fwd", "dx"] {
                var ms: [Double] = []
                for mode in [Winograd.Mode.off, .only(.two), .only(.four)] {
                    Winograd.mode = mode
                    if what == "fwd" {
                        ms.append(time { _ = conv2d(x, weight: w, bias: b, padding: 1) })
                    } else {
                        let be = Backends.cpu
                        ms.append(time { _ = be.conv2dBackwardInput(x, weight: w, inputShape: x.shape, Conv2DParameters(padding: 1)) })
                    }
                }
                row += String(format: "  %@ im2col %.2f ms F2 %.2f ms (%.2fx) F4 %.2f ms (%.2fx)", what, ms[0], ms[1],
                              ms[0] / ms[1], ms[2], ms[0] / ms[2])
            }
            print(row)
        }
    }
}
