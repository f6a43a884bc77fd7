/*
 * pilot_png_decode.c — decode a PNG held in memory into canonical RGBA.
 *
 * The work happens in decode_inside, the only function that calls setjmp;
 * every resource it creates is recorded in a decode_state owned by the
 * caller's frame, so after a longjmp pilot_png_decode frees exactly what
 * exists. Limits are checked from the header before pixel memory exists.
 */
#include "pilot_png.h"
#include "pilot_png_failure.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct decode_state {
    const uint8_t *data;
    size_t size;
    size_t offset;
    pilot_png_limits limits;
    pilot_png_failure failure;
    png_structp png;
    png_infop info;
    png_infop end_info;
    png_bytep *rows;
    pilot_png_image image; /* filled as decoding proceeds */
    size_t text_capacity;
    const char *phase;     /* what was being read, for libpng's terse messages */
} decode_state;

static void read_bytes(png_structp png, png_bytep destination, size_t length) {
    decode_state *state = (decode_state *)png_get_io_ptr(png);
    size_t available = state->size - state->offset;
    if (length > available) {
        char message[160];
        snprintf(message, sizeof message,
                 "needed %zu bytes at offset %zu but the data ends at %zu bytes",
                 length, state->offset, state->size);
        pilot_png_fail(png, PILOT_PNG_ERR_TRUNCATED, message);
    }
    memcpy(destination, state->data + state->offset, length);
    state->offset += length;
}

/* tEXt and zTXt hold Latin-1; callers get UTF-8. */
static char *latin1_to_utf8(png_structp png, const char *source, size_t length, size_t *out_length) {
    char *result = malloc(length * 2 + 1);
    if (result == NULL) pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "out of memory converting a text chunk");
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)source[i];
        if (byte < 0x80) {
            result[used++] = (char)byte;
        } else {
            result[used++] = (char)(0xC0 | (byte >> 6));
            result[used++] = (char)(0x80 | (byte & 0x3F));
        }
    }
    result[used] = '\0';
    *out_length = used;
    return result;
}

static char *copy_bytes(png_structp png, const char *source, size_t length) {
    char *result = malloc(length + 1);
    if (result == NULL) pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "out of memory copying a text chunk");
    if (length > 0) memcpy(result, source, length);
    result[length] = '\0';
    return result;
}

static void collect_text(decode_state *state, png_infop info) {
    png_textp text = NULL;
    int count = png_get_text(state->png, info, &text, NULL);
    for (int i = 0; i < count; i++) {
        if (state->image.text_count == state->text_capacity) {
            size_t capacity = state->text_capacity == 0 ? 8 : state->text_capacity * 2;
            pilot_png_text *grown = realloc(state->image.text, capacity * sizeof *grown);
            if (grown == NULL) pilot_png_fail(state->png, PILOT_PNG_ERR_MEMORY, "out of memory collecting text chunks");
            state->image.text = grown;
            state->text_capacity = capacity;
        }
        /* Count the entry before filling it so a failure below frees it. */
        pilot_png_text *entry = &state->image.text[state->image.text_count++];
        memset(entry, 0, sizeof *entry);
        const char *key = text[i].key != NULL ? text[i].key : "";
        const char *value = text[i].text != NULL ? text[i].text : "";
        entry->key = latin1_to_utf8(state->png, key, strlen(key), &entry->key_length);
        if (text[i].compression > PNG_TEXT_COMPRESSION_zTXt) { /* iTXt: already UTF-8 */
            entry->value = copy_bytes(state->png, value, text[i].itxt_length);
            entry->value_length = text[i].itxt_length;
        } else {
            entry->value = latin1_to_utf8(state->png, value, text[i].text_length, &entry->value_length);
        }
    }
}

static void check_limits(decode_state *state) {
    uint64_t pixels = (uint64_t)state->image.width * state->image.height;
    if (pixels > state->limits.max_pixels) {
        char message[200];
        snprintf(message, sizeof message,
                 "image is %ux%u (%llu pixels), over the limit of %llu pixels",
                 state->image.width, state->image.height,
                 (unsigned long long)pixels, (unsigned long long)state->limits.max_pixels);
        pilot_png_fail(state->png, PILOT_PNG_ERR_LIMIT, message);
    }
    /* Only reachable when the caller's limit is absurd: keep sizes in range. */
    if (pixels > SIZE_MAX / 8)
        pilot_png_fail(state->png, PILOT_PNG_ERR_LIMIT, "image is too large to address in memory");
}

