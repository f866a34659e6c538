/* grad_engine.c — deterministic data-parallel forward/backward over a thread pool. */
#include "grad_engine.h"

#include "kvcache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int engine_init(engine *g, const minigpt *m, int threads, int max_B, int micro, int base_grads,
                size_t n_ext, ml_error *e) {
    memset(g, 0, sizeof *g);
    if (threads < 1 || max_B < 1 || micro < 1)
        return ml_fail(e, "engine: threads %d, batch %d, micro-batch %d must be positive", threads,
                       max_B, micro);
    if (micro > max_B) micro = max_B;
    const int ctx = m->cfg.context;
    g->m = m;
    g->max_B = max_B;
    g->micro = micro;
    g->max_chunks = (max_B + micro - 1) / micro;
    if (threads > g->max_chunks) threads = g->max_chunks; /* idle threads would only cost memory */
    g->nthreads = threads;
    g->n_base = base_grads ? m->n_params : 0;
    g->n_ext = n_ext;
    g->n_grad = g->n_base + n_ext;
    g->pool = pool_new(threads);
    g->ws = calloc((size_t)threads, sizeof *g->ws);
    g->chunk_grad = calloc((size_t)g->max_chunks * (g->n_grad ? g->n_grad : 1), sizeof(float));
    g->grad = calloc(g->n_grad ? g->n_grad : 1, sizeof(float));
    g->tokens = calloc((size_t)max_B * ctx, sizeof(int));
    g->targets = calloc((size_t)max_B * ctx, sizeof(int));
    g->chunk_T = calloc((size_t)g->max_chunks, sizeof(int));
    g->chunk_B = calloc((size_t)g->max_chunks, sizeof(int));
    g->chunk_loss = calloc((size_t)g->max_chunks, sizeof(double));
    g->zeros = calloc((size_t)micro, sizeof(int));
    g->piece = calloc((size_t)max_B, sizeof *g->piece);
    if (!g->zeros || !g->piece || !g->pool || !g->ws || !g->chunk_grad || !g->grad || !g->tokens ||
        !g->targets || !g->chunk_T || !g->chunk_B || !g->chunk_loss) {
        engine_free(g);
        return ml_fail(e, "out of memory setting up %d threads", threads);
    }
    for (int t = 0; t < threads; t++)
        if (minigpt_ws_init(&g->ws[t], m, micro, ctx, e)) {
            engine_free(g);
            return -1;
        }
    return 0;
}

int engine_set_preserve(engine *g, float lambda, const minigpt *frozen, ml_error *e) {
    if (!(lambda > 0.0f) || !isfinite(lambda))
        return ml_fail(e, "preservation weight %g must be positive and finite", (double)lambda);
    const size_t per = (size_t)g->micro * g->m->cfg.context * g->m->cfg.vocab_size;
    free(g->kl_ref);
    free(g->kl_len);
    free(g->chunk_kl);
    g->kl_ref = malloc((size_t)g->nthreads * per * sizeof(float));
    g->kl_len = calloc((size_t)g->max_B, sizeof(int));
    g->chunk_kl = calloc((size_t)g->max_chunks, sizeof(double));
    if (!g->kl_ref || !g->kl_len || !g->chunk_kl)
        return ml_fail(e, "out of memory for the preservation term");
    g->kl_lambda = lambda;
    g->kl_model = frozen;
    return 0;
}

void engine_free(engine *g) {
    if (g->ws)
        for (int t = 0; t < g->nthreads; t++) minigpt_ws_free(&g->ws[t]);
    pool_free(g->pool);
    free(g->ws);
    free(g->chunk_grad);
    free(g->grad);
    free(g->tokens);
    free(g->targets);
    free(g->chunk_T);
    free(g->chunk_B);
    free(g->chunk_loss);
    free(g->zeros);
    free((void *)g->piece);
    free(g->kl_ref);
    free(g->kl_len);
    free(g->chunk_kl);
    memset(g, 0, sizeof *g);
}

/* Lays the batch out chunk by chunk; returns the number of unmasked targets. */
static int layout(engine *g, const ds_example *const *ex, int B, int *nchunks) {
    const int ctx = g->m->cfg.context;
    int count = 0, c = 0;
    g->positions = 0;
    for (int start = 0; start < B; start += g->micro, c++) {
        const int Bc = B - start < g->micro ? B - start : g->micro;
        const int Tc = ds_batch_T(ex + start, Bc);
        g->chunk_B[c] = Bc;
        g->chunk_T[c] = Tc;
        count += ds_batch(ex + start, Bc, Tc, g->tokens + (size_t)start * ctx,
                          g->targets + (size_t)start * ctx);
        g->positions += (long)Bc * Tc;
    }
    *nchunks = c;
    return count;
}

typedef struct {
    engine *g;
    int nchunks;
    float scale;    /* 1/targets for the gradient of the mean; 0: forward only */
    int n_kl;       /* leading sequences under the preservation term (0: none) */
    float kl_scale; /* λ / positions under the term */
} job;

