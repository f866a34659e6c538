/* peft.h — HuggingFace PEFT adapter directories, the layout PEFT's save_pretrained writes:
 *
 *     DIR/adapter_config.json        LoraConfig as JSON (peft_type "LORA", r, lora_alpha, ...)
 *     DIR/adapter_model.safetensors  the tensors, named base_model.model.<path>.lora_A.weight ...
 *
 * Every command that reads an adapter file also reads such a directory: adapter_open gives the
 * same st_file view either way, with the directory's config fields in place of the file's
 * metadata, so lora_load checks both kinds alike. What minilora cannot run is refused with one
 * line naming the file and the field (bias other than "none", fan_in_fan_out, modules_to_save,
 * per-module ranks, target modules other than q_proj,k_proj,v_proj,o_proj,fc1,fc2), as is a
 * config that disagrees with the tensors or with the safetensors metadata.
 *
 * The base: minilora writes the base file's name as base_model_name_or_path and its digest as
 * the extra field minilora_base_sha256 (and keeps base_sha256 in the safetensors metadata), so
 * a directory is checked against the base like an adapter file.
 */
#ifndef PEFT_H
#define PEFT_H

#include "lora.h"
#include "ml_error.h"
#include "safetensors.h"

#define PEFT_CONFIG_NAME "adapter_config.json"
#define PEFT_WEIGHTS_NAME "adapter_model.safetensors"
#define PEFT_SHA_FIELD "minilora_base_sha256" /* our extra field in adapter_config.json */
#define PEFT_MAX_CONFIG (1u << 20)            /* a config file above 1 MiB is refused */

/* Whether path is a directory holding adapter_config.json (links followed). */
int peft_is_dir(const char *path);

/* When path is a PEFT directory: the paths of its two files into cfg and wts (n bytes each;
 * both "" when they do not fit) and 1, so that a command can name them among its inputs (the
 * output rule, file_checks.h). Otherwise both "" and 0. */
int peft_dir_files(const char *path, char *cfg, char *wts, size_t n);

/* Opens an adapter given as a file or as a PEFT directory into *f (release with st_close).
 * A file: st_open, *dtype = ST_F16 (adapter files are F16). A directory: its
 * adapter_model.safetensors (f->label names it), checked against adapter_config.json, with the
 * metadata replaced by the config's fields as lora_load reads them (peft_type, r, lora_alpha,
 * target_modules, use_rslora, layers_to_transform, base_sha256, use_dora when true) followed by
 * the file's other metadata (provenance); *dtype is the tensors' one dtype, F16 or F32. A
 * directory without adapter_config.json is an error. On failure *f is zeroed. */
int adapter_open(st_file *f, const char *path, st_dtype *dtype, ml_error *e);

/* The sha256 (hex) identifying an adapter: of the file, or for a PEFT directory of
 * adapter_config.json's bytes followed by adapter_model.safetensors'. */
int adapter_sha256(const char *path, char hex[65], ml_error *e);

/* The adapter_config.json text (malloc'ed, caller frees; NULL with e filled when out of memory)
 * for adapter a, loaded from f (whose metadata gives lora_alpha as written, and whose
 * tensors tell whether it is DoRA), trained on the base file named base_name with digest
 * base_sha256 (NULL: none). */
char *peft_config_text(const lora *a, const st_file *f, const char *base_name,
                       const char *base_sha256, ml_error *e);

#endif
