/* train_state.c — saving and restoring a training run mid-way (for --resume).
 *
 * The file is safetensors: tensors "params" (the current trained values), one per optimizer
 * state slot named by the slot ("adam_m", "adam_v" for AdamW; "momentum" for SGD), "best"
 * (F32), "order", "replay_order" (I32); metadata holds the optimizer's name, the step, the data
 * positions, the RNG states, the best validation loss and step, and the fingerprint of the
 * settings. A file without "optimizer" metadata (written before there was a choice) is AdamW's.
 * Resuming from it continues the exact same computation: the run ends bit-identical to one
 * that was never interrupted.
 */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "train_loop.h"

static void rng_hex(char *buf, size_t n, const rng *r) {
    snprintf(buf, n, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1],
             r->s[2], r->s[3]);
}

static int rng_parse(rng *r, const char *hex) {
    if (!hex || strlen(hex) != 64) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, hex + 16 * i, 16);
        part[16] = '\0';
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

int train_state_save(const char *path, const train_job *job, const train_state *s,
                     const char *fingerprint, ml_error *e) {
    st_writer *w = st_writer_new();
    float *cur = malloc(sizeof(float) * (s->n_floats ? s->n_floats : 1));
    int rc = (!w || !cur) ? ml_fail(e, "out of memory") : 0;
    size_t off = 0;
    for (int i = 0; !rc && i < job->n_tensors; i++) {
        memcpy(cur + off, job->tensors[i].p, job->tensors[i].n * sizeof(float));
        off += job->tensors[i].n;
    }
    char step[32], pos[32], rpos[32], best_step[32], best_val[48], drng[72], rrng[72];
    snprintf(step, sizeof step, "%d", s->step);
    snprintf(pos, sizeof pos, "%d", s->pos);
    snprintf(rpos, sizeof rpos, "%d", s->replay_pos);
    snprintf(best_step, sizeof best_step, "%d", s->best_step);
    snprintf(best_val, sizeof best_val, "%.17g", s->best_val);
    rng_hex(drng, sizeof drng, &s->data_rng);
    rng_hex(rrng, sizeof rrng, &s->replay_rng);
    const char *k[] = {"format",     "fingerprint", "optimizer", "step",     "pos",
                       "replay_pos", "best_step",   "best_val",  "data_rng", "replay_rng"};
    const char *v[] = {"minilora-train-state",
                       fingerprint,
                       s->opt.kind->name,
                       step,
                       pos,
                       rpos,
                       best_step,
                       best_val,
                       drng,
                       rrng};
    for (int i = 0; !rc && i < 10; i++) rc = st_writer_meta(w, k[i], v[i], e);
    int64_t nf[1] = {(int64_t)s->n_floats}, nt[1] = {job->train->n},
            nr[1] = {job->replay ? job->replay->n : 0};
    if (!rc) rc = st_writer_add_f32(w, "params", ST_F32, cur, 1, nf, e);
    for (int i = 0; !rc && i < s->opt.kind->n_slots; i++)
        rc = st_writer_add_f32(w, s->opt.kind->slots[i], ST_F32, optim_slot(&s->opt, i, 0), 1, nf,
                               e);
    if (!rc) rc = st_writer_add_f32(w, "best", ST_F32, s->best, 1, nf, e);
    if (!rc) rc = st_writer_add_i32(w, "order", s->order, 1, nt, e);
    if (!rc && job->replay) rc = st_writer_add_i32(w, "replay_order", s->replay_order, 1, nr, e);
    if (!rc) rc = st_writer_save(w, path, e);
    st_writer_free(w);
    free(cur);
    return rc;
}

/* Names the first key whose value differs between two fingerprints. */
static int fingerprint_mismatch(const char *path, const char *have, const char *want, ml_error *e) {
    cJSON *a = cJSON_Parse(have), *b = cJSON_Parse(want);
    int rc = ml_fail(e, "%s: was saved with other settings", path), named = 0;
    /* the adapter a run started from (--init-from) first: it sets the rank, alpha, ... */
    const cJSON *fa = a ? cJSON_GetObjectItemCaseSensitive(a, "init_from_sha256") : NULL;
    const cJSON *fb = b ? cJSON_GetObjectItemCaseSensitive(b, "init_from_sha256") : NULL;
    char sha[80]; /* from the file: one line, bounded */
    if (cJSON_IsString(fa) && !fb) {
        rc = ml_fail(e,
                     "%s: was saved by a run started with --init-from an adapter of sha256 %s; "
                     "resume with the same --init-from",
                     path, ml_one_line(sha, sizeof sha, fa->valuestring));
        named = 1;
    } else if (!fa && cJSON_IsString(fb)) {
        rc = ml_fail(e,
                     "%s: was saved by a run that started from no adapter; resume without "
                     "--init-from",
                     path);
        named = 1;
    }
    for (const cJSON *it = b ? b->child : NULL; it && !named; it = it->next) {
        const cJSON *o = a ? cJSON_GetObjectItemCaseSensitive(a, it->string) : NULL;
        char *x = o ? cJSON_PrintUnformatted(o) : NULL, *y = cJSON_PrintUnformatted(it);
        const int differ = !x || !y || strcmp(x, y) != 0;
        char shown[128]; /* x comes from the file: one line, bounded */
        if (differ)
            rc = ml_fail(
                e, "%s: was saved with %s = %s, this run has %s (resume with the same settings)",
                path, it->string, x ? ml_one_line(shown, sizeof shown, x) : "(none)", y ? y : "?");
        free(x);
        free(y);
        if ((named = differ)) break;
    }
    /* a setting the file has and this run leaves at its default (settings at their default
     * are left out of the fingerprint, so that older files still resume) */
    for (const cJSON *it = a ? a->child : NULL; it && !named; it = it->next) {
        if (b && cJSON_GetObjectItemCaseSensitive(b, it->string)) continue;
        char *x = cJSON_PrintUnformatted(it);
        char key[64], val[128]; /* both come from the file: one line, bounded */
        rc = ml_fail(e,
                     "%s: was saved with %s = %s, this run has the default (resume with the "
                     "same settings)",
                     path, ml_one_line(key, sizeof key, it->string),
                     x ? ml_one_line(val, sizeof val, x) : "?");
        free(x);
        break;
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return rc;
}

static int meta_int(const st_file *f, const char *key, int lo, int hi, int *out, ml_error *e) {
    const char *v = st_meta(f, key);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    char shown[64]; /* untrusted: one line, bounded */
    if (!v || *end || x < lo || x > hi)
        return ml_fail(e, "%s: metadata %s is %s, expected %d..%d", f->label, key,
                       v ? ml_one_line(shown, sizeof shown, v) : "missing", lo, hi);
    *out = (int)x;
    return 0;
}

/* An order must be a permutation of 0..n-1, or drawing from it would read out of bounds. */
static int check_permutation(const st_file *f, const char *name, const int *order, int n,
                             ml_error *e) {
    char *seen = calloc((size_t)n + 1, 1);
    int rc = seen ? 0 : ml_fail(e, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]])
            rc = ml_fail(e, "%s: tensor '%s' is not a permutation (element %d)", f->label, name, i);
        else seen[order[i]] = 1;
    }
    free(seen);
    return rc;
}

