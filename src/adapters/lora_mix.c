/* lora_mix.c — linear, cat and svd mixes of adapters on one base (lora_mix.h). */
#include "lora_mix.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"

const char *lora_mix_mode_name(int i) {
    static const char *const names[] = {"linear", "cat", "svd"};
    return i >= 0 && i < (int)(sizeof names / sizeof names[0]) ? names[i] : NULL;
}

/* The layer of a adapting slot, or NULL when a leaves that Linear alone. */
static const lora_layer *layer_of(const lora *a, const minigpt_linear *slot) {
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].slot == slot) return &a->layers[i];
    return NULL;
}

/* A = Σ c_i·A_i, B = Σ c_i·B_i, c_i = √(w_i·s_i) (double, then rounded once) */
static void mix_linear(lora *out, const lora *const *src, const float *w, int n) {
    const int r = out->rank;
    for (int l = 0; l < out->n_layers; l++) {
        lora_layer *L = &out->layers[l];
        const size_t na = (size_t)r * L->slot->in, nb = (size_t)L->slot->out * r;
        for (int i = 0; i < n; i++) {
            const lora_layer *S = layer_of(src[i], L->slot);
            const float c = (float)sqrt((double)w[i] * src[i]->scale);
            for (size_t k = 0; S && k < na; k++) L->A[k] += c * S->A[k];
            for (size_t k = 0; S && k < nb; k++) L->B[k] += c * S->B[k];
        }
    }
}

/* A stacks the rows w_i·s_i·A_i, B the columns B_i, in source order */
static void mix_cat(lora *out, const lora *const *src, const float *w, int n) {
    const int r = out->rank;
    for (int l = 0; l < out->n_layers; l++) {
        lora_layer *L = &out->layers[l];
        const int in = L->slot->in, o = L->slot->out;
        int row = 0;
        for (int i = 0; i < n; i++) {
            const lora_layer *S = layer_of(src[i], L->slot);
            const int ri = src[i]->rank;
            const float c = w[i] * src[i]->scale;
            for (int k = 0; S && k < ri; k++)
                for (int j = 0; j < in; j++)
                    L->A[(size_t)(row + k) * in + j] = c * S->A[(size_t)k * in + j];
            for (int q = 0; S && q < o; q++)
                for (int k = 0; k < ri; k++)
                    L->B[(size_t)q * r + row + k] = S->B[(size_t)q * ri + k];
            row += ri;
        }
    }
}

/* ΔW = Σ w_i·s_i·B_i·A_i, then B = U_R·diag(σ_R), A = V_Rᵀ with fixed signs */
static int mix_svd(lora *out, const lora *const *src, const float *w, int n, ml_error *e) {
    const int r = out->rank;
    int rc = 0;
    for (int l = 0; !rc && l < out->n_layers; l++) {
        lora_layer *L = &out->layers[l];
        const int in = L->slot->in, o = L->slot->out, k = in < o ? in : o;
        float *dw = calloc((size_t)o * in, sizeof(float));    // (out,in)
        double *sigma = malloc(sizeof(double) * k);           // (k)
        double *u = malloc(sizeof(double) * (size_t)k * o);   // (k,out) as rows
        double *vt = malloc(sizeof(double) * (size_t)k * in); // (k,in)
        if (!dw || !sigma || !u || !vt) rc = ml_fail(e, "%s: out of memory", L->slot->path);
        for (int i = 0; !rc && i < n; i++) {
            const lora_layer *S = layer_of(src[i], L->slot);
            if (!S || src[i]->rank == 0) continue;
            // ΔW (out,in) += w_i·s_i · B_i (out,r_i) · A_i (r_i,in)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, in, src[i]->rank,
                        w[i] * src[i]->scale, S->B, src[i]->rank, S->A, in, 1.0f, dw, in);
        }
        if (!rc && analyze_svd(dw, o, in, sigma, u, vt, e))
            rc = ml_wrap(e, "%s: the mixed update", L->slot->path);
        for (int t = 0; !rc && t < r && t < k; t++) {
            const double *v = vt + (size_t)t * in, *ut = u + (size_t)t * o;
            int big = 0; /* sign convention: the largest |entry| of A's row is positive */
            for (int j = 1; j < in; j++)
                if (fabs(v[j]) > fabs(v[big])) big = j;
            const double sg = v[big] < 0 ? -1.0 : 1.0;
            for (int j = 0; j < in; j++) L->A[(size_t)t * in + j] = (float)(sg * v[j]);
            for (int q = 0; q < o; q++) L->B[(size_t)q * r + t] = (float)(sg * ut[q] * sigma[t]);
        }
        free(dw);
        free(sigma);
        free(u);
        free(vt);
    }
    return rc;
}

