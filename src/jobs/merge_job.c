/* merge_job.c — adapter (or a mix of adapters) into base or into a new adapter, checked on the
 * logits, written with provenance. */
#include "merge_job.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
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

/* max |after − before| and max |before| into r; refuses non-finite logits, naming label and
 * what (the model that gave `after`): the check must not pass on NaN. */
static int compare_logits(const float *before, const float *after, size_t n, const char *label,
                          const char *what, merge_report *r, ml_error *e) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(after[i]) || !isfinite(before[i]))
            return ml_fail(e,
                           "%s: the %s model's logits are not finite (the merged weights overflow)",
                           label, isfinite(before[i]) ? what : "base");
        const double d = fabs((double)after[i] - before[i]);
        if (d > r->max_diff) r->max_diff = d;
        if (fabs(before[i]) > r->max_logit) r->max_logit = fabs(before[i]);
    }
    r->n_logits = n;
    return 0;
}

/* The shortest decimal text that reads back as the float w (cJSON would print the double). */
static void float_text(char *buf, size_t n, float w) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)w);
        if (strtof(buf, NULL) == w) return;
    }
}

/* The mix's sources as JSON: [{"adapter": file, "sha256": hex, "weight": w, "r": r,
 * "lora_alpha": α}, ...]; malloc'ed, caller frees. NULL (e filled) when a digest fails. */
static char *sources_json(const merge_spec *s, const lora *src, ml_error *e) {
    cJSON *list = cJSON_CreateArray();
    char *text = NULL;
    for (int i = 0; list && i < s->n_adapters; i++) {
        char sha[65], num[32];
        if (adapter_sha256(s->adapters[i], sha, e)) goto done;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(list, o)) goto oom;
        float_text(num, sizeof num, s->weights[i]);
        if (!cJSON_AddStringToObject(o, "adapter", s->adapters[i]) ||
            !cJSON_AddStringToObject(o, "sha256", sha) || !cJSON_AddRawToObject(o, "weight", num) ||
            !cJSON_AddNumberToObject(o, "r", src[i].rank))
            goto oom;
        float_text(num, sizeof num, src[i].alpha);
        if (!cJSON_AddRawToObject(o, "lora_alpha", num)) goto oom;
    }
    if (list && (text = cJSON_PrintUnformatted(list))) goto done;
oom:
    ml_fail(e, "out of memory for the mix's metadata");
done:
    cJSON_Delete(list);
    return text;
}

/* Several adapters (or one with a weight) mixed by lora_mix, then merged or saved. */
static int merge_mix(const merge_spec *s, merge_report *r, ml_error *e) {
    loaded_model lm = {0};
    dataset data[MERGE_MAX_FILES] = {{0}};
    const dataset *sets[MERGE_MAX_FILES];
    float *before = NULL, *after = NULL;
    provenance prov = {0};
    lora mix = {0};
    const lora *srcs[MERGE_MAX_ADAPTERS];
    float w[MERGE_MAX_ADAPTERS];
    char *sources = NULL;
    int rc = -1;
    const char *label = s->out ? s->out : s->out_adapter;
    lora *src = calloc((size_t)s->n_adapters, sizeof(lora));
    if (!src) {
        ml_fail(e, "out of memory");
        goto done;
    }
    if (loaded_model_init(&lm, s->base, NULL, 1.0f, e)) goto done;
    for (int i = 0; i < s->n_adapters; i++) { /* each loaded, then set aside for the next */
        int is_adapter;
        if (lora_probe(s->adapters[i], &is_adapter, e)) goto done;
        if (!is_adapter) {
            ml_fail(e, "%s: not a LoRA adapter (only adapters can be mixed)", s->adapters[i]);
            goto done;
        }
        if (lora_load(&src[i], &lm.base, s->adapters[i], lm.base_sha, e)) goto done;
        if (src[i].dora) { /* a magnitude rescales W + sBA as a whole: no sum of updates */
            ml_fail(e, "%s: a DoRA adapter cannot be mixed (merge it alone with --out)",
                    s->adapters[i]);
            goto done;
        }
        lora_uninstall(&src[i]);
        srcs[i] = &src[i];
        w[i] = s->weights[i] * s->strength;
    }
    if (lora_mix(&mix, &lm.base, srcs, s->adapters, w, s->n_adapters, (lora_mix_mode)s->combine,
                 s->svd_rank, e))
        goto done;
    r->rank = mix.rank;
    r->alpha = mix.alpha;
    r->scale = mix.scale;
    r->n_layers = mix.n_layers;
    for (int f = 0; f < s->n_files; f++) {
        if (ds_load(&data[f], s->files[f], &lm.vocab, lm.base.cfg.context, e)) goto done;
        sets[f] = &data[f];
    }
    size_t n_before, n_after;
    if (!(before = eval_logits(&lm.base, sets, s->n_files, &n_before, e))) goto done;
    if (!(sources = sources_json(s, src, e)) ||
        prov_add(&prov, e, "mix_combine", "%s", lora_mix_mode_name(s->combine)) ||
        prov_add(&prov, e, "mix_sources", "%s", sources) ||
        (s->combine == LORA_MIX_SVD && prov_add(&prov, e, "mix_svd_rank", "%d", mix.rank)) ||
        (s->strength != 1.0f && prov_add(&prov, e, "mix_strength", "%g", (double)s->strength)))
        goto done;
    if (s->out) {
        if (lora_merge_into(&mix, e)) { /* nothing written */
            ml_wrap(e, "the mix of %d adapters", s->n_adapters);
            goto done;
        }
        lora_free(&mix); /* uninstall: the merged weights now carry the update */
        if (!(after = eval_logits(&lm.base, sets, s->n_files, &n_after, e)) ||
            compare_logits(before, after, n_before, label, "merged", r, e) ||
            prov_add(&prov, e, "base_sha256", "%s", lm.base_sha) ||
            prov_add(&prov, e, "lora_r", "%d", r->rank) ||
            prov_add(&prov, e, "lora_alpha", "%g", (double)r->alpha) ||
            prov_add(&prov, e, "generator", "minilora merge") ||
            checkpoint_save(s->out, &lm.base, &lm.vocab, prov.n, prov.keys, prov.vals, e))
            goto done;
    } else {
        if (prov_add(&prov, e, "generator", "minilora merge") ||
            lora_save(&mix, s->out_adapter, lm.base_sha, prov.n, prov.keys, prov.vals, e))
            goto done;
        lora_free(&mix); /* the file as written (F16) in its place, for the check */
        if (lora_load(&mix, &lm.base, s->out_adapter, lm.base_sha, e) ||
            !(after = eval_logits(&lm.base, sets, s->n_files, &n_after, e)) ||
            compare_logits(before, after, n_before, label, "written adapter's", r, e))
            goto done;
    }
    rc = 0;
done:
    free(sources);
    prov_free(&prov);
    free(before);
    free(after);
    for (int f = 0; f < s->n_files; f++) ds_free(&data[f]);
    lora_free(&mix);
    for (int i = 0; src && i < s->n_adapters; i++) lora_free(&src[i]);
    free(src);
    loaded_model_free(&lm);
    return rc;
}

