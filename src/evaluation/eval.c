/* eval.c — teacher-forced log-probabilities and batched greedy decoding. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "blas_runtime.h"
#include "kvcache.h"
#include "thread_pool.h"

/* log softmax(logits)[y] for one row of V logits, in double. */
static double row_logprob(const float *l, int V, int y) {
    float maxv = l[0];
    for (int v = 1; v < V; v++)
        if (l[v] > maxv) maxv = l[v];
    double z = 0.0;
    for (int v = 0; v < V; v++) z += exp((double)(l[v] - maxv));
    return (double)(l[y] - maxv) - log(z);
}

/* 1 when the V logits of a row are all finite. */
static int row_finite(const float *l, int V) {
    for (int v = 0; v < V; v++)
        if (!isfinite(l[v])) return 0;
    return 1;
}

static int row_argmax(const float *l, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (l[v] > l[best]) best = v;
    return best;
}

/* Σ log P(cont[j] | prompt ⊕ cont[<j]) for each of B sequences prompt_b ⊕ cont_b, batched
 * into one forward-only pass (the same logits as minigpt_forward's, bit for bit). */
static void score(const minigpt *m, minigpt_kv *kv, const ds_example *const *ex, int B,
                  int use_distractor, double *out, int *seq, int *pos) {
    const int V = m->cfg.vocab_size;
    int T = 1;
    for (int b = 0; b < B; b++) {
        const ds_example *x = ex[b];
        const int nc = use_distractor ? x->n_distractor : x->n_completion;
        if (x->n_prompt + nc - 1 > T) T = x->n_prompt + nc - 1;
    }
    for (int b = 0; b < B; b++) {
        const ds_example *x = ex[b];
        const int *cont = use_distractor ? x->distractor : x->tokens + x->n_prompt;
        const int nc = use_distractor ? x->n_distractor : x->n_completion;
        int *s = seq + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            const int i = t < x->n_prompt ? t : t - x->n_prompt;
            s[t] = t < x->n_prompt ? x->tokens[t] : (i < nc ? cont[i] : 0);
        }
        pos[b] = 0;
    }
    minigpt_kv_forward(m, kv, seq, pos, NULL, B, T);
    for (int b = 0; b < B; b++) {
        const ds_example *x = ex[b];
        const int *cont = use_distractor ? x->distractor : x->tokens + x->n_prompt;
        const int nc = use_distractor ? x->n_distractor : x->n_completion;
        double lp = 0.0;
        /* token cont[j] sits at position n_prompt + j and is predicted from the one before */
        for (int j = 0; j < nc; j++) {
            const int at = x->n_prompt + j - 1;
            lp += row_logprob(kv->logits + ((size_t)b * T + at) * V, V, cont[j]);
        }
        out[b] = lp;
    }
}

/* A draw from softmax(l / t) over V values. */
static int sample_row(const float *l, int V, float t, rng *r) {
    float maxv = l[0];
    for (int v = 1; v < V; v++)
        if (l[v] > maxv) maxv = l[v];
    double p[256], z = 0; /* V <= 256 (minigpt_config_check) */
    for (int v = 0; v < V; v++) z += p[v] = exp((double)(l[v] - maxv) / t);
    double u = rng_uniform(r) * z;
    for (int v = 0; v < V; v++)
        if ((u -= p[v]) < 0) return v;
    return V - 1;
}

/* Decoding of B <= kv->B prompts in lockstep over the key/value cache: one prefill of every
 * prompt (padded to the longest; causal attention keeps the padding out of real positions),
 * then one step of one token per unfinished row. t > 0 samples softmax(logits / t) from r,
 * row after row in row order; t <= 0 is greedy. gen (B, ctx) receives the generated ids, len[b]
 * their count (end token excluded). seq needs B·ctx ints, act 3·B. Returns 0, or 1 when a row's
 * logits were not finite (that row then stops). */
