/*
 * pilot_codecs.h — a small C shim over libjpeg-turbo and libwebp for the
 * Imaging module's JPEG and WebP readers and writers.
 *
 * libjpeg reports errors by longjmp; Swift frames must never be crossed by
 * one, so every libjpeg call lives behind these functions: each sets up its
 * own setjmp, frees what it allocated on failure, and reports the failure
 * as a return code plus a message copied into a caller buffer. Warnings
 * (a corrupt but decodable stream) are counted, never printed.
 *
 * Sizes are read from the header and checked against the limits before any
 * pixel memory is allocated.
 */
#ifndef PILOT_CODECS_H
#define PILOT_CODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PILOT_CODEC_OK = 0,
    PILOT_CODEC_ERR_EMPTY = 1,       /* no bytes at all */
    PILOT_CODEC_ERR_SIGNATURE = 2,   /* not this format */
    PILOT_CODEC_ERR_LIMIT = 3,       /* the header asks for more than the limits allow */
    PILOT_CODEC_ERR_FORMAT = 4,      /* the library refused the data (truncated, corrupt) */
    PILOT_CODEC_ERR_MEMORY = 5,      /* an allocation failed */
    PILOT_CODEC_ERR_UNSUPPORTED = 6  /* a valid file this reader does not take (CMYK JPEG, animated WebP) */
};

/* An 8-bit RGB raster, rows top to bottom, interleaved; free with pilot_codec_free. */
typedef struct pilot_rgb8 {
    uint32_t width;
    uint32_t height;
    uint8_t *pixels;      /* width * height * 3 bytes */
    uint32_t warnings;    /* libjpeg warnings (corrupt data it decoded around) */
    uint32_t has_alpha;   /* WebP: the file had an alpha channel (dropped) */
} pilot_rgb8;

/* Decodes a baseline or progressive JPEG (gray or YCbCr) to RGB. */
int pilot_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t max_dimension,
                      pilot_rgb8 *out, char *message, size_t message_size);

/* Decodes a still WebP (lossy or lossless) to RGB. */
int pilot_webp_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t max_dimension,
                      pilot_rgb8 *out, char *message, size_t message_size);

void pilot_codec_free(pilot_rgb8 *image);

/* Encodes 8-bit interleaved RGB as a baseline JPEG at `quality` (1-100),
 * with `comment` (if any) written as COM segments of at most 65533 bytes,
 * in order. The bytes are malloc'ed: free with pilot_codec_free_bytes. */
int pilot_jpeg_encode(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                      const uint8_t *comment, size_t comment_size,
                      uint8_t **out, size_t *out_size, char *message, size_t message_size);

/* Encodes 8-bit interleaved RGB as a simple-format WebP (lossy at
 * `quality` 0-100, or lossless). Free the bytes with pilot_codec_free_bytes. */
int pilot_webp_encode(const uint8_t *rgb, uint32_t width, uint32_t height, float quality, int lossless,
                      uint8_t **out, size_t *out_size, char *message, size_t message_size);

void pilot_codec_free_bytes(uint8_t *bytes);

#ifdef __cplusplus
}
#endif

#endif
