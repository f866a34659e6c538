/* kvcache.c — forward-only passes over a key/value cache (see kvcache.h). */
#include "kvcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "layers.h"

/* 16 floats = 64 bytes: every view starts on a cache line, as in minigpt_ws */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Carves kv's buffers out of block (NULL: a new allocation of its own); n_avail floats there. */
static int kv_carve(minigpt_kv *kv, const minigpt *m, int B, float *block, size_t n_avail,
                    ml_error *e) {
    memset(kv, 0, sizeof *kv);
    const minigpt_config *c = &m->cfg;
    if (B < 1 || B > 65536) return ml_fail(e, "key/value cache of %d rows: need 1..65536", B);
    int save = 0;
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i].ext && m->linears[i].ext->save_per_row > save)
            save = m->linears[i].ext->save_per_row;
    const size_t N = (size_t)B * c->context, C = c->d_model, F = c->d_ff, V = c->vocab_size;
    struct {
        float **ptr;
        size_t n;
    } tab[2 * MINIGPT_MAX_LAYERS + 16];
    int n = 0;
#define ADD(p, count) tab[n].ptr = &(p), tab[n++].n = (count)
    for (int l = 0; l < c->n_layers; l++) {
        ADD(kv->k[l], N * C);
        ADD(kv->v[l], N * C);
    }
    ADD(kv->x, N * C);
    ADD(kv->ln, N * C);
    ADD(kv->mean, N);
    ADD(kv->rstd, N);
    ADD(kv->q, N * C);
    ADD(kv->kn, N * C);
    ADD(kv->vn, N * C);
    ADD(kv->atty, N * C);
    ADD(kv->tmp, N * C);
    ADD(kv->fc, N * F);
    if (save > 0) ADD(kv->ext, N * (size_t)save);
    ADD(kv->logits, N * V);
#undef ADD
    size_t total = 0, bytes;
    for (int i = 0; i < n; i++) total += round16(tab[i].n);
    if (block && total > n_avail)
        return ml_fail(e, "key/value cache of %zu floats does not fit in %zu", total, n_avail);
    if (!block) {
        if (!size_mul_ok(&bytes, total, sizeof(float)))
            return ml_fail(e, "key/value cache of %zu floats does not fit in memory", total);
        block = kv->block = aligned_alloc(64, bytes);
        if (!block) return ml_fail(e, "out of memory: key/value cache of %zu floats", total);
        memset(block, 0, bytes);
    }
    float *p = block;
    for (int i = 0; i < n; i++) {
        *tab[i].ptr = p;
        p += round16(tab[i].n);
    }
    kv->n_floats = total;
    kv->B = B;
    kv->ctx = c->context;
    kv->ext_per_row = save;
    return 0;
}

int minigpt_kv_init(minigpt_kv *kv, const minigpt *m, int B, ml_error *e) {
    return kv_carve(kv, m, B, NULL, 0, e);
}

int minigpt_kv_init_over(minigpt_kv *kv, const minigpt *m, int B, minigpt_ws *ws, ml_error *e) {
    if (ws->T != m->cfg.context || ws->B < B)
        return ml_fail(e, "workspace of %d x %d cannot hold %d rows of context %d", ws->B, ws->T, B,
                       m->cfg.context);
    return kv_carve(kv, m, B, ws->block, ws->n_floats, e);
}

void minigpt_kv_free(minigpt_kv *kv) {
    free(kv->block); /* NULL when carved out of a workspace */
    memset(kv, 0, sizeof *kv);
}

/* A Linear slot with its plug-in, as minigpt_forward runs it (minigpt_forward_frozen's base
 * weight alone when kv->frozen); scratch for the plug-in's rows. */