static int decode_batch(const minigpt *m, minigpt_kv *kv, const int *const *prompts,
                        const int *n_prompt, int B, int max_new, float t, rng *r, int *seq,
                        int *act, int *gen, int *len) {
    const int V = m->cfg.vocab_size, ctx = m->cfg.context;
    int *pos = act, *rows = act + B, *tok = act + 2 * B, T0 = 1, bad = 0, na = 0;
    for (int b = 0; b < B; b++)
        if (n_prompt[b] > T0) T0 = n_prompt[b];
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < T0; i++) seq[(size_t)b * T0 + i] = i < n_prompt[b] ? prompts[b][i] : 0;
        pos[b] = 0;
        len[b] = 0;
    }
    minigpt_kv_forward(m, kv, seq, pos, NULL, B, T0);
    /* rows[0..na): the unfinished rows; the logits of rows[i] are at logit_at(i) */
    for (int b = 0; b < B; b++)
        if (n_prompt[b] < ctx && max_new > 0) rows[na++] = b;
    int step = 0; /* 0: the prefill's logits, row b's at (b, n_prompt[b] − 1) */
    while (na > 0) {
        int keep = 0;
        for (int i = 0; i < na; i++) {
            const int b = rows[i], cur = n_prompt[b] + len[b];
            const float *row = step ? kv->logits + (size_t)i * V
                                    : kv->logits + ((size_t)b * T0 + n_prompt[b] - 1) * V;
            if (!row_finite(row, V)) {
                bad = 1;
                continue;
            }
            const int next = t > 0 ? sample_row(row, V, t, r) : row_argmax(row, V);
            if (next == TOK_END) continue;
            gen[(size_t)b * ctx + len[b]++] = next;
            if (cur + 1 >= ctx || len[b] >= max_new) continue;
            rows[keep] = b; /* the token just chosen goes in at position cur */
            tok[keep] = next;
            pos[keep++] = cur;
        }
        na = keep;
        if (na > 0) minigpt_kv_forward(m, kv, tok, pos, rows, na, 1);
        step = 1;
    }
    return bad;
}
/* One prompt through decode_batch; what eval_greedy and eval_sample return. */
static int decode_one(const minigpt *m, minigpt_kv *kv, const int *prompt, int n_prompt, int *out,
                      int max_new, float t, rng *r) {
    const int ctx = m->cfg.context;
    if (n_prompt < 1 || n_prompt > ctx) return -1;
    int *seq = malloc(sizeof(int) * (size_t)ctx), *gen = malloc(sizeof(int) * (size_t)ctx);
    int act[3], len = -1;
    if (seq && gen) {
        if (decode_batch(m, kv, &prompt, &n_prompt, 1, max_new, t, r, seq, act, gen, &len))
            len = EVAL_NOT_FINITE;
        else memcpy(out, gen, sizeof(int) * (size_t)len);
    }
    free(seq);
    free(gen);
    return len;
}

int eval_greedy(const minigpt *m, minigpt_kv *kv, const int *prompt, int n_prompt, int *out,
                int max_new) {
    return decode_one(m, kv, prompt, n_prompt, out, max_new, 0.0f, NULL);
}

typedef struct {
    engine *g;
    const tok_vocab *v;
    const dataset *d;
    eval_item *items;
    int micro, nchunks;
} eval_job;

