import Foundation
import Imaging

// Input: the bytes of a PNG file. Decode (every colour type, depth,
// interlacing, text chunks) must refuse with an ImagingError or succeed;
// a decoded image must convert to a mask and encode again with its text,
// and that encoding must decode to the same size and text.

private let limits = PNGLimits(maxPixels: 1 << 20, maxDimension: 8192, maxChunkBytes: 1 << 20)

/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    guard let decoded = try? PNG.decode(bytes, source: "fuzz.png", limits: limits) else { return 0 }
    _ = decoded.warnings.count
    _ = try? Mask(from: decoded)
    _ = try? Mask(from: decoded, fromAlpha: true)
    do {
        let encoded = try PNG.encode(decoded.image, text: decoded.text)
        let again = try PNG.decode(encoded, source: "re-encoded", limits: PNGLimits())
        if again.width != decoded.width || again.height != decoded.height || again.text != decoded.text {
            fatalError("re-encoding changed the image: \(decoded.width)×\(decoded.height) \(decoded.text.count) text entries → "
                       + "\(again.width)×\(again.height) \(again.text.count)")
        }
    } catch {
        // Text a PNG may carry but we refuse to write (an over-long key) is a refusal, not a bug.
        _ = "\(error)"
    }
    return 0
}
