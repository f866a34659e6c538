/* dataset.h — JSONL examples, tokenized and checked against the context.
 *
 * One JSON object per line, either {"prompt": P, "completion": C} (loss on the completion and
 * the end token; optional "verb", "form", "distractor") or {"text": X} (loss on every token
 * after the first). Each example becomes the sequence tokens(P) + tokens(C) + [0], which must
 * fit the context: nothing is ever truncated. Every problem is an error naming file:line.
 */
#ifndef DATASET_H
#define DATASET_H

#include <stddef.h>

#include "ml_error.h"
#include "tokenizer.h"

typedef struct {
    int line;               /* 1-based line in the file */
    int n_prompt;           /* prompt tokens (0 for a text record) */
    int n_completion;       /* completion tokens + the end token */
    int n_distractor;       /* distractor tokens + the end token, or 0 */
    int *tokens;            /* prompt ⊕ completion ⊕ [0]: n_prompt + n_completion ids */
    int *distractor;        /* distractor ⊕ [0], or NULL */
    const char *prompt;     /* "" for a text record */
    const char *completion; /* the text for a text record */
    const char *verb, *form, *distractor_text; /* NULL when absent */
} ds_example;

typedef struct {
    char *path; /* owned copy */
    int n;
    ds_example *ex;    /* owned */
    int max_len;       /* longest sequence, in tokens */
    int *token_pool;   /* owned; examples point into it */
    char *string_pool; /* owned; examples point into it */
} dataset;

/* Loads and tokenizes a JSONL file; every sequence must be at most `context` tokens.
 * Errors: "data/x.jsonl:12: not valid JSON", "...:12: missing \"completion\"",
 * "...:12: \"prompt\" is not a string", "...:12: prompt: unknown symbol 'é' (U+00E9) at
 * character 5", "...:12: sequence is 40 tokens with the end token, longer than the context
 * of 32", "data/x.jsonl: no examples". Free with ds_free. */
int ds_load(dataset *d, const char *path, const tok_vocab *v, int context, ml_error *e);

/* The same from text[0..n) already in memory (need not be NUL-terminated; NUL bytes are
 * refused per line); label takes the place of the path in d->path and in messages. ds_load
 * reads the file and calls this. Free with ds_free. */
int ds_parse(dataset *d, const char *label, const char *text, size_t n, const tok_vocab *v,
             int context, ml_error *e);
void ds_free(dataset *d);

/* One dataset holding the examples of parts[0..n) in order (copied: the parts may be freed
 * afterwards); its path is the parts' paths joined by '+'. Free with ds_free. */
int ds_concat(dataset *out, const dataset *parts, int n, ml_error *e);

/* Number of loss-bearing target positions of an example (completion + end token, or the
 * whole text but its first token). */
int ds_targets(const ds_example *x);

/* Lays out examples ex[0..B) as a batch of T positions: tokens (B,T) are each sequence minus
 * its last token, padded with 0; targets (B,T) are the next tokens on loss-bearing positions
 * and -1 elsewhere. T must be at least the longest sequence minus one. Returns the number of
 * unmasked targets. */
int ds_batch(const ds_example *const *ex, int B, int T, int *tokens, int *targets);

/* Longest sequence minus one among ex[0..B): the smallest T that holds them. */
int ds_batch_T(const ds_example *const *ex, int B);

#endif
