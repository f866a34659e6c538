/* engine.h — one batch's forward and backward spread over threads, deterministically.
 *
 * A batch is cut into chunks of `micro` sequences. Chunk c runs on thread c mod n in that
 * thread's workspace, and its gradient goes to chunk c's own buffer; the buffers are then
 * summed in chunk order. Every floating-point operation therefore happens in the same order
 * whatever the thread count: the same seed gives bit-identical results on 1 or 8 threads.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>

#include "dataset.h"
#include "minigpt.h"
#include "pool.h"

typedef struct {
    const minigpt *m;
    pool *pool;
    int nthreads;
    int max_B, micro, max_chunks;
    minigpt_ws *ws;         /* [nthreads]; owned */
    size_t n_base, n_ext;   /* gradient sizes: the base block (0 when frozen), the plug-in block */
    size_t n_grad;          /* n_base + n_ext */
    float *chunk_grad;      // (max_chunks, n_grad); owned
    float *grad;            // (n_grad): base gradients, then plug-in gradients; owned
    int *tokens, *targets;  // (max_B, context), chunk c at row c*micro; owned
    int *chunk_T;           // (max_chunks) positions of each chunk in the current batch
    int *chunk_B;           // (max_chunks) sequences of each chunk
    double *chunk_loss;     // (max_chunks)
    long positions;         /* B·T positions processed by the last call (padding included) */
} engine;

/* Builds the thread pool and per-thread workspaces. Plug-ins must already be installed in m.
 * base_grads: whether the base parameters get gradients (pretraining, full fine-tuning).
 * n_ext: floats in the plug-in gradient block (0 without plug-ins). Free with engine_free. */
int engine_init(engine *g, const minigpt *m, int threads, int max_B, int micro, int base_grads,
                size_t n_ext, ml_error *e);
void engine_free(engine *g);

/* Mean loss over the unmasked targets of ex[0..B) (B <= max_B); g->grad receives the gradient
 * of that mean. *n_targets (may be NULL) gets the number of targets. */
double engine_grad(engine *g, const ds_example *const *ex, int B, int *n_targets);

/* Forward only: the summed negative log-likelihood over ex[0..n) (any n, processed in batches
 * of max_B) and, in *n_targets, how many targets it covers. */
double engine_loss(engine *g, const ds_example *const *ex, int n, long *n_targets);

#endif
