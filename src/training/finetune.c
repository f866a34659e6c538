/* finetune.c — LoRA or full fine-tuning of a base model through the shared training loop. */
#include "finetune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora_init.h"

/* train_job.on_params: DoRA's cached norms and the merged path's W' follow A and B */
static void refresh_adapter(void *ctx) { lora_refresh(ctx); }

int finetune_init(finetune *f, minigpt *m, const dataset *train, const dataset *replay,
                  const dataset *val, const finetune_opts *o, const char *label, ml_error *e) {
    memset(f, 0, sizeof *f);
    f->m = m;
    const float ratio = o->loraplus_ratio == 0.0f ? 1.0f : o->loraplus_ratio;
    if (!(ratio > 0.0f) || !isfinite(ratio))
        return ml_fail(e, "LoRA+ ratio %g is not a positive number", (double)o->loraplus_ratio);
    if (o->full && ratio != 1.0f)
        return ml_fail(e,
                       "a LoRA+ ratio (%g) applies to LoRA's B matrices, not to a full "
                       "fine-tune",
                       (double)ratio);
    if (o->full && (o->dora || o->dropout != 0.0f))
        return ml_fail(e, "DoRA and LoRA dropout apply to an adapter, not to a full fine-tune");
    if (o->full && o->init != LORA_INIT_KAIMING)
        return ml_fail(e, "--init %s sets LoRA's A and B; not with a full fine-tune",
                       lora_init_name(o->init) ? lora_init_name(o->init) : "?");
    if (o->full && o->lora_path == LORA_PATH_MERGED)
        return ml_fail(e, "--lora-path merged merges an adapter's B·A; not with a full fine-tune");
    if (o->dora && lora_init_uses_base(o->init)) /* m would start from W, not the residual */
        return ml_fail(e, "--dora with --init %s is not supported: use kaiming or gaussian",
                       lora_init_name(o->init));
    if (o->init_params && (o->full || o->init != LORA_INIT_KAIMING))
        return ml_fail(e, "an adapter to start from excludes --full and --init %s",
                       lora_init_name(o->init) ? lora_init_name(o->init) : "?");
    const int rank = o->full ? 0 : o->rank;
    const unsigned layers = o->layers ? o->layers : LORA_ALL_LAYERS;
    const int residual = !o->full && rank > 0 && lora_init_uses_base(o->init);
    /* the dropout masks get their own stream of the run's seed */
    const lora_variant var = {o->dora, o->dropout, o->train.seed ^ 0x64726f706f7574ull};
    if (lora_init_variant(&f->adapter, m, rank, o->alpha, o->rslora, o->targets, layers, &var, e))
        return -1;
    /* the preservation term compares with the base: with a residual init that is no longer
     * the model with the adapter switched off, so keep a copy of it taken now */
    const int copy_base = o->train.preserve_kl > 0.0f && (o->full || residual);
    if (copy_base) {
        if (minigpt_init(&f->frozen, &m->cfg, e)) goto fail;
        memcpy(f->frozen.params, m->params, m->n_params * sizeof(float));
    }
    if (o->init_params) { /* continue an adapter: its A, B (and m) as they are */
        if (o->n_init_params != f->adapter.n_params) {
            ml_fail(e, "the adapter to start from has %zu parameters, these settings %zu",
                    o->n_init_params, f->adapter.n_params);
            goto fail;
        }
        memcpy(f->adapter.params, o->init_params, o->n_init_params * sizeof(float));
        lora_refresh(&f->adapter);
    } else {
        if (lora_init_apply(&f->adapter, o->full ? LORA_INIT_KAIMING : o->init, o->train.seed, e))
            goto fail;
        lora_dora_reset(&f->adapter); /* m = ‖W + s·B0·A0‖ whatever the init (no DoRA: no-op) */
    }
    const int max_B = o->train.batch;
    /* the graph of each layer, now that A and B hold their first values (W' follows them) */
    const int micro = o->train.micro < max_B ? o->train.micro : max_B;
    if (!o->full && lora_set_path(&f->adapter, o->lora_path,
                                  (double)(micro > 0 ? micro : 1) * m->cfg.context, e))
        goto fail;
    if (engine_init(&f->g, m, o->train.threads, max_B, o->train.micro, o->full,
                    o->full ? 0 : f->adapter.n_params, e))
        goto fail;
    if (o->train.preserve_kl > 0.0f) {
        /* the term compares with the base: the adapter switched off, or, when the base itself
         * is trained or replaced by a residual, the copy taken above */
        if (engine_set_preserve(&f->g, o->train.preserve_kl, copy_base ? &f->frozen : NULL, e))
            goto fail;
    }
    /* what is trained: A and B of each adapted layer, each target Linear weight of the base, or
     * (FINETUNE_FULL_ALL) every parameter of the base */
    const size_t cap = 3 * (size_t)m->n_linears + 1 > (size_t)m->n_tensors
                           ? 3 * (size_t)m->n_linears + 1
                           : (size_t)m->n_tensors;
    f->tensors = calloc(cap, sizeof *f->tensors);
    if (!f->tensors) {
        ml_fail(e, "out of memory");
        goto fail;
    }
    if (o->full == FINETUNE_FULL_ALL) {
        for (int i = 0; i < m->n_tensors; i++) { /* weight decay as in pretraining */
            const minigpt_tensor *t = &m->tensors[i];
            f->tensors[f->n_tensors++] =
                (train_tensor){m->params + t->offset,
                               t->numel,
                               t->offset,
                               t->kind == MG_EMBEDDING || t->kind == MG_LINEAR_WEIGHT,
                               t->name,
                               1.0f};
        }
    } else if (o->full) {
        for (int i = 0; i < m->n_linears; i++) {
            const minigpt_linear *L = &m->linears[i];
            if (!(o->targets & (1u << L->role)) || !(layers & (1u << L->layer))) continue;
            const minigpt_tensor *t = &m->tensors[L->w_tensor];
            f->tensors[f->n_tensors++] =
                (train_tensor){L->w, t->numel, t->offset, 1, t->name, 1.0f};
        }
    } else if (rank > 0) {
        for (int i = 0; i < f->adapter.n_layers; i++) {
            const lora_layer *L = &f->adapter.layers[i];
            const size_t na = (size_t)rank * L->slot->in, nb = (size_t)L->slot->out * rank;
            /* LoRA+ (Hayou et al. 2024): B learns ratio times faster than A */
            f->tensors[f->n_tensors++] = (train_tensor){L->A, na, L->a_off, 1, L->slot->path, 1.0f};
            f->tensors[f->n_tensors++] =
                (train_tensor){L->B, nb, L->b_off, 1, L->slot->path, ratio};
            if (f->adapter.dora) /* decayed like every adapter weight, as PEFT's Trainer does */
                f->tensors[f->n_tensors++] =
                    (train_tensor){L->mag, (size_t)L->slot->out, L->m_off, 1, L->slot->path, 1.0f};
        }
    }
    f->opts = o->train;
    f->job = (train_job){
        .g = &f->g,
        .train = train,
        .replay = replay,
        .val = val,
        .tensors = f->tensors,
        .n_tensors = f->n_tensors,
        .label = label,
        .on_params = f->adapter.dora || lora_merged_layers(&f->adapter) ? refresh_adapter : NULL,
        .on_params_ctx = &f->adapter};
    if (train_state_init(&f->state, &f->job, &o->train, e)) goto fail;
    return 0;
fail:
    finetune_free(f);
    return -1;
}

