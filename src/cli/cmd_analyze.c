/* cmd_analyze.c — `lora-analyze`: the LoRA paper's §7 analysis (Hu et al. 2021) of learned
 * updates. One file: the singular values of each layer's ΔW, its effective rank and energy
 * shares, and its size against the frozen W. Two files: how much the subspaces they learned
 * overlap, φ(i,j) = ||U1[:i]ᵀ U2[:j]||_F² / min(i,j). Options in, analyze_job_run
 * (src/jobs/analyze_job.c: loading, spectra and grids), text or JSON out. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_job.h"
#include "commands.h"
#include "common.h"
#include "opts.h"

#define SIGMA_SHOWN 6 /* singular values per row of the text table */

/* ---- text ------------------------------------------------------------------------------ */

static void file_heading(const analyze_file *f) {
    if (f->up.is_adapter && f->up.dora)
        printf("%s: DoRA adapter, rank %d, alpha %g, scale %g%s; ΔW = m⊙(W + s·B·A)/‖W + s·B·A‖ "
               "- W (the merged update: the magnitudes rescale whole rows, so rank(ΔW) is not "
               "bounded by %d)\n",
               f->path, f->up.rank, (double)f->up.alpha, (double)f->up.scale,
               f->up.rslora ? " (rsLoRA)" : "", f->up.rank);
    else if (f->up.is_adapter)
        printf("%s: LoRA adapter, rank %d, alpha %g, scale %g%s; ΔW = s·B·A, so rank(ΔW) <= %d\n",
               f->path, f->up.rank, (double)f->up.alpha, (double)f->up.scale,
               f->up.rslora ? " (rsLoRA)" : "", f->up.rank);
    else printf("%s: full checkpoint; ΔW = W_file - W_base, rank(ΔW) <= min(out,in)\n", f->path);
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
        if (f->up.is_adapter && !f->up.dora) snprintf(rank, sizeof rank, "%d", f->up.rank);
        else snprintf(rank, sizeof rank, "full");
        if (isnan(r->rel)) snprintf(rel, sizeof rel, "-");
        else snprintf(rel, sizeof rel, "%.2f%%", 100.0 * r->rel);
        printf("  %-22s %4s %4d %6.1f%% %6.1f%% %9.3g %8s  ", l->path, rank, r->eff_rank,
               100.0 * r->top1, 100.0 * r->top4, r->fro, rel);
        for (int k = 0; k < r->n && k < SIGMA_SHOWN; k++) printf(" %8.3g", r->sigma[k]);
        printf("%s\n", r->n > SIGMA_SHOWN ? " ..." : "");
        eff_sum += r->eff_rank;
    }
    if (f->up.n_layers)
        printf("  mean effective rank %.2f over %d layers\n", (double)eff_sum / f->up.n_layers,
               f->up.n_layers);
    if (f->has_data) {
        printf("  on the data (%ld positions): mean |ΔW·x| and |W·x| per layer\n", f->positions);
        double dwx = 0, rel = 0;
        for (int i = 0; i < f->up.n_layers; i++) {
            printf("    %-22s %10.4g %10.4g  (%.2f%%)\n", f->up.layers[i].path, f->dwx[i], f->wx[i],
                   f->wx[i] > 0 ? 100.0 * f->dwx[i] / f->wx[i] : 0.0);
            dwx += f->dwx[i];
            rel += f->wx[i] > 0 ? f->dwx[i] / f->wx[i] : 0.0;
        }
        if (f->up.n_layers)
            printf("  mean over layers: |ΔW·x| %.4g, |ΔW·x|/|W·x| %.2f%%\n", dwx / f->up.n_layers,
                   100.0 * rel / f->up.n_layers);
    }
    printf("\n");
}

/* One φ grid, as a title line and a table. */
static void grid_text(const char *what, const analyze_grid *g) {
    if (g->k1 == 0 || g->k2 == 0) {
        printf("  %s: nothing to compare (%s)\n", what,
               g->k1 == 0 ? "file 1 has no direction" : "file 2 has no direction");
        return;
    }
    printf("  %s (dim %d), top-1 overlap |cos| = %.3f\n    i\\j  ", what, g->dim, g->top1);
    for (int b = 0; b < g->nj; b++) printf(" %6d", g->dj[b]);
    printf("\n");
    for (int a = 0; a < g->ni; a++) {
        printf("    %-5d", g->di[a]);
        for (int b = 0; b < g->nj; b++) printf(" %6.3f", g->phi[a][b]);
        printf("\n");
    }
}

