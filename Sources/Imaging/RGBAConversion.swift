/// Float planes from the shim's canonical RGBA samples.
struct PlanarSamples {
    var planes: [Float]
    var alpha: [Float]?

    /// Splits `pixelCount` RGBA pixels into `[3][pixelCount]` color planes
    /// and, when `keepAlpha`, an alpha plane; scales `v` to `v / maxValue`.
    init<Sample: FixedWidthInteger & UnsignedInteger>(
        rgba samples: UnsafePointer<Sample>, pixelCount count: Int, keepAlpha: Bool
    ) {
        let scale = Self.scaleTable(for: Sample.self)
        var planes = [Float](repeating: 0, count: 3 * count)
        var alpha = keepAlpha ? [Float](repeating: 0, count: count) : nil
        planes.withUnsafeMutableBufferPointer { planes in
            for pixel in 0..<count {
                planes[pixel] = scale(samples[4 * pixel])
                planes[count + pixel] = scale(samples[4 * pixel + 1])
                planes[2 * count + pixel] = scale(samples[4 * pixel + 2])
            }
        }
        if keepAlpha {
            alpha!.withUnsafeMutableBufferPointer { alpha in
                for pixel in 0..<count { alpha[pixel] = scale(samples[4 * pixel + 3]) }
            }
        }
        self.planes = planes
        self.alpha = alpha
    }

    /// `v / 255` through a table for 8-bit samples; `v / 65535` for 16-bit.
    private static func scaleTable<Sample: FixedWidthInteger>(for _: Sample.Type) -> (Sample) -> Float {
        let maxValue = Float(Sample.max)
        if Sample.bitWidth == 8 {
            let table = (0...255).map { Float($0) / 255 }
            return { table[Int($0)] }
        }
        return { Float($0) / maxValue }
    }
}
