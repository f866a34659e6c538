/* pretrain_job.c — the base model's pretraining, from files to checkpoint. */
#include "pretrain_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "checkpoint.h"
#include "eval.h"
#include "file_checks.h"
#include "provenance.h"
#include "sha256.h"

/* The learning curve: one CSV row per validation, into a temporary file (atomic_stream). */
typedef struct {
    atomic_stream out;
    FILE *csv; /* out.f */
    engine *g;
    const tok_vocab *v;
    dataset *sets; // (nsets), owned
    int nsets;
} curve;

static void curve_row(void *ctx, int step, double train_loss, double val_loss) {
    curve *c = ctx;
    fprintf(c->csv, "%d,%.6f,%.6f", step, train_loss, val_loss);
    for (int i = 0; i < c->nsets; i++) {
        eval_item *items = calloc((size_t)c->sets[i].n, sizeof *items);
        if (!items) continue;
        eval_dataset(c->g, c->v, &c->sets[i], items);
        eval_totals t = eval_sum(&c->sets[i], items, NULL);
        fprintf(c->csv, ",%.4f", (double)t.correct / t.n);
        if (t.n_pref) fprintf(c->csv, ",%.4f", (double)t.pref_correct / t.n_pref);
        free(items);
    }
    fprintf(c->csv, "\n");
    fflush(c->csv);
}

/* Loads every curve file (c->sets, owned by c) and opens the CSV with its header. */
static int curve_open(curve *c, const pretrain_spec *s, const tok_vocab *v, int context,
                      ml_error *e) {
    char name[128];
    size_t n_files = 1;
    for (const char *p = s->curve_data; *p; p++) n_files += *p == ',';
    char *list = strdup(s->curve_data);
    /* the header: at most two columns of a stem (cut to 127 bytes) and a suffix per file */
    const size_t cap = 64 + n_files * 2 * (sizeof name + 8);
    char *header = malloc(cap);
    c->sets = calloc(n_files, sizeof *c->sets);
    int rc = 0;
    if (!list || !header || !c->sets) rc = ml_fail(e, "out of memory for %zu curve files", n_files);
    else snprintf(header, cap, "step,train_loss,val_loss");
    char *save = NULL;
    for (char *f = rc ? NULL : strtok_r(list, ",", &save); f && !rc;
         f = strtok_r(NULL, ",", &save)) {
        if (ds_load(&c->sets[c->nsets], f, v, context, e)) {
            rc = -1;
            break;
        }
        text_stem(name, sizeof name, f);
        const size_t used = strlen(header);
        if (c->sets[c->nsets].ex[0].distractor)
            snprintf(header + used, cap - used, ",%s_exact,%s_pref", name, name);
        else snprintf(header + used, cap - used, ",%s_exact", name);
        c->nsets++;
    }
    free(list);
    if (rc) {
        free(header);
        return -1;
    }
    if (atomic_stream_open(&c->out, s->curve, e)) {
        free(header);
        return -1;
    }
    c->csv = c->out.f;
    fprintf(c->csv, "%s\n", header);
    free(header);
    return 0;
}

/* The output rule over every path the job reads or writes: the fixed ones, each --curve-data
 * file (any number) and what the caller read besides. */
static int pretrain_io_check(const pretrain_spec *s, ml_error *e) {
    size_t n_curve = 1;
    for (const char *p = s->curve_data; *p; p++) n_curve += *p == ',';
    const size_t cap = 5 + n_curve + (size_t)s->n_read_also;
    io_path *io = calloc(cap, sizeof *io);
    char *list = strdup(s->curve_data);
    if (!io || !list) {
        free(io);
        free(list);
        return ml_fail(e, "out of memory for the paths to check");
    }
    int n = 0;
    io[n++] = (io_path){"--model", s->model_config, 0, NULL};
    io[n++] = (io_path){"DATA", s->data, 0, NULL};
    io[n++] = (io_path){"--val", s->val, 0, NULL};
    io[n++] = (io_path){"--out", s->out, 1, NULL};
    if (s->curve[0]) { /* --curve "" means none */
        io[n++] = (io_path){"--curve", s->curve, 1, NULL};
        char *save = NULL;
        for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save))
            io[n++] = (io_path){"--curve-data", f, 0, NULL};
    }
    for (int i = 0; i < s->n_read_also; i++) io[n++] = s->read_also[i];
    const int rc = io_check(io, n, e);
    free(io);
    free(list);
    return rc;
}

