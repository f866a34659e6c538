/* cmd_analyze.c — `lora-analyze`: the LoRA paper's §7 analysis (Hu et al. 2021) of learned
 * updates. One file: the singular values of each layer's ΔW, its effective rank and energy
 * shares, and its size against the frozen W. Two files: how much the subspaces they learned
 * overlap, φ(i,j) = ||U1[:i]ᵀ U2[:j]||_F² / min(i,j). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "opts.h"

#define SIGMA_SHOWN 6 /* singular values per row of the text table */
#define MAX_DIMS 16   /* 1,2,4,...,64 plus an odd rank fits easily */

typedef struct {
    const char *path;
    analyze_update up;
    analyze_report rep[ANALYZE_MAX_LAYERS];
} analyze_file;

/* Loads one file and reports every layer; frees what it built on failure. */
static int analyze_file_run(analyze_file *f, const char *path, minigpt *base, const char *sha,
                            double threshold, ml_error *e) {
    memset(f, 0, sizeof *f);
    f->path = path;
    if (analyze_update_load(&f->up, base, sha, path, e)) return -1;
    for (int i = 0; i < f->up.n_layers; i++)
        if (analyze_layer_report(&f->up.layers[i], f->up.rank, threshold, &f->rep[i], e))
            return ml_wrap(e, "%s", path);
    return 0;
}

static void analyze_file_free(analyze_file *f) {
    for (int i = 0; i < ANALYZE_MAX_LAYERS; i++) analyze_report_free(&f->rep[i]);
    analyze_update_free(&f->up);
}

/* Directions of ΔW worth comparing: those above the threshold, and never more than r for an
 * adapter (beyond r the singular vectors are rounding noise). */
static int dw_dims(const analyze_file *f, int layer) {
    const int k = f->rep[layer].eff_rank;
    return f->up.is_adapter && f->up.rank < k ? f->up.rank : k;
}

/* The grid sizes 1,2,4,... up to k, then k itself when it is not a power of two. */
static int grid_dims(int k, int *d) {
    int n = 0;
    for (int v = 1; v <= k && n < MAX_DIMS - 1; v *= 2) d[n++] = v;
    if (n && d[n - 1] != k) d[n++] = k;
    return n;
}

/* ---- text ------------------------------------------------------------------------------ */

static void file_heading(const analyze_file *f) {
    if (f->up.is_adapter)
        printf("%s: LoRA adapter, rank %d, alpha %g, scale %g%s; ΔW = s·B·A, so rank(ΔW) <= %d\n",
               f->path, f->up.rank, (double)f->up.alpha, (double)f->up.scale,
               f->up.rslora ? " (rsLoRA)" : "", f->up.rank);
    else
        printf("%s: full checkpoint; ΔW = W_file - W_base, rank(ΔW) <= min(out,in)\n", f->path);
}

static void spectrum_text(const analyze_file *f) {
    file_heading(f);
    /* widths + 1 where a header holds a two-byte Δ or σ, so the columns line up */
    printf("  %-22s %4s %4s %7s %7s %10s %9s  ", "layer", "r", "eff", "top-1", "top-4", "|ΔW|_F",
           "|ΔW|/|W|");
    for (int k = 0; k < SIGMA_SHOWN; k++) {
        char h[16];
        snprintf(h, sizeof h, "σ%d", k + 1);
        printf(" %9s", h);
    }
    printf("\n");
    int eff_sum = 0;
    for (int i = 0; i < f->up.n_layers; i++) {
        const analyze_layer *l = &f->up.layers[i];
        const analyze_report *r = &f->rep[i];
        char rank[16], rel[32];
        if (f->up.is_adapter) snprintf(rank, sizeof rank, "%d", f->up.rank);
        else snprintf(rank, sizeof rank, "full");
        if (isnan(r->rel)) snprintf(rel, sizeof rel, "-");
        else snprintf(rel, sizeof rel, "%.2f%%", 100.0 * r->rel);
        printf("  %-22s %4s %4d %6.1f%% %6.1f%% %9.3g %8s  ", l->path, rank, r->eff_rank, 100.0 * r->top1,
               100.0 * r->top4, r->fro, rel);
        for (int k = 0; k < r->n && k < SIGMA_SHOWN; k++) printf(" %8.3g", r->sigma[k]);
        printf("%s\n", r->n > SIGMA_SHOWN ? " ..." : "");
        eff_sum += r->eff_rank;
    }
    if (f->up.n_layers)
        printf("  mean effective rank %.2f over %d layers\n", (double)eff_sum / f->up.n_layers,
               f->up.n_layers);
    printf("\n");
}