int lora_mix(lora *out, minigpt *m, const lora *const *src, const char *const *labels,
             const float *w, int n, lora_mix_mode mode, int svd_rank, ml_error *e) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > LORA_MIX_MAX) return ml_fail(e, "%d adapters to mix (1..%d)", n, LORA_MIX_MAX);
    if (!lora_mix_mode_name((int)mode)) return ml_fail(e, "unknown mix mode %d", (int)mode);
    unsigned targets = 0, layers = 0;
    int rank_sum = 0, rank_max = 0;
    for (int i = 0; i < n; i++) {
        const lora *s = src[i];
        if (s->m != m) return ml_fail(e, "%s: not loaded on this base", labels[i]);
        if (!isfinite(w[i])) return ml_fail(e, "%s: its weight is not a finite number", labels[i]);
        if (mode == LORA_MIX_LINEAR && s->rank != src[0]->rank)
            return ml_fail(e,
                           "%s: rank %d, but %s has rank %d: --combine linear needs one rank "
                           "(use cat or svd)",
                           labels[i], s->rank, labels[0], src[0]->rank);
        if (mode == LORA_MIX_LINEAR &&
            (s->targets != src[0]->targets || s->layer_mask != src[0]->layer_mask))
            return ml_fail(e,
                           "%s: adapts other Linear layers than %s: --combine linear needs the "
                           "same targets and blocks (use cat or svd)",
                           labels[i], labels[0]);
        if (mode == LORA_MIX_LINEAR && w[i] < 0)
            return ml_fail(e,
                           "%s: weight %g: --combine linear scales A and B by sqrt(weight·scale), "
                           "so it needs weights >= 0 (use cat or svd)",
                           labels[i], (double)w[i]);
        targets |= s->targets;
        layers |= s->layer_mask;
        rank_sum += s->rank;
        if (s->rank > rank_max) rank_max = s->rank;
    }
    int rank = mode == LORA_MIX_LINEAR ? src[0]->rank
               : mode == LORA_MIX_CAT  ? rank_sum
                                       : (svd_rank > 0 ? svd_rank : rank_max);
    if (rank > LORA_MAX_RANK)
        return ml_fail(e, "--combine %s: the mixed rank %d exceeds %d (use --combine svd --rank R)",
                       lora_mix_mode_name((int)mode), rank, LORA_MAX_RANK);
    /* scale 1: alpha = r (PEFT's new lora_alpha); rank 0 takes alpha 1, which nothing uses */
    if (lora_init_layers(out, m, rank, rank > 0 ? (float)rank : 1.0f, 0, targets, layers, e))
        return -1;
    int rc = 0;
    if (mode == LORA_MIX_LINEAR) mix_linear(out, src, w, n);
    else if (mode == LORA_MIX_CAT) mix_cat(out, src, w, n);
    else rc = mix_svd(out, src, w, n, e);
    for (int l = 0; !rc && rank > 0 && l < out->n_layers; l++) {
        const lora_layer *L = &out->layers[l];
        const size_t na = (size_t)rank * L->slot->in, nb = (size_t)L->slot->out * rank;
        for (size_t k = 0; !rc && k < na + nb; k++)
            if (!isfinite(k < na ? L->A[k] : L->B[k - na]))
                rc = ml_fail(e,
                             "%s.lora_%c: the mixed weight at %zu is not finite (a weight times "
                             "a scale overflows a float)",
                             L->slot->path, k < na ? 'A' : 'B', k < na ? k : k - na);
    }
    if (rc) lora_free(out);
    return rc;
}
