/* loaded_model.c — a base checkpoint plus an adapter or a full checkpoint, ready to run. */
#include "loaded_model.h"

#include <string.h>

#include "checkpoint.h"

int loaded_model_init(loaded_model *lm, const char *base_path, const char *adapter_path,
                      float strength, ml_error *e) {
    memset(lm, 0, sizeof *lm);
    if (checkpoint_load(base_path, &lm->base, &lm->vocab, lm->base_sha, e)) return -1;
    lm->m = &lm->base;
    if (!adapter_path) return 0;
    int is_adapter;
    if (lora_probe(adapter_path, &is_adapter, e)) goto fail;
    if (is_adapter) {
        if (lora_load(&lm->adapter, &lm->base, adapter_path, lm->base_sha, e)) goto fail;
        if (lora_set_strength(&lm->adapter, strength, e)) {
            ml_wrap(e, "%s", adapter_path);
            goto fail;
        }
        return 0;
    }
    if (strength != 1.0f) {
        ml_fail(e,
                "%s: a full checkpoint, not a LoRA adapter: an adapter strength other than 1 "
                "(here %g) applies to LoRA adapters only",
                adapter_path, (double)strength);
        goto fail;
    }
    tok_vocab v;
    if (checkpoint_load(adapter_path, &lm->full, &v, NULL, e)) goto fail;
    int same = v.n == lm->vocab.n;
    for (int i = 0; same && i < v.n; i++) same = !strcmp(v.sym[i], lm->vocab.sym[i]);
    if (!same) {
        ml_fail(e, "%s: its vocabulary differs from the base's", adapter_path);
        goto fail;
    }
    lm->m = &lm->full;
    return 0;
fail:
    loaded_model_free(lm);
    return -1;
}

void loaded_model_free(loaded_model *lm) {
    lora_free(&lm->adapter);
    minigpt_free(&lm->full);
    minigpt_free(&lm->base);
    memset(lm, 0, sizeof *lm);
}
