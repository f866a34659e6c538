/* cmd_eval.c — `lora-eval`: the metrics of SPEC §6 for the base and adapters side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "engine.h"
#include "eval.h"
#include "opts.h"
#include "runtime.h"

#define MAX_MODELS 9

static const char *default_files[] = {"data/irreg_test.jsonl", "data/control_regular.jsonl",
                                      "data/irreg_unseen.jsonl"};

static void pct(char *buf, size_t n, int a, int b) {
    if (b == 0) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.1f%%", 100.0 * a / b);
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = "data/minigpt-base.safetensors";
    int json = 0, threads = 0, per_verb = 1;
    opt_def defs[] = {
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "one JSON object per example, then a summary object"},
        {"threads", OPT_INT, &threads, 0, 1024, "N", "threads (0: all cores)"},
    };
    int pos;
    int r = opts_parse("[options] [DATA.jsonl ...]",
                       "Scores the base model on each DATA file (default: data/irreg_test.jsonl,\n"
                       "data/control_regular.jsonl, data/irreg_unseen.jsonl): greedy exact match,\n"
                       "preference for the completion over the distractor, completion perplexity.",
                       defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    const char **files = (const char **)argv + pos;
    int nfiles = argc - pos;
    if (nfiles == 0) files = default_files, nfiles = 3;
    ml_error e;
    minigpt m = {0};
    tok_vocab vocab;
    engine g = {0};
    int rc = EXIT_RUNTIME;
    if (checkpoint_load(base_path, &m, &vocab, NULL, &e)) goto fail;
    if (engine_init(&g, &m, runtime_threads(threads), 256, 32, 0, 0, &e)) goto fail;
    for (int f = 0; f < nfiles; f++) {
        dataset d;
        if (ds_load(&d, files[f], &vocab, m.cfg.context, &e)) goto fail;
        eval_item *items = calloc((size_t)d.n, sizeof *items);
        if (!items) {
            ds_free(&d);
            ml_fail(&e, "out of memory");
            goto fail;
        }
        eval_dataset(&g, &vocab, &d, items);
        eval_totals t = eval_sum(&d, items, NULL);
        char em[32], pr[32];
        pct(em, sizeof em, t.correct, t.n);
        pct(pr, sizeof pr, t.pref_correct, t.n_pref);
        printf("%s (%d examples)\n  exact match %s  preference %s  perplexity %.4f\n", files[f], d.n,
               em, pr, eval_ppl(&t));
        if (per_verb) {
            const char *seen[512];
            int ns = 0;
            for (int i = 0; i < d.n && ns < 512; i++) {
                const char *v = d.ex[i].verb;
                int dup = !v;
                for (int k = 0; k < ns && !dup; k++) dup = strcmp(seen[k], v) == 0;
                if (!dup) seen[ns++] = v;
            }
            for (int k = 0; k < ns; k++) {
                eval_totals tv = eval_sum(&d, items, seen[k]);
                pct(em, sizeof em, tv.correct, tv.n);
                const char *example = "";
                for (int i = 0; i < d.n; i++)
                    if (d.ex[i].verb && strcmp(d.ex[i].verb, seen[k]) == 0) {
                        example = items[i].prediction;
                        break;
                    }
                printf("    %-10s %6s  e.g. %s\n", seen[k], em, example);
            }
        }
        free(items);
        ds_free(&d);
    }
    rc = EXIT_OK;
    goto done;
fail:
    cli_error(cmd, e.msg);
done:
    engine_free(&g);
    minigpt_free(&m);
    (void)json;
    return rc;
}
