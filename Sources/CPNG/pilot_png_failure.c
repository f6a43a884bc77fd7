/*
 * pilot_png_failure.c — libpng's error and warning callbacks.
 *
 * libpng calls the error callback and expects it not to return; we record
 * the message and longjmp to the setjmp that every pilot_png_* entry point
 * placed on png_jmpbuf before its first libpng call. Warnings are kept, not
 * printed, so a daemon's stderr stays clean.
 */
#include "pilot_png_failure.h"
#include "pilot_png.h"

#include <stdlib.h>
#include <string.h>

/* Enough for the warnings any sane file produces; more are counted only. */
enum { MAX_WARNINGS = 16, MAX_WARNINGS_BYTES = 4096 };

void pilot_png_copy_message(char *destination, size_t capacity, const char *source) {
    if (destination == NULL || capacity == 0) return;
    if (source == NULL) source = "";
    size_t length = strlen(source);
    if (length >= capacity) length = capacity - 1;
    memcpy(destination, source, length);
    destination[length] = '\0';
}

/* libpng's messages do not say which kind of failure they are; running out
 * of memory (pngmem.c, pngrutil.c) is the one worth telling apart. */
static int classify(const char *message) {
    if (strstr(message, "ut of memory") != NULL || strstr(message, "nsufficient memory") != NULL)
        return PILOT_PNG_ERR_MEMORY;
    return PILOT_PNG_ERR_FORMAT;
}

/* libpng often warns with the specifics and then fails with a summary
 * ("Image width is zero in IHDR", then "Invalid IHDR data"), so the message
 * carries the warnings too. */
static void compose(pilot_png_failure *failure, const char *message) {
    char *out = failure->message;
    size_t capacity = sizeof failure->message;
    pilot_png_copy_message(out, capacity, message);
    if (failure->warnings == NULL) return;
    size_t used = strlen(out);
    const char *prefix = " (after warnings: ";
    for (const char *p = prefix; *p != '\0' && used + 1 < capacity; p++) out[used++] = *p;
    for (const char *p = failure->warnings; *p != '\0' && used + 1 < capacity; p++) {
        if (*p == '\n') {
            out[used++] = ';';
            if (used + 1 < capacity) out[used++] = ' ';
        } else {
            out[used++] = *p;
        }
    }
    if (used + 1 < capacity) out[used++] = ')';
    out[used] = '\0';
}

void pilot_png_on_error(png_structp png, png_const_charp message) {
    pilot_png_failure *failure = (pilot_png_failure *)png_get_error_ptr(png);
    if (message == NULL) message = "unknown libpng error";
    if (failure->code == 0) {
        compose(failure, message);
        /* The memory kind comes from the error itself; the limit kind is
         * named only by a warning that precedes "Invalid IHDR data". */
        failure->code = classify(message);
        if (failure->code == PILOT_PNG_ERR_FORMAT && strstr(failure->message, "exceeds user limit") != NULL)
            failure->code = PILOT_PNG_ERR_LIMIT;
    }
    png_longjmp(png, 1);
}

void pilot_png_fail(png_structp png, int code, const char *message) {
    pilot_png_failure *failure = (pilot_png_failure *)png_get_error_ptr(png);
    failure->code = code;
    pilot_png_copy_message(failure->message, sizeof failure->message, message);
    png_error(png, message);
}

void pilot_png_on_warning(png_structp png, png_const_charp message) {
    pilot_png_failure *failure = (pilot_png_failure *)png_get_error_ptr(png);
    if (failure == NULL || message == NULL) return;
    failure->warnings_count += 1;
    if (failure->warnings_count > MAX_WARNINGS) return;
    size_t length = strlen(message);
    size_t needed = failure->warnings_length + length + 2; /* separator + NUL */
    if (needed > MAX_WARNINGS_BYTES) return;
    char *grown = realloc(failure->warnings, needed);
    if (grown == NULL) return; /* losing a warning is better than failing */
    failure->warnings = grown;
    if (failure->warnings_length > 0) grown[failure->warnings_length++] = '\n';
    memcpy(grown + failure->warnings_length, message, length);
    failure->warnings_length += length;
    grown[failure->warnings_length] = '\0';
}

void pilot_png_failure_release(pilot_png_failure *failure) {
    free(failure->warnings);
    failure->warnings = NULL;
    failure->warnings_length = 0;
    failure->warnings_count = 0;
}
