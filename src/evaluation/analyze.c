/* analyze.c — singular values and subspace overlaps of learned updates (Hu et al. §7). */
#include "analyze.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "linalg.h"
#include "lora.h"
#include "safetensors.h"
#include "tokenizer.h"

/* ---- linear algebra -------------------------------------------------------------------- */

int analyze_svd(const float *a, int rows, int cols, double *sigma, double *u, double *vt,
                ml_error *e) {
    return linalg_svd(a, rows, cols, sigma, u, vt, e);
}

int analyze_spectrum(const float *dw, int out, int in, double *sigma, ml_error *e) {
    return analyze_svd(dw, out, in, sigma, NULL, NULL, e);
}

int analyze_effective_rank(const double *sigma, int n, double threshold) {
    if (n <= 0 || !(sigma[0] > 0.0)) return 0;
    const double cut = threshold * sigma[0];
    int r = 0;
    for (int i = 0; i < n; i++) r += sigma[i] > cut;
    return r;
}

double analyze_energy_share(const double *sigma, int n, int k) {
    double top = 0.0, all = 0.0;
    for (int i = 0; i < n; i++) {
        const double s2 = sigma[i] * sigma[i];
        all += s2;
        if (i < k) top += s2;
    }
    return all > 0.0 ? top / all : 0.0;
}

double analyze_frobenius(const float *a, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

double analyze_subspace_similarity(const double *u1, int i, const double *u2, int j, int dim) {
    if (i <= 0 || j <= 0) return NAN;
    double s = 0.0;
    for (int a = 0; a < i; a++)
        for (int b = 0; b < j; b++) {
            const double c = cblas_ddot(dim, u1 + (size_t)a * dim, 1, u2 + (size_t)b * dim, 1);
            s += c * c;
        }
    return s / (i < j ? i : j);
}

int analyze_numerical_rank(const double *sigma, int n) {
    /* 1e-9: far above double rounding of an SVD of float data, far below any real direction */
    return analyze_effective_rank(sigma, n, 1e-9);
}

/* ---- updates read from files ----------------------------------------------------------- */

/* Allocates a layer's ΔW (zeroed) and, when r > 0, its A; both owned by the layer. */
static int layer_alloc(analyze_layer *l, const minigpt_linear *slot, int r, ml_error *e) {
    snprintf(l->path, sizeof l->path, "%s", slot->path);
    l->out = slot->out;
    l->in = slot->in;
    l->w = slot->w;
    l->dw = calloc((size_t)slot->out * slot->in, sizeof(float));
    l->a = r > 0 ? malloc(sizeof(float) * (size_t)r * slot->in) : NULL;
    if (!l->dw || (r > 0 && !l->a)) return ml_fail(e, "out of memory for %s", slot->path);
    return 0;
}

/* Refuses an update ΔW that is not finite (an overflowing s·B·A, or W' − W), naming the file
 * and the tensor: every number the analysis reports is then finite. */
static int check_finite(const analyze_layer *l, const char *path, ml_error *e) {
    const size_t n = (size_t)l->out * l->in;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(l->dw[k]))
            return ml_fail(e, "%s: %s.weight: the update at %zu is not finite (a float overflows)",
                           path, l->path, k);
    return 0;
}

static int load_adapter(analyze_update *u, minigpt *base, const char *base_sha256, const char *path,
                        ml_error *e) {
    lora a;
    if (lora_load(&a, base, path, base_sha256, e)) return -1;
    u->is_adapter = 1;
    u->rank = a.rank;
    u->alpha = a.alpha;
    u->scale = a.scale;
    u->rslora = a.rslora;
    u->dora = a.dora;
    int rc = 0;
    for (int i = 0; !rc && i < a.n_layers; i++) {
        const lora_layer *L = &a.layers[i];
        analyze_layer *l = &u->layers[u->n_layers++];
        rc = layer_alloc(l, L->slot, a.rank, e);
        if (rc || a.rank == 0) continue; /* rank 0: ΔW stays zero */
        memcpy(l->a, L->A, sizeof(float) * (size_t)a.rank * l->in);
        // ΔW (out,in) = s · B (out,r) · A (r,in), exactly what lora_merge_into adds to W; DoRA:
        // m ⊙ (W + s·B·A)/‖·‖ − W, what it makes of W (the merged rows, built in place)
        const size_t n = (size_t)l->out * l->in;
        if (a.dora) memcpy(l->dw, l->w, sizeof(float) * n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->out, l->in, a.rank, a.scale, L->B,
                    a.rank, L->A, l->in, a.dora ? 1.0f : 0.0f, l->dw, l->in);
        if (a.dora) {
            lora_dora_scale_rows(L, l->dw);
            for (size_t k = 0; k < n; k++) l->dw[k] -= l->w[k];
        }
        rc = check_finite(l, path, e);
    }
    lora_free(&a); /* uninstalls it: base is as before */
    return rc;
}