static void chunk_job(void *arg, int tid, int n) {
    job *j = arg;
    engine *g = j->g;
    const int ctx = g->m->cfg.context;
    minigpt_ws *ws = &g->ws[tid];
    for (int c = tid; c < j->nchunks; c += n) {
        const size_t row = (size_t)c * g->micro * ctx;
        const int start = c * g->micro;
        /* rows of a training step see the step (dropout masks); forward-only passes do not */
        ws->call = (minigpt_ext_call){j->scale != 0.0f ? g->ext_step : 0, start, g->chunk_T[c]};
        const int kl_rows =
            j->n_kl > start ? (j->n_kl - start < g->chunk_B[c] ? j->n_kl - start : g->chunk_B[c])
                            : 0;
        if (kl_rows > 0) {
            /* the frozen base's distribution first: the forward below overwrites the rest */
            float *ref = g->kl_ref + (size_t)tid * g->micro * ctx * g->m->cfg.vocab_size;
            minigpt_forward_frozen(g->kl_model ? g->kl_model : g->m, ws, g->tokens + row, kl_rows,
                                   g->chunk_T[c]);
            minigpt_log_softmax(g->m, ws, ref, kl_rows);
            minigpt_forward(g->m, ws, g->tokens + row, g->chunk_B[c], g->chunk_T[c]);
            g->chunk_loss[c] = minigpt_xent_kl(g->m, ws, g->targets + row, j->scale, ref,
                                               g->kl_len + start, j->kl_scale, &g->chunk_kl[c]);
        } else {
            minigpt_kv kv;
            if (j->scale == 0.0f && minigpt_kv_init_over(&kv, g->m, g->chunk_B[c], ws, NULL) == 0) {
                /* forward only (engine_loss): the same operations on the forward-only buffers,
                 * carved out of the workspace, so the same sum bit for bit */
                minigpt_kv_forward(g->m, &kv, g->tokens + row, g->zeros, NULL, g->chunk_B[c],
                                   g->chunk_T[c]);
                g->chunk_loss[c] = minigpt_xent_rows(g->m, kv.logits, g->targets + row,
                                                     g->chunk_B[c] * g->chunk_T[c]);
            } else {
                minigpt_forward(g->m, ws, g->tokens + row, g->chunk_B[c], g->chunk_T[c]);
                g->chunk_loss[c] = minigpt_xent(g->m, ws, g->targets + row, j->scale);
            }
            if (g->chunk_kl) g->chunk_kl[c] = 0.0;
        }
        if (j->scale != 0.0f) {
            float *cg = g->chunk_grad + (size_t)c * g->n_grad;
            memset(cg, 0, g->n_grad * sizeof(float));
            minigpt_backward(g->m, ws, g->n_base ? cg : NULL, cg + g->n_base);
        }
    }
}

/* g->grad = Σ_c chunk_grad[c] in chunk order, each thread summing its own slice. */
static void reduce_job(void *arg, int tid, int n) {
    job *j = arg;
    engine *g = j->g;
    size_t per = (g->n_grad + (size_t)n - 1) / (size_t)n;
    per = (per + 15) & ~(size_t)15;
    const size_t lo = (size_t)tid * per, hi = lo + per < g->n_grad ? lo + per : g->n_grad;
    if (lo >= hi) return;
    memcpy(g->grad + lo, g->chunk_grad + lo, (hi - lo) * sizeof(float));
    for (int c = 1; c < j->nchunks; c++) {
        const float *cg = g->chunk_grad + (size_t)c * g->n_grad;
        for (size_t i = lo; i < hi; i++) g->grad[i] += cg[i];
    }
}

double engine_grad(engine *g, const ds_example *const *ex, int B, int n_kl, int *n_targets) {
    job j = {g, 0, 0.0f, 0, 0.0f};
    const int count = layout(g, ex, B, &j.nchunks);
    if (n_targets) *n_targets = count;
    g->kl_mean = 0.0;
    if (count == 0) {
        memset(g->grad, 0, g->n_grad * sizeof(float));
        return 0.0;
    }
    j.scale = 1.0f / (float)count;
    long kl_positions = 0;
    if (g->kl_lambda > 0.0f && n_kl > 0) {
        /* every position of those sequences: the whole sequence but its last token */
        j.n_kl = n_kl < B ? n_kl : B;
        for (int b = 0; b < B; b++) { /* 0 past n_kl: no stale lengths from an earlier call */
            g->kl_len[b] = b < j.n_kl ? ex[b]->n_prompt + ex[b]->n_completion - 1 : 0;
            kl_positions += g->kl_len[b];
        }
        if (kl_positions > 0) j.kl_scale = g->kl_lambda / (float)kl_positions;
        else j.n_kl = 0;
    }
    pool_run(g->pool, chunk_job, &j);
    if (g->n_grad) pool_run(g->pool, reduce_job, &j);
    double sum = 0.0, kl = 0.0;
    for (int c = 0; c < j.nchunks; c++) sum += g->chunk_loss[c];
    if (j.n_kl) {
        for (int c = 0; c < j.nchunks; c++) kl += g->chunk_kl[c];
        g->kl_mean = kl / (double)kl_positions;
    }
    return sum / count;
}

/* Adds the loss and target count of ex[0..B) (B <= max_B) to *sum and *count. */
static void loss_batch(engine *g, const ds_example *const *ex, int B, double *sum, long *count) {
    job j = {g, 0, 0.0f, 0, 0.0f};
    *count += layout(g, ex, B, &j.nchunks);
    pool_run(g->pool, chunk_job, &j);
    for (int c = 0; c < j.nchunks; c++) *sum += g->chunk_loss[c];
}

double engine_loss(engine *g, const ds_example *const *ex, int n, long *n_targets) {
    double sum = 0.0;
    long count = 0;
    for (int start = 0; start < n; start += g->max_B)
        loss_batch(g, ex + start, n - start < g->max_B ? n - start : g->max_B, &sum, &count);
    if (n_targets) *n_targets = count;
    return sum;
}

double engine_loss_set(engine *g, const dataset *d, long *n_targets) {
    double sum = 0.0;
    long count = 0;
    for (int start = 0; start < d->n; start += g->max_B) {
        const int B = d->n - start < g->max_B ? d->n - start : g->max_B;
        for (int i = 0; i < B; i++) g->piece[i] = &d->ex[start + i];
        loss_batch(g, g->piece, B, &sum, &count);
    }
    if (n_targets) *n_targets = count;
    return sum;
}
