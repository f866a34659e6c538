/* pretrain_job.h — lora-pretrain without the command line: train Mini-GPT from a random
 * initialization and write a base checkpoint with its provenance.
 *
 * The job reads the model config and vocabulary, the data and the validation set, trains with
 * the shared loop (train_loop.h), optionally writes a learning curve (one CSV row per
 * validation with the exact-match of the model so far on each curve file), and writes the
 * parameters with the best validation loss atomically. An interrupt (SIGINT/SIGTERM, see
 * train_stop_signal) ends the job early and leaves `out` untouched. The curve streams into a
 * temporary file that replaces `curve` once training has ended (finished or interrupted); a
 * failed run leaves it untouched. Before anything is loaded, out and curve are checked by the
 * output rule (file_checks.h): neither may be an input or the other.
 */
#ifndef PRETRAIN_JOB_H
#define PRETRAIN_JOB_H

#include <stddef.h>

#include "file_checks.h"
#include "ml_error.h"
#include "train_loop.h"

typedef struct {
    const char *model_config; /* config + vocabulary JSON (configs/minigpt.json) */
    const char *data;         /* training JSONL */
    const char *val;          /* validation JSONL; "" for none */
    const char *out;          /* checkpoint to write */
    const char *curve;        /* learning-curve CSV to write; "" for none */
    const char *curve_data;   /* comma-separated JSONL files scored on the curve (any number) */
    const io_path *read_also; /* (n_read_also) other files the caller read, e.g. {"--config",
                               * path}: no output may be one of them */
    int n_read_also;
    train_opts train;  /* threads must already be settled (blas_runtime_threads) */
    const char *label; /* progress prefix, e.g. "lora-pretrain" */
} pretrain_spec;

typedef struct {
    size_t n_params;     /* model parameters */
    int n_examples;      /* training examples */
    int threads;         /* threads the engine runs */
    train_result result; /* filled when the loop has run */
} pretrain_report;

/* Runs the job. on_ready (may be NULL) is called once everything is loaded, just before
 * training, with the report's first three fields set: the caller's chance to print a header.
 * Returns 0 when the checkpoint was written or the run was interrupted
 * (report->result.interrupted, nothing written); -1 with e filled otherwise. */
int pretrain_job_run(const pretrain_spec *s, void (*on_ready)(void *ctx, const pretrain_report *r),
                     void *ctx, pretrain_report *report, ml_error *e);

#endif
