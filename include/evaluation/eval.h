/* eval.h — the metrics of SPEC §6 on one dataset: greedy exact match, preference for the
 * target over the distractor, and perplexity of the completions. */
#ifndef EVAL_H
#define EVAL_H

#include "dataset.h"
#include "grad_engine.h"
#include "kvcache.h"
#include "rng.h"

#define EVAL_MAX_PRED 256

/* What eval_greedy and eval_sample return when the model's logits are not finite. */
#define EVAL_NOT_FINITE (-2)

typedef struct {
    int correct;                    /* greedy decoding reproduced the completion exactly */
    double logp_target;             /* log P(completion ⊕ end | prompt), natural log */
    double logp_distractor;         /* log P(distractor ⊕ end | prompt), or NAN without one */
    int n_target_tokens;            /* completion tokens + the end token */
    char prediction[EVAL_MAX_PRED]; /* greedy completion text, without the end token */
} eval_item;

typedef struct {
    int n; /* examples */
    int correct;
    int n_pref, pref_correct; /* examples with a distractor; those preferring the target */
    double nll;               /* Σ −logp_target */
    long tokens;              /* Σ n_target_tokens */
} eval_totals;

/* Scores every example of d with the model behind g (plug-ins included). items: d->n entries
 * (caller-owned). Runs on all of g's threads; results do not depend on the thread count. */
void eval_dataset(engine *g, const tok_vocab *v, const dataset *d, eval_item *items);

/* Totals over the examples whose verb equals `verb` (NULL: all). */
eval_totals eval_sum(const dataset *d, const eval_item *items, const char *verb);

/* Perplexity exp(nll / tokens); exact-match and preference accuracies as fractions. */
double eval_ppl(const eval_totals *t);

/* ---- collateral damage ------------------------------------------------------------------
 * What a fine-tune was not meant to change: the non-past forms (3sg, base, ing) of the verbs
 * it taught. One cell per (verb, non-past form) of a dataset, scored by the base and by the
 * adapted model; the drop is the exact-match change in points, positive when the model lost. */

typedef struct {
    const char *verb, *form; /* borrowed from the dataset */
    int n;                   /* examples */
    int base_correct, model_correct;
} eval_cell;

/* 1 when form is 3sg, base or ing (the forms a past-tense fine-tune must leave alone). */
int eval_is_nonpast(const char *form);

/* Fills cells (capacity max) with one entry per (verb, non-past form) of d, in order of first
 * appearance; examples without verb or form, or of another form, are skipped. Returns the
 * number of cells (at most max). */
int eval_collateral(const dataset *d, const eval_item *base, const eval_item *model,
                    eval_cell *cells, int max);

/* A cell's drop in points: 100·(base_correct − model_correct)/n. */
double eval_cell_drop(const eval_cell *c);

/* Index of the cell with the largest drop (the first on ties), or -1 when n is 0. */
int eval_largest_drop(const eval_cell *cells, int n);

/* Logits (every example's whole sequence, padded to the context: (Σ n, context, V)) of the
 * model behind m on each dataset of sets[0..nsets), in batches; buffers come from m's config.
 * Returns a malloc'ed array the caller frees, its float count in *n; NULL with e filled. */
float *eval_logits(const minigpt *m, const dataset *const *sets, int nsets, size_t *n, ml_error *e);

/* The largest |logit(b) − logit(a)| over every real position (padding skipped) of every example
 * of sets[0..nsets), streamed in batches. a_frozen: a runs with its plug-ins skipped
 * (minigpt_forward_frozen), so a = b with an adapter installed compares the adapter against its
 * own base. The two models must share the config. Batches are shared out over `threads`
 * threads (0: runtime_threads' choice), each with its own buffers of the same shapes, so the
 * result is the same for any thread count. Result in *out (NaN when any logit difference is
 * NaN); -1 with e filled. */
int eval_max_logit_diff(const minigpt *a, int a_frozen, const minigpt *b,
                        const dataset *const *sets, int nsets, int threads, double *out,
                        ml_error *e);

/* Sampled completion of one prompt at temperature t > 0 (softmax(logits / t), draws from r):
 * as eval_greedy, out holds up to min(max_new, context − n_prompt) ids; returns their count,
 * -1 when out of memory, or EVAL_NOT_FINITE when a step's logits are not finite. */
int eval_sample(const minigpt *m, minigpt_kv *kv, const int *prompt, int n_prompt, int *out,
                int max_new, float t, rng *r);

/* Greedy completion of one prompt given as ids (plug-ins included), at most max_new tokens,
 * stopping at the end token or the context limit; writes ids to out and returns their count
 * (the end token excluded), -1 when out of memory or the prompt does not fit, or
 * EVAL_NOT_FINITE when a step's logits are not finite. Decodes over the cache kv (built after
 * the plug-ins were installed): one prefill of the prompt, then one row per new token. */
int eval_greedy(const minigpt *m, minigpt_kv *kv, const int *prompt, int n_prompt, int *out,
                int max_new);

#endif