/* Asks libpng for the canonical layout: RGBA, 8 or 16 bits, host order. */
static void request_rgba(decode_state *state, int color_type, int bit_depth) {
    png_structp png = state->png;
    png_set_expand(png); /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    if (!state->image.has_alpha) png_set_filler(png, bit_depth == 16 ? 0xFFFF : 0xFF, PNG_FILLER_AFTER);
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) png_set_swap(png); /* PNG is big-endian */
    }
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, state->info);
}

static int decode_inside(decode_state *state) {
    if (setjmp(png_jmpbuf(state->png)))
        return state->failure.code != 0 ? state->failure.code : PILOT_PNG_ERR_FORMAT;

    png_structp png = state->png;
    png_set_read_fn(png, state, read_bytes);
    png_set_user_limits(png, state->limits.max_dimension, state->limits.max_dimension);
    png_set_chunk_malloc_max(png, state->limits.max_chunk_bytes);
    /* A bad CRC in an ancillary chunk (the text we keep workflows in) is an
     * error too, not a silently dropped chunk. */
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);

    state->phase = "reading the header and the chunks before the image data";
    png_read_info(png, state->info);
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, state->info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    state->image.width = width;
    state->image.height = height;
    state->image.bit_depth = bit_depth;
    state->image.color_type = color_type;
    state->image.interlaced = interlace == PNG_INTERLACE_ADAM7;
    state->image.has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0
        || png_get_valid(png, state->info, PNG_INFO_tRNS) != 0;
    state->image.sample_bits = bit_depth == 16 ? 16 : 8;
    check_limits(state);

    request_rgba(state, color_type, bit_depth);
    size_t row_bytes = (size_t)width * 4 * (size_t)(state->image.sample_bits / 8);
    if (png_get_channels(png, state->info) != 4 || png_get_rowbytes(png, state->info) != row_bytes)
        pilot_png_fail(png, PILOT_PNG_ERR_FORMAT, "libpng did not produce the expected RGBA layout");

    state->image.pixels = malloc(row_bytes * height);
    state->rows = malloc(sizeof(png_bytep) * height);
    if (state->image.pixels == NULL || state->rows == NULL)
        pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "out of memory allocating the decoded image");
    for (png_uint_32 y = 0; y < height; y++)
        state->rows[y] = (png_bytep)state->image.pixels + row_bytes * y;

    state->phase = "decoding the image data";
    png_read_image(png, state->rows);
    state->phase = "reading the chunks after the image data";
    png_read_end(png, state->end_info);
    collect_text(state, state->info);
    collect_text(state, state->end_info);
    return PILOT_PNG_OK;
}

static int fail_early(int code, const char *text, char *message, size_t capacity) {
    pilot_png_copy_message(message, capacity, text);
    return code;
}

/*
 * Walks the chunk headers before libpng sees the data. libpng allocates a
 * chunk's declared length before reading it: a 1 KB file whose zTXt chunk
 * claims 1.7 GB had it allocate and clear 1.7 GB (found by fuzzing). Here a
 * declared length longer than the bytes that follow is a truncation and a
 * non-IDAT chunk over max_chunk_bytes is over the limit, both refused before
 * any allocation. IDAT is streamed by libpng, so only its length is checked.
 */
