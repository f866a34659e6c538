/* ml_error.h — one-line error messages carried up to the command that prints them.
 *
 * Every fallible function in minilora returns 0 on success and -1 on failure, and on
 * failure fills an ml_error with one line (no trailing newline) that names the file, line
 * or tensor and what is wrong. The CLI prints it as "lora-xxx: error: <msg>".
 */
#ifndef ML_ERROR_H
#define ML_ERROR_H

#include <stddef.h>

#include "text.h" /* ml_one_line: the rule for untrusted text in messages */

typedef struct {
    char msg[512];
} ml_error;

/* Formats the message into e->msg (e may be NULL) and returns -1, so callers can write
 * `return ml_fail(e, "%s: bad header", path);`. Untrusted text should still go through
 * ml_one_line (text.h) into the arguments; as a last defence the whole formatted message is put
 * through it too, so e->msg is always one line of valid UTF-8, cut with "…" when too long. */
int ml_fail(ml_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "<prefix>: <old message>", under the same one-line rule.
 * Returns -1. */
int ml_wrap(ml_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
