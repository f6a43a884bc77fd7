/*
 * pilot_png_failure.h — private to CPNG: how libpng's error and warning
 * callbacks record what went wrong, shared by the decoder and the encoder.
 */
#ifndef PILOT_PNG_FAILURE_H
#define PILOT_PNG_FAILURE_H

#include <png.h>
#include <stddef.h>

/* The error pointer handed to libpng. `code` may be set before png_error by
 * code that knows the kind of failure (a truncated read, a limit); libpng's
 * own errors leave it 0 and are classified in the error callback. */
typedef struct pilot_png_failure {
    int code;
    char message[512];
    char *warnings;          /* malloc'd, "\n"-separated, or NULL */
    size_t warnings_length;
    size_t warnings_count;
} pilot_png_failure;

/* libpng error callback: records the message, then longjmps back to the
 * setjmp of the pilot_png_* function on the stack. Never returns. */
void pilot_png_on_error(png_structp png, png_const_charp message);

/* libpng warning callback: appends to failure->warnings (bounded) instead of
 * printing to stderr. */
void pilot_png_on_warning(png_structp png, png_const_charp message);

/* Fails the libpng operation in progress with a known code and message. */
void pilot_png_fail(png_structp png, int code, const char *message);

/* Copies a NUL-terminated message into a caller buffer, truncating safely. */
void pilot_png_copy_message(char *destination, size_t capacity, const char *source);

/* Frees the recorded warnings. */
void pilot_png_failure_release(pilot_png_failure *failure);

#endif /* PILOT_PNG_FAILURE_H */
