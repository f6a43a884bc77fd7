/// Packs integer samples into PNG rows the way the specification lays them
/// out, written here from the specification rather than from the codec.
enum SamplePacking {
    /// `samples` (row by row, `channels` per pixel) as packed rows: depths
    /// below 8 most significant bits first, each row padded to a byte;
    /// 16-bit samples big-endian.
    static func rows(_ samples: [Int], width: Int, height: Int, channels: Int, bitDepth: Int) -> [UInt8] {
        precondition(samples.count == width * height * channels)
        var bytes: [UInt8] = []
        let perRow = width * channels
        for y in 0..<height {
            let row = samples[y * perRow..<(y + 1) * perRow]
            switch bitDepth {
            case 16:
                for sample in row { bytes += [UInt8(sample >> 8), UInt8(sample & 0xFF)] }
            case 8:
                bytes += row.map { UInt8($0) }
            default:
                var byte = 0, used = 0
                for sample in row {
                    byte = byte << bitDepth | sample
                    used += bitDepth
                    if used == 8 { bytes.append(UInt8(byte)); byte = 0; used = 0 }
                }
                if used > 0 { bytes.append(UInt8(byte << (8 - used))) }
            }
        }
        return bytes
    }

    /// Planar [0, 1] samples as 8-bit interleaved RGB rows.
    static func rgbRows(_ planes: [Float], width: Int, height: Int) -> [UInt8] {
        let count = width * height
        return (0..<count * 3).map { UInt8((planes[($0 % 3) * count + $0 / 3] * 255).rounded()) }
    }
}

/// A small deterministic generator, so every run tests the same samples.
struct TestRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// The next value in `0..<bound`.
    mutating func next(below bound: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((state >> 33) % UInt64(bound))
    }
}
