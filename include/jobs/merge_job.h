/* merge_job.h — lora-merge without the command line: fold an adapter into its base (W + s·B·A
 * for every adapted Linear), write the result as a new F32 base checkpoint with provenance, and
 * measure how closely the merged model reproduces base + adapter: the largest |logit
 * difference| over every position of the given files, batched (eval_logits).
 *
 * Or mix several adapters of the same base with weights (lora_mix.h: linear, cat or svd, as
 * PEFT's add_weighted_adapter) and write the mix either merged into the base, as above, or as
 * a new adapter file whose metadata lists the sources (file, sha256, weight), the mode and the
 * strength. For an adapter file the check compares the file as written (F16) with the mix.
 */
#ifndef MERGE_JOB_H
#define MERGE_JOB_H

#include <stddef.h>

#include "ml_error.h"

#include "lora_mix.h"

#define MERGE_MAX_FILES 16
#define MERGE_MAX_ADAPTERS LORA_MIX_MAX

typedef struct {
    const char *base;
    const char *out;                          /* merged F32 checkpoint, or NULL */
    const char *out_adapter;                  /* the mix as an adapter file, or NULL */
    const char *adapters[MERGE_MAX_ADAPTERS]; // (n_adapters) adapter files
    float weights[MERGE_MAX_ADAPTERS];        // (n_adapters) their weights when mixing
    int n_adapters;
    int mix;                  /* 0: adapters[0] folded in as trained; 1: lora_mix of them all */
    int combine;              /* lora_mix_mode when mixing */
    int svd_rank;             /* LORA_MIX_SVD: the rank, 0 for the largest source rank */
    const char *const *files; /* (n_files) JSONL files the check scores */
    int n_files;              /* at most MERGE_MAX_FILES */
    float strength; /* adapter strength (lora_set_strength): 1 merges as trained; when mixing it
                     * multiplies every weight */
} merge_spec;

typedef struct {
    int rank, n_layers; /* of the adapter merged or written (the mix when mixing) */
    float alpha, scale;
    double max_diff;  /* max |logit(merged) - logit(base + adapter)|; for --out-adapter,
                       * max |logit(base + file) - logit(base + mix)| */
    double max_logit; /* largest |logit| of base + adapter, for scale */
    size_t n_logits;
} merge_report;

/* Runs the merge (exactly one of out and out_adapter; out_adapter needs mix); out is checked by the output rule (file_checks.h) before anything is loaded
 * (never an input) and written atomically. Returns 0, or -1 with e filled. */
int merge_job_run(const merge_spec *s, merge_report *r, ml_error *e);

#endif