/* One φ grid: rows i from u1 (k1 directions), columns j from u2 (k2), vectors of length dim. */
static void grid_text(const char *what, const double *u1, int k1, const double *u2, int k2, int dim) {
    if (k1 == 0 || k2 == 0) {
        printf("  %s: nothing to compare (%s)\n", what, k1 == 0 ? "file 1 has no direction" : "file 2 has no direction");
        return;
    }
    int di[MAX_DIMS], dj[MAX_DIMS];
    const int ni = grid_dims(k1, di), nj = grid_dims(k2, dj);
    const double top1 = sqrt(analyze_subspace_similarity(u1, 1, u2, 1, dim));
    printf("  %s (dim %d), top-1 overlap |cos| = %.3f\n    i\\j  ", what, dim, top1);
    for (int b = 0; b < nj; b++) printf(" %6d", dj[b]);
    printf("\n");
    for (int a = 0; a < ni; a++) {
        printf("    %-5d", di[a]);
        for (int b = 0; b < nj; b++) printf(" %6.3f", analyze_subspace_similarity(u1, di[a], u2, dj[b], dim));
        printf("\n");
    }
}

static void similarity_text(const analyze_file *f1, const analyze_file *f2) {
    printf("Subspace similarity (Hu et al. 2021, §7): φ(i,j) = |U1[:i]ᵀ U2[:j]|_F² / min(i,j)\n"
           "  U1: top-i singular directions of %s (rows), U2: top-j of %s (columns);\n"
           "  1 = one span contains the other, 0 = orthogonal; random subspaces give about max(i,j)/dim.\n"
           "  ΔW column spaces use the directions above the threshold.\n\n",
           f1->path, f2->path);
    for (int i = 0; i < f1->up.n_layers; i++) {
        const analyze_layer *l1 = &f1->up.layers[i], *l2 = analyze_update_find(&f2->up, l1->path);
        if (!l2) continue;
        const analyze_report *r1 = &f1->rep[i], *r2 = &f2->rep[l2 - f2->up.layers];
        printf("%s\n", l1->path);
        if (f1->up.is_adapter && f2->up.is_adapter)
            grid_text("row space of A", r1->a_v, r1->a_n, r2->a_v, r2->a_n, l1->in);
        grid_text("column space of ΔW", r1->u, dw_dims(f1, i), r2->u, dw_dims(f2, (int)(l2 - f2->up.layers)),
                  l1->out);
        printf("\n");
    }
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* cJSON prints NAN as null, which is what JSON readers want for "undefined". */
static cJSON *spectrum_json(const analyze_file *f) {
    cJSON *o = cJSON_CreateObject(), *layers = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "path", f->path);
    cJSON_AddStringToObject(o, "kind", f->up.is_adapter ? "lora" : "full");
    if (f->up.is_adapter) {
        cJSON_AddNumberToObject(o, "rank", f->up.rank);
        cJSON_AddNumberToObject(o, "lora_alpha", f->up.alpha);
        cJSON_AddNumberToObject(o, "scale", f->up.scale);
        cJSON_AddBoolToObject(o, "use_rslora", f->up.rslora);
    }
    for (int i = 0; i < f->up.n_layers; i++) {
        const analyze_layer *l = &f->up.layers[i];
        const analyze_report *r = &f->rep[i];
        cJSON *L = cJSON_CreateObject();
        cJSON_AddStringToObject(L, "path", l->path);
        cJSON_AddNumberToObject(L, "out", l->out);
        cJSON_AddNumberToObject(L, "in", l->in);
        cJSON_AddNumberToObject(L, "max_rank", f->up.is_adapter ? f->up.rank : r->n);
        cJSON_AddNumberToObject(L, "effective_rank", r->eff_rank);
        cJSON_AddNumberToObject(L, "top1_energy", r->top1);
        cJSON_AddNumberToObject(L, "top4_energy", r->top4);
        cJSON_AddNumberToObject(L, "frobenius", r->fro);
        cJSON_AddNumberToObject(L, "relative_norm", r->rel);
        cJSON_AddItemToObject(L, "singular_values", cJSON_CreateDoubleArray(r->sigma, r->n));
        if (r->a_sigma)
            cJSON_AddItemToObject(L, "a_singular_values",
                                  cJSON_CreateDoubleArray(r->a_sigma, f->up.rank < l->in ? f->up.rank : l->in));
        cJSON_AddItemToArray(layers, L);
    }
    cJSON_AddItemToObject(o, "layers", layers);
    return o;
}