static void linear(const minigpt_kv *kv, const minigpt_linear *L, float *out, const float *inp,
                   int N) {
    // out (N,out), inp (N,in)
    matmul_forward(out, inp, kv->frozen ? L->w : minigpt_linear_weight(L), L->b, N, L->in, L->out);
    if (kv->frozen || !L->ext || !L->ext->forward) return;
    if (L->ext->save_per_row > kv->ext_per_row) {
        fprintf(stderr, "minigpt_kv_forward: a plug-in was installed after the cache was built\n");
        abort();
    }
    static const minigpt_ext_call not_training = {0, 0, 1}; /* step 0: no dropout */
    L->ext->forward(L->ext, out, kv->ext, inp, N, &not_training);
}

/* Stores the new rows' keys or values (B,n,C) at their positions in the cache (B',ctx,C). */
static void cache_put(float *cache, const float *rows_kv, const int *pos, const int *rows, int B,
                      int n, int ctx, int C) {
    for (int b = 0; b < B; b++) {
        const int r = rows ? rows[b] : b;
        memcpy(cache + ((size_t)r * ctx + pos[b]) * C, rows_kv + (size_t)b * n * C,
               (size_t)n * C * sizeof(float));
    }
}

void minigpt_kv_forward(const minigpt *m, minigpt_kv *kv, const int *tokens, const int *pos,
                        const int *rows, int B, int n) {
    const minigpt_config *c = &m->cfg;
    const int C = c->d_model, F = c->d_ff, V = c->vocab_size, NH = c->n_heads, N = B * n;
    int ok = B >= 1 && B <= kv->B && n >= 1 && kv->ctx == c->context;
    for (int b = 0; ok && b < B; b++)
        ok =
            pos[b] >= 0 && pos[b] + n <= c->context && (!rows || (rows[b] >= 0 && rows[b] < kv->B));
    if (!ok) {
        fprintf(stderr, "minigpt_kv_forward: %d rows of %d tokens do not fit the cache\n", B, n);
        abort();
    }
    encoder_forward(kv->x, tokens, m->p.tok_emb, N, C);
    for (int l = 0; l < c->n_layers; l++) {
        const minigpt_block_views *p = &m->p.blocks[l];
        const minigpt_linear *lin = m->linears + l * MINIGPT_LINEARS_PER_BLOCK;
        /* attention: x += o(attn(rope(q), rope(k), v)) over the cached positions */
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, p->ln1_w, p->ln1_b, N, C, c->ln_eps);
        linear(kv, &lin[MG_Q], kv->q, kv->ln, N);
        linear(kv, &lin[MG_K], kv->kn, kv->ln, N);
        linear(kv, &lin[MG_V], kv->vn, kv->ln, N);
        rope_forward_at(kv->q, m->rope_cos, m->rope_sin, pos, B, n, C, NH);
        rope_forward_at(kv->kn, m->rope_cos, m->rope_sin, pos, B, n, C, NH);
        cache_put(kv->k[l], kv->kn, pos, rows, B, n, kv->ctx, C);
        cache_put(kv->v[l], kv->vn, pos, rows, B, n, kv->ctx, C);
        for (int b = 0; b < B; b++) {
            const size_t r = (size_t)(rows ? rows[b] : b) * kv->ctx * C, off = (size_t)b * n * C;
            attention_forward_cached(kv->atty + off, kv->q + off, kv->k[l] + r, kv->v[l] + r,
                                     &pos[b], 1, n, kv->ctx, C, NH);
        }
        linear(kv, &lin[MG_O], kv->tmp, kv->atty, N);
        residual_forward(kv->x, kv->x, kv->tmp, N * C);
        /* MLP: x += fc2(GELU(fc1(LN2(x)))) */
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, p->ln2_w, p->ln2_b, N, C, c->ln_eps);
        linear(kv, &lin[MG_FC1], kv->fc, kv->ln, N);
        gelu_forward(kv->fc, kv->fc, N * F);
        linear(kv, &lin[MG_FC2], kv->tmp, kv->fc, N);
        residual_forward(kv->x, kv->x, kv->tmp, N * C);
    }
    layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, m->p.lnf_w, m->p.lnf_b, N, C, c->ln_eps);
    matmul_forward(kv->logits, kv->ln, m->p.tok_emb, NULL, N, C, V); /* tied head */
}