/* One adapter folded in as trained (at the spec's strength): the merge lora-merge always did. */
static int merge_one(const merge_spec *s, merge_report *r, ml_error *e) {
    loaded_model lm = {0};
    dataset data[MERGE_MAX_FILES] = {{0}};
    const dataset *sets[MERGE_MAX_FILES];
    float *before = NULL, *after = NULL;
    provenance prov = {0};
    int rc = -1;
    const char *adapter = s->adapters[0];
    if (loaded_model_init(&lm, s->base, adapter, s->strength, e)) goto done;
    if (lm.m != &lm.base) {
        ml_fail(e, "%s: not a LoRA adapter (a full checkpoint needs no merging)", adapter);
        goto done;
    }
    for (int f = 0; f < s->n_files; f++) {
        if (ds_load(&data[f], s->files[f], &lm.vocab, lm.base.cfg.context, e)) goto done;
        sets[f] = &data[f];
    }
    size_t n_before, n_after;
    if (!(before = eval_logits(&lm.base, sets, s->n_files, &n_before, e))) goto done;
    if (lora_merge_into(&lm.adapter, e)) { /* nothing written */
        ml_wrap(e, "%s", adapter);
        goto done;
    }
    r->rank = lm.adapter.rank;
    r->alpha = lm.adapter.alpha;
    r->scale = lm.adapter.scale;
    r->n_layers = lm.adapter.n_layers;
    lora_free(&lm.adapter); /* uninstall: the merged weights now carry the update */
    if (!(after = eval_logits(&lm.base, sets, s->n_files, &n_after, e))) goto done;
    if (compare_logits(before, after, n_before, adapter, "merged", r, e)) goto done;
    char adapter_sha[65];
    if (adapter_sha256(adapter, adapter_sha, e) ||
        prov_add(&prov, e, "merged_adapter", "%s", adapter) ||
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

int merge_job_run(const merge_spec *s, merge_report *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    if (s->n_files > MERGE_MAX_FILES)
        return ml_fail(e, "at most %d files for the merge check", MERGE_MAX_FILES);
    if (s->n_adapters < 1 || s->n_adapters > MERGE_MAX_ADAPTERS)
        return ml_fail(e, "1..%d adapters to merge, not %d", MERGE_MAX_ADAPTERS, s->n_adapters);
    if (!s->out == !s->out_adapter)
        return ml_fail(e, "give one of --out (a merged base) and --out-adapter (an adapter)");
    if (s->out_adapter && !s->mix) return ml_fail(e, "--out-adapter writes a mix");
    if (s->n_adapters > 1 && !s->mix) return ml_fail(e, "several adapters make a mix");
    io_path io[MERGE_MAX_FILES + 3 * MERGE_MAX_ADAPTERS + 2] = {
        {s->out ? "--out" : "--out-adapter", s->out ? s->out : s->out_adapter, 1, NULL},
        {"--base", s->base, 0, NULL}};
    int n_io = 2;
    enum { PATH_CAP = 4200 };
    char(*dir_files)[2][PATH_CAP] = calloc((size_t)s->n_adapters, sizeof *dir_files);
    if (!dir_files) return ml_fail(e, "out of memory");
    for (int i = 0; i < s->n_adapters; i++) {
        io[n_io++] = (io_path){"--adapter", s->adapters[i], 0, NULL};
        /* a PEFT directory's two files are inputs too */
        if (peft_dir_files(s->adapters[i], dir_files[i][0], dir_files[i][1], PATH_CAP)) {
            io[n_io++] = (io_path){"--adapter", dir_files[i][0], 0, NULL};
            io[n_io++] = (io_path){"--adapter", dir_files[i][1], 0, NULL};
        }
    }
    for (int f = 0; f < s->n_files; f++) io[n_io++] = (io_path){"DATA", s->files[f], 0, NULL};
    const int rc = io_check(io, n_io, e);
    free(dir_files);
    if (rc) return -1;
    return s->mix ? merge_mix(s, r, e) : merge_one(s, r, e);
}
