/// Float planes from the shim's canonical RGBA samples.
struct PlanarSamples {
    var planes: [Float]
    var alpha: [Float]?

    /// Splits `count` 8-bit RGBA pixels into `[3][count]` color planes and,
    /// when `keepAlpha`, an alpha plane; `v` becomes `v / 255`.
    init(rgba8 samples: UnsafePointer<UInt8>, pixelCount count: Int, keepAlpha: Bool) {
        let table = (0...255).map { Float($0) / 255 }
        self.init(samples, count: count, keepAlpha: keepAlpha) { table[Int($0)] }
    }

    /// As the 8-bit form, for 16-bit samples: `v` becomes `v / 65535`.
    init(rgba16 samples: UnsafePointer<UInt16>, pixelCount count: Int, keepAlpha: Bool) {
        self.init(samples, count: count, keepAlpha: keepAlpha) { Float($0) / 65_535 }
    }

    @inline(__always)
    private init<Sample>(_ samples: UnsafePointer<Sample>, count: Int, keepAlpha: Bool,
                         scale: (Sample) -> Float) {
        var planes = [Float](repeating: 0, count: 3 * count)
        planes.withUnsafeMutableBufferPointer { planes in
            for pixel in 0..<count {
                planes[pixel] = scale(samples[4 * pixel])
                planes[count + pixel] = scale(samples[4 * pixel + 1])
                planes[2 * count + pixel] = scale(samples[4 * pixel + 2])
            }
        }
        var alpha: [Float]?
        if keepAlpha {
            var plane = [Float](repeating: 0, count: count)
            plane.withUnsafeMutableBufferPointer { plane in
                for pixel in 0..<count { plane[pixel] = scale(samples[4 * pixel + 3]) }
            }
            alpha = plane
        }
        self.planes = planes
        self.alpha = alpha
    }
}
