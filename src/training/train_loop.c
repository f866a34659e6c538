/* train_loop.c — the training loop: sampling, steps, validation, keeping the best, progress. */
#include "train_loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "optimizer.h"
#include "text.h"

volatile sig_atomic_t train_stop_signal = 0;

static void identity(int *idx, int n) {
    for (int i = 0; i < n; i++) idx[i] = i;
}

int train_state_init(train_state *s, const train_job *job, const train_opts *o, ml_error *e) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < job->n_tensors; i++) s->n_floats += job->tensors[i].n;
    const size_t nf = s->n_floats ? s->n_floats : 1;
    if (optim_state_init(&s->opt, o->optimizer, s->n_floats, e)) return -1;
    s->best = calloc(nf, sizeof(float));
    s->prev = calloc(nf, sizeof(float));
    s->order = malloc(sizeof(int) * (size_t)job->train->n);
    s->replay_order = job->replay ? malloc(sizeof(int) * (size_t)job->replay->n) : NULL;
    if (!s->best || !s->prev || !s->order || (job->replay && !s->replay_order)) {
        train_state_free(s);
        return ml_fail(e, "out of memory for the optimizer state");
    }
    /* distinct streams for the two data sets, both from the one seed */
    rng_seed(&s->data_rng, o->seed ^ 0x64617461ull);
    rng_seed(&s->replay_rng, o->seed ^ 0x7265706cull);
    identity(s->order, job->train->n);
    rng_shuffle(&s->data_rng, s->order, job->train->n);
    if (job->replay) {
        identity(s->replay_order, job->replay->n);
        rng_shuffle(&s->replay_rng, s->replay_order, job->replay->n);
    }
    s->best_val = INFINITY;
    s->best_step = -1;
    return 0;
}

void train_state_free(train_state *s) {
    optim_state_free(&s->opt);
    free(s->best);
    free(s->prev);
    free(s->order);
    free(s->replay_order);
    memset(s, 0, sizeof *s);
}

/* Next example of an epoch-shuffled stream; reshuffles when the epoch ends. */
static const ds_example *draw(const dataset *d, int *order, int *pos, rng *r) {
    if (*pos >= d->n) {
        rng_shuffle(r, order, d->n);
        *pos = 0;
    }
    return &d->ex[order[(*pos)++]];
}

static void copy_params(const train_job *job, float *dst, int to_model) {
    size_t off = 0;
    for (int i = 0; i < job->n_tensors; i++) {
        const train_tensor *t = &job->tensors[i];
        if (to_model) memcpy(t->p, dst + off, t->n * sizeof(float));
        else memcpy(dst + off, t->p, t->n * sizeof(float));
        off += t->n;
    }
    if (to_model && job->on_params) job->on_params(job->on_params_ctx);
}

int train_use_best(const train_job *job, const train_state *s) {
    if (!job->val || s->best_step < 0) return 0;
    copy_params(job, s->best, 1);
    return 1;
}

double train_val_loss(const train_job *job) {
    long count = 0;
    const double sum = engine_loss_set(job->g, job->val, &count);
    return count ? sum / (double)count : NAN;
}

