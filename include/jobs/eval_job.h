/* eval_job.h — lora-eval without the command line: the base and each adapter scored on each
 * file (SPEC §6: exact match, preference, perplexity; per example, for the per-verb and
 * collateral-damage views in eval.h).
 *
 * Every file is read once with the base's vocabulary and context; then each model in turn is
 * loaded (the base with an adapter installed, or a full checkpoint in its place), scored on
 * every file and freed, so one model is in memory at a time.
 */
#ifndef EVAL_JOB_H
#define EVAL_JOB_H

#include "dataset.h"
#include "eval.h"
#include "ml_error.h"

typedef struct {
    const char *base;            /* base checkpoint */
    const char *const *adapters; /* (n_adapters) adapters or full checkpoints */
    int n_adapters;
    const float *strengths;   /* (n_adapters) adapter strengths (lora_set_strength); NULL: 1 each.
                             * An adapter may appear more than once at different strengths. */
    const char *const *files; /* (n_files) JSONL files */
    int n_files;
    int threads; /* already settled (runtime_threads) */
} eval_spec;

/* Model k = 0 is the base, k = 1..n_adapters the adapters in order. All owned: free with
 * eval_results_free. */
typedef struct {
    int n_files, n_models;
    dataset *data;       // (n_files)
    eval_item **items;   // (n_files * n_models): items[f * n_models + k], data[f].n each
    eval_totals *totals; // (n_files * n_models)
    double *max_dlogit;  // (n_models) max |logit(model) − logit(base)| over every real
                         // position of every file; 0 for the base itself
} eval_results;

/* Scores every model on every file into r (zeroed first). */
int eval_job_run(const eval_spec *s, eval_results *r, ml_error *e);
void eval_results_free(eval_results *r);

#endif
