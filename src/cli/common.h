/* common.h — small helpers shared by the commands. */
#ifndef COMMON_H
#define COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "file_checks.h"
#include "loaded_model.h"
#include "ml_error.h"
#include "optimizer.h"
#include "text.h"       /* text_json_print for --json output */
#include "train_loop.h" /* TRAIN_MAX_STEPS */

/* Where a DEFAULT input file is (never applied to paths the user typed): rel itself when it
 * exists relative to the working directory; else next to the program, in
 * <bin>/../share/minilora/rel (after make install) or <bin>/../rel (the source tree); else rel.
 * The returned string is rel or lives in static storage until exit. */
const char *default_path(const char *rel);

/* The optimizer and loop flags lora-train and lora-pretrain share, for a train_opts *o: the
 * same names, ranges and meaning in both commands (and in their JSON configs). */
#define TRAIN_OPT_DEFS(o)                                                                          \
    {"steps",                                                                                      \
     OPT_INT,                                                                                      \
     &(o)->steps,                                                                                  \
     0,                                                                                            \
     TRAIN_MAX_STEPS,                                                                              \
     "N",                                                                                          \
     "optimizer steps (0: write the initial model)"},                                              \
        {"batch", OPT_INT, &(o)->batch, 1, 4096, "N", "sequences per step"},                       \
        {"micro-batch", OPT_INT, &(o)->micro, 1, 4096, "N", "sequences per thread chunk"},         \
        {"lr", OPT_FLOAT, &(o)->lr, 0, 10, "X", "peak learning rate"},                             \
        {"min-lr-frac",                                                                            \
         OPT_FLOAT,                                                                                \
         &(o)->min_lr_frac,                                                                        \
         0,                                                                                        \
         1,                                                                                        \
         "X",                                                                                      \
         "final learning rate as a fraction of the peak"},                                         \
        {"warmup", OPT_INT, &(o)->warmup, 0, 1e8, "N", "linear warmup steps"},                     \
        {"weight-decay",                                                                           \
         OPT_FLOAT,                                                                                \
         &(o)->weight_decay,                                                                       \
         0,                                                                                        \
         10,                                                                                       \
         "X",                                                                                      \
         "decoupled weight decay (on weights)"},                                                   \
        {"clip", OPT_FLOAT, &(o)->clip, 0, 1e6, "X", "gradient-norm clipping (0: off)"},           \
        {"optimizer", OPT_CHOICE, &(opt_choice){&(o)->optimizer, optim_name_at}, 0,                \
         0,           "NAME",     "optimizer: adamw or sgd (with momentum)"},                      \
        {"beta1", OPT_FLOAT, &(o)->beta1, 0, 0.999999, "X", "AdamW beta1"},                        \
        {"beta2", OPT_FLOAT, &(o)->beta2, 0, 0.999999, "X", "AdamW beta2"},                        \
        {"momentum", OPT_FLOAT, &(o)->momentum, 0, 0.999999, "X", "SGD momentum (0: plain SGD)"},  \
        {"nesterov", OPT_FLAG, &(o)->nesterov, 0, 0, NULL, "SGD: Nesterov momentum"},              \
        {"seed",                                                                                   \
         OPT_U64,                                                                                  \
         &(o)->seed,                                                                               \
         0,                                                                                        \
         1.8e19,                                                                                   \
         "N",                                                                                      \
         "random seed (initialization and data order)"},                                           \
        {"eval-every",                                                                             \
         OPT_INT,                                                                                  \
         &(o)->eval_every,                                                                         \
         0,                                                                                        \
         1e8,                                                                                      \
         "N",                                                                                      \
         "validation every N steps; the best parameters are kept"},                                \
        {"log-every",                                                                              \
         OPT_INT,                                                                                  \
         &(o)->log_every,                                                                          \
         0,                                                                                        \
         1e8,                                                                                      \
         "N",                                                                                      \
         "log line every N steps when not on a terminal"},                                         \
        {"threads", OPT_INT, &(o)->threads, 0, 1024, "N", "threads (0: all cores)"}, {             \
        "quiet", OPT_FLAG, &(o)->quiet, 0, 0, NULL, "no progress output"                           \
    }

/* The held-out files lora-eval and lora-merge score when given none (seen and new frames,
 * irregular pasts, regular control, non-past forms, unseen verbs), each found like a default
 * input, into files[0..max); returns how many. The strings live until exit. */
int default_eval_files(const char **files, int max);

/* Prints "cmd: msg (see cmd --help)" and returns the usage exit status (2). */
int usage_fail(const char *cmd, const char *msg);

/* SIGINT and SIGTERM set train_stop_signal so a training loop can stop cleanly. */
void install_stop_handlers(void);

#endif
