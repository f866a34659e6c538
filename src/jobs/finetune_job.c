/* finetune_job.c — lora-train's work: load, resume, train, write with provenance. */
#include "finetune_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "file_checks.h"
#include "lora_init.h"
#include "peft.h"
#include "provenance.h"
#include "sha256.h"

/* Everything the job loads; freed by inputs_free. */
typedef struct {
    minigpt m;
    tok_vocab vocab;
    dataset train, val, replay;
    char base_sha[65], data_sha[65], val_sha[140], replay_sha[65];
} inputs;

static void inputs_free(inputs *in) {
    ds_free(&in->train);
    ds_free(&in->val);
    ds_free(&in->replay);
    minigpt_free(&in->m);
}

/* Loads the base and the data; validation and the "must not change" set become one
 * validation set whose digest is "<val>+<extra>". */
static int inputs_load(inputs *in, const finetune_spec *s, ml_error *e) {
    const char *val = s->val && s->val[0] ? s->val : NULL;
    if (checkpoint_load(s->base, &in->m, &in->vocab, in->base_sha, e)) return -1;
    const int T = in->m.cfg.context;
    dataset extra = {0};
    char extra_sha[65] = "";
    if (ds_load(&in->train, s->data, &in->vocab, T, e) ||
        (val && ds_load(&in->val, val, &in->vocab, T, e)) ||
        (s->replay[0] && ds_load(&in->replay, s->replay, &in->vocab, T, e)) ||
        sha256_file_hex(s->data, in->data_sha, e) ||
        (in->val.n && sha256_file_hex(val, in->val_sha, e)) ||
        (in->replay.n && sha256_file_hex(s->replay, in->replay_sha, e)) ||
        (s->val_extra[0] && (ds_load(&extra, s->val_extra, &in->vocab, T, e) ||
                             sha256_file_hex(s->val_extra, extra_sha, e)))) {
        ds_free(&extra);
        return -1;
    }
    if (extra.n) { /* one validation set: the new behaviour and what must not change */
        dataset parts[2] = {in->val, extra}, joined;
        const int rc = ds_concat(&joined, in->val.n ? parts : parts + 1, in->val.n ? 2 : 1, e);
        ds_free(&extra);
        if (rc) return -1;
        ds_free(&in->val);
        in->val = joined;
        const size_t used = strlen(in->val_sha);
        snprintf(in->val_sha + used, sizeof in->val_sha - used, "%s%s", used ? "+" : "", extra_sha);
    }
    return 0;
}

int finetune_spec_check(const finetune_spec *s, ml_error *e) {
    const train_opts *o = &s->opts.train;
    if (s->replay[0] && !(o->replay_frac > 0))
        return ml_fail(e, "--replay needs a --replay-frac above 0");
    if (o->preserve_kl > 0 && !s->replay[0])
        return ml_fail(e,
                       "--preserve-kl needs --replay (the term applies to the replay sequences)");
    if (s->opts.full && s->opts.dora)
        return ml_fail(e, "--dora applies to an adapter; not with --full");
    if (s->opts.full && s->opts.dropout != 0.0f)
        return ml_fail(e, "--dropout applies to an adapter's input path; not with --full");
    if (!(s->opts.dropout >= 0.0f && s->opts.dropout < 1.0f))
        return ml_fail(e, "--dropout %g is out of range (0 <= P < 1)", (double)s->opts.dropout);
    if (s->opts.dora && !s->opts.full && s->opts.rank < 1)
        return ml_fail(e, "--dora needs --rank of at least 1 (rank 0 has no update to normalize)");
    if (!lora_path_name(s->opts.lora_path))
        return ml_fail(e, "unknown --lora-path %d", s->opts.lora_path);
    if (s->opts.lora_path == LORA_PATH_MERGED && s->opts.full)
        return ml_fail(e, "--lora-path merged merges an adapter's B·A into W'; not with --full");
    if (s->opts.lora_path == LORA_PATH_MERGED && s->opts.dora)
        return ml_fail(e, "--lora-path merged cannot fold DoRA's per-row normalization into W'; "
                          "use thin or auto with --dora");
    if (s->opts.lora_path == LORA_PATH_MERGED && s->opts.dropout > 0.0f)
        return ml_fail(e,
                       "--lora-path merged cannot drop out the adapter's input alone "
                       "(--dropout %g); use thin or auto",
                       (double)s->opts.dropout);
    if (s->opts.full && s->opts.loraplus_ratio != 1.0f)
        return ml_fail(
            e, "--loraplus-ratio (--lr-ratio) applies to LoRA's B matrices; not with --full");
    if (!lora_init_name(s->opts.init)) return ml_fail(e, "unknown --init %d", s->opts.init);
    if (s->opts.full && s->opts.init != LORA_INIT_KAIMING)
        return ml_fail(e, "--init %s sets LoRA's A and B; not with --full",
                       lora_init_name(s->opts.init));
    if (!s->opts.full && lora_init_check_rank(s->opts.init, s->opts.rank, e)) return -1;
    if (s->init_from && s->opts.full)
        return ml_fail(e, "--init-from continues an adapter; not with --full");
    if (s->init_from && s->opts.init != LORA_INIT_KAIMING)
        return ml_fail(e, "--init-from starts from the adapter's A and B; not with --init %s",
                       lora_init_name(s->opts.init));
    if (s->opts.full == FINETUNE_FULL_ALL &&
        (s->opts.targets != LORA_ALL_TARGETS ||
         (s->opts.layers && s->opts.layers != LORA_ALL_LAYERS)))
        return ml_fail(e, "--full-all trains every parameter; --targets and --layers do not apply");
    return 0;
}

