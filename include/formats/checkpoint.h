/* checkpoint.h — base checkpoints: a minigpt's F32 tensors plus config, vocab, provenance. */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include "minigpt.h"
#include "ml_error.h"
#include "model_config.h" /* model_config_load, model_config_parse, model_config_json */
#include "safetensors.h"
#include "tokenizer.h"

/* Loads a base checkpoint into a zeroed m (initialized from the file's config; free with
 * minigpt_free) and its vocabulary into v; sha256 (may be NULL) receives the file's digest as
 * hex. The vocabulary size must equal the config's vocab_size. */
int checkpoint_load(const char *path, minigpt *m, tok_vocab *v, char sha256[65], ml_error *e);

/* Reads a model from an opened checkpoint: config from its metadata (which must equal what m
 * was built with, when m is already initialized — pass an uninitialized, zeroed m to build from
 * the file; the caller then owns it and frees it with minigpt_free, also after a failure), every
 * tensor by name with dtype F32 and exact shape, finite values. Extra tensors are refused unless
 * allow_extra (test fixtures carry reference outputs beside the weights). f stays the caller's. */
int checkpoint_read_model(minigpt *m, const st_file *f, int allow_extra, ml_error *e);

/* Writes m as a base checkpoint atomically: tensors in table order, metadata "config",
 * "vocab", "format" = "minigpt", plus n_meta extra key/value pairs (provenance). */
int checkpoint_save(const char *path, const minigpt *m, const tok_vocab *v, int n_meta,
                    const char *const *keys, const char *const *values, ml_error *e);

#endif
