/* analyze_job.c — one or two updates against their base: spectra per layer, φ grids per
 * common layer. */
#include "analyze_job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dataset.h"
#include "tokenizer.h"

/* Loads one file and reports every layer into the zeroed *f; on failure what it built stays
 * in f for analyze_results_free. */
static int file_run(analyze_file *f, const char *path, minigpt *base, const char *sha,
                    double threshold, ml_error *e) {
    f->path = path;
    if (analyze_update_load(&f->up, base, sha, path, e)) return -1;
    for (int i = 0; i < f->up.n_layers; i++)
        if (analyze_layer_report(&f->up.layers[i], f->up.rank, threshold, &f->rep[i], e))
            return ml_wrap(e, "%s", path);
    return 0;
}

/* Directions of ΔW worth comparing: those above the threshold, and never more than r for a
 * plain adapter (beyond r the singular vectors are rounding noise; a DoRA update is not
 * bounded by r). */
static int dw_dims(const analyze_file *f, int layer) {
    const int k = f->rep[layer].eff_rank;
    return f->up.is_adapter && !f->up.dora && f->up.rank < k ? f->up.rank : k;
}

/* The grid sizes 1,2,4,... up to k, then k itself when it is not a power of two. */
static int grid_dims(int k, int *d) {
    int n = 0;
    for (int v = 1; v <= k && n < ANALYZE_MAX_DIMS - 1; v *= 2) d[n++] = v;
    if (n && d[n - 1] != k) d[n++] = k;
    return n;
}

/* The φ grid of rows u1 (k1 directions) against rows u2 (k2), vectors of length dim; both
 * borrowed. */
static void grid_fill(analyze_grid *g, const double *u1, int k1, const double *u2, int k2,
                      int dim) {
    memset(g, 0, sizeof *g);
    g->k1 = k1, g->k2 = k2, g->dim = dim;
    if (k1 == 0 || k2 == 0) return;
    g->ni = grid_dims(k1, g->di);
    g->nj = grid_dims(k2, g->dj);
    g->top1 = sqrt(analyze_subspace_similarity(u1, 1, u2, 1, dim));
    for (int a = 0; a < g->ni; a++)
        for (int b = 0; b < g->nj; b++)
            g->phi[a][b] = analyze_subspace_similarity(u1, g->di[a], u2, g->dj[b], dim);
}

/* The grids of every layer both files adapt into r->pairs; refuses files with none. */
static int pairs_fill(analyze_results *r, ml_error *e) {
    const analyze_file *f1 = &r->files[0], *f2 = &r->files[1];
    if (!(r->pairs = calloc((size_t)f1->up.n_layers + 1, sizeof *r->pairs)))
        return ml_fail(e, "out of memory");
    for (int i = 0; i < f1->up.n_layers; i++) {
        const analyze_layer *l1 = &f1->up.layers[i], *l2 = analyze_update_find(&f2->up, l1->path);
        if (!l2) continue;
        const int i2 = (int)(l2 - f2->up.layers);
        const analyze_report *r1 = &f1->rep[i], *r2 = &f2->rep[i2];
        analyze_pair *p = &r->pairs[r->n_pairs++];
        p->layer1 = i, p->layer2 = i2;
        p->has_a_rows = f1->up.is_adapter && f2->up.is_adapter;
        if (p->has_a_rows) grid_fill(&p->a_rows, r1->a_v, r1->a_n, r2->a_v, r2->a_n, l1->in);
        grid_fill(&p->dw_cols, r1->u, dw_dims(f1, i), r2->u, dw_dims(f2, i2), l1->out);
    }
    if (r->n_pairs == 0)
        return ml_fail(e, "%s: no adapted layer in common with %s", f2->path, f1->path);
    return 0;
}

/* The input of a Linear slot in a forward's saved activations: q, k, v read LayerNorm 1's
 * output, o the attention output, fc1 LayerNorm 2's output, fc2 the GELU output. */
static const float *slot_input(const minigpt_ws *ws, const minigpt_linear *L) {
    const minigpt_block_acts *a = &ws->layers[L->layer];
    switch (L->role) {
    case MG_Q:
    case MG_K:
    case MG_V: return a->ln1;
    case MG_O: return a->atty;
    case MG_FC1: return a->ln2;
    case MG_FC2: return a->gelu;
    default: return NULL;
    }
}

