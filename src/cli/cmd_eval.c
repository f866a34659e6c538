/* cmd_eval.c — `lora-eval`: the metrics of SPEC §6 for the base and adapters side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "eval_job.h"
#include "opts.h"
#include "blas_runtime.h"

#define MAX_MODELS 17

#define MAX_CELLS 512 /* (verb, non-past form) cells per file */

static void pct(char *buf, size_t n, int a, int b) {
    if (b == 0) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.1f%%", 100.0 * a / b);
}

/* Removes trailing spaces in place; returns s. */
static char *rtrim(char *s) {
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
    return s;
}

/* brief: the totals only, without the per-verb table */
/* items, totals: the file's row of the results, one entry per model */
static void print_table(const char *file, const dataset *d, eval_item *const *items,
                        const eval_totals *totals, int nmodels, char labels[][64], int brief) {
    char a[32];
    printf("%s (%d examples)\n", file, d->n);
    printf("  %-16s", "");
    for (int k = 0; k < nmodels; k++) printf(" %14.14s", labels[k]);
    printf("\n  %-16s", "exact match");
    for (int k = 0; k < nmodels; k++) {
        pct(a, sizeof a, totals[k].correct, totals[k].n);
        printf(" %14s", a);
    }
    if (totals[0].n_pref) {
        printf("\n  %-16s", "preference");
        for (int k = 0; k < nmodels; k++) {
            pct(a, sizeof a, totals[k].pref_correct, totals[k].n_pref);
            printf(" %14s", a);
        }
    }
    printf("\n  %-16s", "perplexity");
    for (int k = 0; k < nmodels; k++) printf(" %14.4f", eval_ppl(&totals[k]));
    printf("\n");
    /* per verb, in order of first appearance */
    const char *seen[1024];
    int ns = 0;
    for (int i = 0; i < d->n && ns < 1024; i++) {
        const char *v = d->ex[i].verb;
        int dup = !v;
        for (int j = 0; j < ns && !dup; j++) dup = strcmp(seen[j], v) == 0;
        if (!dup) seen[ns++] = v;
    }
    if (ns > 1 && !brief) {
        /* rows built in a buffer so the padding of the last column can be trimmed */
        char line[1024];
        int len = snprintf(line, sizeof line, "    %-12s", "");
        for (int k = 0; k < nmodels && len < (int)sizeof line; k++)
            len += snprintf(line + len, sizeof line - (size_t)len, " %-18.18s", labels[k]);
        printf("  per verb: exact match and first greedy prediction\n%s\n", rtrim(line));
        for (int j = 0; j < ns; j++) {
            len = snprintf(line, sizeof line, "    %-12.12s", seen[j]);
            for (int k = 0; k < nmodels && len < (int)sizeof line; k++) {
                eval_totals t = eval_sum(d, items[k], seen[j]);
                const char *pred = "";
                for (int i = 0; i < d->n; i++)
                    if (d->ex[i].verb && strcmp(d->ex[i].verb, seen[j]) == 0) {
                        pred = items[k][i].prediction;
                        break;
                    }
                pct(a, sizeof a, t.correct, t.n);
                len += snprintf(line + len, sizeof line - (size_t)len, " %6s %-11.11s", a, pred);
            }
            printf("%s\n", rtrim(line));
        }
    }
}

/* The non-past forms of each verb, base -> each adapter, and the largest drop; returns the
 * largest drop over the adapters (NAN when the file has no non-past records). */
