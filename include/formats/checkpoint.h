/* checkpoint.h — base checkpoints: a minigpt's F32 tensors plus config, vocab, provenance. */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include "minigpt.h"
#include "ml_error.h"
#include "tokenizer.h"

/* Loads a base checkpoint into a zeroed m (initialized from the file's config; free with
 * minigpt_free) and its vocabulary into v; sha256 (may be NULL) receives the file's digest as
 * hex. The vocabulary size must equal the config's vocab_size. */
int checkpoint_load(const char *path, minigpt *m, tok_vocab *v, char sha256[65], ml_error *e);

/* Writes m as a base checkpoint atomically: tensors in table order, metadata "config",
 * "vocab", "format" = "minigpt", plus n_meta extra key/value pairs (provenance). */
int checkpoint_save(const char *path, const minigpt *m, const tok_vocab *v, int n_meta,
                    const char *const *keys, const char *const *values, ml_error *e);

/* Reads a model config and vocabulary from a JSON file like configs/minigpt.json (the config
 * numbers plus a "vocab" array). */
int model_config_load(const char *path, minigpt_config *cfg, tok_vocab *v, ml_error *e);

#endif
