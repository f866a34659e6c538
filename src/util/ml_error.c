/* ml_error.c — formatting of one-line error messages. */
#include "ml_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Bytes of a too-long message kept from its beginning; the rest of e->msg keeps its end, where
 * the line number and the reason are ("<4,000-character path>:3: reason"). */
#define KEEP_HEAD 160

/* The whole formatted message in a malloc'ed string (the caller frees it), or NULL when out of
 * memory. */
static char *format_all(const char *fmt, va_list ap) {
    va_list aq;
    va_copy(aq, ap);
    const int len = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    char *raw = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (raw) vsnprintf(raw, (size_t)len + 1, fmt, ap);
    return raw;
}

/* The one-line rule (text.h) with the head and the tail kept, into e->msg. */
static void store(ml_error *e, const char *raw) {
    text_head_tail(e->msg, sizeof e->msg, raw, KEEP_HEAD);
}

int ml_fail(ml_error *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    char *raw = format_all(fmt, ap);
    va_end(ap);
    if (raw) {
        store(e, raw); /* last defence: one line whatever the caller passed */
    } else {           /* out of memory: what fits */
        char small[sizeof e->msg];
        va_start(ap, fmt);
        vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        ml_one_line(e->msg, sizeof e->msg, small);
    }
    free(raw);
    return -1;
}

int ml_wrap(ml_error *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    char *p = format_all(fmt, ap);
    va_end(ap);
    /* an over-long prefix (a path) keeps its head and tail too, and leaves room for the old
     * message */
    text_head_tail(prefix, sizeof prefix / 2, p ? p : "", KEEP_HEAD / 2);
    free(p);
    char raw[2 * sizeof e->msg + 2];
    snprintf(raw, sizeof raw, "%s: %s", prefix, e->msg);
    store(e, raw);
    return -1;
}
