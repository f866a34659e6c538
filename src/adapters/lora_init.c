/* lora_init.c — the choices of lora-train --init: kaiming, gaussian, pissa, olora (see
 * lora_init.h for the formulas and why pissa/olora keep their initial factors). */
#include "lora_init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"
#include "rng.h"

static const char *const names[LORA_INIT_COUNT] = {"kaiming", "gaussian", "pissa", "olora"};

const char *lora_init_name(int i) { return i >= 0 && i < LORA_INIT_COUNT ? names[i] : NULL; }

int lora_init_uses_base(int kind) { return kind == LORA_INIT_PISSA || kind == LORA_INIT_OLORA; }

int lora_init_check_rank(int kind, int rank, ml_error *e) {
    if (lora_init_uses_base(kind) && (rank < 1 || 2 * rank > LORA_MAX_RANK))
        return ml_fail(e,
                       "--init %s needs --rank 1..%d (rank %d given; the saved adapter, "
                       "converted to the original base, has rank 2r <= %d)",
                       names[kind], LORA_MAX_RANK / 2, rank, LORA_MAX_RANK);
    return 0;
}

/* A ~ N(0, (1/r)²), B = 0: PEFT's "gaussian" (nn.init.normal_(A, std=1/r)). */
static void init_gaussian(lora *a, uint64_t seed) {
    rng g;
    rng_seed(&g, seed);
    const float std = 1.0f / (float)a->rank;
    for (int i = 0; i < a->n_layers; i++) {
        lora_layer *L = &a->layers[i];
        for (size_t j = 0; j < (size_t)a->rank * L->slot->in; j++) L->A[j] = std * rng_normal(&g);
        memset(L->B, 0, sizeof(float) * (size_t)L->slot->out * a->rank);
    }
}

/* One layer's principal (pissa) or QR (olora) factors into L->A (r,in) and L->B (out,r), as
 * PEFT computes them; work holds k·(out+in) + k doubles, k = min(out,in). */
static int init_from_weight(const lora *a, lora_layer *L, int kind, double *work, ml_error *e) {
    const int r = a->rank, out = L->slot->out, in = L->slot->in, k = out < in ? out : in;
    if (kind == LORA_INIT_PISSA) {
        /* W (out,in) = U·S·Vᵀ; S_r /= s; A = diag(√S_r)·V_rᵀ, B = U_r·diag(√S_r) */
        double *u = work, *vt = u + (size_t)k * out, *sigma = vt + (size_t)k * in;
        if (linalg_svd(L->slot->w, out, in, sigma, u, vt, e)) return -1;
        for (int t = 0; t < r; t++) {
            const double root = sqrt(sigma[t] / (double)a->scale);
            for (int j = 0; j < in; j++)
                L->A[(size_t)t * in + j] = (float)(root * vt[(size_t)t * in + j]);
            for (int i = 0; i < out; i++)
                L->B[(size_t)i * r + t] = (float)(u[(size_t)t * out + i] * root);
        }
    } else {
        /* W (out,in) = Q·R (thin); A = R[:r], B = Q[:, :r] */
        double *q = work, *rr = q + (size_t)out * k;
        if (linalg_qr(L->slot->w, out, in, q, rr, e)) return -1;
        for (int t = 0; t < r; t++)
            for (int j = 0; j < in; j++) L->A[(size_t)t * in + j] = (float)rr[(size_t)t * in + j];
        for (int i = 0; i < out; i++)
            for (int t = 0; t < r; t++) L->B[(size_t)i * r + t] = (float)q[(size_t)i * k + t];
    }
    /* W_res = W − s·B·A, from the float factors the adapter holds (double inside) */
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double ba = 0.0;
            for (int t = 0; t < r; t++)
                ba += (double)L->B[(size_t)i * r + t] * (double)L->A[(size_t)t * in + j];
            float *w = &L->slot->w[(size_t)i * in + j];
            *w = (float)((double)*w - (double)a->scale * ba);
        }
    return 0;
}

int lora_init_apply(lora *a, int kind, uint64_t seed, ml_error *e) {
    if (!lora_init_name(kind)) return ml_fail(e, "unknown LoRA init %d", kind);
    a->init = kind;
    if (kind == LORA_INIT_KAIMING || a->rank == 0) {
        if (kind == LORA_INIT_KAIMING) lora_init_weights(a, seed); /* SPEC §3, unchanged */
        return 0;
    }
    if (kind == LORA_INIT_GAUSSIAN) {
        init_gaussian(a, seed);
        return 0;
    }
    if (lora_init_check_rank(kind, a->rank, e)) return -1;
    size_t most = 0;
    for (int i = 0; i < a->n_layers; i++) {
        const minigpt_linear *s = a->layers[i].slot;
        const int k = s->out < s->in ? s->out : s->in;
        if (a->rank > k)
            return ml_fail(e, "--init %s: rank %d exceeds min(out,in) = %d of %s", names[kind],
                           a->rank, k, s->path);
        const size_t n = (size_t)k * (s->out + s->in) + (size_t)k;
        if (n > most) most = n;
    }
    double *work = malloc(sizeof(double) * most);
    a->init0 = malloc(sizeof(float) * a->n_params);
    if (!work || !a->init0) {
        free(work);
        return ml_fail(e, "out of memory for the %s init", names[kind]);
    }
    for (int i = 0; i < a->n_layers; i++)
        if (init_from_weight(a, &a->layers[i], kind, work, e)) {
            free(work);
            return ml_wrap(e, "--init %s: %s.weight", names[kind], a->layers[i].slot->path);
        }
    free(work);
    memcpy(a->init0, a->params, sizeof(float) * a->n_params);
    return 0;
}