/* Every parameter is trained; weight decay on the embedding and the Linear weights. */
static train_tensor *all_tensors(minigpt *m) {
    train_tensor *t = calloc((size_t)m->n_tensors, sizeof *t);
    if (!t) return NULL;
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *mt = &m->tensors[i];
        t[i] = (train_tensor){m->params + mt->offset,
                              mt->numel,
                              mt->offset,
                              mt->kind == MG_EMBEDDING || mt->kind == MG_LINEAR_WEIGHT,
                              mt->name,
                              1.0f};
    }
    return t;
}

/* The checkpoint's provenance: seed, data, best step, settings, generator. */
static int pretrain_provenance(provenance *p, const pretrain_spec *s, const train_opts *o,
                               int micro, const char *data_sha, const train_result *res,
                               ml_error *e) {
    char optim_s[200];
    const optim_hparams ohp = train_hparams(o);
    optim_json(optim_s, sizeof optim_s, o->optimizer, &ohp);
    return prov_add(p, e, "seed", "%llu", (unsigned long long)o->seed) ||
           prov_add(p, e, "steps", "%d", res->steps) || prov_add(p, e, "data", "%s", s->data) ||
           prov_add(p, e, "data_sha256", "%s", data_sha) ||
           prov_add(p, e, "best_step", "%d", res->best_step) ||
           prov_add(p, e, "val_loss", "%.6f", res->best_val) ||
           prov_add(p, e, "train_config",
                    "{\"steps\":%d,\"batch\":%d,\"micro_batch\":%d,\"lr\":%g,\"min_lr_frac\":%g,"
                    "\"warmup\":%d,\"weight_decay\":%g,\"clip\":%g,%s}",
                    o->steps, o->batch, micro, (double)o->lr, (double)o->min_lr_frac, o->warmup,
                    (double)o->weight_decay, (double)o->clip, optim_s) ||
           prov_add(p, e, "generator", "minilora pretrain");
}

int pretrain_job_run(const pretrain_spec *s, void (*on_ready)(void *ctx, const pretrain_report *r),
                     void *ctx, pretrain_report *report, ml_error *e) {
    const train_opts *o = &s->train;
    memset(report, 0, sizeof *report);
    minigpt_config cfg;
    tok_vocab vocab;
    minigpt m = {0};
    dataset train = {0}, val = {0};
    engine g = {0};
    train_state st = {0};
    train_tensor *tensors = NULL;
    curve cv = {0};
    provenance prov = {0};
    int rc = -1;
    char data_sha[65];
    if (pretrain_io_check(s, e) || model_config_load(s->model_config, &cfg, &vocab, e) ||
        minigpt_init(&m, &cfg, e) || ds_load(&train, s->data, &vocab, cfg.context, e) ||
        (s->val[0] && ds_load(&val, s->val, &vocab, cfg.context, e)) ||
        sha256_file_hex(s->data, data_sha, e))
        goto done;
    minigpt_init_random(&m, o->seed);
    if (!(tensors = all_tensors(&m))) {
        ml_fail(e, "out of memory");
        goto done;
    }
    if (engine_init(&g, &m, o->threads, o->batch, o->micro, 1, 0, e)) goto done;
    train_job job = {.g = &g,
                     .train = &train,
                     .val = s->val[0] ? &val : NULL,
                     .tensors = tensors,
                     .n_tensors = m.n_tensors,
                     .label = s->label};
    if (s->curve[0]) {
        if (curve_open(&cv, s, &vocab, cfg.context, e)) goto done;
        cv.g = &g;
        cv.v = &vocab;
        job.on_eval = curve_row;
        job.on_eval_ctx = &cv;
    }
    if (train_state_init(&st, &job, o, e)) goto done;
    report->n_params = m.n_params;
    report->n_examples = train.n;
    report->threads = g.nthreads;
    if (on_ready) on_ready(ctx, report);
    if (train_run(&job, o, &st, &report->result, e)) goto done;
    /* training has ended: the curve so far replaces --curve, also when interrupted */
    if (cv.csv) {
        cv.csv = NULL;
        if (atomic_stream_commit(&cv.out, e)) goto done;
    }
    if (report->result.interrupted) {
        rc = 0;
        goto done;
    }
    train_use_best(&job, &st);
    if (pretrain_provenance(&prov, s, o, g.micro, data_sha, &report->result, e) ||
        checkpoint_save(s->out, &m, &vocab, prov.n, prov.keys, prov.vals, e))
        goto done;
    rc = 0;
done:
    atomic_stream_abort(&cv.out); /* a failed run leaves --curve as it was */
    for (int i = 0; i < cv.nsets; i++) ds_free(&cv.sets[i]);
    free(cv.sets);
    prov_free(&prov);
    train_state_free(&st);
    engine_free(&g);
    free(tensors);
    ds_free(&train);
    ds_free(&val);
    minigpt_free(&m);
    return rc;
}
