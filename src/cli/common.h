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

/* Prints s as a JSON string literal (quotes, backslashes and control bytes escaped). */
void json_print_string(FILE *f, const char *s);


/* SIGINT and SIGTERM set train_stop_signal so a training loop can stop cleanly. */
void install_stop_handlers(void);

#endif