static double print_collateral(const dataset *d, eval_item *const *items, int nmodels,
                               char labels[][64], int brief) {
    static eval_cell cells[MAX_CELLS];
    double worst = NAN;
    for (int k = 1; k < nmodels; k++) {
        const int n = eval_collateral(d, items[0], items[k], cells, MAX_CELLS);
        if (n == 0) return NAN;
        const int w = eval_largest_drop(cells, n);
        const double drop = eval_cell_drop(&cells[w]);
        if (!(drop <= worst)) worst = drop;
        printf("  collateral damage, base -> %s: exact match of the forms not taught "
               "(largest drop %.1f points: %s %s)\n",
               labels[k], drop, cells[w].verb, cells[w].form);
        if (brief) continue;
        const char *forms[] = {"3sg", "base", "ing"};
        char head[128];
        int hl = snprintf(head, sizeof head, "    %-12s", "");
        for (int f = 0; f < 3; f++)
            hl += snprintf(head + hl, sizeof head - (size_t)hl, "   %-19s", forms[f]);
        printf("%s\n", rtrim(head));
        for (int i = 0; i < n; i++) {
            int first = 1; /* one row per verb, in order of first appearance */
            for (int j = 0; j < i && first; j++) first = strcmp(cells[j].verb, cells[i].verb) != 0;
            if (!first) continue;
            char line[256];
            int len = snprintf(line, sizeof line, "    %-12.12s", cells[i].verb);
            for (int f = 0; f < 3; f++) {
                const eval_cell *c = NULL;
                for (int j = i; j < n && !c; j++)
                    if (strcmp(cells[j].verb, cells[i].verb) == 0 &&
                        strcmp(cells[j].form, forms[f]) == 0)
                        c = &cells[j];
                if (c)
                    len +=
                        snprintf(line + len, sizeof line - (size_t)len, "   %5.1f -> %5.1f%% %-3s",
                                 100.0 * c->base_correct / c->n, 100.0 * c->model_correct / c->n,
                                 eval_cell_drop(c) > 0 ? "(-)" : "");
                else len += snprintf(line + len, sizeof line - (size_t)len, "   %-19s", "-");
            }
            printf("%s\n", rtrim(line));
        }
    }
    return worst;
}

/* The worst cell over the files, per model, for the JSON's closing summary. */
typedef struct {
    double drop;
    int file;
    const char *verb, *form;
} worst_cell;

/* The JSON of one (file, model) summary's collateral-damage cells against the base; updates
 * *worst with the largest drop. */
static void json_collateral(FILE *out, const dataset *d, const eval_item *base,
                            const eval_item *model, int file, worst_cell *worst) {
    static eval_cell cells[MAX_CELLS];
    const int n = eval_collateral(d, base, model, cells, MAX_CELLS);
    if (n == 0) return;
    const int w = eval_largest_drop(cells, n);
    if (worst->file < 0 || eval_cell_drop(&cells[w]) > worst->drop)
        *worst = (worst_cell){eval_cell_drop(&cells[w]), file, cells[w].verb, cells[w].form};
    fprintf(out, ",\"collateral\":{\"largest_drop\":%.6f,\"verb\":", eval_cell_drop(&cells[w]));
    text_json_print(out, cells[w].verb);
    fprintf(out, ",\"form\":");
    text_json_print(out, cells[w].form);
    fprintf(out, ",\"cells\":[");
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s{\"verb\":", i ? "," : "");
        text_json_print(out, cells[i].verb);
        fprintf(out, ",\"form\":");
        text_json_print(out, cells[i].form);
        fprintf(out, ",\"n\":%d,\"base_correct\":%d,\"model_correct\":%d,\"drop\":%.6f}",
                cells[i].n, cells[i].base_correct, cells[i].model_correct,
                eval_cell_drop(&cells[i]));
    }
    fprintf(out, "]}");
}

/* The adapter strengths --scale-sweep scores, S = 0 (the base) first. */
static const float SWEEP[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f};
#define N_SWEEP ((int)(sizeof SWEEP / sizeof SWEEP[0]))

/* The largest collateral drop of model k against the base (model 0) over the files; NAN when
 * no file has non-past records. */
static double sweep_drop(const eval_results *r, int k) {
    static eval_cell cells[MAX_CELLS];
    double worst = NAN;
    for (int f = 0; f < r->n_files; f++) {
        const int n = eval_collateral(&r->data[f], r->items[f * r->n_models],
                                      r->items[f * r->n_models + k], cells, MAX_CELLS);
        if (n == 0) continue;
        const double drop = eval_cell_drop(&cells[eval_largest_drop(cells, n)]);
        if (!(drop <= worst)) worst = drop;
    }
    return worst;
}

/* --scale-sweep: every adapter at each strength of SWEEP, scored in one job (model 1 + a·N_SWEEP
 * + j is adapter a at SWEEP[j]); a table per adapter, or one "scale_sweep" JSON array. */
