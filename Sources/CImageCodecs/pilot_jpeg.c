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
