import Imaging
import XCTest

/// Decodes every color type and bit depth PNG allows, plain and interlaced,
/// and checks each sample against a value computed here from the raw
/// samples: gray → R = G = B, `v / (2^depth - 1)`, palettes looked up.
final class PNGColorTypeDecodeTests: XCTestCase {
    // 13×11 covers all seven Adam7 passes and rows that end mid-byte.
    private let width = 13, height = 11

    private struct Expected {
        var rgb: [[Float]]     // per pixel
        var alpha: [Float]?    // per pixel, nil when the file has none
    }

    private func check(_ colorType: PNGColorType, bitDepth: Int, interlaced: Bool,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        var random = TestRandom(seed: UInt64(colorType.rawValue * 100 + bitDepth))
        let maxSample = (1 << bitDepth) - 1
        let count = width * height
        var samples = (0..<count * colorType.channels).map { _ in random.next(below: maxSample + 1) }
        // Make sure the extremes are present.
        samples[0] = 0
        samples[samples.count - 1] = maxSample
        var raster = RawPNG(width: width, height: height, colorType: colorType, bitDepth: bitDepth,
                            rows: SamplePacking.rows(samples, width: width, height: height,
                                                     channels: colorType.channels, bitDepth: bitDepth),
                            isInterlaced: interlaced)
        let scale = { (sample: Int) in Float(sample) / Float(maxSample) }
        var expected: Expected
        switch colorType {
        case .gray:
            expected = Expected(rgb: samples.map { [scale($0), scale($0), scale($0)] }, alpha: nil)
        case .grayAlpha:
            expected = Expected(rgb: (0..<count).map { [Float](repeating: scale(samples[2 * $0]), count: 3) },
                                alpha: (0..<count).map { scale(samples[2 * $0 + 1]) })
        case .rgb:
            expected = Expected(rgb: (0..<count).map { p in (0..<3).map { scale(samples[3 * p + $0]) } }, alpha: nil)
        case .rgba:
            expected = Expected(rgb: (0..<count).map { p in (0..<3).map { scale(samples[4 * p + $0]) } },
                                alpha: (0..<count).map { scale(samples[4 * $0 + 3]) })
        case .palette:
            // A palette as large as the depth allows; tRNS for half of it.
            let entries = maxSample + 1
            let palette = (0..<entries * 3).map { _ in UInt8(random.next(below: 256)) }
            let paletteAlpha = (0..<entries / 2 + 1).map { _ in UInt8(random.next(below: 256)) }
            raster.palette = palette
            raster.paletteAlpha = paletteAlpha
            expected = Expected(
                rgb: samples.map { index in (0..<3).map { Float(palette[3 * index + $0]) / 255 } },
                alpha: samples.map { index in index < paletteAlpha.count ? Float(paletteAlpha[index]) / 255 : 1 })
        }

        let label = "\(colorType) \(bitDepth)-bit\(interlaced ? " interlaced" : "")"
        let decoded = try PNG.decode(PNG.encode(raster))
        XCTAssertEqual(decoded.colorType, colorType, "\(label): expected the stored color type", file: file, line: line)
        XCTAssertEqual(decoded.bitDepth, bitDepth, "\(label): expected the stored bit depth", file: file, line: line)
        XCTAssertEqual(decoded.isInterlaced, interlaced, "\(label): expected interlacing reported", file: file, line: line)
        XCTAssertEqual(decoded.alpha == nil, expected.alpha == nil,
                       "\(label): expected an alpha plane exactly when the file has alpha", file: file, line: line)
        var mismatches = 0
        for pixel in 0..<count where mismatches < 3 {
            let (x, y) = (pixel % width, pixel / width)
            let actual = decoded.image.pixel(x: x, y: y)
            let want = expected.rgb[pixel]
            let alphaOK = expected.alpha.map { abs(decoded.alpha![pixel] - $0[pixel]) < 1e-6 } ?? true
            if abs(actual.red - want[0]) > 1e-6 || abs(actual.green - want[1]) > 1e-6
                || abs(actual.blue - want[2]) > 1e-6 || !alphaOK {
                mismatches += 1
                XCTFail("\(label): pixel (\(x), \(y)) expected rgb \(want) alpha \(expected.alpha?[pixel] ?? 1), "
                        + "got \(actual) alpha \(decoded.alpha?[pixel] ?? 1)", file: file, line: line)
            }
        }
    }

    func testGrayAtEveryBitDepthDecodesToEqualRGB() throws {
        for depth in [1, 2, 4, 8, 16] {
            for interlaced in [false, true] { try check(.gray, bitDepth: depth, interlaced: interlaced) }
        }
    }

    func testGrayAlphaDecodesWithAlphaPlane() throws {
        for depth in [8, 16] {
            for interlaced in [false, true] { try check(.grayAlpha, bitDepth: depth, interlaced: interlaced) }
        }
    }

    func testRGBDecodesAtEightAndSixteenBits() throws {
        for depth in [8, 16] {
            for interlaced in [false, true] { try check(.rgb, bitDepth: depth, interlaced: interlaced) }
        }
    }

    func testRGBADecodesWithAlphaPlane() throws {
        for depth in [8, 16] {
            for interlaced in [false, true] { try check(.rgba, bitDepth: depth, interlaced: interlaced) }
        }
    }

    func testPaletteWithTransparencyDecodesAtEveryBitDepth() throws {
        for depth in [1, 2, 4, 8] {
            for interlaced in [false, true] { try check(.palette, bitDepth: depth, interlaced: interlaced) }
        }
    }

    func testGrayTransparentColorBecomesAlphaZero() throws {
        let raster = RawPNG(width: 3, height: 1, colorType: .gray, bitDepth: 16,
                            rows: SamplePacking.rows([0, 1000, 65_535], width: 3, height: 1, channels: 1, bitDepth: 16),
                            transparentColor: [1000])
        let decoded = try PNG.decode(PNG.encode(raster))
        XCTAssertEqual(decoded.alpha, [1, 0, 1], "expected only the tRNS gray value 1000 to be transparent")
        XCTAssertEqual(decoded.image[0, 1, 0], 1000 / 65_535, accuracy: 1e-7,
                       "expected the transparent pixel's gray to stay 1000/65535")
    }

    func testRGBTransparentColorBecomesAlphaZero() throws {
        let raster = RawPNG(width: 2, height: 1, colorType: .rgb, bitDepth: 8,
                            rows: [10, 20, 30, 10, 20, 31], transparentColor: [10, 20, 30])
        let decoded = try PNG.decode(PNG.encode(raster))
        XCTAssertEqual(decoded.alpha, [0, 1], "expected only the exact tRNS color (10, 20, 30) to be transparent")
    }

    func testSixteenBitSamplesKeepFullPrecision() throws {
        let raster = RawPNG(width: 2, height: 1, colorType: .gray, bitDepth: 16,
                            rows: SamplePacking.rows([1, 65_534], width: 2, height: 1, channels: 1, bitDepth: 16))
        let image = try PNG.decode(PNG.encode(raster)).image
        XCTAssertEqual(image[0, 0, 0], 1 / 65_535, "expected sample 1 to decode to 1/65535, not a truncated 0")
        XCTAssertEqual(image[0, 1, 0], 65_534 / 65_535, "expected sample 65534 to decode to 65534/65535, not 1")
    }
}