static int run_sweep(const char *cmd, const char *base_path, const opt_list *adapters,
                     const char **files, int nfiles, int threads, int json) {
    const int n = adapters->n * N_SWEEP;
    const char **paths = malloc(sizeof *paths * (size_t)n);
    float *strengths = malloc(sizeof *strengths * (size_t)n);
    if (!paths || !strengths) {
        free(paths);
        free(strengths);
        cli_error(cmd, "out of memory");
        return EXIT_RUNTIME;
    }
    for (int a = 0; a < adapters->n; a++)
        for (int j = 0; j < N_SWEEP; j++) {
            paths[a * N_SWEEP + j] = adapters->v[a];
            strengths[a * N_SWEEP + j] = SWEEP[j];
        }
    const eval_spec spec = {.base = base_path,
                            .adapters = paths,
                            .n_adapters = n,
                            .strengths = strengths,
                            .files = files,
                            .n_files = nfiles,
                            .threads = threads};
    ml_error e;
    eval_results r;
    const int failed = eval_job_run(&spec, &r, &e);
    free(paths);
    free(strengths);
    if (failed) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    if (json) printf("{\"scale_sweep\":[");
    /* a column per file as wide as its whole name: cut names could look alike (regular_heldout,
     * regular_heldout_new) */
    int *width = malloc(sizeof *width * (size_t)(nfiles ? nfiles : 1));
    if (!width) {
        eval_results_free(&r);
        cli_error(cmd, "out of memory");
        return EXIT_RUNTIME;
    }
    for (int f = 0; f < nfiles; f++) {
        char stem[256];
        text_stem(stem, sizeof stem, files[f]);
        width[f] = strlen(stem) > 8 ? (int)strlen(stem) : 8;
    }
    for (int a = 0; a < adapters->n; a++) {
        char label[64], a_s[32];
        text_stem(label, sizeof label, adapters->v[a]);
        if (!json) {
            printf("scale sweep: %s (exact match at adapter strength S; collateral damage and "
                   "max |dlogit| against the base)\n",
                   label);
            printf("  %-6s", "S");
            for (int f = 0; f < nfiles; f++) {
                char stem[256];
                text_stem(stem, sizeof stem, files[f]);
                printf(" %*s", width[f], stem);
            }
            printf(" %14s %14s  %s\n", "all files", "largest drop", "max |dlogit|");
        }
        for (int j = 0; j < N_SWEEP; j++) {
            const int k = 1 + a * N_SWEEP + j;
            int correct = 0, total = 0;
            const double drop = sweep_drop(&r, k);
            if (json) {
                printf("%s{\"model\":", a || j ? "," : "");
                text_json_print(stdout, adapters->v[a]);
                printf(",\"scale\":%g,\"files\":[", (double)SWEEP[j]);
            } else printf("  %-6.2f", (double)SWEEP[j]);
            for (int f = 0; f < nfiles; f++) {
                const eval_totals *t = &r.totals[f * r.n_models + k];
                correct += t->correct;
                total += t->n;
                if (json) {
                    printf("%s{\"file\":", f ? "," : "");
                    text_json_print(stdout, files[f]);
                    printf(",\"n\":%d,\"correct\":%d,\"exact_match\":%.6f}", t->n, t->correct,
                           t->n ? (double)t->correct / t->n : 0.0);
                } else {
                    pct(a_s, sizeof a_s, t->correct, t->n);
                    printf(" %*s", width[f], a_s);
                }
            }
            if (json) {
                printf("],\"n\":%d,\"correct\":%d,\"exact_match\":%.6f,\"largest_drop\":", total,
                       correct, total ? (double)correct / total : 0.0);
                if (isnan(drop)) printf("null");
                else printf("%.6f", drop);
                printf(",\"max_abs_dlogit\":%.9g}", r.max_dlogit[k]);
            } else {
                pct(a_s, sizeof a_s, correct, total);
                char d_s[32];
                if (isnan(drop)) snprintf(d_s, sizeof d_s, "-");
                else snprintf(d_s, sizeof d_s, "%.1f", drop);
                printf(" %14s %14s  %.6g\n", a_s, d_s, r.max_dlogit[k]);
            }
        }
        if (!json && a + 1 < adapters->n) printf("\n");
    }
    free(width);
    if (json) {
        printf("],\"base\":{\"model\":");
        text_json_print(stdout, base_path);
        int correct = 0, total = 0;
        for (int f = 0; f < nfiles; f++) {
            correct += r.totals[f * r.n_models].correct;
            total += r.totals[f * r.n_models].n;
        }
        printf(",\"n\":%d,\"correct\":%d,\"exact_match\":%.6f}}\n", total, correct,
               total ? (double)correct / total : 0.0);
    }
    eval_results_free(&r);
    return EXIT_OK;
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors");
    int json = 0, threads = 0, brief = 0, sweep = 0;
    float strength = 1.0f;
    opt_list adapters = {0};
    opt_def defs[] = {
        {"adapter", OPT_LIST, &adapters, 0, 0, "FILE",
         "an adapter (or a full checkpoint) to score beside the base; repeatable"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
        {"scale", OPT_FLOAT, &strength, 0, LORA_MAX_STRENGTH, "S",
         "adapter strength: multiply each adapter's update by S (0: the base; DoRA: m*W/||W||; a "
         "full checkpoint takes 1 only)"},
        {"scale-sweep", OPT_FLAG, &sweep, 0, 0, NULL,
         "score each adapter at S = 0, 0.25, ..., 1.5: exact match and collateral damage per S"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "one JSON object per example, then a summary object"},
        {"brief", OPT_FLAG, &brief, 0, 0, NULL,
         "totals and the largest collateral drop per file, no per-verb tables"},
        {"threads", OPT_INT, &threads, 0, 1024, "N", "threads (0: all cores)"},
    };
    int pos;
    int pr =
        opts_parse("[options] [DATA.jsonl ...]",
                   "Scores the base model and each --adapter on each DATA file (default: the\n"
                   "held-out files on seen and new sentence frames, data/*_test*, control*,\n"
                   "regular_heldout*, irreg_nonpast*, irreg_unseen): greedy exact match,\n"
                   "preference for the completion over the distractor (log P(completion) >\n"
                   "log P(distractor)), completion perplexity, per verb; and collateral damage:\n"
                   "for each verb, the change on the non-past forms (3sg, base, ing), and the\n"
                   "largest drop.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    const char **files = (const char **)argv + pos;
    int nfiles = argc - pos;
    const char *default_files[16];
    if (nfiles == 0) {
        nfiles = default_eval_files(default_files, 16);
        files = default_files;
    }
    if (sweep) {
        if (strength != 1.0f)
            return usage_fail(cmd, "--scale and --scale-sweep exclude each other");
        if (adapters.n == 0) return usage_fail(cmd, "--scale-sweep needs an --adapter");
        if (adapters.n >= MAX_MODELS) return usage_fail(cmd, "too many --adapter files");
        return run_sweep(cmd, base_path, &adapters, files, nfiles, runtime_threads(threads), json);
    }
    const int nmodels = 1 + adapters.n;
    if (nmodels > MAX_MODELS) return usage_fail(cmd, "too many --adapter files");
    float strengths[MAX_MODELS];
    for (int k = 0; k < adapters.n; k++) strengths[k] = strength;
    const eval_spec spec = {.base = base_path,
                            .adapters = adapters.v,
                            .n_adapters = adapters.n,
                            .strengths = strengths,
                            .files = files,
                            .n_files = nfiles,
                            .threads = runtime_threads(threads)};
    ml_error e;
    eval_results r;
    if (eval_job_run(&spec, &r, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    const dataset *data = r.data;
    char labels[MAX_MODELS][64];
    snprintf(labels[0], sizeof labels[0], "base");
    for (int k = 1; k < nmodels; k++) text_stem(labels[k], sizeof labels[k], adapters.v[k - 1]);
    double worst_drop = NAN;
    int worst_file = -1;
    for (int f = 0; f < nfiles; f++) {
        if (json) {
            for (int k = 0; k < nmodels; k++)
                for (int i = 0; i < data[f].n; i++) {
                    const ds_example *x = &data[f].ex[i];
                    const eval_item *it = &r.items[f * nmodels + k][i];
                    printf("{\"file\":");
                    text_json_print(stdout, files[f]);
                    printf(",\"model\":");
                    text_json_print(stdout, k ? adapters.v[k - 1] : base_path);
                    printf(",\"line\":%d,\"verb\":", x->line);
                    if (x->verb) text_json_print(stdout, x->verb);
                    else printf("null");
                    printf(",\"form\":");
                    if (x->form) text_json_print(stdout, x->form);
                    else printf("null");
                    printf(",\"prompt\":");
                    text_json_print(stdout, x->prompt);
                    printf(",\"target\":");
                    text_json_print(stdout, x->completion);
                    printf(",\"prediction\":");
                    text_json_print(stdout, it->prediction);
                    printf(",\"correct\":%s,\"logprob_target\":", it->correct ? "true" : "false");
                    text_json_number(stdout, "%.6f", it->logp_target);
                    if (x->distractor_text) {
                        printf(",\"distractor\":");
                        text_json_print(stdout, x->distractor_text);
                        printf(",\"logprob_distractor\":");
                        text_json_number(stdout, "%.6f", it->logp_distractor);
                    }
                    printf("}\n");
                }
        } else {
            print_table(files[f], &data[f], r.items + f * nmodels, r.totals + f * nmodels, nmodels,
                        labels, brief);
            const double drop =
                print_collateral(&data[f], r.items + f * nmodels, nmodels, labels, brief);
            printf("\n");
            if (!isnan(drop) && !(drop <= worst_drop)) worst_drop = drop, worst_file = f;
        }
    }
    if (!json && nmodels > 1 && worst_file >= 0)
        printf("collateral damage: the largest drop of any verb on any non-past form is %.1f "
               "points (%s)\n",
               worst_drop, files[worst_file]);
    if (!json) /* 0 exactly for an adapter that changes nothing, e.g. lora-train --steps 0 */
        for (int k = 1; k < nmodels; k++)
            printf("max |logit(%s) - logit(base)| over every scored position: %.6g\n", labels[k],
                   r.max_dlogit[k]);
    if (json) {
        worst_cell worst[MAX_MODELS];
        for (int k = 0; k < nmodels; k++) worst[k] = (worst_cell){0.0, -1, NULL, NULL};
        printf("{\"summary\":[");
        for (int f = 0; f < nfiles; f++)
            for (int k = 0; k < nmodels; k++) {
                const eval_totals *t = &r.totals[f * nmodels + k];
                printf("%s{\"file\":", f || k ? "," : "");
                text_json_print(stdout, files[f]);
                printf(",\"model\":");
                text_json_print(stdout, k ? adapters.v[k - 1] : base_path);
                printf(",\"n\":%d,\"exact_match\":%.6f,\"correct\":%d", t->n,
                       t->n ? (double)t->correct / t->n : 0.0, t->correct);
                if (t->n_pref)
                    printf(",\"preference\":%.6f,\"n_preference\":%d",
                           (double)t->pref_correct / t->n_pref, t->n_pref);
                printf(",\"perplexity\":");
                text_json_number(stdout, "%.6f", eval_ppl(t));
                if (k > 0)
                    json_collateral(stdout, &data[f], r.items[f * nmodels],
                                    r.items[f * nmodels + k], f, &worst[k]);
                printf("}");
            }
        /* per adapter: the largest drop of any verb on any non-past form, over every file */
        printf("],\"collateral_damage\":[");
        for (int k = 1; k < nmodels; k++) {
            printf("%s{\"model\":", k > 1 ? "," : "");
            text_json_print(stdout, adapters.v[k - 1]);
            if (worst[k].file < 0) {
                printf(",\"largest_drop\":null,\"max_abs_dlogit\":%.9g}", r.max_dlogit[k]);
                continue;
            }
            printf(",\"largest_drop\":%.6f,\"file\":", worst[k].drop);
            text_json_print(stdout, files[worst[k].file]);
            printf(",\"verb\":");
            text_json_print(stdout, worst[k].verb);
            printf(",\"form\":");
            text_json_print(stdout, worst[k].form);
            printf(",\"max_abs_dlogit\":%.9g}", r.max_dlogit[k]);
        }
        printf("]}\n");
    }
    eval_results_free(&r);
    return EXIT_OK;
}
