/* tokenizer.h — the character-level tokenizer whose vocabulary lives in the checkpoint.
 *
 * The vocabulary is a JSON array of symbols (index = token id), each one UTF-8 character;
 * token 0 is the end-of-text marker "\n". Encoding maps each character of a UTF-8 string to
 * its id; a character outside the vocabulary is an error that names it and its place.
 */
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include "ml_error.h"

#define TOK_MAX_VOCAB 256
#define TOK_END 0

typedef struct {
    int n;                      /* vocabulary size */
    char sym[TOK_MAX_VOCAB][5]; /* each symbol's UTF-8 bytes, NUL-terminated */
    int ascii[128];             /* id of each ASCII character, or -1 */
} tok_vocab;

/* Builds a vocabulary from a JSON array of one-character strings (the checkpoint's "vocab"
 * metadata or the "vocab" key of configs/minigpt.json). Refuses non-arrays, entries that are
 * not exactly one UTF-8 character, duplicates, and a token 0 other than "\n". */
int tok_from_json(tok_vocab *v, const char *json_array, const char *label, ml_error *e);

/* The vocabulary as compact JSON text; malloc'ed, caller frees; NULL when out of memory. */
char *tok_to_json(const tok_vocab *v);

/* Encodes text into ids[0..*n). Fails with "unknown symbol 'é' (U+00E9) at character 5",
 * "invalid UTF-8 byte 0xff at character 3", or "longer than N symbols" (at most max_ids
 * ids are written). Character positions count from 1. */
int tok_encode(const tok_vocab *v, const char *text, int *ids, int max_ids, int *n, ml_error *e);

/* Appends the symbols of ids[0..n) to out (a buffer of cap bytes, always NUL-terminated,
 * truncated if too small). Ids outside the vocabulary print as "?". Returns out. */
char *tok_decode(const tok_vocab *v, const int *ids, int n, char *out, int cap);

#endif
