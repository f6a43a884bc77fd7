#include "pilot_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

typedef struct pilot_jpeg_error {
    struct jpeg_error_mgr manager;  /* first: libjpeg casts the pointer */
    jmp_buf jump;
    char *message;
    size_t message_size;
    uint32_t warnings;
} pilot_jpeg_error;

static void pilot_jpeg_error_exit(j_common_ptr cinfo) {
    pilot_jpeg_error *error = (pilot_jpeg_error *)cinfo->err;
    if (error->message && error->message_size) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, text);
        snprintf(error->message, error->message_size, "%s", text);
    }
    longjmp(error->jump, 1);
}

static void pilot_jpeg_emit_message(j_common_ptr cinfo, int level) {
    /* level < 0: a warning (corrupt data); trace messages (>= 0) are ignored. Nothing is printed. */
    if (level < 0) ((pilot_jpeg_error *)cinfo->err)->warnings++;
}

int pilot_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t max_dimension,
                      pilot_rgb8 *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (message && message_size) message[0] = 0;
    if (!data || size == 0) return PILOT_CODEC_ERR_EMPTY;
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) return PILOT_CODEC_ERR_SIGNATURE;

    struct jpeg_decompress_struct cinfo;
    pilot_jpeg_error error;
    memset(&error, 0, sizeof error);
    error.message = message;
    error.message_size = message_size;
    /* volatile: read after a longjmp. */
    uint8_t *volatile pixels = NULL;
    volatile int code = PILOT_CODEC_ERR_FORMAT;

    cinfo.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = pilot_jpeg_error_exit;
    error.manager.emit_message = pilot_jpeg_emit_message;
    if (setjmp(error.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return code;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        if (message && message_size) snprintf(message, message_size, "a CMYK JPEG (convert it to RGB first)");
        code = PILOT_CODEC_ERR_UNSUPPORTED;
        longjmp(error.jump, 1);
    }
    if (cinfo.image_width == 0 || cinfo.image_height == 0 || cinfo.image_width > max_dimension ||
        cinfo.image_height > max_dimension || (uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        if (message && message_size)
            snprintf(message, message_size, "the header declares %u × %u pixels; the limits are %u per side and %llu in all",
                     cinfo.image_width, cinfo.image_height, max_dimension, (unsigned long long)max_pixels);
        code = PILOT_CODEC_ERR_LIMIT;
        longjmp(error.jump, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    pixels = malloc(stride * cinfo.output_height);
    if (!pixels) {
        code = PILOT_CODEC_ERR_MEMORY;
        longjmp(error.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    out->width = cinfo.output_width;
    out->height = cinfo.output_height;
    out->pixels = pixels;
    out->warnings = error.warnings;
    jpeg_destroy_decompress(&cinfo);
    return PILOT_CODEC_OK;
}

void pilot_codec_free(pilot_rgb8 *image) {
    if (!image) return;
    free(image->pixels);
    image->pixels = NULL;
}

int pilot_jpeg_encode(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                      const uint8_t *comment, size_t comment_size,
                      uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (message && message_size) message[0] = 0;
    if (!rgb || width == 0 || height == 0 || width > 65500 || height > 65500) return PILOT_CODEC_ERR_LIMIT;

    struct jpeg_compress_struct cinfo;
    pilot_jpeg_error error;
    memset(&error, 0, sizeof error);
    error.message = message;
    error.message_size = message_size;
    unsigned char *volatile buffer = NULL;
    unsigned long buffer_size = 0;

    cinfo.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = pilot_jpeg_error_exit;
    error.manager.emit_message = pilot_jpeg_emit_message;
    if (setjmp(error.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return PILOT_CODEC_ERR_FORMAT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &buffer_size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    /* The comment as COM segments of at most 65533 bytes each, in order. */
    for (size_t offset = 0; comment && offset < comment_size; offset += 65533) {
        size_t part = comment_size - offset < 65533 ? comment_size - offset : 65533;
        jpeg_write_marker(&cinfo, JPEG_COM, comment + offset, (unsigned int)part);
    }
    size_t stride = (size_t)width * 3;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = buffer_size;
    return PILOT_CODEC_OK;
}

void pilot_codec_free_bytes(uint8_t *bytes) { free(bytes); }
