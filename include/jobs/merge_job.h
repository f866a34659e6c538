/* merge_job.h — lora-merge without the command line: fold an adapter into its base (W + s·B·A
 * for every adapted Linear), write the result as a new F32 base checkpoint with provenance, and
 * measure how closely the merged model reproduces base + adapter: the largest |logit
 * difference| over every position of the given files, batched (eval_logits).
 */
#ifndef MERGE_JOB_H
#define MERGE_JOB_H

#include <stddef.h>

#include "ml_error.h"

#define MERGE_MAX_FILES 16

typedef struct {
    const char *base, *adapter, *out;
    const char *const *files; /* (n_files) JSONL files the check scores */
    int n_files;              /* at most MERGE_MAX_FILES */
    float strength;           /* adapter strength (lora_set_strength): 1 merges as trained */
} merge_spec;

typedef struct {
    int rank, n_layers;
    float alpha, scale;
    double max_diff;  /* max |logit(merged) - logit(base + adapter)| */
    double max_logit; /* largest |logit| of base + adapter, for scale */
    size_t n_logits;
} merge_report;

/* Runs the merge; out is checked by the output rule (file_checks.h) before anything is loaded
 * (never an input) and written atomically. Returns 0, or -1 with e filled. */
int merge_job_run(const merge_spec *s, merge_report *r, ml_error *e);

#endif