static void eval_chunk_job(void *arg, int tid, int n) {
    eval_job *j = arg;
    const minigpt *m = j->g->m;
    const int ctx = m->cfg.context, micro = j->micro;
    /* forward-only buffers and the decoder's cache, carved out of this thread's workspace
     * (a new allocation only if it were too small) */
    minigpt_kv kv;
    ml_error e = {{0}};
    if (minigpt_kv_init_over(&kv, m, micro, &j->g->ws[tid], NULL) &&
        minigpt_kv_init(&kv, m, micro, &e)) {
        fprintf(stderr, "minilora: %s\n", e.msg);
        abort();
    }
    int *seq = malloc(sizeof(int) * (size_t)micro * ctx),
        *gen = malloc(sizeof(int) * (size_t)micro * ctx);
    const ds_example **ex = malloc(sizeof *ex * (size_t)micro);
    double *lp = malloc(sizeof(double) * (size_t)micro);
    int *act = malloc(sizeof(int) * 3 * (size_t)micro);
    if (!seq || !gen || !ex || !lp || !act)
        abort(); /* a few KiB; nothing sensible to do without them */
    for (int c = tid; c < j->nchunks; c += n) {
        const int start = c * micro, B = j->d->n - start < micro ? j->d->n - start : micro;
        for (int b = 0; b < B; b++) ex[b] = &j->d->ex[start + b];
        score(m, &kv, ex, B, 0, lp, seq, act);
        for (int b = 0; b < B; b++) {
            j->items[start + b].logp_target = lp[b];
            j->items[start + b].n_target_tokens = ex[b]->n_completion;
            j->items[start + b].logp_distractor = NAN;
        }
        /* distractors: only the examples that have one, batched together */
        int nd = 0, map[256];
        for (int b = 0; b < B; b++)
            if (ex[b]->distractor) map[nd] = b, ex[nd++] = &j->d->ex[start + b];
        if (nd) {
            score(m, &kv, ex, nd, 1, lp, seq, act);
            for (int k = 0; k < nd; k++) j->items[start + map[k]].logp_distractor = lp[k];
            for (int b = 0; b < B; b++) ex[b] = &j->d->ex[start + b];
        }
        const int *prompts[256];
        int np[256], len[256];
        for (int b = 0; b < B; b++) prompts[b] = ex[b]->tokens, np[b] = ex[b]->n_prompt;
        decode_batch(m, &kv, prompts, np, B, ctx, 0.0f, NULL, seq, act, gen, len);
        for (int b = 0; b < B; b++) {
            eval_item *it = &j->items[start + b];
            const ds_example *x = ex[b];
            /* exact: the generated ids equal the completion's, and decoding stopped at the end token */
            it->correct = len[b] == x->n_completion - 1 &&
                          memcmp(gen + (size_t)b * ctx, x->tokens + x->n_prompt,
                                 sizeof(int) * (size_t)len[b]) == 0;
            tok_decode(j->v, gen + (size_t)b * ctx, len[b], it->prediction, EVAL_MAX_PRED);
        }
    }
    free(seq);
    free(gen);
    free((void *)ex);
    free(lp);
    free(act);
    minigpt_kv_free(&kv);
}

void eval_dataset(engine *g, const tok_vocab *v, const dataset *d, eval_item *items) {
    /* the decoder keeps per-row state in arrays of 256 */
    const int micro = g->ws[0].B < 256 ? g->ws[0].B : 256;
    eval_job j = {g, v, d, items, micro, (d->n + micro - 1) / micro};
    pool_run(g->pool, eval_chunk_job, &j);
}

eval_totals eval_sum(const dataset *d, const eval_item *items, const char *verb) {
    eval_totals t = {0};
    for (int i = 0; i < d->n; i++) {
        if (verb && (!d->ex[i].verb || strcmp(d->ex[i].verb, verb) != 0)) continue;
        t.n++;
        t.correct += items[i].correct;
        t.nll -= items[i].logp_target;
        t.tokens += items[i].n_target_tokens;
        if (!isnan(items[i].logp_distractor)) {
            t.n_pref++;
            t.pref_correct += items[i].logp_target > items[i].logp_distractor;
        }
    }
    return t;
}

double eval_ppl(const eval_totals *t) { return t->tokens ? exp(t->nll / (double)t->tokens) : NAN; }

int eval_is_nonpast(const char *form) {
    return form &&
           (strcmp(form, "3sg") == 0 || strcmp(form, "base") == 0 || strcmp(form, "ing") == 0);
}

