/* ml_error.c — formatting of one-line error messages. */
#include "ml_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

/* The formatted text before the one-line rule: room for escapes to expand and still fill
 * e->msg, the rest shows as "…". */
#define RAW_CAP (2 * sizeof(((ml_error *)0)->msg))

int ml_fail(ml_error *e, const char *fmt, ...) {
    if (!e) return -1;
    char raw[RAW_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    ml_one_line(e->msg, sizeof e->msg, raw); /* last defence: one line whatever the caller passed */
    return -1;
}

int ml_wrap(ml_error *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[256], raw[RAW_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* prefix, ": ", then as much of the old message as fits */
    snprintf(raw, sizeof raw, "%s: %.*s", prefix, (int)sizeof e->msg, e->msg);
    ml_one_line(e->msg, sizeof e->msg, raw);
    return -1;
}