static int load_full(analyze_update *u, const minigpt *base, const char *path, ml_error *e) {
    minigpt full;
    tok_vocab v;
    if (checkpoint_load(path, &full, &v, NULL, e)) return -1;
    int rc = 0;
    if (full.n_linears != base->n_linears)
        rc = ml_fail(e, "%s: has %d Linear layers, the base has %d", path, full.n_linears,
                     base->n_linears);
    for (int i = 0; !rc && i < full.n_linears; i++) {
        const minigpt_linear *F = &full.linears[i], *W = &base->linears[i];
        if (strcmp(F->path, W->path) || F->out != W->out || F->in != W->in) {
            rc = ml_fail(e, "%s: %s is (%d,%d), the base's %s is (%d,%d)", path, F->path, F->out,
                         F->in, W->path, W->out, W->in);
            break;
        }
        analyze_layer *l = &u->layers[u->n_layers++];
        rc = layer_alloc(l, W, 0, e);
        const size_t n = (size_t)l->out * l->in;
        for (size_t k = 0; !rc && k < n; k++) l->dw[k] = F->w[k] - W->w[k];
        if (!rc) rc = check_finite(l, path, e);
    }
    minigpt_free(&full);
    return rc;
}

int analyze_update_load(analyze_update *u, minigpt *base, const char *base_sha256, const char *path,
                        ml_error *e) {
    memset(u, 0, sizeof *u);
    int is_adapter;
    if (lora_probe(path, &is_adapter, e)) return -1;
    const int rc =
        is_adapter ? load_adapter(u, base, base_sha256, path, e) : load_full(u, base, path, e);
    if (rc) analyze_update_free(u);
    return rc;
}

void analyze_update_free(analyze_update *u) {
    for (int i = 0; i < u->n_layers; i++) {
        free(u->layers[i].dw);
        free(u->layers[i].a);
    }
    memset(u, 0, sizeof *u);
}

const analyze_layer *analyze_update_find(const analyze_update *u, const char *path) {
    for (int i = 0; i < u->n_layers; i++)
        if (!strcmp(u->layers[i].path, path)) return &u->layers[i];
    return NULL;
}

/* ---- per-layer report ------------------------------------------------------------------ */

int analyze_layer_report(const analyze_layer *l, int r, double threshold, analyze_report *rep,
                         ml_error *e) {
    memset(rep, 0, sizeof *rep);
    const int n = l->out < l->in ? l->out : l->in;
    rep->n = n;
    rep->sigma = malloc(sizeof(double) * n);
    rep->u = malloc(sizeof(double) * (size_t)n * l->out);
    if (!rep->sigma || !rep->u) return ml_fail(e, "%s: out of memory", l->path);
    if (analyze_svd(l->dw, l->out, l->in, rep->sigma, rep->u, NULL, e))
        return ml_wrap(e, "%s: ΔW", l->path);
    rep->eff_rank = analyze_effective_rank(rep->sigma, n, threshold);
    rep->top1 = analyze_energy_share(rep->sigma, n, 1);
    rep->top4 = analyze_energy_share(rep->sigma, n, 4);
    rep->fro = analyze_frobenius(l->dw, (size_t)l->out * l->in);
    const double wn = analyze_frobenius(l->w, (size_t)l->out * l->in);
    rep->rel = wn > 0.0 ? rep->fro / wn : NAN;
    if (!l->a || r <= 0) return 0;
    const int an = r < l->in ? r : l->in;
    rep->a_sigma = malloc(sizeof(double) * an);
    rep->a_v = malloc(sizeof(double) * (size_t)an * l->in);
    if (!rep->a_sigma || !rep->a_v) return ml_fail(e, "%s: out of memory", l->path);
    if (analyze_svd(l->a, r, l->in, rep->a_sigma, NULL, rep->a_v, e))
        return ml_wrap(e, "%s: A", l->path);
    rep->a_n = analyze_numerical_rank(rep->a_sigma, an);
    return 0;
}

void analyze_report_free(analyze_report *rep) {
    free(rep->sigma);
    free(rep->u);
    free(rep->a_sigma);
    free(rep->a_v);
    memset(rep, 0, sizeof *rep);
}