int eval_collateral(const dataset *d, const eval_item *base, const eval_item *model,
                    eval_cell *cells, int max) {
    int n = 0;
    for (int i = 0; i < d->n; i++) {
        const ds_example *x = &d->ex[i];
        if (!x->verb || !eval_is_nonpast(x->form)) continue;
        int c = 0;
        while (c < n &&
               !(strcmp(cells[c].verb, x->verb) == 0 && strcmp(cells[c].form, x->form) == 0))
            c++;
        if (c == n) {
            if (n == max) continue;
            cells[n++] = (eval_cell){x->verb, x->form, 0, 0, 0};
        }
        cells[c].n++;
        cells[c].base_correct += base[i].correct;
        cells[c].model_correct += model[i].correct;
    }
    return n;
}

double eval_cell_drop(const eval_cell *c) {
    return c->n ? 100.0 * (c->base_correct - c->model_correct) / c->n : 0.0;
}

int eval_largest_drop(const eval_cell *cells, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || eval_cell_drop(&cells[i]) > eval_cell_drop(&cells[best])) best = i;
    return best;
}

float *eval_logits(const minigpt *m, const dataset *const *sets, int nsets, size_t *n,
                   ml_error *e) {
    enum { BATCH = 32 };
    const int ctx = m->cfg.context, V = m->cfg.vocab_size;
    size_t total = 0;
    for (int s = 0; s < nsets; s++) {
        size_t n_set;
        if (!size_mul3_ok(&n_set, (size_t)sets[s]->n, (size_t)ctx, (size_t)V) ||
            total + n_set < total)
            return ml_fail(e, "the logits of %d files do not fit in memory", nsets), NULL;
        total += n_set;
    }
    float *out = calloc(total ? total : 1, sizeof(float));
    int *tokens = malloc(sizeof(int) * BATCH * (size_t)ctx); // (BATCH,context)
    int *targets = malloc(sizeof(int) * BATCH * (size_t)ctx);
    minigpt_ws ws = {0};
    if (!out || !tokens || !targets || minigpt_ws_init(&ws, m, BATCH, ctx, e)) {
        if (!out || !tokens || !targets)
            ml_fail(e, "out of memory for the logits of %zu floats", total);
        free(out), free(tokens), free(targets);
        return NULL;
    }
    size_t off = 0;
    for (int s = 0; s < nsets; s++)
        for (int start = 0; start < sets[s]->n; start += BATCH) {
            const int B = sets[s]->n - start < BATCH ? sets[s]->n - start : BATCH;
            const ds_example *ex[BATCH];
            for (int b = 0; b < B; b++) ex[b] = &sets[s]->ex[start + b];
            ds_batch(ex, B, ctx, tokens, targets);
            minigpt_forward(m, &ws, tokens, B, ctx);
            memcpy(out + off, ws.logits, sizeof(float) * (size_t)B * ctx * V);
            off += (size_t)B * ctx * V;
        }
    minigpt_ws_free(&ws);
    free(tokens), free(targets);
    *n = off;
    return out;
}

/* One thread's share of eval_max_logit_diff: the batches q with q mod n == tid, each as a
 * prefill of both models through the thread's own forward-only caches (a prefill gives
 * minigpt_forward's logits bit for bit, and every thread count runs the same shapes, so the
 * result does not depend on it). */
typedef struct {
    const minigpt *a, *b;
    int nsets;
    const dataset *const *sets;
    minigpt_kv *ka, *kb; // [n] per-thread caches of a (frozen when asked) and of b
    int *tokens;         // (n, DIFF_BATCH, context)
    int *targets;        // (n, DIFF_BATCH, context)
    double *maxd;        // [n] each thread's largest difference (NaN once one is NaN)
} diff_job;

enum { DIFF_BATCH = 32 };

