/* loaded_model.h — the model a command runs: a base checkpoint with an adapter installed, or a
 * full checkpoint (merged model, full fine-tune) in its place. */
#ifndef LOADED_MODEL_H
#define LOADED_MODEL_H

#include "lora.h"
#include "minigpt.h"
#include "ml_error.h"
#include "tokenizer.h"

typedef struct {
    minigpt base; /* the base checkpoint */
    minigpt full; /* a full checkpoint given as the "adapter" (merged / full fine-tune) */
    lora adapter; /* a LoRA adapter installed on base (rank 0 when none) */
    tok_vocab vocab;
    char base_sha[65];
    minigpt *m; /* the model to run: &base or &full */
} loaded_model;

/* Loads base_path, then adapter_path when non-NULL: a LoRA adapter (refused when trained on
 * another base) is installed on the base at the given strength (lora_set_strength: 1 as
 * trained, 0 the base's outputs exactly); a full minigpt checkpoint replaces it (its vocabulary
 * must equal the base's), and a strength other than 1 is then refused. Everything is owned by
 * lm: free with loaded_model_free. */
int loaded_model_init(loaded_model *lm, const char *base_path, const char *adapter_path,
                      float strength, ml_error *e);
void loaded_model_free(loaded_model *lm);

#endif
