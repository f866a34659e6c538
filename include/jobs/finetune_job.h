/* finetune_job.h — lora-train without the command line: from files to a written adapter.
 *
 * The job loads the base checkpoint and the data (training, validation plus the optional
 * held-out "must not change" set, replay), sets up the fine-tune (finetune.h), resumes from a
 * training state when asked, trains, and writes what is in place (the adapter, or with
 * opts.full the whole checkpoint) atomically with its provenance:
 *   - finished: the parameters with the best validation loss;
 *   - interrupted (SIGINT/SIGTERM): the training state to `state`, then the best adapter so
 *     far (or the current one before any validation) to `out`;
 *   - diverged: the best adapter so far when there is one, and an error that says so.
 * Before anything is loaded, out and state are checked by the output rule (file_checks.h):
 * neither may be an input or the other; state may be the resume file it updates.
 *
 * init_from (lora-train --init-from): an adapter file or PEFT directory trained on the same
 * base; training starts from its A, B (and DoRA magnitudes) with a fresh optimizer, and its
 * rank, lora_alpha, use_rslora, target_modules, layers_to_transform and use_dora replace
 * opts' — except that a setting named in init_given (the user set it) must agree, or the job
 * refuses naming the flag and both values. The output records init_from and init_from_sha256.
 * The training state records the adapter's sha256: a resume gives the same --init-from (which
 * sets the same settings; the parameters then come from the state).
 */
#ifndef FINETUNE_JOB_H
#define FINETUNE_JOB_H

#include <stddef.h>

#include "file_checks.h"
#include "finetune.h"
#include "ml_error.h"

/* init_given bits: settings the user gave explicitly (they must match an --init-from adapter) */
enum {
    FINETUNE_GIVEN_RANK = 1,
    FINETUNE_GIVEN_ALPHA = 2,
    FINETUNE_GIVEN_RSLORA = 4,
    FINETUNE_GIVEN_TARGETS = 8,
    FINETUNE_GIVEN_LAYERS = 16,
    FINETUNE_GIVEN_DORA = 32
};

typedef struct {
    const char *base;         /* base checkpoint */
    const char *data;         /* training JSONL */
    const char *val;          /* validation JSONL; NULL or "" for none */
    const char *val_extra;    /* held-out examples of what must not change; "" for none */
    const char *replay;       /* examples mixed into every batch; "" for none */
    const char *out;          /* adapter (or full checkpoint) to write */
    const char *state;        /* where an interrupted run saves its training state */
    const char *resume;       /* a training state to continue from; NULL for a fresh run */
    const char *init_from;    /* an adapter (file or PEFT directory) to start from; NULL: none */
    unsigned init_given;      /* FINETUNE_GIVEN_* bits (only with init_from) */
    const io_path *read_also; /* (n_read_also) other files the caller read, e.g. {"--config",
                               * path}: no output may be one of them */
    int n_read_also;
    float epochs;       /* > 0: steps = ceil(epochs · examples / fresh sequences per batch) */
    finetune_opts opts; /* threads must already be settled (runtime_threads) */
    const char *label;  /* progress prefix, e.g. "lora-train" */
} finetune_spec;

typedef struct {
    /* known when on_ready runs */
    finetune_opts opts;     /* the settings in effect (steps from --epochs, an --init-from
                             * adapter's rank, alpha, ...) */
    size_t trainable;       /* floats the optimizer updates: A and B, or the Linear weights */
    size_t params_per_rank; /* LoRA parameters per unit of rank on the targets */
    size_t base_params;     /* parameters of the base model */
    int n_examples;         /* training examples */
    int steps;              /* optimizer steps (from --epochs when given) */
    int threads;            /* threads the engine runs */
    int merged_layers;      /* adapted layers on the merged compute path (opts.lora_path) */
    int adapter_layers;     /* adapted layers (0 with full) */
    int resumed_step;       /* the step a resumed run continues from; -1 for a fresh run */
    char warnings[1024];    /* rank warnings (lora_rank_warnings), one per line; "" if none */
    /* known at the end */
    train_result result;
    int best_step; /* -1: never validated */
    double best_val;
    long bytes;           /* size of the written file */
    size_t payload_bytes; /* adapter tensor bytes (0 for a full fine-tune) */
    int kept_step;        /* diverged: the step of the adapter kept in out; -1 none */
} finetune_report;

/* Checks the settings that do not need any file (one line naming the setting). */
int finetune_spec_check(const finetune_spec *s, ml_error *e);

/* Runs the job (see above). on_ready (may be NULL) is called once nothing can fail before
 * training, with the report's first block set. Returns 0 when out was written after a finished
 * or interrupted run (report->result.interrupted), -1 with e filled otherwise (a diverged run
 * that kept an adapter says so in e and in report->kept_step). */
int finetune_job_run(const finetune_spec *s, void (*on_ready)(void *ctx, const finetune_report *r),
                     void *ctx, finetune_report *report, ml_error *e);

#endif
