/* kvcache.h — forward-only passes with a key/value cache: incremental decoding and scoring.
 *
 * A decoder that recomputes the whole prefix for every new token spends O(T) Linear rows per
 * token; with the keys (after RoPE) and values of every earlier position kept per block, a new
 * token costs one row through each Linear and one attention row over the cached positions.
 * minigpt_kv_forward runs n new tokens of each of B rows, row b's at positions
 * pos[b]..pos[b]+n-1; it writes their keys and values into the cache and their logits to
 * kv->logits. A prefill is a call with every pos 0, a decoding step one with n = 1.
 *
 * The operations are minigpt_forward's, in the same order, on one set of forward-only buffers
 * reused by every block (no activations saved for a backward): a call with every pos 0 and
 * n = T gives minigpt_forward's logits bit for bit. A decoding step computes the same values
 * row by row; its Linear products have one row instead of T: the own kernels (gemm.h) give the
 * same bits, BLAS may round them differently (logits within ~1e-5 of their size, see
 * tests/test_kvcache.c).
 *
 * Plug-ins (LoRA) installed in the model's slots when the cache is built take part, as in
 * minigpt_forward; with kv->frozen set they are skipped, as in minigpt_forward_frozen.
 */
#ifndef KVCACHE_H
#define KVCACHE_H

#include <stddef.h>

#include "minigpt.h"
#include "ml_error.h"

typedef struct {
    int B, ctx; /* capacity: cache rows, positions per row (the model's context) */
    size_t n_floats;
    float *block;                 /* owned; everything below points into it */
    float *k[MINIGPT_MAX_LAYERS]; // (B,ctx,C) keys after RoPE, by position
    float *v[MINIGPT_MAX_LAYERS]; // (B,ctx,C) values
    float *x;                     // (B*ctx,C) residual stream of the new rows
    float *ln;                    // (B*ctx,C) LayerNorm output
    float *mean, *rstd;           // (B*ctx)
    float *q, *kn, *vn;           // (B*ctx,C) projections of the new rows
    float *atty;                  // (B*ctx,C) attention output
    float *tmp;                   // (B*ctx,C) o_proj and fc2 outputs
    float *fc;                    // (B*ctx,F) fc1, then GELU in place
    float *ext;                   // (B*ctx,ext_per_row) plug-ins' scratch (NULL without)
    int ext_per_row;              /* the largest save_per_row of the plug-ins at init */
    float *logits;                // (B*ctx,V) of the last call: (B,n,V)
    int frozen; /* 0 (set by init): plug-ins take part; 1: the base alone (the caller sets it) */
} minigpt_kv;

/* Allocates a cache of B rows of m's context, sized for the plug-ins installed in m now.
 * Free with minigpt_kv_free. */
int minigpt_kv_init(minigpt_kv *kv, const minigpt *m, int B, ml_error *e);
/* The same buffers carved out of a workspace's block instead of a new allocation (scoring
 * without extra memory): ws must have the model's context as T and at least B rows; the cache
 * then clobbers ws's activations (no backward may follow). kv borrows ws's memory: free ws after
 * kv (minigpt_kv_free frees nothing then). */
int minigpt_kv_init_over(minigpt_kv *kv, const minigpt *m, int B, minigpt_ws *ws, ml_error *e);
void minigpt_kv_free(minigpt_kv *kv);

/* Forward of tokens (B,n) (plug-ins included): row b's tokens sit at positions
 * pos[b]..pos[b]+n-1 of cache row rows[b] (rows NULL: row b), whose positions 0..pos[b]-1 must
 * hold an earlier call's keys and values. Needs B <= kv->B, distinct rows, n >= 1 and
 * pos[b] + n <= context (checked: a violation aborts, it is a programming error). Fills
 * kv->logits (B,n,V). */
void minigpt_kv_forward(const minigpt *m, minigpt_kv *kv, const int *tokens, const int *pos,
                        const int *rows, int B, int n);

#endif
