/* common.h — small helpers shared by the commands. */
#ifndef COMMON_H
#define COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "ml_error.h"

/* Where a DEFAULT input file is (never applied to paths the user typed): rel itself when it
 * exists relative to the working directory; else next to the program, in
 * <bin>/../share/minilora/rel (after make install) or <bin>/../rel (the source tree); else rel.
 * The returned string is rel or lives in static storage until exit. */
const char *default_path(const char *rel);

/* The optimizer and loop flags lora-train and lora-pretrain share, for a train_opts *o: the
 * same names, ranges and meaning in both commands (and in their JSON configs). */
#define TRAIN_OPT_DEFS(o)                                                                          \
    {"steps", OPT_INT, &(o)->steps, 1, 1e8, "N", "optimizer steps"},                                 \
    {"batch", OPT_INT, &(o)->batch, 1, 4096, "N", "sequences per step"},                             \
    {"micro-batch", OPT_INT, &(o)->micro, 1, 4096, "N", "sequences per thread chunk"},               \
    {"lr", OPT_FLOAT, &(o)->lr, 0, 10, "X", "peak learning rate"},                                   \
    {"min-lr-frac", OPT_FLOAT, &(o)->min_lr_frac, 0, 1, "X",                                         \
     "final learning rate as a fraction of the peak"},                                              \
    {"warmup", OPT_INT, &(o)->warmup, 0, 1e8, "N", "linear warmup steps"},                           \
    {"weight-decay", OPT_FLOAT, &(o)->weight_decay, 0, 10, "X", "AdamW weight decay (on weights)"}, \
    {"clip", OPT_FLOAT, &(o)->clip, 0, 1e6, "X", "gradient-norm clipping (0: off)"},                \
    {"beta1", OPT_FLOAT, &(o)->beta1, 0, 0.999999, "X", "AdamW beta1"},                              \
    {"beta2", OPT_FLOAT, &(o)->beta2, 0, 0.999999, "X", "AdamW beta2"},                              \
    {"seed", OPT_U64, &(o)->seed, 0, 1.8e19, "N", "random seed (initialization and data order)"},   \
    {"eval-every", OPT_INT, &(o)->eval_every, 0, 1e8, "N",                                          \
     "validation every N steps; the best parameters are kept"},                                     \
    {"log-every", OPT_INT, &(o)->log_every, 0, 1e8, "N", "log line every N steps when not on a terminal"}, \
    {"threads", OPT_INT, &(o)->threads, 0, 1024, "N", "threads (0: all cores)"},                     \
    {"quiet", OPT_FLAG, &(o)->quiet, 0, 0, NULL, "no progress output"}

/* Prints "cmd: msg (see cmd --help)" and returns the usage exit status (2). */
int usage_fail(const char *cmd, const char *msg);

/* Fails early, before hours of work, if path's directory is missing or not writable or path
 * is a directory: creates and removes a temporary file beside it. */
int check_writable(const char *path, ml_error *e);

/* Fails when path is one of the n input files (the same file, by device and inode; NULL and
 * "" entries are skipped): an output must never overwrite what the command reads. */
int check_not_input(const char *path, const char *const *inputs, int n, ml_error *e);

#include "lora.h"
#include "minigpt.h"
#include "tokenizer.h"

/* A model to run: the base, with an adapter installed or replaced by a full checkpoint. */
typedef struct {
    minigpt base;        /* the base checkpoint */
    minigpt full;        /* a full checkpoint given as the "adapter" (merged / full fine-tune) */
    lora adapter;        /* a LoRA adapter installed on base (rank 0 when none) */
    tok_vocab vocab;
    char base_sha[65];
    minigpt *m;          /* the model to run: &base or &full */
} loaded_model;

/* Loads base_path, then adapter_path when non-NULL: a LoRA adapter (refused when trained on
 * another base) is installed on the base; a full minigpt checkpoint replaces it (its vocabulary
 * must equal the base's). Free with loaded_model_free. */
int loaded_model_init(loaded_model *lm, const char *base_path, const char *adapter_path,
                      ml_error *e);
void loaded_model_free(loaded_model *lm);


/* SIGINT and SIGTERM set train_stop_signal so a training loop can stop cleanly. */
void install_stop_handlers(void);

#endif
