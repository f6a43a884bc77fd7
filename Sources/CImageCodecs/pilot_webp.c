#include "pilot_codecs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

int pilot_webp_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t max_dimension,
                      pilot_rgb8 *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (message && message_size) message[0] = 0;
    if (!data || size == 0) return PILOT_CODEC_ERR_EMPTY;
    if (size < 12 || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WEBP", 4) != 0) return PILOT_CODEC_ERR_SIGNATURE;

    WebPBitstreamFeatures features;
    VP8StatusCode status = WebPGetFeatures(data, size, &features);
    if (status != VP8_STATUS_OK) {
        if (message && message_size) snprintf(message, message_size, "libwebp cannot read the header (status %d)", (int)status);
        return status == VP8_STATUS_NOT_ENOUGH_DATA ? PILOT_CODEC_ERR_FORMAT : PILOT_CODEC_ERR_FORMAT;
    }
    if (features.has_animation) {
        if (message && message_size) snprintf(message, message_size, "an animated WebP (give one frame)");
        return PILOT_CODEC_ERR_UNSUPPORTED;
    }
    if (features.width <= 0 || features.height <= 0 || (uint32_t)features.width > max_dimension ||
        (uint32_t)features.height > max_dimension || (uint64_t)features.width * (uint64_t)features.height > max_pixels) {
        if (message && message_size)
            snprintf(message, message_size, "the header declares %d × %d pixels; the limits are %u per side and %llu in all",
                     features.width, features.height, max_dimension, (unsigned long long)max_pixels);
        return PILOT_CODEC_ERR_LIMIT;
    }
    size_t stride = (size_t)features.width * 3, total = stride * (size_t)features.height;
    uint8_t *pixels = malloc(total);
    if (!pixels) return PILOT_CODEC_ERR_MEMORY;
    if (!WebPDecodeRGBInto(data, size, pixels, total, (int)stride)) {
        free(pixels);
        if (message && message_size) snprintf(message, message_size, "libwebp could not decode the image data (truncated or corrupt)");
        return PILOT_CODEC_ERR_FORMAT;
    }
    out->width = (uint32_t)features.width;
    out->height = (uint32_t)features.height;
    out->pixels = pixels;
    out->has_alpha = features.has_alpha ? 1 : 0;
    return PILOT_CODEC_OK;
}

#include <webp/encode.h>

int pilot_webp_encode(const uint8_t *rgb, uint32_t width, uint32_t height, float quality, int lossless,
                      uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (message && message_size) message[0] = 0;
    if (!rgb || width == 0 || height == 0 || width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION) {
        if (message && message_size) snprintf(message, message_size, "WebP holds at most %d pixels a side", WEBP_MAX_DIMENSION);
        return PILOT_CODEC_ERR_LIMIT;
    }
    uint8_t *encoded = NULL;
    size_t size = lossless ? WebPEncodeLosslessRGB(rgb, (int)width, (int)height, (int)width * 3, &encoded)
                           : WebPEncodeRGB(rgb, (int)width, (int)height, (int)width * 3, quality, &encoded);
    if (size == 0 || !encoded) {
        if (message && message_size) snprintf(message, message_size, "libwebp could not encode the image");
        return PILOT_CODEC_ERR_FORMAT;
    }
    /* Handed over as a malloc'ed copy, freed with pilot_codec_free_bytes like the JPEG encoder's. */
    uint8_t *copy = malloc(size);
    if (!copy) {
        WebPFree(encoded);
        return PILOT_CODEC_ERR_MEMORY;
    }
    memcpy(copy, encoded, size);
    WebPFree(encoded);
    *out = copy;
    *out_size = size;
    return PILOT_CODEC_OK;
}
