import Foundation
import Imaging

// Input: the bytes of a JPEG or WebP file (or anything). ImageFile.decode
// must refuse with an ImagingError or return an image within the limits,
// and the EXIF orientation and metadata readers (JPEG COM segments, WebP
// XMP chunks) must never read outside the data.

private let limits = PNGLimits(maxPixels: 1 << 20, maxDimension: 8192, maxChunkBytes: 1 << 20)

/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    if ImageFile.format(of: bytes) != .png { _ = try? ImageFile.textEntries(in: bytes, source: "fuzz") }
    guard let image = try? ImageFile.decode(bytes, source: "fuzz", limits: limits) else { return 0 }
    if image.pixelCount > limits.maxPixels || image.width > limits.maxDimension || image.height > limits.maxDimension {
        fatalError("decoded \(image.width)×\(image.height), past the limits")
    }
    return 0
}
