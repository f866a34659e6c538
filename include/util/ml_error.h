/* ml_error.h — one-line error messages carried up to the command that prints them.
 *
 * Every fallible function in minilora returns 0 on success and -1 on failure, and on
 * failure fills an ml_error with one line (no trailing newline) that names the file, line
 * or tensor and what is wrong. The CLI prints it as "lora-xxx: error: <msg>".
 */
#ifndef ML_ERROR_H
#define ML_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[512];
} ml_error;

/* Formats the message into e->msg (e may be NULL) and returns -1, so callers can write
 * `return ml_fail(e, "%s: bad header", path);`. */
int ml_fail(ml_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "<prefix>: <old message>". Returns -1. */
int ml_wrap(ml_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies s into buf (n bytes, always terminated, truncated if needed) with every control
 * character shown as '?', so text from a file can go into a one-line message. Returns buf. */
const char *ml_one_line(char *buf, size_t n, const char *s);

#endif