static void diff_chunk_job(void *arg, int tid, int n) {
    diff_job *j = arg;
    const int ctx = j->a->cfg.context, V = j->a->cfg.vocab_size;
    int *tokens = j->tokens + (size_t)tid * DIFF_BATCH * ctx;
    int *targets = j->targets + (size_t)tid * DIFF_BATCH * ctx;
    int zeros[DIFF_BATCH] = {0}; /* every row a prefill from position 0 */
    double maxd = 0;
    long q = 0; /* the batch's index over every set */
    for (int s = 0; s < j->nsets; s++)
        for (int start = 0; start < j->sets[s]->n; start += DIFF_BATCH, q++) {
            if (q % n != tid || isnan(maxd)) continue;
            const int B = j->sets[s]->n - start < DIFF_BATCH ? j->sets[s]->n - start : DIFF_BATCH;
            const ds_example *ex[DIFF_BATCH];
            for (int k = 0; k < B; k++) ex[k] = &j->sets[s]->ex[start + k];
            ds_batch(ex, B, ctx, tokens, targets);
            minigpt_kv_forward(j->a, &j->ka[tid], tokens, zeros, NULL, B, ctx);
            minigpt_kv_forward(j->b, &j->kb[tid], tokens, zeros, NULL, B, ctx);
            const float *la = j->ka[tid].logits, *lb = j->kb[tid].logits; // (B,ctx,V)
            for (int k = 0; k < B && !isnan(maxd); k++) {
                const int real = ex[k]->n_prompt + ex[k]->n_completion - 1; /* positions */
                const size_t end = ((size_t)k * ctx + (size_t)real) * V;
                for (size_t i = (size_t)k * ctx * V; i < end && !isnan(maxd); i++) {
                    const double d = fabs((double)lb[i] - la[i]);
                    if (!(d <= maxd)) maxd = d; /* NaN too, and it stays: a broken model shows */
                }
            }
        }
    j->maxd[tid] = maxd;
}

int eval_max_logit_diff(const minigpt *a, int a_frozen, const minigpt *b,
                        const dataset *const *sets, int nsets, int threads, double *out,
                        ml_error *e) {
    const int ctx = a->cfg.context, V = a->cfg.vocab_size;
    *out = 0;
    if (b->cfg.context != ctx || b->cfg.vocab_size != V)
        return ml_fail(e, "the two models have different shapes");
    long batches = 0;
    for (int s = 0; s < nsets; s++) batches += (sets[s]->n + DIFF_BATCH - 1) / DIFF_BATCH;
    int n = runtime_threads(threads);
    if (n > batches) n = batches > 0 ? (int)batches : 1;
    const size_t per = (size_t)DIFF_BATCH * ctx;
    diff_job j = {a,
                  b,
                  nsets,
                  sets,
                  calloc((size_t)n, sizeof(minigpt_kv)),
                  calloc((size_t)n, sizeof(minigpt_kv)),
                  malloc(sizeof(int) * per * n),
                  malloc(sizeof(int) * per * n),
                  calloc((size_t)n, sizeof(double))};
    pool *p = NULL;
    int rc = -1;
    if (!j.ka || !j.kb || !j.tokens || !j.targets || !j.maxd) {
        ml_fail(e, "out of memory");
        goto done;
    }
    for (int t = 0; t < n; t++) {
        if (minigpt_kv_init(&j.ka[t], a, DIFF_BATCH, e) ||
            minigpt_kv_init(&j.kb[t], b, DIFF_BATCH, e))
            goto done;
        j.ka[t].frozen = a_frozen;
    }
    if (!(p = pool_new(n))) {
        ml_fail(e, "cannot start %d threads", n);
        goto done;
    }
    pool_run(p, diff_chunk_job, &j);
    double maxd = 0; /* the largest over the threads; a NaN from any of them wins */
    for (int t = 0; t < n && !isnan(maxd); t++)
        if (!(j.maxd[t] <= maxd)) maxd = j.maxd[t];
    *out = maxd;
    rc = 0;
done:
    pool_free(p);
    for (int t = 0; j.ka && j.kb && t < n; t++)
        minigpt_kv_free(&j.ka[t]), minigpt_kv_free(&j.kb[t]);
    free(j.ka), free(j.kb), free(j.tokens), free(j.targets), free(j.maxd);
    return rc;
}

int eval_sample(const minigpt *m, minigpt_kv *kv, const int *prompt, int n_prompt, int *out,
                int max_new, float t, rng *r) {
    return decode_one(m, kv, prompt, n_prompt, out, max_new, t, r);
}