static cJSON *grid_json(const double *u1, int k1, const double *u2, int k2, int dim) {
    if (k1 == 0 || k2 == 0) return cJSON_CreateNull();
    int di[MAX_DIMS], dj[MAX_DIMS];
    const int ni = grid_dims(k1, di), nj = grid_dims(k2, dj);
    cJSON *o = cJSON_CreateObject(), *phi = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "dim", dim);
    cJSON_AddItemToObject(o, "i", cJSON_CreateIntArray(di, ni));
    cJSON_AddItemToObject(o, "j", cJSON_CreateIntArray(dj, nj));
    for (int a = 0; a < ni; a++) {
        double row[MAX_DIMS];
        for (int b = 0; b < nj; b++) row[b] = analyze_subspace_similarity(u1, di[a], u2, dj[b], dim);
        cJSON_AddItemToArray(phi, cJSON_CreateDoubleArray(row, nj));
    }
    cJSON_AddItemToObject(o, "phi", phi);
    cJSON_AddNumberToObject(o, "top1_overlap", sqrt(analyze_subspace_similarity(u1, 1, u2, 1, dim)));
    return o;
}

static cJSON *similarity_json(const analyze_file *f1, const analyze_file *f2) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < f1->up.n_layers; i++) {
        const analyze_layer *l1 = &f1->up.layers[i], *l2 = analyze_update_find(&f2->up, l1->path);
        if (!l2) continue;
        const int i2 = (int)(l2 - f2->up.layers);
        const analyze_report *r1 = &f1->rep[i], *r2 = &f2->rep[i2];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", l1->path);
        cJSON_AddItemToObject(o, "a_row_space",
                              f1->up.is_adapter && f2->up.is_adapter
                                  ? grid_json(r1->a_v, r1->a_n, r2->a_v, r2->a_n, l1->in)
                                  : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "dw_column_space", grid_json(r1->u, dw_dims(f1, i), r2->u, dw_dims(f2, i2), l1->out));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Prints the whole result as one line of JSON; -1 when out of memory. */
static int analyze_json(const char *base_path, const char *sha, double threshold, const analyze_file *f,
                        int nf, ml_error *e) {
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "base", base_path);
    cJSON_AddStringToObject(root, "base_sha256", sha);
    cJSON_AddNumberToObject(root, "threshold", threshold);
    for (int k = 0; k < nf; k++) cJSON_AddItemToArray(files, spectrum_json(&f[k]));
    cJSON_AddItemToObject(root, "files", files);
    if (nf == 2) cJSON_AddItemToObject(root, "similarity", similarity_json(&f[0], &f[1]));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return ml_fail(e, "out of memory for the JSON output");
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_analyze(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors");
    int json = 0;
    float threshold = 0.01f;
    opt_def defs[] = {
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint the files were trained from"},
        {"threshold", OPT_FLOAT, &threshold, 0, 1, "X", "effective rank counts σ_i > X·σ_max"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON object"},
    };
    int pos;
    int r = opts_parse("[options] ADAPTER [ADAPTER2]",
                       "The LoRA paper's §7 analysis of learned updates. For each adapted layer: the\n"
                       "singular values of ΔW = s·B·A, its effective rank, the share of Σσ² in the top 1\n"
                       "and 4 values, and |ΔW|_F against the frozen |W|_F. A full checkpoint (from\n"
                       "lora-train --full or lora-merge) is analyzed as ΔW = W_file - W_base. With two\n"
                       "files, also the subspace similarity φ(i,j) of A's row spaces and of ΔW's\n"
                       "column spaces, layer by layer.",
                       NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    const int nf = argc - pos;
    if (nf < 1 || nf > 2) return usage_fail(cmd, "expected one or two ADAPTER files");
    ml_error e;
    minigpt base = {0};
    tok_vocab v;
    char sha[65];
    static analyze_file files[2]; /* static: about 17 KiB each, kept off the stack */
    int loaded = 0, rc = EXIT_RUNTIME;
    if (checkpoint_load(base_path, &base, &v, sha, &e)) goto done;
    for (; loaded < nf; loaded++)
        if (analyze_file_run(&files[loaded], argv[pos + loaded], &base, sha, threshold, &e)) {
            loaded++; /* free what it built */
            goto done;
        }
    if (nf == 2) {
        int common = 0;
        for (int i = 0; i < files[0].up.n_layers; i++)
            common += analyze_update_find(&files[1].up, files[0].up.layers[i].path) != NULL;
        if (!common) {
            ml_fail(&e, "%s: no adapted layer in common with %s", files[1].path, files[0].path);
            goto done;
        }
    }
    if (json) {
        if (analyze_json(base_path, sha, threshold, files, nf, &e)) goto done;
    } else {
        printf("base %s; effective rank = #{σ_i > %g·σ_max}; top-k = share of Σσ² in the top k σ\n\n",
               base_path, (double)threshold);
        for (int k = 0; k < nf; k++) spectrum_text(&files[k]);
        if (nf == 2) similarity_text(&files[0], &files[1]);
    }
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) cli_error(cmd, e.msg);
    for (int k = 0; k < loaded; k++) analyze_file_free(&files[k]);
    minigpt_free(&base);
    return rc;
}
