/* checkpoint.h — base checkpoints: a minigpt's F32 tensors plus config, vocab, provenance. */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include "minigpt.h"
#include "ml_error.h"
#include "model_config.h" /* model_config_load, model_config_parse, model_config_json */
#include "safetensors.h"
#include "tokenizer.h"

/* How a checkpoint stores its tensors. F32 is the plain base; F16 stores every tensor as F16;
 * NF4 stores the Linear weights (the matrices LoRA targets) NF4-quantized (nf4.h) and keeps the
 * embedding (tied with the head), the LayerNorms and the biases F32, as QLoRA keeps everything
 * but the Linear weights in higher precision; NF4_DQ is NF4 with double-quantized absmax. A
 * quantized checkpoint is dequantized into F32 parameters at load: every command that reads a
 * base reads one. Metadata of a quantized file: "quant" = "f16" or "nf4"; for NF4 also
 * "nf4_block_size" = "64", "nf4_double_quant" = "0" or "1", "nf4_dq_block_size" = "256" (with
 * double quantization), "nf4_code" (the 16 code values, JSON) and "nf4_tensors" (a JSON object
 * from each quantized tensor's name to its original shape). A file without "quant" is F32. */
typedef enum { CK_F32 = 0, CK_F16, CK_NF4, CK_NF4_DQ } ck_quant;

/* "f32", "f16", "nf4", "nf4+dq" (static strings). */
const char *ck_quant_name(ck_quant q);

/* The storage of an opened checkpoint, from its metadata; every NF4 key is checked (block sizes,
 * double_quant, the code table). Returns 0, or -1 with a message naming the file and key. */
int checkpoint_quant(const st_file *f, ck_quant *q, ml_error *e);

/* Loads a base checkpoint into a zeroed m (initialized from the file's config; free with
 * minigpt_free) and its vocabulary into v; sha256 (may be NULL) receives the file's digest as
 * hex. The vocabulary size must equal the config's vocab_size. */
int checkpoint_load(const char *path, minigpt *m, tok_vocab *v, char sha256[65], ml_error *e);

/* Reads a model from an opened checkpoint: config from its metadata (which must equal what m
 * was built with, when m is already initialized — pass an uninitialized, zeroed m to build from
 * the file; the caller then owns it and frees it with minigpt_free, also after a failure), every
 * tensor by name with dtype F32 (F16 in an "f16" checkpoint) and exact shape, finite values;
 * the tensors listed in an NF4 checkpoint's "nf4_tensors" from their quantized parts, checked
 * and dequantized (nf4_read_tensor). Extra tensors are refused unless
 * allow_extra (test fixtures carry reference outputs beside the weights). f stays the caller's. */
int checkpoint_read_model(minigpt *m, const st_file *f, int allow_extra, ml_error *e);

/* Writes m as a base checkpoint atomically: tensors in table order, metadata "config",
 * "vocab", "format" = "minigpt", plus n_meta extra key/value pairs (provenance). */
int checkpoint_save(const char *path, const minigpt *m, const tok_vocab *v, int n_meta,
                    const char *const *keys, const char *const *values, ml_error *e);

/* checkpoint_save with storage q (CK_F32 writes the same bytes as checkpoint_save); the quant
 * metadata goes after "vocab", before the extra pairs. F16 fails on a value outside fp16's
 * range, naming the tensor. */
int checkpoint_save_quant(const char *path, const minigpt *m, const tok_vocab *v, ck_quant q,
                          int n_meta, const char *const *keys, const char *const *values,
                          ml_error *e);

#endif
