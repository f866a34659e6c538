/* merge_job.c — adapter into base, checked on the logits, written with provenance. */
#include "merge_job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dataset.h"
#include "eval.h"
#include "file_checks.h"
#include "loaded_model.h"
#include "peft.h"
#include "provenance.h"
#include "sha256.h"

int merge_job_run(const merge_spec *s, merge_report *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    if (s->n_files > MERGE_MAX_FILES)
        return ml_fail(e, "at most %d files for the merge check", MERGE_MAX_FILES);
    loaded_model lm = {0};
    dataset data[MERGE_MAX_FILES] = {{0}};
    const dataset *sets[MERGE_MAX_FILES];
    float *before = NULL, *after = NULL;
    provenance prov = {0};
    int rc = -1;
    char cfg[4200], wts[4200]; /* a PEFT directory's files are inputs too */
    peft_dir_files(s->adapter, cfg, wts, sizeof cfg);
    io_path io[MERGE_MAX_FILES + 5] = {{"--out", s->out, 1, NULL},
                                       {"--base", s->base, 0, NULL},
                                       {"--adapter", s->adapter, 0, NULL},
                                       {"--adapter", cfg, 0, NULL},
                                       {"--adapter", wts, 0, NULL}};
    for (int f = 0; f < s->n_files; f++) io[5 + f] = (io_path){"DATA", s->files[f], 0, NULL};
    if (io_check(io, 5 + s->n_files, e)) goto done;
    if (loaded_model_init(&lm, s->base, s->adapter, s->strength, e)) goto done;
    if (lm.m != &lm.base) {
        ml_fail(e, "%s: not a LoRA adapter (a full checkpoint needs no merging)", s->adapter);
        goto done;
    }
    for (int f = 0; f < s->n_files; f++) {
        if (ds_load(&data[f], s->files[f], &lm.vocab, lm.base.cfg.context, e)) goto done;
        sets[f] = &data[f];
    }
    size_t n_before, n_after;
    if (!(before = eval_logits(&lm.base, sets, s->n_files, &n_before, e))) goto done;
    if (lora_merge_into(&lm.adapter, e)) { /* nothing written */
        ml_wrap(e, "%s", s->adapter);
        goto done;
    }
    r->rank = lm.adapter.rank;
    r->alpha = lm.adapter.alpha;
    r->scale = lm.adapter.scale;
    r->n_layers = lm.adapter.n_layers;
    lora_free(&lm.adapter); /* uninstall: the merged weights now carry the update */
    if (!(after = eval_logits(&lm.base, sets, s->n_files, &n_after, e))) goto done;
    for (size_t i = 0; i < n_before; i++) {
        if (!isfinite(after[i]) || !isfinite(before[i])) { /* the check must not pass on NaN */
            ml_fail(e, "%s: the %s model's logits are not finite (the merged weights overflow)",
                    s->adapter, isfinite(before[i]) ? "merged" : "base");
            goto done;
        }
        const double d = fabs((double)after[i] - before[i]);
        if (d > r->max_diff) r->max_diff = d;
        if (fabs(before[i]) > r->max_logit) r->max_logit = fabs(before[i]);
    }
    r->n_logits = n_before;
    char adapter_sha[65];
    if (adapter_sha256(s->adapter, adapter_sha, e) ||
        prov_add(&prov, e, "merged_adapter", "%s", s->adapter) ||
        prov_add(&prov, e, "merged_adapter_sha256", "%s", adapter_sha) ||
        prov_add(&prov, e, "base_sha256", "%s", lm.base_sha) ||
        prov_add(&prov, e, "lora_r", "%d", r->rank) ||
        prov_add(&prov, e, "lora_alpha", "%g", (double)r->alpha) ||
        (s->strength != 1.0f && prov_add(&prov, e, "merged_strength", "%g", (double)s->strength)) ||
        prov_add(&prov, e, "generator", "minilora merge") ||
        checkpoint_save(s->out, &lm.base, &lm.vocab, prov.n, prov.keys, prov.vals, e))
        goto done;
    rc = 0;
done:
    prov_free(&prov);
    free(before);
    free(after);
    for (int f = 0; f < s->n_files; f++) ds_free(&data[f]);
    loaded_model_free(&lm);
    return rc;
}
