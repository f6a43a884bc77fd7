/*
 * pilot_png.h — a small C shim over libpng for the Imaging module.
 *
 * libpng reports errors by longjmp. Swift frames must never be crossed by a
 * longjmp, so every libpng call lives behind these functions: each one sets
 * up its own setjmp, frees everything it allocated on failure, and reports
 * the failure as a return code plus a message copied into a caller buffer.
 * libpng warnings never reach stderr; they are recorded and handed back.
 */
#ifndef PILOT_PNG_H
#define PILOT_PNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. Every function returns PILOT_PNG_OK or one of the errors. */
enum {
    PILOT_PNG_OK = 0,
    PILOT_PNG_ERR_EMPTY = 1,      /* no bytes at all */
    PILOT_PNG_ERR_SIGNATURE = 2,  /* the 8-byte PNG signature is wrong */
    PILOT_PNG_ERR_TRUNCATED = 3,  /* the data ended before the image did */
    PILOT_PNG_ERR_LIMIT = 4,      /* the header asks for more than the limits allow */
    PILOT_PNG_ERR_FORMAT = 5,     /* libpng refused the data (CRC, chunk, zlib, ...) */
    PILOT_PNG_ERR_MEMORY = 6,     /* an allocation failed */
    PILOT_PNG_ERR_ARGUMENT = 7    /* the caller passed inconsistent arguments */
};

/* Color types, as in the PNG specification (IHDR byte 9). */
enum {
    PILOT_PNG_COLOR_GRAY = 0,
    PILOT_PNG_COLOR_RGB = 2,
    PILOT_PNG_COLOR_PALETTE = 3,
    PILOT_PNG_COLOR_GRAY_ALPHA = 4,
    PILOT_PNG_COLOR_RGBA = 6
};

/* How a text entry is stored when encoding. */
enum {
    PILOT_PNG_TEXT_LATIN1 = 0,             /* tEXt: Latin-1 value */
    PILOT_PNG_TEXT_LATIN1_COMPRESSED = 1,  /* zTXt: Latin-1 value, deflated */
    PILOT_PNG_TEXT_UTF8 = 2,               /* iTXt: UTF-8 value */
    PILOT_PNG_TEXT_UTF8_COMPRESSED = 3     /* iTXt: UTF-8 value, deflated */
};

/* One decoded text entry. Both strings are UTF-8 and NUL-terminated; the
 * lengths exclude the terminator. tEXt/zTXt values (Latin-1 in the file)
 * are converted to UTF-8. */
typedef struct pilot_png_text {
    char *key;
    size_t key_length;
    char *value;
    size_t value_length;
} pilot_png_text;

/* Limits checked before any pixel memory is allocated. */
typedef struct pilot_png_limits {
    uint64_t max_pixels;      /* width * height must not exceed this */
    uint32_t max_dimension;   /* neither side may exceed this; 0 = 2^31-1 */
    uint32_t max_chunk_bytes; /* largest ancillary chunk after inflation;
                                 larger ones are skipped with a warning;
                                 0 = no limit */
} pilot_png_limits;

/*
 * A decoded image in the canonical layout: row-major RGBA, 4 samples per
 * pixel, no padding. sample_bits is 16 when the file had 16-bit samples
 * (samples are uint16_t in host byte order), 8 otherwise (uint8_t; 1/2/4-bit
 * gray is scaled to 8 bits, palettes are expanded). Gray is replicated into
 * R, G and B. When the file had no alpha (no alpha channel and no tRNS), A is
 * fully opaque and has_alpha is 0. Gamma and color-profile chunks are not
 * applied: samples are the stored values.
 */
typedef struct pilot_png_image {
    uint32_t width;
    uint32_t height;
    int color_type;   /* as stored in the file, PILOT_PNG_COLOR_* */
    int bit_depth;    /* as stored in the file: 1, 2, 4, 8 or 16 */
    int interlaced;   /* 1 for Adam7 */
    int has_alpha;    /* 1 when an alpha channel or tRNS was present */
    int sample_bits;  /* 8 or 16: the width of each delivered sample */
    void *pixels;     /* width * height * 4 samples */
    pilot_png_text *text; /* text chunks before IDAT, then after it */
    size_t text_count;
    char *warnings;   /* libpng warnings joined by "\n", or NULL */
} pilot_png_image;

/*
 * Decodes a PNG held in memory. On success fills *out, which the caller
 * releases with pilot_png_image_free. On failure *out holds nothing to free
 * and message (if not NULL) receives a NUL-terminated description.
 */
int pilot_png_decode(const uint8_t *data, size_t size,
                     pilot_png_limits limits,
                     pilot_png_image *out,
                     char *message, size_t message_capacity);

/* Releases what pilot_png_decode allocated and zeroes *image. */
void pilot_png_image_free(pilot_png_image *image);

/* One text entry to encode. The key is Latin-1 (1-79 bytes); the value is
 * Latin-1 or UTF-8 according to kind. Neither needs a terminator. */
typedef struct pilot_png_text_entry {
    const uint8_t *key;
    size_t key_length;
    const uint8_t *value;
    size_t value_length;
    int kind; /* PILOT_PNG_TEXT_* */
} pilot_png_text_entry;

/*
 * What to encode. rows holds height rows exactly as PNG stores them before
 * filtering: samples packed most significant bits first for depths below 8,
 * 16-bit samples big-endian, each row padded to a whole byte, no filter byte.
 */
typedef struct pilot_png_raster {
    uint32_t width;
    uint32_t height;
    int color_type;  /* PILOT_PNG_COLOR_* */
    int bit_depth;   /* a depth the PNG specification allows for color_type */
    int interlaced;  /* 1 to write Adam7 */
    const uint8_t *rows;
    size_t rows_size;
    const uint8_t *palette;       /* PLTE: RGB triples, for palette images */
    int palette_entries;
    const uint8_t *palette_alpha; /* tRNS for palette images, or NULL */
    int palette_alpha_entries;
    const uint16_t *transparent;  /* tRNS for gray (1 value) or RGB (3), or NULL */
} pilot_png_raster;

/* A growable buffer that receives encoded bytes. */
typedef struct pilot_png_buffer {
    uint8_t *data;
    size_t size;
    size_t capacity;
} pilot_png_buffer;

/* Bytes in one unfiltered row of the given layout, or 0 if it is invalid. */
size_t pilot_png_row_bytes(uint32_t width, int color_type, int bit_depth);

/*
 * Encodes raster and text entries into *out (which the caller releases
 * with pilot_png_buffer_free, on success only; on failure it holds nothing).
 */
int pilot_png_encode(const pilot_png_raster *raster,
                     const pilot_png_text_entry *text, size_t text_count,
                     pilot_png_buffer *out,
                     char *message, size_t message_capacity);

/* Releases an encoded buffer and zeroes *buffer. */
void pilot_png_buffer_free(pilot_png_buffer *buffer);

#ifdef __cplusplus
}
#endif

#endif /* PILOT_PNG_H */
