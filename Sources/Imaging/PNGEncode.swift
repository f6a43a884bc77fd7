import CPNG
import Foundation

extension PNG {
    /// Encodes `image` as an RGB PNG with `text` chunks.
    ///
    /// Samples are clamped to [0, 1] (NaN becomes 0) and rounded to the
    /// nearest level, so an image decoded from an 8-bit PNG encodes back to
    /// the same samples.
    public static func encode(
        _ image: Image, text: [PNGTextEntry] = [], depth: PNGSampleDepth = .eight
    ) throws -> Data {
        let raster = RawPNG(width: image.width, height: image.height, colorType: .rgb,
                            bitDepth: depth.rawValue,
                            rows: packedRows(image.planes, channels: Image.channelCount,
                                             pixelCount: image.pixelCount, depth: depth))
        return try encode(raster, text: text)
    }

    /// Encodes `mask` as a gray PNG with `text` chunks: 1 (inpaint) is white.
    /// Values are clamped and rounded as for an ``Image``.
    public static func encode(
        _ mask: Mask, text: [PNGTextEntry] = [], depth: PNGSampleDepth = .eight
    ) throws -> Data {
        let raster = RawPNG(width: mask.width, height: mask.height, colorType: .gray,
                            bitDepth: depth.rawValue,
                            rows: packedRows(mask.values, channels: 1, pixelCount: mask.values.count, depth: depth))
        return try encode(raster, text: text)
    }

    /// Encodes pixels already in PNG's own layout, with `text` chunks.
    public static func encode(_ raster: RawPNG, text: [PNGTextEntry] = []) throws -> Data {
        try raster.validate()
        let entries = try text.map { try $0.encoded() }
        var buffer = pilot_png_buffer()
        var message = [CChar](repeating: 0, count: cpngMessageCapacity)
        let capacity = message.count
        let code = withTextEntries(entries) { cText, count in
            withCRaster(raster) { cRaster in
                pilot_png_encode(cRaster, cText, count, &buffer, &message, capacity)
            }
        }
        guard code == Int32(PILOT_PNG_OK), let bytes = buffer.data else {
            let detail = cpngMessage(message)
            if code == Int32(PILOT_PNG_ERR_MEMORY) { throw ImagingError.outOfMemory(source: "<memory>", detail: detail) }
            if code == Int32(PILOT_PNG_ERR_ARGUMENT) { throw ImagingError.invalidImage(detail) }
            throw ImagingError.encodingFailed(detail)
        }
        // The shim's buffer came from malloc; Data takes it over and frees it.
        return Data(bytesNoCopy: bytes, count: buffer.size, deallocator: .free)
    }

    /// Planar samples in [0, 1] as interleaved PNG rows: 8-bit, or 16-bit
    /// big-endian.
    static func packedRows(_ planes: [Float], channels: Int, pixelCount count: Int,
                           depth: PNGSampleDepth) -> [UInt8] {
        let bytesPerSample = depth == .eight ? 1 : 2
        let maxValue = depth.maxValue
        var rows = [UInt8](repeating: 0, count: planes.count * bytesPerSample)
        planes.withUnsafeBufferPointer { planes in
            rows.withUnsafeMutableBufferPointer { rows in
                for channel in 0..<channels {
                    for pixel in 0..<count {
                        let level = quantized(planes[channel * count + pixel], maxValue: maxValue)
                        let offset = (pixel * channels + channel) * bytesPerSample
                        if bytesPerSample == 1 {
                            rows[offset] = UInt8(level)
                        } else {
                            rows[offset] = UInt8(level >> 8)
                            rows[offset + 1] = UInt8(level & 0xFF)
                        }
                    }
                }
            }
        }
        return rows
    }

    /// `value` clamped to [0, 1] (NaN to 0) and rounded to the nearest of
    /// `maxValue + 1` levels.
    static func quantized(_ value: Float, maxValue: Float) -> UInt16 {
        let clamped: Float = value > 0 ? (value < 1 ? value : 1) : 0
        return UInt16((clamped * maxValue).rounded(.toNearestOrAwayFromZero))
    }
}

/// Lays the encoded entries out in one byte buffer and gives `body` the
/// shim's entries, whose pointers stay valid for the call.
private func withTextEntries<Result>(
    _ entries: [PNGTextEntry.Encoded],
    _ body: (UnsafePointer<pilot_png_text_entry>?, Int) -> Result
) -> Result {
    var storage: [UInt8] = []
    var offsets: [(key: Int, value: Int)] = []
    for entry in entries {
        offsets.append((storage.count, storage.count + entry.key.count))
        storage += entry.key
        storage += entry.value
    }
    return storage.withUnsafeBufferPointer { storage in
        guard let base = storage.baseAddress else { return body(nil, 0) }
        let cEntries = zip(entries, offsets).map { entry, offset in
            pilot_png_text_entry(key: base + offset.key, key_length: entry.key.count,
                                 value: base + offset.value, value_length: entry.value.count,
                                 kind: entry.kind)
        }
        return cEntries.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
    }
}

/// Gives `body` the shim's view of `raster`, valid for the call.
private func withCRaster<Result>(_ raster: RawPNG, _ body: (UnsafePointer<pilot_png_raster>) -> Result) -> Result {
    raster.rows.withUnsafeBufferPointer { rows in
        raster.palette.withUnsafeBufferPointer { palette in
            raster.paletteAlpha.withUnsafeBufferPointer { paletteAlpha in
                (raster.transparentColor ?? []).withUnsafeBufferPointer { transparent in
                    var cRaster = pilot_png_raster(
                        width: UInt32(raster.width), height: UInt32(raster.height),
                        color_type: Int32(raster.colorType.rawValue), bit_depth: Int32(raster.bitDepth),
                        interlaced: raster.isInterlaced ? 1 : 0,
                        rows: rows.baseAddress, rows_size: rows.count,
                        palette: palette.isEmpty ? nil : palette.baseAddress,
                        palette_entries: Int32(palette.count / 3),
                        palette_alpha: paletteAlpha.isEmpty ? nil : paletteAlpha.baseAddress,
                        palette_alpha_entries: Int32(paletteAlpha.count),
                        transparent: raster.transparentColor == nil ? nil : transparent.baseAddress)
                    return body(&cRaster)
                }
            }
        }
    }
}
