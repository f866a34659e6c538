/* model_config.h — the model config as JSON text: a checkpoint's "config" metadata and
 * configs/minigpt.json (the config numbers plus a "vocab" array).
 *
 * The core (minigpt.h) knows the numbers and checks them (minigpt_config_check); reading and
 * writing them as JSON lives here, with the other file formats.
 */
#ifndef MODEL_CONFIG_H
#define MODEL_CONFIG_H

#include "minigpt.h"
#include "ml_error.h"
#include "tokenizer.h"

/* Parses a config from JSON text (the checkpoint's "config" metadata or configs/minigpt.json;
 * unknown keys such as "vocab" are ignored, missing keys are errors) and checks it with
 * minigpt_config_check. label prefixes errors. Nothing is allocated. */
int model_config_parse(minigpt_config *cfg, const char *json, const char *label, ml_error *e);

/* The config as compact JSON text; malloc'ed, caller frees. NULL when out of memory. */
char *model_config_json(const minigpt_config *cfg);

/* Reads a model config and vocabulary from a JSON file like configs/minigpt.json (the config
 * numbers plus a "vocab" array). Both outputs are caller-owned values; nothing to free. */
int model_config_load(const char *path, minigpt_config *cfg, tok_vocab *v, ml_error *e);

#endif
