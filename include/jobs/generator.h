/* generator.h — completing prompts with a model, greedily or by sampling (lora-generate).
 *
 * A prompt is text as a user types it: it gets the trailing space every training prompt ends
 * with (unless raw), must encode in the model's vocabulary, must not contain the end-of-text
 * marker and must leave room in the context for at least one new symbol. The completion stops
 * at the end-of-text marker, after max_new symbols, or when the context is full.
 */
#ifndef GENERATOR_H
#define GENERATOR_H

#include <stdint.h>

#include "kvcache.h"
#include "minigpt.h"
#include "ml_error.h"
#include "rng.h"
#include "tokenizer.h"

typedef struct {
    const minigpt *m;   /* borrowed */
    const tok_vocab *v; /* borrowed */
    minigpt_kv kv;      /* the decoder's cache: one sequence of the context; owned */
    float temperature;  /* 0: greedy */
    int max_new, raw;
    rng r;
} generator;

/* Sets up g for m (both borrowed, must outlive g); free with generator_free. */
int generator_init(generator *g, const minigpt *m, const tok_vocab *v, float temperature,
                   int max_new, int raw, uint64_t seed, ml_error *e);
void generator_free(generator *g);

/* Rebuilds g's workspace after the plug-ins installed on its model changed (switching
 * adapters); the sampler's random state goes on as it was. */
int generator_rebuild(generator *g, ml_error *e);

/* Completes one prompt into *out: malloc'ed UTF-8 text, the caller frees it. Fails with a
 * message that says what is wrong with the prompt (empty, unknown symbol, too long, ...).
 * *full (when not NULL) is 1 when the completion stopped only because the context was full:
 * the model had not ended it, so it may be cut (a shorter prompt leaves it more room); 0 when
 * it ended at the end-of-text marker or at max_new symbols. */
int generator_complete(generator *g, const char *text, char **out, int *full, ml_error *e);

#endif
