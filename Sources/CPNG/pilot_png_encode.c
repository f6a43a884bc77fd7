/*
 * pilot_png_encode.c — encode a raster in PNG's own sample layout, plus text
 * chunks, into a growable memory buffer.
 *
 * As in the decoder, encode_inside is the only function that calls setjmp
 * and every allocation is recorded in an encode_state owned by the caller's
 * frame, so each failure path frees the same way.
 */
#include "pilot_png.h"
#include "pilot_png_failure.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct encode_state {
    const pilot_png_raster *raster;
    const pilot_png_text_entry *entries;
    size_t entry_count;
    pilot_png_failure failure;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    png_textp text;      /* entry_count items; key/text are malloc'd copies */
    pilot_png_buffer buffer;
} encode_state;

size_t pilot_png_row_bytes(uint32_t width, int color_type, int bit_depth) {
    size_t channels;
    switch (color_type) {
    case PILOT_PNG_COLOR_GRAY:
        if (bit_depth != 1 && bit_depth != 2 && bit_depth != 4 && bit_depth != 8 && bit_depth != 16) return 0;
        channels = 1;
        break;
    case PILOT_PNG_COLOR_PALETTE:
        if (bit_depth != 1 && bit_depth != 2 && bit_depth != 4 && bit_depth != 8) return 0;
        channels = 1;
        break;
    case PILOT_PNG_COLOR_RGB: channels = 3; break;
    case PILOT_PNG_COLOR_GRAY_ALPHA: channels = 2; break;
    case PILOT_PNG_COLOR_RGBA: channels = 4; break;
    default: return 0;
    }
    if (channels > 1 && bit_depth != 8 && bit_depth != 16) return 0;
    if (width == 0 || width > PNG_UINT_31_MAX) return 0;
    return ((size_t)width * channels * (size_t)bit_depth + 7) / 8;
}

static void write_bytes(png_structp png, png_bytep source, size_t length) {
    encode_state *state = (encode_state *)png_get_io_ptr(png);
    pilot_png_buffer *buffer = &state->buffer;
    if (length > SIZE_MAX - buffer->size)
        pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "encoded PNG is too large to address in memory");
    if (buffer->size + length > buffer->capacity) {
        size_t capacity = buffer->capacity < 4096 ? 4096 : buffer->capacity;
        while (capacity < buffer->size + length)
            capacity = capacity > SIZE_MAX / 2 ? buffer->size + length : capacity * 2;
        uint8_t *grown = realloc(buffer->data, capacity);
        if (grown == NULL) pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "out of memory growing the PNG buffer");
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, source, length);
    buffer->size += length;
}

static void flush_nothing(png_structp png) { (void)png; }

static char *terminated_copy(png_structp png, const uint8_t *bytes, size_t length) {
    char *copy = malloc(length + 1);
    if (copy == NULL) pilot_png_fail(png, PILOT_PNG_ERR_MEMORY, "out of memory copying text entries");
    if (length > 0) memcpy(copy, bytes, length);
    copy[length] = '\0';
    return copy;
}

static void set_text(encode_state *state) {
    if (state->entry_count == 0) return;
    if (state->entry_count > INT32_MAX)
        pilot_png_fail(state->png, PILOT_PNG_ERR_ARGUMENT, "too many text entries");
    state->text = calloc(state->entry_count, sizeof *state->text);
    if (state->text == NULL) pilot_png_fail(state->png, PILOT_PNG_ERR_MEMORY, "out of memory for text entries");
    for (size_t i = 0; i < state->entry_count; i++) {
        const pilot_png_text_entry *entry = &state->entries[i];
        png_textp text = &state->text[i];
        switch (entry->kind) {
        case PILOT_PNG_TEXT_LATIN1: text->compression = PNG_TEXT_COMPRESSION_NONE; break;
        case PILOT_PNG_TEXT_LATIN1_COMPRESSED: text->compression = PNG_TEXT_COMPRESSION_zTXt; break;
        case PILOT_PNG_TEXT_UTF8: text->compression = PNG_ITXT_COMPRESSION_NONE; break;
        case PILOT_PNG_TEXT_UTF8_COMPRESSED: text->compression = PNG_ITXT_COMPRESSION_zTXt; break;
        default: pilot_png_fail(state->png, PILOT_PNG_ERR_ARGUMENT, "unknown text entry kind");
        }
        if (entry->key_length == 0 || entry->key_length > 79)
            pilot_png_fail(state->png, PILOT_PNG_ERR_ARGUMENT, "a text key must be 1 to 79 bytes");
        text->key = terminated_copy(state->png, entry->key, entry->key_length);
        text->text = terminated_copy(state->png, entry->value, entry->value_length);
    }
    png_set_text(state->png, state->info, state->text, (int)state->entry_count);
    /* png_set_text only warns when it cannot store an entry; make it fail. */
    if ((size_t)png_get_text(state->png, state->info, NULL, NULL) != state->entry_count)
        pilot_png_fail(state->png, PILOT_PNG_ERR_FORMAT, "libpng refused a text entry");
}