/* ‖M·x‖₂ for M (out,in) and one row x (in), in double. */
static double matvec_norm(const float *M, int out, int in, const float *x) {
    double s = 0;
    for (int o = 0; o < out; o++) {
        double d = 0;
        for (int i = 0; i < in; i++) d += (double)M[(size_t)o * in + i] * x[i];
        s += d * d;
    }
    return sqrt(s);
}

/* Mean ‖ΔW·x‖ and ‖W·x‖ of every layer of each file over the real positions of the data
 * (the base model's activations; padding positions are skipped). */
static int data_run(analyze_results *r, const char *path, const tok_vocab *v, ml_error *e) {
    enum { BATCH = 16 };
    minigpt *m = &r->base;
    const int T = m->cfg.context;
    dataset d = {0};
    minigpt_ws ws = {0};
    int *tokens = malloc(sizeof(int) * BATCH * (size_t)T);  // (BATCH,T)
    int *targets = malloc(sizeof(int) * BATCH * (size_t)T); // (BATCH,T)
    long positions = 0;
    int rc = -1;
    if (!tokens || !targets) {
        ml_fail(e, "out of memory");
        goto done;
    }
    if (ds_load(&d, path, v, T, e) || minigpt_ws_init(&ws, m, BATCH, T, e)) goto done;
    for (int start = 0; start < d.n; start += BATCH) {
        const int B = d.n - start < BATCH ? d.n - start : BATCH;
        const ds_example *ex[BATCH];
        for (int b = 0; b < B; b++) ex[b] = &d.ex[start + b];
        ds_batch(ex, B, T, tokens, targets);
        minigpt_forward(m, &ws, tokens, B, T);
        for (int k = 0; k < r->n_files; k++) {
            analyze_file *f = &r->files[k];
            for (int i = 0; i < f->up.n_layers; i++) {
                const analyze_layer *l = &f->up.layers[i];
                const minigpt_linear *L = minigpt_find_linear(m, l->path);
                const float *x = L ? slot_input(&ws, L) : NULL;
                if (!x) {
                    ml_fail(e, "%s: no such Linear in the base", l->path);
                    goto done;
                }
                for (int b = 0; b < B; b++) {
                    const int n = ex[b]->n_prompt + ex[b]->n_completion - 1; /* real positions */
                    for (int t = 0; t < n; t++) {
                        const float *row = x + ((size_t)b * T + t) * l->in;
                        f->dwx[i] += matvec_norm(l->dw, l->out, l->in, row);
                        f->wx[i] += matvec_norm(l->w, l->out, l->in, row);
                    }
                }
            }
        }
        for (int b = 0; b < B; b++) positions += ex[b]->n_prompt + ex[b]->n_completion - 1;
    }
    for (int k = 0; k < r->n_files; k++) {
        analyze_file *f = &r->files[k];
        f->positions = positions;
        f->has_data = 1;
        for (int i = 0; i < f->up.n_layers && positions > 0; i++) {
            f->dwx[i] /= (double)positions;
            f->wx[i] /= (double)positions;
        }
    }
    rc = 0;
done:
    minigpt_ws_free(&ws);
    ds_free(&d);
    free(tokens);
    free(targets);
    return rc;
}

int analyze_job_run(const analyze_spec *s, analyze_results *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    if (s->n_files < 1 || s->n_files > 2) return ml_fail(e, "expected one or two files");
    tok_vocab v;
    if (checkpoint_load(s->base, &r->base, &v, r->base_sha, e)) goto fail;
    if (!(r->files = calloc((size_t)s->n_files, sizeof *r->files))) {
        ml_fail(e, "out of memory");
        goto fail;
    }
    for (; r->n_files < s->n_files; r->n_files++)
        if (file_run(&r->files[r->n_files], s->files[r->n_files], &r->base, r->base_sha,
                     s->threshold, e)) {
            r->n_files++; /* free what it built */
            goto fail;
        }
    if (r->n_files == 2 && pairs_fill(r, e)) goto fail;
    if (s->data && data_run(r, s->data, &v, e)) goto fail;
    return 0;
fail:
    analyze_results_free(r);
    return -1;
}

void analyze_results_free(analyze_results *r) {
    for (int k = 0; k < r->n_files; k++) {
        for (int i = 0; i < ANALYZE_MAX_LAYERS; i++) analyze_report_free(&r->files[k].rep[i]);
        analyze_update_free(&r->files[k].up);
    }
    free(r->files);
    free(r->pairs);
    minigpt_free(&r->base);
    memset(r, 0, sizeof *r);
}
