/* eval_job.c — every model on every file, one model in memory at a time. */
#include "eval_job.h"

#include <stdlib.h>
#include <string.h>

#include "grad_engine.h"
#include "loaded_model.h"

/* engine_init sizes: sequences per batch and per chunk when scoring */
enum { EVAL_MAX_B = 256, EVAL_MICRO = 32 };

/* Scores the model of lm on every file into column k of r. */
static int score_model(const loaded_model *lm, eval_results *r, int k, int threads, ml_error *e) {
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
    }
    engine_free(&g);
    if (rc == 0 && k > 0) { /* against the base: the adapter switched off, or the base itself */
        const dataset **sets = malloc(sizeof *sets * (size_t)(r->n_files ? r->n_files : 1));
        if (!sets) return ml_fail(e, "out of memory");
        for (int f = 0; f < r->n_files; f++) sets[f] = &r->data[f];
        const int adapter = lm->m == &lm->base;
        rc = eval_max_logit_diff(&lm->base, adapter, lm->m, sets, r->n_files, &r->max_dlogit[k], e);
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
    if (loaded_model_init(&lm, s->base, NULL, e)) goto fail;
    for (int f = 0; f < r->n_files; f++)
        if (ds_load(&r->data[f], s->files[f], &lm.vocab, lm.base.cfg.context, e)) {
            loaded_model_free(&lm);
            goto fail;
        }
    loaded_model_free(&lm);
    for (int k = 0; k < r->n_models; k++) {
        if (loaded_model_init(&lm, s->base, k ? s->adapters[k - 1] : NULL, e)) goto fail;
        const int rc = score_model(&lm, r, k, s->threads, e);
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