#define MAX_IO 24

/* The output rule over every path the job reads or writes (the state is checked now: an
 * interrupt must find it writable, not fail then). */
static int finetune_io_check(const finetune_spec *s, ml_error *e) {
    io_path io[MAX_IO] = {
        {"--base", s->base, 0, NULL},     {"DATA", s->data, 0, NULL},
        {"--val", s->val, 0, NULL},       {"--val-extra", s->val_extra, 0, NULL},
        {"--replay", s->replay, 0, NULL}, {"--resume", s->resume, 0, NULL},
        {"--out", s->out, 1, NULL},       {"--state", s->state, 1, "--resume"},
    };
    int n = 8;
    char init_cfg[4096], init_wts[4096]; /* a PEFT directory's two files are inputs too */
    peft_dir_files(s->init_from ? s->init_from : "", init_cfg, init_wts, sizeof init_cfg);
    io[n++] = (io_path){"--init-from", s->init_from, 0, NULL};
    io[n++] = (io_path){"--init-from", init_cfg, 0, NULL};
    io[n++] = (io_path){"--init-from", init_wts, 0, NULL};
    if (s->n_read_also > MAX_IO - n) return ml_fail(e, "too many input files to check");
    for (int i = 0; i < s->n_read_also; i++) io[n++] = s->read_also[i];
    return io_check(io, n, e);
}

/* One --init-from setting against the user's: "" when they agree or the user left it out,
 * else the refusal. */
static int init_conflict(ml_error *e, const finetune_spec *s, unsigned bit, int differs,
                         const char *flag, const char *mine, const char *theirs) {
    if (!(s->init_given & bit) || !differs) return 0;
    return ml_fail(e,
                   "%s%s%s conflicts with the --init-from adapter %s (%s); leave %s out to "
                   "continue with the adapter's",
                   flag, mine[0] ? " " : "", mine, s->init_from, theirs, flag);
}

/* Loads the --init-from adapter onto in->m (checked against the base like lora_load), takes
 * over its settings into fo (refusing a conflicting given one), copies its parameters into
 * *params (malloc'ed, caller frees) and uninstalls it; sha gets adapter_sha256. */