int train_state_load(const char *path, const train_job *job, train_state *s,
                     const char *fingerprint, ml_error *e) {
    st_file f;
    if (st_open(&f, path, e)) return -1;
    int rc = 0;
    const char *fmt = st_meta(&f, "format"), *fp = st_meta(&f, "fingerprint");
    char shown[64]; /* metadata values quoted in messages: one line, bounded */
    if (!fmt || strcmp(fmt, "minilora-train-state") != 0)
        rc = ml_fail(e, "%s: not a minilora training state (metadata format is %s)", path,
                     fmt ? ml_one_line(shown, sizeof shown, fmt) : "missing");
    const char *saved_opt = st_meta(&f, "optimizer");
    if (!saved_opt) saved_opt = "adamw"; /* files from before the choice */
    if (!rc && strcmp(saved_opt, s->opt.kind->name) != 0)
        rc = ml_fail(e,
                     "%s: was saved with optimizer = %s, this run has %s (resume with the "
                     "same settings)",
                     path, ml_one_line(shown, sizeof shown, saved_opt), s->opt.kind->name);
    if (!rc && (!fp || strcmp(fp, fingerprint) != 0))
        rc = fingerprint_mismatch(path, fp ? fp : "{}", fingerprint, e);
    const int nt = job->train->n, nr = job->replay ? job->replay->n : 0;
    int step = 0, pos = 0, rpos = 0, best_step = -1;
    if (!rc) rc = meta_int(&f, "step", 0, 1 << 30, &step, e);
    if (!rc) rc = meta_int(&f, "pos", 0, nt, &pos, e);
    if (!rc) rc = meta_int(&f, "replay_pos", 0, nr, &rpos, e);
    if (!rc) rc = meta_int(&f, "best_step", -1, 1 << 30, &best_step, e);
    const char *bv = st_meta(&f, "best_val");
    char *end = NULL;
    const double best_val = bv ? strtod(bv, &end) : NAN;
    if (!rc && (!bv || *end || isnan(best_val)))
        rc = ml_fail(e, "%s: metadata best_val is %s", path,
                     bv ? ml_one_line(shown, sizeof shown, bv) : "missing");
    rng dr, rr;
    if (!rc &&
        (rng_parse(&dr, st_meta(&f, "data_rng")) || rng_parse(&rr, st_meta(&f, "replay_rng"))))
        rc = ml_fail(e, "%s: metadata data_rng/replay_rng are not 64 hex digits", path);
    float *cur = malloc(sizeof(float) * (s->n_floats ? s->n_floats : 1));
    int64_t nf[1] = {(int64_t)s->n_floats}, snt[1] = {nt}, snr[1] = {nr};
    if (!rc && !cur) rc = ml_fail(e, "out of memory");
    if (!rc) rc = st_read_f32(&f, "params", ST_F32, cur, 1, nf, e);
    for (int i = 0; !rc && i < s->opt.kind->n_slots; i++)
        rc = st_read_f32(&f, s->opt.kind->slots[i], ST_F32, optim_slot(&s->opt, i, 0), 1, nf, e);
    if (!rc) rc = st_read_f32(&f, "best", ST_F32, s->best, 1, nf, e);
    if (!rc) rc = st_read_i32(&f, "order", s->order, 1, snt, e);
    if (!rc) rc = check_permutation(&f, "order", s->order, nt, e);
    if (!rc && job->replay) rc = st_read_i32(&f, "replay_order", s->replay_order, 1, snr, e);
    if (!rc && job->replay) rc = check_permutation(&f, "replay_order", s->replay_order, nr, e);
    if (!rc) {
        size_t off = 0;
        for (int i = 0; i < job->n_tensors; i++) {
            memcpy(job->tensors[i].p, cur + off, job->tensors[i].n * sizeof(float));
            off += job->tensors[i].n;
        }
        if (job->on_params) job->on_params(job->on_params_ctx);
        s->step = step;
        s->pos = pos;
        s->replay_pos = rpos;
        s->best_step = best_step;
        s->best_val = best_val;
        s->data_rng = dr;
        s->replay_rng = rr;
    }
    free(cur);
    st_close(&f);
    return rc;
}