static int precheck_chunks(const uint8_t *data, size_t size, pilot_png_limits limits,
                           char *message, size_t message_capacity) {
    size_t offset = 8;
    while (size - offset >= 8) {
        const uint8_t *p = data + offset;
        uint32_t length = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        char type[5] = {0};
        for (int i = 0; i < 4; i++) type[i] = (p[4 + i] >= 0x20 && p[4 + i] < 0x7F) ? (char)p[4 + i] : '?';
        size_t left = size - offset - 8;
        if (length > PNG_UINT_31_MAX) {
            if (message != NULL && message_capacity > 0)
                snprintf(message, message_capacity, "chunk '%s' at offset %zu declares %u bytes, over PNG's 2^31-1",
                         type, offset, length);
            return PILOT_PNG_ERR_FORMAT;
        }
        if ((size_t)length + 4 > left) {
            if (message != NULL && message_capacity > 0)
                snprintf(message, message_capacity,
                         "chunk '%s' at offset %zu declares %u bytes but only %zu follow (while checking the chunk lengths)",
                         type, offset, length, left);
            return PILOT_PNG_ERR_TRUNCATED;
        }
        if (memcmp(p + 4, "IDAT", 4) != 0 && limits.max_chunk_bytes > 0 && length > limits.max_chunk_bytes) {
            if (message != NULL && message_capacity > 0)
                snprintf(message, message_capacity, "chunk '%s' at offset %zu is %u bytes, over the limit of %u bytes per chunk",
                         type, offset, length, (unsigned)limits.max_chunk_bytes);
            return PILOT_PNG_ERR_LIMIT;
        }
        offset += 12 + (size_t)length;
        if (memcmp(p + 4, "IEND", 4) == 0) break;
    }
    return PILOT_PNG_OK;
}

int pilot_png_decode(const uint8_t *data, size_t size, pilot_png_limits limits,
                     pilot_png_image *out, char *message, size_t message_capacity) {
    if (out == NULL) return fail_early(PILOT_PNG_ERR_ARGUMENT, "no output image", message, message_capacity);
    memset(out, 0, sizeof *out);
    if (data == NULL || size == 0)
        return fail_early(PILOT_PNG_ERR_EMPTY, "the data is empty (0 bytes)", message, message_capacity);
    if (png_sig_cmp(data, 0, size < 8 ? size : 8) != 0)
        return fail_early(PILOT_PNG_ERR_SIGNATURE, "not a PNG: the first bytes are not the PNG signature",
                          message, message_capacity);
    if (size < 8)
        return fail_early(PILOT_PNG_ERR_TRUNCATED, "shorter than the 8-byte PNG signature",
                          message, message_capacity);

    int checked = precheck_chunks(data, size, limits, message, message_capacity);
    if (checked != PILOT_PNG_OK) return checked;

    decode_state state;
    memset(&state, 0, sizeof state);
    state.data = data;
    state.size = size;
    state.limits = limits;
    if (state.limits.max_dimension == 0 || state.limits.max_dimension > PNG_UINT_31_MAX)
        state.limits.max_dimension = PNG_UINT_31_MAX;

    int code = PILOT_PNG_ERR_MEMORY;
    state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state.failure,
                                       pilot_png_on_error, pilot_png_on_warning);
    if (state.png != NULL) {
        state.info = png_create_info_struct(state.png);
        state.end_info = png_create_info_struct(state.png);
        if (state.info != NULL && state.end_info != NULL) code = decode_inside(&state);
    }
    if (code == PILOT_PNG_ERR_MEMORY && state.failure.code == 0)
        pilot_png_copy_message(state.failure.message, sizeof state.failure.message,
                               "out of memory creating the libpng reader");

    free(state.rows);
    png_destroy_read_struct(&state.png, &state.info, &state.end_info);
    state.image.warnings = state.failure.warnings;
    if (code != PILOT_PNG_OK) {
        if (message == NULL || message_capacity == 0) {
            /* nowhere to write */
        } else if ((code == PILOT_PNG_ERR_FORMAT || code == PILOT_PNG_ERR_TRUNCATED) && state.phase != NULL) {
            snprintf(message, message_capacity, "%s (while %s)", state.failure.message, state.phase);
        } else if (code == PILOT_PNG_ERR_LIMIT && strstr(state.failure.message, "user limit") != NULL) {
            snprintf(message, message_capacity, "%s; the limit is %u pixels per side",
                     state.failure.message, (unsigned)state.limits.max_dimension);
        } else {
            pilot_png_copy_message(message, message_capacity, state.failure.message);
        }
        pilot_png_image_free(&state.image);
        return code;
    }
    *out = state.image;
    return PILOT_PNG_OK;
}

void pilot_png_image_free(pilot_png_image *image) {
    if (image == NULL) return;
    for (size_t i = 0; i < image->text_count; i++) {
        free(image->text[i].key);
        free(image->text[i].value);
    }
    free(image->text);
    free(image->pixels);
    free(image->warnings);
    memset(image, 0, sizeof *image);
}
