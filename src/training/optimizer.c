/* optimizer.c — the optimizer table (AdamW, SGD with momentum) and the warmup + cosine
 * schedule. */
#include "optimizer.h"
#include "gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void adamw_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                float beta1, float beta2, float eps, int t) {
    const float c1 = 1.0f / (1.0f - powf(beta1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(beta2, (float)t));
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        const float mhat = m[i] * c1, vhat = v[i] * c2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}

void sgd_step(float *p, const float *g, float *b, size_t n, float lr, float wd, float momentum,
              int nesterov) {
    for (size_t i = 0; i < n; i++) {
        b[i] = momentum * b[i] + g[i];
        const float d = nesterov ? g[i] + momentum * b[i] : b[i];
        p[i] -= lr * (d + wd * p[i]);
    }
}

static void adamw_kind_step(float *p, const float *g, float *const *slot, size_t n, float lr,
                            float wd, const optim_hparams *h, int t) {
    adamw_step(p, g, slot[0], slot[1], n, lr, wd, h->beta1, h->beta2, h->eps, t);
}

static void sgd_kind_step(float *p, const float *g, float *const *slot, size_t n, float lr,
                          float wd, const optim_hparams *h, int t) {
    sgd_step(p, g, slot[0], n, lr, wd, h->momentum, h->nesterov);
}

/* The table: the row index is the OPTIM_* constant. The slot names are file format. */
static const optim_kind kinds[] = {
    {"adamw", 2, {"adam_m", "adam_v"}, OPTIM_HP_BETAS | OPTIM_HP_EPS, adamw_kind_step},
    {"sgd", 1, {"momentum"}, OPTIM_HP_MOMENTUM, sgd_kind_step},
};
enum { N_KINDS = (int)(sizeof kinds / sizeof kinds[0]) };

const optim_kind *optim_kind_at(int i) { return i >= 0 && i < N_KINDS ? &kinds[i] : NULL; }

const char *optim_name_at(int i) { return i >= 0 && i < N_KINDS ? kinds[i].name : NULL; }

int optim_find(const char *name) {
    for (int i = 0; name && i < N_KINDS; i++)
        if (strcmp(kinds[i].name, name) == 0) return i;
    return -1;
}

int optim_state_init(optim_state *s, int kind, size_t n, ml_error *e) {
    memset(s, 0, sizeof *s);
    const optim_kind *k = optim_kind_at(kind);
    if (!k) return ml_fail(e, "unknown optimizer kind %d", kind);
    s->mem = calloc((size_t)k->n_slots * n + 1, sizeof(float));
    if (!s->mem) return ml_fail(e, "out of memory for the %s optimizer state", k->name);
    s->kind = k;
    s->kind_index = kind;
    s->n = n;
    return 0;
}

void optim_state_free(optim_state *s) {
    free(s->mem);
    memset(s, 0, sizeof *s);
}

float *optim_slot(const optim_state *s, int slot, size_t off) {
    return s->mem + (size_t)slot * s->n + off;
}

void optim_step(const optim_state *s, size_t off, float *p, const float *g, size_t n, float lr,
                float wd, const optim_hparams *h, int t) {
    const long long tally_t0 = gemm_tally_op_begin();
    float *slot[OPTIM_MAX_SLOTS];
    for (int i = 0; i < s->kind->n_slots; i++) slot[i] = optim_slot(s, i, off);
    s->kind->step(p, g, slot, n, lr, wd, h, t);
    gemm_tally_op_end(TALLY_OPTIMIZER, tally_t0);
}

void optim_json(char *buf, size_t n, int kind, const optim_hparams *h) {
    const optim_kind *k = optim_kind_at(kind);
    size_t used = 0;
    const int w = snprintf(buf, n, "\"optimizer\":\"%s\"", k ? k->name : "?");
    used = w > 0 && (size_t)w < n ? (size_t)w : n;
    if (k && (k->hparams & OPTIM_HP_BETAS) && used < n) {
        const int x = snprintf(buf + used, n - used, ",\"beta1\":%g,\"beta2\":%g", (double)h->beta1,
                               (double)h->beta2);
        used += x > 0 ? (size_t)x : 0;
    }
    if (k && (k->hparams & OPTIM_HP_EPS) && used < n) {
        const int x = snprintf(buf + used, n - used, ",\"eps\":%g", (double)h->eps);
        used += x > 0 ? (size_t)x : 0;
    }
    if (k && (k->hparams & OPTIM_HP_MOMENTUM) && used < n)
        snprintf(buf + used, n - used, ",\"momentum\":%g,\"nesterov\":%s", (double)h->momentum,
                 h->nesterov ? "true" : "false");
}

double sum_squares(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

float lr_at(int step, int steps, int warmup, float lr, float min_frac) {
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    const int decay = steps - warmup;
    if (decay <= 1) return lr;
    const double progress = (double)(step - warmup) / (double)(decay - 1);
    const double cosine = 0.5 * (1.0 + cos(3.141592653589793 * (progress > 1.0 ? 1.0 : progress)));
    return (float)(lr * (min_frac + (1.0 - min_frac) * cosine));
}
