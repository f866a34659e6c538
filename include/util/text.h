/* text.h — the one rule for untrusted text in messages, and the small text helpers every layer
 * shares (UTF-8 decoding, JSON string output, file stems, a monotonic clock).
 *
 * The rule (ml_one_line): text that comes from a file, the command line or the environment
 * is never put into a message as it is. It is copied with
 *   - every valid, printable UTF-8 character kept as it is;
 *   - control characters shown as C escapes: \n \r \t, other C0 bytes and DEL as \xNN, and
 *     the C1 controls and the Unicode line/paragraph separators (U+0080..U+009F, U+2028,
 *     U+2029) as \uNNNN;
 *   - every byte that is not part of valid UTF-8 shown as \xNN;
 *   - the length bounded by the buffer: when the copy does not fit, it is cut on a character
 *     boundary and ends with "…".
 * Backslashes are kept as they are. The result is one line of valid UTF-8. ml_fail and
 * ml_wrap (ml_error.h) apply the same rule to the whole formatted message as a last defence.
 */
#ifndef TEXT_H
#define TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Decodes the UTF-8 sequence at s (at most n bytes readable). Returns its length 1..4, or 0
 * when it is not valid UTF-8 (truncated, overlong, a surrogate, above U+10FFFF, a stray
 * continuation byte). *cp (may be NULL) gets the code point on success. */
size_t text_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* 1 when the NUL-terminated s is entirely valid UTF-8, else 0. */
int text_utf8_valid(const char *s);

/* 1 when s holds a C0 control byte (below 0x20) or DEL, else 0. */
int text_has_control(const char *s);

/* The rule above: a one-line, bounded copy of the untrusted s (NULL reads as "") in buf
 * (n bytes, caller-owned; always terminated when n > 0). Returns buf, for use as a printf
 * argument. */
const char *ml_one_line(char *buf, size_t n, const char *s);

/* As ml_one_line, but when the one-line copy of s does not fit in buf (n bytes, caller-owned),
 * keeps its first `head` bytes and as many of its last bytes as fit, cut on character
 * boundaries, with "…" between: "a/very/lo…/end.jsonl:3: reason" keeps the file's name and
 * what follows it. Returns buf. */
const char *text_head_tail(char *buf, size_t n, const char *s, size_t head);

/* How many bytes text_short_path keeps: the head, and the whole (head + "…" + tail + NUL). */
#define TEXT_PATH_HEAD 60
#define TEXT_PATH_SHOWN (TEXT_PATH_HEAD + 3 + 120 + 1)

/* A path (untrusted) for a message: one line (ml_one_line), and when longer than
 * TEXT_PATH_SHOWN - 1 bytes, its first ~60 and last ~120 bytes with "…" between, so that the
 * rest of the message survives a 4,000-character path. buf: n bytes, caller-owned
 * (TEXT_PATH_SHOWN is enough). Returns buf. */
const char *text_short_path(char *buf, size_t n, const char *path);

/* 1 when the JSON text s (n bytes, not necessarily terminated) holds a NUL character: a raw
 * NUL byte or the escape \u0000 (which cJSON decodes and then cuts the string at), else 0.
 * An escaped backslash followed by "u0000" is text, not a NUL. */
int text_json_has_nul(const char *s, size_t n);

/* Writes s to f as a JSON string literal: quotes, backslashes and control bytes (below 0x20
 * and DEL) escaped; other bytes as they are. */
void text_json_print(FILE *f, const char *s);

/* Writes the number v to f in JSON with printf format fmt (e.g. "%.6f"), or null when v is
 * not finite (JSON has no nan or inf): the one place the --json printers put numbers through. */
void text_json_number(FILE *f, const char *fmt, double v);

/* The file name of path without its directories and its last extension
 * ("data/irreg.jsonl" -> "irreg") into buf (n bytes, caller-owned, cut if needed). Returns
 * buf. */
const char *text_stem(char *buf, size_t n, const char *path);

/* Seconds on a monotonic clock (CLOCK_MONOTONIC), for measuring intervals. */
double ml_now_s(void);

#endif
