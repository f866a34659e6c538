/* grad_engine.h — one batch's forward and backward spread over threads, deterministically.
 *
 * A batch is cut into chunks of `micro` sequences. Chunk c runs on thread c mod n in that
 * thread's workspace, and its gradient goes to chunk c's own buffer; the buffers are then
 * summed in chunk order. Every floating-point operation therefore happens in the same order
 * whatever the thread count: the same seed gives bit-identical results on 1 or 8 threads.
 */
#ifndef GRAD_ENGINE_H
#define GRAD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "minigpt.h"
#include "thread_pool.h"

typedef struct {
    const minigpt *m;
    pool *pool;
    int nthreads;
    int max_B, micro, max_chunks;
    minigpt_ws *ws;        /* [nthreads]; owned */
    size_t n_base, n_ext;  /* gradient sizes: the base block (0 when frozen), the plug-in block */
    size_t n_grad;         /* n_base + n_ext */
    float *chunk_grad;     // (max_chunks, n_grad); owned
    float *grad;           // (n_grad): base gradients, then plug-in gradients; owned
    int *tokens, *targets; // (max_B, context), chunk c at row c*micro; owned
    int *chunk_T;          // (max_chunks) positions of each chunk in the current batch
    int *chunk_B;          // (max_chunks) sequences of each chunk
    double *chunk_loss;    // (max_chunks)
    int *zeros;            // (micro) zeros: the start positions of a forward-only chunk
    const ds_example **piece; // (max_B) engine_loss_set's examples of one batch
    long positions;           /* B·T positions processed by the last call (padding included) */
    /* the preservation term (engine_set_preserve): λ·KL(p_base ‖ p) on chosen sequences */
    float kl_lambda;         /* λ; 0: off */
    const minigpt *kl_model; /* the frozen base when it is not m itself (full fine-tuning) */
    float *kl_ref;           // (nthreads, micro, context, V) the frozen base's log-probs; owned
    int *kl_len;             // (max_B) positions under the term, per row of the batch; owned
    double *chunk_kl;        // (max_chunks) Σ KL of each chunk
    double kl_mean;          /* mean KL per position of the last engine_grad (0 without) */
    /* the training step + 1 handed to plug-ins by engine_grad (minigpt_ext_call; LoRA dropout
     * draws its masks from it); 0, and always in engine_loss: no randomness */
    uint64_t ext_step;
} engine;

/* Builds the thread pool and per-thread workspaces. Plug-ins must already be installed in m.
 * base_grads: whether the base parameters get gradients (pretraining, full fine-tuning).
 * n_ext: floats in the plug-in gradient block (0 without plug-ins). Free with engine_free. */
int engine_init(engine *g, const minigpt *m, int threads, int max_B, int micro, int base_grads,
                size_t n_ext, ml_error *e);
void engine_free(engine *g);

/* Turns on the preservation term with weight lambda > 0: engine_grad's first n_kl sequences
 * then add lambda · (mean over their positions of KL(p_base ‖ p)), where p_base is `frozen`
 * (borrowed; a model of the same config whose parameters are not trained), or, when frozen
 * is NULL, the engine's model with every plug-in switched off. One extra forward of those
 * sequences per step. Allocates its buffers; call once after engine_init. */
int engine_set_preserve(engine *g, float lambda, const minigpt *frozen, ml_error *e);

/* Mean loss over the unmasked targets of ex[0..B) (B <= max_B); g->grad receives the gradient
 * of that mean, plus that of the preservation term over every position of ex[0..n_kl) when
 * it is on (g->kl_mean gets its mean; n_kl is ignored when it is off). *n_targets (may be
 * NULL) gets the number of targets. The returned loss is the cross-entropy alone. */
double engine_grad(engine *g, const ds_example *const *ex, int B, int n_kl, int *n_targets);

/* Forward only: the summed negative log-likelihood over ex[0..n) (any n, processed in batches
 * of max_B) and, in *n_targets, how many targets it covers. */
double engine_loss(engine *g, const ds_example *const *ex, int n, long *n_targets);
/* engine_loss over every example of d, in order, without allocating (the validation pass). */
double engine_loss_set(engine *g, const dataset *d, long *n_targets);

#endif
