import Foundation
import Imaging
import XCTest

/// Damaged files must decode or throw an ImagingError; never crash, hang or
/// throw anything else.
final class PNGFuzzTests: XCTestCase {
    /// Small limits: a damaged header must not make the fuzzer allocate much.
    private let limits = PNGLimits(maxPixels: 64 * 64, maxDimension: 64, maxChunkBytes: 64 * 1024)

    private func sample() throws -> Data {
        var random = TestRandom(seed: 11)
        let planes = (0..<3 * 20 * 17).map { _ in Float(random.next(below: 256)) / 255 }
        let raster = RawPNG(width: 20, height: 17, colorType: .rgb, bitDepth: 8,
                            rows: SamplePacking.rgbRows(planes, width: 20, height: 17), isInterlaced: true)
        return try PNG.encode(raster, text: [PNGTextEntry(key: "prompt", value: "猫 and a mat"),
                                             PNGTextEntry(key: "workflow", value: String(repeating: "x: 1\n", count: 300))])
    }

    private func decodeNeverCrashes(_ data: Data, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try PNG.decode(data, limits: limits)
        } catch is ImagingError {
            // Refusing damaged data is the expected outcome.
        } catch {
            XCTFail("\(what): expected success or an ImagingError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    /// 200 positions spread over the file, from the signature to IEND.
    private func positions(in data: Data) -> [Int] {
        (0..<200).map { $0 * data.count / 200 }
    }

    func testTruncationAtTwoHundredPositionsNeverCrashes() throws {
        let png = try sample()
        for cut in positions(in: png) { decodeNeverCrashes(png.prefix(cut), "cut at \(cut) of \(png.count)") }
    }

    func testFlippedByteAtTwoHundredPositionsNeverCrashes() throws {
        let png = try sample()
        var random = TestRandom(seed: 5)
        for position in positions(in: png) {
            var bytes = [UInt8](png)
            bytes[position] ^= UInt8(1 + random.next(below: 255))
            decodeNeverCrashes(Data(bytes), "byte \(position) flipped")
        }
    }

    /// With CRCs repaired the damage reaches libpng's chunk parsers, zlib
    /// and the row filters instead of stopping at the CRC check.
    func testFlippedChunkDataWithRepairedCRCsNeverCrashes() throws {
        let png = try sample()
        let chunks = PNGBytes.chunks(of: png)
        var random = TestRandom(seed: 9)
        for trial in 0..<200 {
            var damaged = chunks
            let index = random.next(below: damaged.count)
            if damaged[index].data.isEmpty { continue }
            let position = random.next(below: damaged[index].data.count)
            damaged[index].data[position] ^= UInt8(1 + random.next(below: 255))
            decodeNeverCrashes(PNGBytes.assemble(damaged),
                               "trial \(trial): \(damaged[index].type) byte \(position) changed, CRC repaired")
        }
    }
}