static int init_from_load(const finetune_spec *s, inputs *in, finetune_opts *fo, float **params,
                          char sha[65], ml_error *e) {
    lora a;
    *params = NULL;
    if (lora_load(&a, &in->m, s->init_from, in->base_sha, e)) return ml_wrap(e, "--init-from");
    const unsigned all = (1u << in->m.cfg.n_layers) - 1;
    const unsigned mine_layers = (fo->layers ? fo->layers : LORA_ALL_LAYERS) & all;
    const unsigned their_layers = a.layer_mask & all;
    char m1[64], t1[64];
    char *mt = lora_targets_json(fo->targets), *tt = lora_targets_json(a.targets);
    char *ml = lora_layers_json(&in->m, mine_layers), *tl = lora_layers_json(&in->m, their_layers);
    int rc = 0;
    if (!mt || !tt || !ml || !tl) rc = ml_fail(e, "out of memory");
    if (!rc && a.rank < 1)
        rc = ml_fail(e, "--init-from %s has rank 0: nothing to continue", s->init_from);
    snprintf(m1, sizeof m1, "%d", fo->rank);
    snprintf(t1, sizeof t1, "r %d", a.rank);
    if (!rc) rc = init_conflict(e, s, FINETUNE_GIVEN_RANK, fo->rank != a.rank, "--rank", m1, t1);
    snprintf(m1, sizeof m1, "%g", (double)fo->alpha);
    snprintf(t1, sizeof t1, "lora_alpha %g", (double)a.alpha);
    if (!rc)
        rc = init_conflict(e, s, FINETUNE_GIVEN_ALPHA, fo->alpha != a.alpha, "--alpha", m1, t1);
    snprintf(t1, sizeof t1, "use_rslora %s", a.rslora ? "true" : "false");
    if (!rc)
        rc = init_conflict(e, s, FINETUNE_GIVEN_RSLORA, !fo->rslora != !a.rslora,
                           fo->rslora ? "--rslora" : "--no-rslora", "", t1);
    if (!rc)
        rc = init_conflict(e, s, FINETUNE_GIVEN_TARGETS, fo->targets != a.targets, "--targets", mt,
                           tt);
    if (!rc)
        rc = init_conflict(e, s, FINETUNE_GIVEN_LAYERS, mine_layers != their_layers, "--layers", ml,
                           tl);
    snprintf(t1, sizeof t1, "use_dora %s", a.dora ? "true" : "false");
    if (!rc)
        rc = init_conflict(e, s, FINETUNE_GIVEN_DORA, !fo->dora != !a.dora,
                           fo->dora ? "--dora" : "--no-dora", "", t1);
    free(mt);
    free(tt);
    free(ml);
    free(tl);
    if (!rc && !(*params = malloc(a.n_params * sizeof(float)))) rc = ml_fail(e, "out of memory");
    if (!rc) {
        memcpy(*params, a.params, a.n_params * sizeof(float));
        fo->rank = a.rank;
        fo->alpha = a.alpha;
        fo->rslora = a.rslora;
        fo->targets = a.targets;
        fo->layers = their_layers == all ? LORA_ALL_LAYERS : their_layers;
        fo->dora = a.dora;
        fo->init_params = *params;
        fo->n_init_params = a.n_params;
    }
    lora_free(&a); /* uninstalls it: finetune_init builds the trained one */
    if (!rc) rc = adapter_sha256(s->init_from, sha, e);
    if (rc) {
        free(*params);
        *params = NULL;
        fo->init_params = NULL;
    }
    return rc;
}

/* The adapter's (or full checkpoint's) provenance. */
static int finetune_provenance(provenance *p, const finetune_spec *s, const inputs *in,
                               const finetune *f, const char *init_sha, ml_error *e) {
    const train_opts *o = &s->opts.train;
    char optim_s[200];
    const optim_hparams ohp = train_hparams(o);
    optim_json(optim_s, sizeof optim_s, o->optimizer, &ohp);
    if (prov_add(p, e, "seed", "%llu", (unsigned long long)o->seed) ||
        prov_add(p, e, "steps", "%d", f->result.steps) ||
        prov_add(p, e, "best_step", "%d", f->state.best_step) ||
        prov_add(p, e, "data_sha256", "%s", in->data_sha) ||
        prov_add(p, e, "train_config",
                 "{\"lr\":%g,\"batch\":%d,\"warmup\":%d,\"weight_decay\":%g,\"replay_frac\":%g,"
                 "\"preserve_kl\":%g,%s,\"loraplus_ratio\":%g}",
                 (double)o->lr, o->batch, o->warmup, (double)o->weight_decay,
                 s->replay[0] ? (double)o->replay_frac : 0.0, (double)o->preserve_kl, optim_s,
                 s->opts.full ? 1.0 : (double)s->opts.loraplus_ratio))
        return -1;
    const int merged = lora_merged_layers(&f->adapter); /* thin: not written, as before it */
    if (!s->opts.full && s->opts.lora_path != LORA_PATH_THIN &&
        prov_add(p, e, "lora_path", "%s (%d of %d layers merged)",
                 lora_path_name(s->opts.lora_path), merged, f->adapter.n_layers))
        return -1;
    if (s->init_from && (prov_add(p, e, "init_from", "%s", s->init_from) ||
                         prov_add(p, e, "init_from_sha256", "%s", init_sha)))
        return -1;
    if (s->opts.full && (prov_add(p, e, "base_sha256", "%s", in->base_sha) ||
                         prov_add(p, e, "generator",
                                  s->opts.full == FINETUNE_FULL_ALL ? "minilora train --full-all"
                                                                    : "minilora train --full")))
        return -1;
    return 0;
}

