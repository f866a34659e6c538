/* fuzz_common.h — shared by the fuzz targets (tests/fuzz/fuzz_*.c) and by their plain replay
 * in tests/test_regress.c.
 *
 * Each target defines `int fuzz_<name>_one(const uint8_t *data, size_t size, ml_error *err)`:
 * it feeds one input to the library entry points, checks the invariants below, and returns 1
 * when the input was accepted by the main parser, 0 when it was refused (err then holds the
 * parser's message). A broken invariant goes through fz_fail: under libFuzzer (the default)
 * it prints the reason and aborts, so the fuzzer records the input as a crash; compiled with
 * -DFUZZ_REPLAY it prints the reason and counts it in fz_violations, which the cmocka replay
 * asserts to be zero.
 *
 * Invariants common to every target: a refused input comes with a message that is non-empty,
 * bounded, one line (no '\n', '\r' or other control character inside) and valid UTF-8: the
 * contract of ml_error.h (fz_msg_problem).
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ml_error.h"
#include "text.h"

static int fz_violations;

__attribute__((format(printf, 1, 2))) static void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz invariant broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fz_violations++;
#ifndef FUZZ_REPLAY
    abort();
#endif
}

/* The contract of ml_error.h for a refused input's message m (NULL when it is fine, else the
 * broken rule): non-empty, terminated within an ml_error, one line (no control character at
 * all: no '\n', '\r', C0 byte or DEL) and valid UTF-8 (the one-line rule of text.h escapes
 * invalid bytes). Shared by fz_check_msg and tests/test_regress.c. */
static const char *fz_msg_problem(const char *m) {
    if (!m[0]) return "the message is empty";
    if (strnlen(m, sizeof(((ml_error *)0)->msg)) >= sizeof(((ml_error *)0)->msg))
        return "the message is not terminated within an ml_error";
    if (text_has_control(m)) return "the message is not one line (it holds a control character)";
    if (!text_utf8_valid(m)) return "the message is not valid UTF-8";
    return NULL;
}

/* A message obeys fz_msg_problem and starts with `prefix` (the label or path given to the
 * parser; NULL: no prefix check). `what` names the call for the report. */
static void fz_check_msg(const char *what, const ml_error *e, const char *prefix) {
    const char *m = e->msg, *why = fz_msg_problem(m);
    if (why) {
        fz_fail("%s: %s: \"%.*s\"", what, why, (int)sizeof e->msg, m);
        return;
    }
    if (prefix && strncmp(m, prefix, strlen(prefix)) != 0)
        fz_fail("%s: message does not start with '%s': \"%s\"", what, prefix, m);
}

/* A private in-memory file (memfd) holding the input, for code that only takes paths
 * (lora_load, model_config_load, --config files). Reused across calls; path is
 * /proc/self/fd/N. Returns the path, or NULL when no such file can be made. */
__attribute__((unused)) static const char *fz_memfile(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
#ifdef SYS_memfd_create
        fd = (int)syscall(SYS_memfd_create, "fuzz-input", 0u);
#endif
        if (fd < 0) {
            char tmpl[] = "/tmp/minilora-fuzz-XXXXXX";
            fd = mkstemp(tmpl);
            if (fd < 0) return NULL;
            unlink(tmpl);
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w <= 0) return NULL;
        done += (size_t)w;
    }
    return path;
}

/* NUL-terminated malloc'ed copy of the input (text parsers take C strings). */
__attribute__((unused)) static char *fz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
