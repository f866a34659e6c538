/* eval_job.c — every model on every file, one model in memory at a time. */
#include "eval_job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grad_engine.h"
#include "loaded_model.h"

/* engine_init sizes: sequences per batch and per chunk when scoring */
enum { EVAL_MAX_B = 256, EVAL_MICRO = 32 };

/* Refuses scores that are not finite (no nan or inf reaches a table or the JSON): names the
 * file, the model and the first example with its metric. */
static int check_finite(const dataset *d, const eval_item *items, const eval_totals *t,
                        const char *model, ml_error *e) {
    char file_s[TEXT_PATH_SHOWN], model_s[TEXT_PATH_SHOWN];
    text_short_path(file_s, sizeof file_s, d->path);
    text_short_path(model_s, sizeof model_s, model);
    for (int i = 0; i < d->n; i++) {
        const int dis = d->ex[i].distractor != NULL;
        if (!isfinite(items[i].logp_target))
            return ml_fail(e, "%s:%d: %s: perplexity is not finite (the model's logits overflow)",
                           file_s, d->ex[i].line, model_s);
        if (dis && !isfinite(items[i].logp_distractor))
            return ml_fail(e,
                           "%s:%d: %s: the log-probability of the distractor is not finite (the "
                           "model's logits overflow)",
                           file_s, d->ex[i].line, model_s);
    }
    if (!isfinite(eval_ppl(t)))
        return ml_fail(e, "%s: %s: perplexity is not finite (the model's logits overflow)", file_s,
                       model_s);
    return 0;
}

/* Scores the model of lm on every file into column k of r. */
static int score_model(const loaded_model *lm, const char *model, eval_results *r, int k,
                       int threads, ml_error *e) {
    engine g;
    if (engine_init(&g, lm->m, threads, EVAL_MAX_B, EVAL_MICRO, 0, 0, e)) return -1;
    int rc = 0;
    for (int f = 0; f < r->n_files && rc == 0; f++) {
        const int i = f * r->n_models + k;
        if (!(r->items[i] = calloc((size_t)r->data[f].n, sizeof *r->items[i]))) {
            rc = ml_fail(e, "out of memory");
            break;
        }
        eval_dataset(&g, &lm->vocab, &r->data[f], r->items[i]);
        r->totals[i] = eval_sum(&r->data[f], r->items[i], NULL);
        rc = check_finite(&r->data[f], r->items[i], &r->totals[i], model, e);
    }
    engine_free(&g);
    if (rc == 0 && k > 0) { /* against the base: the adapter switched off, or the base itself */
        const dataset **sets = malloc(sizeof *sets * (size_t)(r->n_files ? r->n_files : 1));
        if (!sets) return ml_fail(e, "out of memory");
        for (int f = 0; f < r->n_files; f++) sets[f] = &r->data[f];
        const int adapter = lm->m == &lm->base;
        rc = eval_max_logit_diff(&lm->base, adapter, lm->m, sets, r->n_files, threads,
                                 &r->max_dlogit[k], e);
        free(sets);
    }
    return rc;
}

int eval_job_run(const eval_spec *s, eval_results *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    r->n_files = s->n_files;
    r->n_models = 1 + s->n_adapters;
    const size_t cells = (size_t)r->n_files * r->n_models;
    r->data = calloc((size_t)r->n_files, sizeof *r->data);
    r->items = calloc(cells, sizeof *r->items);
    r->totals = calloc(cells, sizeof *r->totals);
    r->max_dlogit = calloc((size_t)r->n_models, sizeof *r->max_dlogit);
    if (!r->data || !r->items || !r->totals || !r->max_dlogit) {
        eval_results_free(r);
        return ml_fail(e, "out of memory");
    }
    loaded_model lm;
    if (loaded_model_init(&lm, s->base, NULL, 1.0f, e)) goto fail;
    for (int f = 0; f < r->n_files; f++)
        if (ds_load(&r->data[f], s->files[f], &lm.vocab, lm.base.cfg.context, e)) {
            loaded_model_free(&lm);
            goto fail;
        }
    loaded_model_free(&lm);
    for (int k = 0; k < r->n_models; k++) {
        const float strength = k && s->strengths ? s->strengths[k - 1] : 1.0f;
        if (loaded_model_init(&lm, s->base, k ? s->adapters[k - 1] : NULL, strength, e)) goto fail;
        const int rc = score_model(&lm, k ? s->adapters[k - 1] : s->base, r, k, s->threads, e);
        loaded_model_free(&lm);
        if (rc) goto fail;
    }
    return 0;
fail:
    eval_results_free(r);
    return -1;
}

void eval_results_free(eval_results *r) {
    if (r->items)
        for (int i = 0; i < r->n_files * r->n_models; i++) free(r->items[i]);
    if (r->data)
        for (int f = 0; f < r->n_files; f++) ds_free(&r->data[f]);
    free(r->items);
    free(r->totals);
    free(r->max_dlogit);
    free(r->data);
    memset(r, 0, sizeof *r);
}