static void format_duration(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

typedef struct {
    int tty, quiet, log_every;
    int plain; /* NO_COLOR or TERM=dumb: no escape sequences, just \r and padding */
    double last_draw;
} progress;

static void report(progress *p, const train_job *job, const train_opts *o, int step, double loss,
                   double kl, double val, float lr, double tok_s, double eta, int force) {
    if (p->quiet) return;
    const double t = ml_now_s();
    /* a terminal gets a live line (validations always shown); a log gets a line every
     * log_every steps and at the end, whatever the validation interval */
    if (p->tty && !force && t - p->last_draw < 0.2) return;
    if (!p->tty && step != o->steps && (step % p->log_every) != 0) return;
    p->last_draw = t;
    char eta_s[32], val_s[32] = "", kl_s[32] = "";
    format_duration(eta_s, sizeof eta_s, eta);
    if (isfinite(val)) snprintf(val_s, sizeof val_s, "  val %.4f", val);
    if (isfinite(kl)) snprintf(kl_s, sizeof kl_s, "  kl %.5f", kl);
    fprintf(stderr, "%s%s: step %d/%d  loss %.4f%s%s  lr %.2e  %.1fk tok/s  ETA %s%s",
            p->tty ? (p->plain ? "\r" : "\r\033[K") : "", job->label, step, o->steps, loss, kl_s,
            val_s, (double)lr, tok_s / 1000.0, eta_s, p->tty ? (p->plain ? "    " : "") : "\n");
    fflush(stderr);
}

/* Name of the first tensor whose gradient holds a non-finite value, or NULL. */
static const char *nonfinite_grad(const train_job *job) {
    const float *g = job->g->grad;
    for (int i = 0; i < job->n_tensors; i++) {
        const train_tensor *t = &job->tensors[i];
        for (size_t j = 0; j < t->n; j++)
            if (!isfinite(g[t->grad_off + j])) return t->name;
    }
    return NULL;
}

optim_hparams train_hparams(const train_opts *o) {
    return (optim_hparams){.beta1 = o->beta1,
                           .beta2 = o->beta2,
                           .eps = o->eps,
                           .momentum = o->momentum,
                           .nesterov = o->nesterov};
}

int train_run(const train_job *job, const train_opts *o, train_state *s, train_result *r,
              ml_error *e) {
    memset(r, 0, sizeof *r);
    r->best_val = NAN;
    const optim_kind *kind = optim_kind_at(o->optimizer);
    if (!kind || !s->opt.kind || s->opt.kind_index != o->optimizer)
        return ml_fail(e, "the training state holds a %s optimizer, the options ask for %s",
                       s->opt.kind ? s->opt.kind->name : "missing",
                       kind ? kind->name : "an unknown one");
    for (int i = 0; i < job->n_tensors; i++)
        if (!(job->tensors[i].lr_mult > 0.0f) || !isfinite(job->tensors[i].lr_mult))
            return ml_fail(e, "tensor %s: learning-rate multiplier %g is not a positive number",
                           job->tensors[i].name, (double)job->tensors[i].lr_mult);
    const optim_hparams hp = train_hparams(o);
    if (o->steps < 0 || o->steps > TRAIN_MAX_STEPS) /* 0: nothing to do, the initial model */
        return ml_fail(e, "steps %d is out of range (0..%d)", o->steps, TRAIN_MAX_STEPS);
    if (o->batch > job->g->max_B)
        return ml_fail(e, "batch %d exceeds the engine's %d", o->batch, job->g->max_B);
    const int n_replay = job->replay ? (int)lroundf(o->replay_frac * (float)o->batch) : 0;
    if (n_replay >= o->batch && job->replay)
        return ml_fail(e, "replay fraction %.2f leaves no room for training examples",
                       o->replay_frac);
    const ds_example **batch = malloc(sizeof *batch * (size_t)o->batch);
    if (!batch) return ml_fail(e, "out of memory");
    const char *term = getenv("TERM");
    progress p = {isatty(2), o->quiet,
                  o->log_every > 0 ? o->log_every : (o->steps >= 10 ? o->steps / 10 : 1),
                  getenv("NO_COLOR") != NULL || (term && strcmp(term, "dumb") == 0), 0};
    const double t0 = ml_now_s();
    double val = NAN, loss_sum = 0.0, last_loss = NAN, kl_sum = 0.0, last_kl = NAN;
    int loss_n = 0, rc = 0;
    const int first = s->step;
    while (s->step < o->steps) {
        if (train_stop_signal) {
            r->interrupted = train_stop_signal;
            break;
        }
        for (int b = 0; b < o->batch; b++)
            batch[b] = b < n_replay
                           ? draw(job->replay, s->replay_order, &s->replay_pos, &s->replay_rng)
                           : draw(job->train, s->order, &s->pos, &s->data_rng);
        job->g->ext_step = (uint64_t)s->step + 1; /* dropout masks: one draw per step */
        const double loss = engine_grad(job->g, batch, o->batch, n_replay, NULL);
        kl_sum += job->g->kl_mean;
        r->positions += job->g->positions;
        /* global gradient norm over everything trained */
        double sq = 0.0;
        for (int i = 0; i < job->n_tensors; i++)
            sq += sum_squares(job->g->grad + job->tensors[i].grad_off, job->tensors[i].n);
        if (!isfinite(loss) || !isfinite(sq)) {
            const char *bad = nonfinite_grad(job);
            rc = ml_fail(e, "training diverged at step %d: %s%s%s", s->step + 1,
                         !isfinite(loss) ? "loss is not finite" : "gradient is not finite",
                         bad ? " in " : "", bad ? bad : "");
            break;
        }
        const float scale =
            (o->clip > 0 && sqrt(sq) > o->clip) ? (float)(o->clip / sqrt(sq)) : 1.0f;
        const float lr = lr_at(s->step, o->steps, o->warmup, o->lr, o->min_lr_frac);
        copy_params(job, s->prev, 0);
        size_t off = 0;
        for (int i = 0; i < job->n_tensors; i++) {
            const train_tensor *t = &job->tensors[i];
            float *g = job->g->grad + t->grad_off;
            if (scale != 1.0f)
                for (size_t j = 0; j < t->n; j++) g[j] *= scale;
            optim_step(&s->opt, off, t->p, g, t->n, lr * t->lr_mult,
                       t->decay ? o->weight_decay : 0.0f, &hp, s->step + 1);
            off += t->n;
        }
        if (job->on_params) job->on_params(job->on_params_ctx);
        /* an update that leaves a non-finite parameter is undone: the last good values stay */
        const char *bad = NULL;
        for (int i = 0; i < job->n_tensors && !bad; i++)
            for (size_t j = 0; j < job->tensors[i].n && !bad; j++)
                if (!isfinite(job->tensors[i].p[j])) bad = job->tensors[i].name;
        if (bad) {
            copy_params(job, s->prev, 1);
            rc = ml_fail(e,
                         "training diverged at step %d: the update made %s non-finite "
                         "(learning rate %g too high?)",
                         s->step + 1, bad, (double)lr);
            break;
        }
        s->step++;
        loss_sum += loss;
        loss_n++;
        const int last = s->step == o->steps;
        const int do_eval =
            job->val && ((o->eval_every > 0 && s->step % o->eval_every == 0) || last);
        if (do_eval) {
            val = train_val_loss(job);
            if (val < s->best_val) {
                s->best_val = val;
                s->best_step = s->step;
                copy_params(job, s->best, 0);
            }
        }
        const double elapsed = ml_now_s() - t0;
        const double tok_s = (double)r->positions / (elapsed > 0 ? elapsed : 1e-9);
        const double eta = elapsed / (s->step - first) * (o->steps - s->step);
        last_loss = loss_sum / loss_n;
        last_kl = job->g->kl_lambda > 0.0f ? kl_sum / loss_n : NAN;
        report(&p, job, o, s->step, last_loss, last_kl, val, lr, tok_s, eta, do_eval || last);
        if (do_eval && job->on_eval) job->on_eval(job->on_eval_ctx, s->step, last_loss, val);
        if (do_eval) loss_sum = 0.0, kl_sum = 0.0, loss_n = 0;
    }
    if (p.tty && !p.quiet) fputc('\n', stderr);
    free((void *)batch);
    r->steps = s->step;
    r->loss = last_loss;
    r->best_val = job->val ? s->best_val : NAN;
    r->best_step = s->best_step;
    r->seconds = ml_now_s() - t0;
    return rc;
}