int finetune_job_run(const finetune_spec *s, void (*on_ready)(void *ctx, const finetune_report *r),
                     void *ctx, finetune_report *report, ml_error *e) {
    memset(report, 0, sizeof *report);
    report->best_step = report->kept_step = report->resumed_step = -1;
    finetune_spec spec = *s; /* the steps may follow from epochs */
    finetune_opts *fo = &spec.opts;
    train_opts *o = &fo->train;
    inputs in = {0};
    finetune f = {0};
    provenance prov = {0};
    char *fingerprint = NULL;
    float *init_params = NULL;
    char init_sha[65] = "";
    int rc = -1, have_f = 0;
    if (finetune_spec_check(s, e) || finetune_io_check(s, e) || inputs_load(&in, s, e)) goto done;
    if (s->init_from && init_from_load(s, &in, fo, &init_params, init_sha, e)) goto done;
    if (s->init_from) fo->init_from_sha = init_sha; /* a resume must start from the same file */
    if (o->micro > o->batch) o->micro = o->batch;
    if (s->epochs > 0) {
        const int fresh = o->batch - (s->replay[0] ? (int)lroundf(o->replay_frac * o->batch) : 0);
        /* in double, checked before it becomes an int: 1e6 epochs of 10k examples overflow */
        const double steps = ceil((double)s->epochs * in.train.n / (fresh > 0 ? fresh : 1));
        if (!(steps <= TRAIN_MAX_STEPS)) {
            ml_fail(e,
                    "--epochs %g over %d examples at %d new sequences a step is %.0f steps, "
                    "more than the %d a run may take (--steps)",
                    (double)s->epochs, in.train.n, fresh > 0 ? fresh : 1, steps, TRAIN_MAX_STEPS);
            goto done;
        }
        o->steps = steps < 1 ? 1 : (int)steps;
    }
    if (finetune_init(&f, &in.m, &in.train, s->replay[0] ? &in.replay : NULL,
                      in.val.n ? &in.val : NULL, fo, s->label, e))
        goto done;
    have_f = 1;
    fingerprint = finetune_fingerprint(fo, in.base_sha, in.data_sha, in.val.n ? in.val_sha : NULL,
                                       in.replay.n ? in.replay_sha : NULL);
    if (!fingerprint) {
        ml_fail(e, "out of memory");
        goto done;
    }
    if (s->resume) {
        if (train_state_load(s->resume, &f.job, &f.state, fingerprint, e)) goto done;
        report->resumed_step = f.state.step;
    }
    report->opts = *fo;
    report->opts.init_params = NULL; /* freed at the end */
    for (int i = 0; i < f.n_tensors; i++) report->trainable += f.tensors[i].n;
    report->params_per_rank = lora_count_layers(&in.m, 1, fo->targets, f.adapter.layer_mask);
    report->base_params = in.m.n_params;
    report->n_examples = in.train.n;
    report->steps = o->steps;
    report->threads = f.g.nthreads;
    report->merged_layers = lora_merged_layers(&f.adapter);
    report->adapter_layers = fo->full ? 0 : f.adapter.n_layers;
    if (!fo->full)
        lora_rank_warnings(&in.m, fo->rank, fo->targets, report->warnings, sizeof report->warnings);
    if (on_ready) on_ready(ctx, report);

    const int failed = finetune_run(&f, e);
    report->result = f.result;
    report->best_step = f.state.best_step;
    report->best_val = f.state.best_val;
    if (failed && f.state.best_step < 0) goto done; /* nothing good to keep */
    char diverged[sizeof e->msg];
    if (failed) snprintf(diverged, sizeof diverged, "%s", e->msg);
    if (f.result.interrupted) {
        /* the state holds the current parameters; the file written below the best ones */
        if (train_state_save(s->state, &f.job, &f.state, fingerprint, e)) goto done;
        finetune_use_best(&f);
    }
    if (finetune_provenance(&prov, s, &in, &f, init_sha, e)) goto done;
    if (fo->full ? checkpoint_save(s->out, &in.m, &in.vocab, prov.n, prov.keys, prov.vals, e)
                 : lora_save(&f.adapter, s->out, in.base_sha, prov.n, prov.keys, prov.vals, e))
        goto done;
    struct stat st;
    report->bytes = stat(s->out, &st) == 0 ? (long)st.st_size : -1;
    /* F16 A and B (a pissa/olora conversion: rank 2r); DoRA's magnitudes in F32 */
    const size_t n_ab = lora_count_layers(&in.m, f.adapter.rank, fo->targets, f.adapter.layer_mask);
    report->payload_bytes = fo->full          ? 0
                            : f.adapter.init0 ? 2 * lora_saved_params(&f.adapter)
                                              : 2 * n_ab + 4 * (f.adapter.n_params - n_ab);
    if (failed) {
        report->kept_step = f.state.best_step;
        ml_fail(e, "%s; kept the adapter of step %d in %s", diverged, f.state.best_step, s->out);
        goto done;
    }
    rc = 0;
done:
    prov_free(&prov);
    free(fingerprint);
    free(init_params);
    if (have_f) finetune_free(&f);
    inputs_free(&in);
    return rc;
}