static void set_palette(encode_state *state) {
    const pilot_png_raster *raster = state->raster;
    if (raster->palette_entries > 0) {
        png_color colors[256];
        for (int i = 0; i < raster->palette_entries; i++) {
            colors[i].red = raster->palette[3 * i];
            colors[i].green = raster->palette[3 * i + 1];
            colors[i].blue = raster->palette[3 * i + 2];
        }
        png_set_PLTE(state->png, state->info, colors, raster->palette_entries);
    }
    if (raster->palette_alpha != NULL && raster->palette_alpha_entries > 0) {
        png_set_tRNS(state->png, state->info, raster->palette_alpha, raster->palette_alpha_entries, NULL);
    } else if (raster->transparent != NULL) {
        png_color_16 color;
        memset(&color, 0, sizeof color);
        if (raster->color_type == PILOT_PNG_COLOR_GRAY) {
            color.gray = raster->transparent[0];
        } else {
            color.red = raster->transparent[0];
            color.green = raster->transparent[1];
            color.blue = raster->transparent[2];
        }
        png_set_tRNS(state->png, state->info, NULL, 0, &color);
    }
}

static int encode_inside(encode_state *state, size_t row_bytes) {
    if (setjmp(png_jmpbuf(state->png)))
        return state->failure.code != 0 ? state->failure.code : PILOT_PNG_ERR_FORMAT;

    const pilot_png_raster *raster = state->raster;
    png_set_write_fn(state->png, state, write_bytes, flush_nothing);
    png_set_IHDR(state->png, state->info, raster->width, raster->height, raster->bit_depth,
                 raster->color_type, raster->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    set_palette(state);
    set_text(state);

    state->rows = malloc(sizeof(png_bytep) * raster->height);
    if (state->rows == NULL) pilot_png_fail(state->png, PILOT_PNG_ERR_MEMORY, "out of memory for row pointers");
    for (uint32_t y = 0; y < raster->height; y++)
        state->rows[y] = (png_bytep)(uintptr_t)(raster->rows + row_bytes * y); /* libpng copies rows */

    png_write_info(state->png, state->info);
    png_write_image(state->png, state->rows);
    png_write_end(state->png, NULL);
    return PILOT_PNG_OK;
}

/* Checks what libpng would otherwise reject with a less specific message. */
static const char *invalid_raster(const pilot_png_raster *raster, size_t row_bytes) {
    if (raster->width == 0 || raster->height == 0) return "image width and height must be positive";
    if (raster->width > PNG_UINT_31_MAX || raster->height > PNG_UINT_31_MAX) return "image is too large for PNG";
    if (row_bytes == 0) return "unsupported combination of color type and bit depth";
    if (raster->rows == NULL || raster->rows_size / row_bytes != raster->height
        || raster->rows_size % row_bytes != 0)
        return "pixel data size does not match width, height, color type and bit depth";
    if (raster->color_type == PILOT_PNG_COLOR_PALETTE) {
        if (raster->palette == NULL || raster->palette_entries < 1 || raster->palette_entries > 256
            || raster->palette_entries > (1 << raster->bit_depth))
            return "a palette image needs 1 to 2^bit_depth (at most 256) palette entries";
        if (raster->palette_alpha_entries < 0 || raster->palette_alpha_entries > raster->palette_entries)
            return "palette transparency has more entries than the palette";
    } else if (raster->palette_alpha != NULL) {
        return "palette transparency given for an image without a palette";
    }
    if (raster->transparent != NULL && raster->color_type != PILOT_PNG_COLOR_GRAY
        && raster->color_type != PILOT_PNG_COLOR_RGB)
        return "a transparent color is only allowed for gray and RGB images";
    return NULL;
}

int pilot_png_encode(const pilot_png_raster *raster, const pilot_png_text_entry *text, size_t text_count,
                     pilot_png_buffer *out, char *message, size_t message_capacity) {
    if (out == NULL || raster == NULL || (text == NULL && text_count > 0)) {
        pilot_png_copy_message(message, message_capacity, "missing raster, text or output buffer");
        return PILOT_PNG_ERR_ARGUMENT;
    }
    memset(out, 0, sizeof *out);
    size_t row_bytes = pilot_png_row_bytes(raster->width, raster->color_type, raster->bit_depth);
    const char *invalid = invalid_raster(raster, row_bytes);
    if (invalid != NULL) {
        pilot_png_copy_message(message, message_capacity, invalid);
        return PILOT_PNG_ERR_ARGUMENT;
    }

    encode_state state;
    memset(&state, 0, sizeof state);
    state.raster = raster;
    state.entries = text;
    state.entry_count = text_count;

    int code = PILOT_PNG_ERR_MEMORY;
    state.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state.failure,
                                        pilot_png_on_error, pilot_png_on_warning);
    if (state.png != NULL) {
        state.info = png_create_info_struct(state.png);
        if (state.info != NULL) code = encode_inside(&state, row_bytes);
    }
    if (code == PILOT_PNG_ERR_MEMORY && state.failure.code == 0)
        pilot_png_copy_message(state.failure.message, sizeof state.failure.message,
                               "out of memory creating the libpng writer");

    png_destroy_write_struct(&state.png, &state.info);
    free(state.rows);
    if (state.text != NULL) {
        for (size_t i = 0; i < state.entry_count; i++) {
            free(state.text[i].key);
            free(state.text[i].text);
        }
        free(state.text);
    }
    pilot_png_failure_release(&state.failure);
    if (code != PILOT_PNG_OK) {
        pilot_png_copy_message(message, message_capacity, state.failure.message);
        pilot_png_buffer_free(&state.buffer);
        return code;
    }
    *out = state.buffer;
    return PILOT_PNG_OK;
}

void pilot_png_buffer_free(pilot_png_buffer *buffer) {
    if (buffer == NULL) return;
    free(buffer->data);
    memset(buffer, 0, sizeof *buffer);
}