static void similarity_text(const analyze_results *r) {
    printf(
        "Subspace similarity (Hu et al. 2021, §7): φ(i,j) = |U1[:i]ᵀ U2[:j]|_F² / min(i,j)\n"
        "  U1: top-i singular directions of %s (rows), U2: top-j of %s (columns);\n"
        "  1 = one span contains the other, 0 = orthogonal; random subspaces give about max(i,j)/dim.\n"
        "  ΔW column spaces use the directions above the threshold.\n\n",
        r->files[0].path, r->files[1].path);
    for (int p = 0; p < r->n_pairs; p++) {
        const analyze_pair *pr = &r->pairs[p];
        printf("%s\n", r->files[0].up.layers[pr->layer1].path);
        if (pr->has_a_rows) grid_text("row space of A", &pr->a_rows);
        grid_text("column space of ΔW", &pr->dw_cols);
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
        cJSON_AddBoolToObject(o, "use_dora", f->up.dora);
    }
    for (int i = 0; i < f->up.n_layers; i++) {
        const analyze_layer *l = &f->up.layers[i];
        const analyze_report *r = &f->rep[i];
        cJSON *L = cJSON_CreateObject();
        cJSON_AddStringToObject(L, "path", l->path);
        cJSON_AddNumberToObject(L, "out", l->out);
        cJSON_AddNumberToObject(L, "in", l->in);
        cJSON_AddNumberToObject(L, "max_rank", f->up.is_adapter && !f->up.dora ? f->up.rank : r->n);
        cJSON_AddNumberToObject(L, "effective_rank", r->eff_rank);
        cJSON_AddNumberToObject(L, "top1_energy", r->top1);
        cJSON_AddNumberToObject(L, "top4_energy", r->top4);
        cJSON_AddNumberToObject(L, "frobenius", r->fro);
        cJSON_AddNumberToObject(L, "relative_norm", r->rel);
        cJSON_AddItemToObject(L, "singular_values", cJSON_CreateDoubleArray(r->sigma, r->n));
        if (f->has_data) {
            cJSON_AddNumberToObject(L, "dw_x_mean", f->dwx[i]);
            cJSON_AddNumberToObject(L, "w_x_mean", f->wx[i]);
        }
        if (r->a_sigma)
            cJSON_AddItemToObject(
                L, "a_singular_values",
                cJSON_CreateDoubleArray(r->a_sigma, f->up.rank < l->in ? f->up.rank : l->in));
        cJSON_AddItemToArray(layers, L);
    }
    cJSON_AddItemToObject(o, "layers", layers);
    if (f->has_data) cJSON_AddNumberToObject(o, "data_positions", (double)f->positions);
    return o;
}

static cJSON *grid_json(const analyze_grid *g) {
    if (g->k1 == 0 || g->k2 == 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject(), *phi = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "dim", g->dim);
    cJSON_AddItemToObject(o, "i", cJSON_CreateIntArray(g->di, g->ni));
    cJSON_AddItemToObject(o, "j", cJSON_CreateIntArray(g->dj, g->nj));
    for (int a = 0; a < g->ni; a++)
        cJSON_AddItemToArray(phi, cJSON_CreateDoubleArray(g->phi[a], g->nj));
    cJSON_AddItemToObject(o, "phi", phi);
    cJSON_AddNumberToObject(o, "top1_overlap", g->top1);
    return o;
}

static cJSON *similarity_json(const analyze_results *r) {
    cJSON *arr = cJSON_CreateArray();
    for (int p = 0; p < r->n_pairs; p++) {
        const analyze_pair *pr = &r->pairs[p];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", r->files[0].up.layers[pr->layer1].path);
        cJSON_AddItemToObject(o, "a_row_space",
                              pr->has_a_rows ? grid_json(&pr->a_rows) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "dw_column_space", grid_json(&pr->dw_cols));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Prints the whole result as one line of JSON; -1 when out of memory. */
static int analyze_json(const char *base_path, double threshold, const analyze_results *r,
                        ml_error *e) {
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "base", base_path);
    cJSON_AddStringToObject(root, "base_sha256", r->base_sha);
    cJSON_AddNumberToObject(root, "threshold", threshold);
    for (int k = 0; k < r->n_files; k++) cJSON_AddItemToArray(files, spectrum_json(&r->files[k]));
    cJSON_AddItemToObject(root, "files", files);
    if (r->n_files == 2) cJSON_AddItemToObject(root, "similarity", similarity_json(r));
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
    const char *data = NULL;
    opt_def defs[] = {
        {"base", OPT_STRING, &base_path, 0, 0, "FILE",
         "base checkpoint the files were trained from"},
        {"threshold", OPT_FLOAT, &threshold, 0, 1, "X", "effective rank counts σ_i > X·σ_max"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON object"},
        {"data", OPT_STRING, &data, 0, 0, "FILE",
         "also measure mean |ΔW·x| and |W·x| on the inputs x the base feeds each layer on FILE"},
    };
    int pos;
    int r = opts_parse(
        "[options] ADAPTER [ADAPTER2]",
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
    const analyze_spec spec = {.base = base_path,
                               .files = (const char *const *)argv + pos,
                               .n_files = nf,
                               .threshold = threshold,
                               .data = data};
    ml_error e;
    analyze_results res;
    if (analyze_job_run(&spec, &res, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_OK;
    if (json) {
        if (analyze_json(base_path, threshold, &res, &e)) {
            cli_error(cmd, e.msg);
            rc = EXIT_RUNTIME;
        }
    } else {
        printf(
            "base %s; effective rank = #{σ_i > %g·σ_max}; top-k = share of Σσ² in the top k σ\n\n",
            base_path, (double)threshold);
        for (int k = 0; k < nf; k++) spectrum_text(&res.files[k]);
        if (nf == 2) similarity_text(&res);
    }
    analyze_results_free(&res);
    return rc;
}