int finetune_run(finetune *f, ml_error *e) {
    memset(&f->result, 0, sizeof f->result);
    /* rank 0 has nothing to train: the adapter is empty and the model is the base */
    if (f->n_tensors == 0) return 0;
    if (train_run(&f->job, &f->opts, &f->state, &f->result, e)) {
        train_use_best(&f->job, &f->state);
        return -1;
    }
    if (!f->result.interrupted) train_use_best(&f->job, &f->state);
    return 0;
}

void finetune_use_best(finetune *f) { train_use_best(&f->job, &f->state); }

char *finetune_fingerprint(const finetune_opts *o, const char *base_sha, const char *data_sha,
                           const char *val_sha, const char *replay_sha) {
    const train_opts *t = &o->train;
    char buf[2048];
    int len = snprintf(
        buf, sizeof buf,
        "{\"rank\":%d,\"alpha\":%.9g,\"rslora\":%d,\"targets\":%u,\"full\":%d,\"steps\":%d,"
        "\"batch\":%d,\"micro_batch\":%d,\"warmup\":%d,\"lr\":%.9g,\"min_lr_frac\":%.9g,"
        "\"weight_decay\":%.9g,\"clip\":%.9g,\"beta1\":%.9g,\"beta2\":%.9g,\"eps\":%.9g,"
        "\"eval_every\":%d,\"seed\":%llu,\"replay_frac\":%.9g,\"preserve_kl\":%.9g,"
        "\"base_sha256\":\"%s\","
        "\"data_sha256\":\"%s\",\"val_sha256\":\"%s\",\"replay_sha256\":\"%s\"}",
        o->full ? 0 : o->rank, (double)o->alpha, o->rslora, o->targets, o->full, t->steps, t->batch,
        t->micro, t->warmup, (double)t->lr, (double)t->min_lr_frac, (double)t->weight_decay,
        (double)t->clip, (double)t->beta1, (double)t->beta2, (double)t->eps, t->eval_every,
        (unsigned long long)t->seed, replay_sha ? (double)t->replay_frac : 0.0,
        (double)t->preserve_kl, base_sha, data_sha, val_sha ? val_sha : "",
        replay_sha ? replay_sha : "");
    /* settings that did not exist before: only when in use (see finetune.h) */
    char extra[256] = "";
    if (t->optimizer != OPTIM_ADAMW) {
        const optim_kind *k = optim_kind_at(t->optimizer);
        snprintf(extra, sizeof extra, ",\"optimizer\":\"%s\",\"momentum\":%.9g,\"nesterov\":%d",
                 k ? k->name : "?", (double)t->momentum, t->nesterov);
    }
    const float ratio = o->loraplus_ratio == 0.0f ? 1.0f : o->loraplus_ratio;
    if (ratio != 1.0f) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"loraplus_ratio\":%.9g", (double)ratio);
    }
    if (o->dora) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"dora\":1");
    }
    if (o->dropout != 0.0f) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"dropout\":%.9g", (double)o->dropout);
    }
    if (!o->full && o->init != LORA_INIT_KAIMING) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"init\":\"%s\"",
                 lora_init_name(o->init) ? lora_init_name(o->init) : "?");
    }
    if (!o->full && o->lora_path != LORA_PATH_THIN) { /* rounding differs: so would a resume */
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"lora_path\":\"%s\"",
                 lora_path_name(o->lora_path) ? lora_path_name(o->lora_path) : "?");
    }
    if (o->layers && o->layers != LORA_ALL_LAYERS) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"layers\":%u", o->layers);
    }
    if (o->init_from_sha && o->init_from_sha[0]) {
        const size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used, ",\"init_from_sha256\":\"%.64s\"",
                 o->init_from_sha);
    }
    if (len < 1 || (size_t)len + strlen(extra) >= sizeof buf) return NULL;
    memcpy(buf + len - 1, extra, strlen(extra)); /* before the closing brace */
    strcpy(buf + len - 1 + strlen(extra), "}");
    return strdup(buf);
}

void finetune_free(finetune *f) {
    train_state_free(&f->state);
    engine_free(&f->g);
    minigpt_free(&f->frozen);
    lora_free(&f->adapter);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}
