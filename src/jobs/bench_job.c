/* bench_job.c — the measurements of lora bench: FLOP counts, timed windows of training
 * steps, scoring and greedy decoding, each in a child process, and the sgemm peak. */
#include "bench_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "checkpoint.h"
#include "eval.h"
#include "gemm.h"
#include "grad_engine.h"
#include "lora.h"
#include "optimizer.h"
#include "rng.h"
#include "text.h"

char *openblas_get_config(void);
void openblas_set_num_threads(int);

/* FLOPs per token of a training step (see the comment at the top). a: the adapter being trained
 * (its layers' compute paths), NULL for pretraining; step_tokens: tokens per optimizer step,
 * over which the merged path's W' (formed once a step) is amortized. */
static double train_flops(const minigpt *m, int T, const lora *a, double step_tokens) {
    const double C = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    const double head = 2 * C * V, attn = 2 * C * (T + 1) * L;
    if (!a) { /* the base trained: 2x the forward for the input and the weight gradients */
        double W = 0;
        for (int i = 0; i < m->n_linears; i++) W += (double)m->linears[i].in * m->linears[i].out;
        return 3 * (2 * W + head + attn);
    }
    /* frozen base: the head's input gradient only; attention 2x (no weights) */
    double lin = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const minigpt_linear *S = &m->linears[i];
        const int dinp = !(S->layer == 0 && S->role <= MG_V); /* nothing below block 0's q,k,v */
        int path = LORA_PATH_THIN, r = 0;
        for (int j = 0; j < a->n_layers; j++)
            if (a->layers[j].slot == S) {
                r = a->rank;
                path = a->layers[j].weff ? LORA_PATH_MERGED : LORA_PATH_THIN;
            }
        lin += lora_step_flops(path, step_tokens, r, S->in, S->out, dinp) / step_tokens;
    }
    return lin + 2 * head + 3 * attn;
}

/* FLOPs per token of a forward pass. */
static double forward_flops(const minigpt *m, int T) { return train_flops(m, T, NULL, 1) / 3.0; }

/* The share of `threads` threads' time over `timed` seconds (the best window's) spent in the
 * products of t, and the products' GFLOP/s per thread. */
_Static_assert(BENCH_OPS == TALLY_N_OPS, "bench_job.h's BENCH_OPS is gemm.h's TALLY_N_OPS");

const char *bench_op_name(int i) { return gemm_tally_op_name(i); }

static void gemm_accounting(bench_row *row, gemm_tally t, double timed, int threads) {
    const double avail = timed * threads, sec = t.seconds[0] + t.seconds[1];
    for (int o = 0; o < BENCH_OPS; o++) row->op_share[o] = avail > 0 ? t.op_seconds[o] / avail : 0;
    const double fl = t.flops[0] + t.flops[1];
    row->gemm_share = avail > 0 ? sec / avail : 0;
    row->gemm_gflops = sec > 0 ? fl / sec / 1e9 : 0;
    row->wide_share = avail > 0 ? t.seconds[0] / avail : 0;
    row->wide_gflops = t.seconds[0] > 0 ? t.flops[0] / t.seconds[0] / 1e9 : 0;
    row->thin_share = avail > 0 ? t.seconds[1] / avail : 0;
    row->thin_gflops = t.seconds[1] > 0 ? t.flops[1] / t.seconds[1] / 1e9 : 0;
}

/* Random full-length sequences: T+1 tokens each, loss on every position. The FLOP count does
 * not depend on the tokens, and full-length rows make "batch x 32 tokens" exact. */
static void random_examples(ds_example *ex, int *ids_pool, int n, int T, int V, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int *t = ids_pool + (size_t)i * (T + 1);
        for (int j = 0; j < T + 1; j++) t[j] = 1 + (int)rng_below(&r, (uint32_t)V - 1);
        memset(&ex[i], 0, sizeof ex[i]);
        ex[i].tokens = t;
        ex[i].n_prompt = 0;
        ex[i].n_completion = T + 1;
    }
}

/* Training steps of batch B x T on threads; rank < 0 means the base itself is trained; path:
 * the LoRA compute path (lora_path). Runs in the child: what it allocates is freed on success
 * and left to the child's exit on failure. */
static int bench_train(const char *base, int rank, int path, int threads, int B, int T,
                       double seconds, bench_row *row, ml_error *e) {
    minigpt m;
    tok_vocab v;
    if (checkpoint_load(base, &m, &v, NULL, e)) return -1;
    lora a = {0};
    if (rank >= 0 && lora_init(&a, &m, rank, 16.0f, 0, LORA_ALL_TARGETS, e)) return -1;
    if (rank >= 0) lora_init_weights(&a, 1);
    /* the rows auto would decide for: one micro-batch, as in lora-train */
    const int micro = B < 16 ? B : 16;
    if (rank >= 0 && lora_set_path(&a, path, (double)micro * T, e)) return -1;
    engine g;
    if (engine_init(&g, &m, threads, B, micro, rank < 0, rank >= 0 ? a.n_params : 0, e)) return -1;
    ds_example *ex = malloc(sizeof *ex * (size_t)B);
    int *ids_pool = malloc(sizeof(int) * (size_t)B * (T + 1));
    const ds_example **batch = malloc(sizeof *batch * (size_t)B);
    const size_t np = rank < 0 ? m.n_params : a.n_params;
    optim_state opt; /* the default optimizer, as lora-train runs it */
    const optim_hparams hp = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (optim_state_init(&opt, OPTIM_ADAMW, np, e)) return -1;
    if (!ex || !ids_pool || !batch) return ml_fail(e, "out of memory");
    random_examples(ex, ids_pool, B, T, m.cfg.vocab_size, 1);
    for (int i = 0; i < B; i++) batch[i] = &ex[i];
    float *params = rank < 0 ? m.params : a.params;
    int steps = 0;
    for (; steps < 3; steps++) { /* warm-up: the first steps touch fresh memory */
        engine_grad(&g, batch, B, 0, NULL);
        optim_step(&opt, 0, params, g.grad, np, 1e-4f, 0.0f, &hp, steps + 1);
        if (rank >= 0) lora_refresh(&a); /* as lora-train: W' (merged path) follows A and B */
    }
    /* the best of several windows: on a shared machine, time stolen by others only lowers a
     * window's rate, so the best one is the closest to what the code itself achieves */
    double best = 0;
    for (int w = 0; w < BENCH_WINDOWS; w++) {
        int done = 0;
        gemm_tally_start();
        const double t0 = ml_now_s();
        do {
            engine_grad(&g, batch, B, 0, NULL);
            optim_step(&opt, 0, params, g.grad, np, 1e-4f, 0.0f, &hp, ++steps);
            if (rank >= 0) lora_refresh(&a);
            done++;
        } while (ml_now_s() - t0 < seconds / BENCH_WINDOWS);
        const double dt = ml_now_s() - t0, rate = (double)done * B * T / dt;
        const gemm_tally t = gemm_tally_stop();
        if (rate > best) best = rate, gemm_accounting(row, t, dt, g.nthreads);
    }
    row->value = best;
    row->unit = "tokens/s";
    row->flops_tok = train_flops(&m, T, rank < 0 ? NULL : &a, (double)B * T);
    row->gflops = row->value * row->flops_tok / 1e9;
    free(ex), free(ids_pool), free((void *)batch);
    optim_state_free(&opt);
    engine_free(&g);
    lora_free(&a);
    minigpt_free(&m);
    return 0;
}

/* Scoring (forward only) of full-length sequences: sequences/s. Runs in the child, like
 * bench_train. */
static int bench_eval(const char *base, int threads, int T, double seconds, bench_row *row,
                      ml_error *e) {
    minigpt m;
    tok_vocab v;
    if (checkpoint_load(base, &m, &v, NULL, e)) return -1;
    const int n = 256;
    engine g;
    if (engine_init(&g, &m, threads, n, 32, 0, 0, e)) return -1;
    ds_example *ex = malloc(sizeof *ex * n);
    int *ids_pool = malloc(sizeof(int) * (size_t)n * (T + 1));
    const ds_example **set = malloc(sizeof *set * n);
    if (!ex || !ids_pool || !set) return ml_fail(e, "out of memory");
    random_examples(ex, ids_pool, n, T, m.cfg.vocab_size, 2);
    for (int i = 0; i < n; i++) set[i] = &ex[i];
    engine_loss(&g, set, n, NULL); /* warm-up */
    double best = 0;
    for (int w = 0; w < BENCH_WINDOWS; w++) {
        int rounds = 0;
        gemm_tally_start();
        const double t0 = ml_now_s();
        do {
            engine_loss(&g, set, n, NULL);
            rounds++;
        } while (ml_now_s() - t0 < seconds / BENCH_WINDOWS);
        const double dt = ml_now_s() - t0, rate = (double)rounds * n / dt;
        const gemm_tally t = gemm_tally_stop();
        if (rate > best) best = rate, gemm_accounting(row, t, dt, g.nthreads);
    }
    row->value = best;
    row->unit = "sequences/s";
    row->flops_tok = forward_flops(&m, T);
    row->gflops = row->value * T * row->flops_tok / 1e9;
    free(ex), free(ids_pool), free((void *)set);
    engine_free(&g);
    minigpt_free(&m);
    return 0;
}

/* Greedy decoding of one prompt from the real task: milliseconds per completion. Runs in the
 * child, like bench_train. */
static int bench_generate(const char *base, double seconds, bench_row *row, ml_error *e) {
    minigpt m;
    tok_vocab v;
    if (checkpoint_load(base, &m, &v, NULL, e)) return -1;
    minigpt_kv kv;
    if (minigpt_kv_init(&kv, &m, 1, e)) return -1;
    const int ctx = m.cfg.context; /* buffers from the loaded config: any context length */
    int *ids = malloc(sizeof(int) * (size_t)ctx), *out = malloc(sizeof(int) * (size_t)ctx);
    int n, produced = 0, runs = 0;
    if (!ids || !out) {
        free(ids), free(out);
        return ml_fail(e, "out of memory");
    }
    /* the prompt, cut to leave room for half the context when the context is short */
    const char *prompt = "walk: yesterday they ";
    const int keep = (int)strlen(prompt) < (ctx + 1) / 2 ? (int)strlen(prompt) : (ctx + 1) / 2;
    char text[32];
    snprintf(text, sizeof text, "%.*s", keep, prompt);
    if (tok_encode(&v, text, ids, ctx, &n, e)) {
        free(ids), free(out);
        return -1;
    }
    double best = INFINITY;
    for (int w = 0; w < BENCH_WINDOWS; w++) {
        int k = 0;
        const double t0 = ml_now_s();
        do {
            produced += eval_greedy(&m, &kv, ids, n, out, 32) + 1; /* + the end token */
            runs++, k++;
        } while (ml_now_s() - t0 < seconds / BENCH_WINDOWS);
        const double ms = 1e3 * (ml_now_s() - t0) / k;
        if (ms < best) best = ms;
    }
    row->value = best;
    row->unit = "ms/completion";
    row->flops_tok = 0;
    row->gflops = 0;
    snprintf(row->name + strlen(row->name), sizeof row->name - strlen(row->name), " (%.1f tokens)",
             (double)produced / runs);
    free(ids), free(out);
    minigpt_kv_free(&kv);
    minigpt_free(&m);
    return 0;
}

/* A large square sgemm on `threads` BLAS threads: the practical peak in GFLOP/s into *gflops. */
static int sgemm_peak(int threads, double seconds, double *gflops, ml_error *e) {
    const int n = 2048;
    const size_t nn = (size_t)n * n;
    float *a = malloc(sizeof(float) * nn), *b = malloc(sizeof(float) * nn);
    float *c = malloc(sizeof(float) * nn);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return ml_fail(e, "out of memory for the sgemm peak");
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 97);
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int w = 0; w < BENCH_WINDOWS; w++) {
        int reps = 0;
        const double t0 = ml_now_s();
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            reps++;
        } while (ml_now_s() - t0 < seconds / BENCH_WINDOWS);
        const double gf = 2.0 * n * n * (double)n * reps / (ml_now_s() - t0) / 1e9;
        if (gf > best) best = gf;
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    *gflops = best;
    return 0;
}

typedef enum { K_TRAIN_FULL, K_TRAIN_LORA, K_EVAL, K_GENERATE } kind;

/* Runs one configuration in a child; its result and peak RSS come back through a pipe. row
 * arrives with its name set. */
static int run_child(kind k, int rank, int path, const bench_spec *s, bench_row *row, ml_error *e) {
    const char *base = s->base;
    const int threads = s->threads, B = s->batch, T = s->T;
    const double seconds = s->seconds;
    int fd[2];
    if (pipe(fd)) return ml_fail(e, "pipe failed");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return ml_fail(e, "fork failed");
    }
    if (pid == 0) {
        close(fd[0]);
        ml_error ce = {{0}};
        int rc = k == K_TRAIN_FULL ? bench_train(base, -1, 0, threads, B, T, seconds, row, &ce)
                 : k == K_TRAIN_LORA
                     ? bench_train(base, rank, path, threads, B, T, seconds, row, &ce)
                 : k == K_EVAL ? bench_eval(base, threads, T, seconds, row, &ce)
                               : bench_generate(base, seconds, row, &ce);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        row->rss_kib = ru.ru_maxrss;
        if (rc) snprintf(row->name, sizeof row->name, "!%.46s", ce.msg);
        if (write(fd[1], row, sizeof *row) != (ssize_t)sizeof *row) _exit(3);
        _exit(rc ? 1 : 0);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], row, sizeof *row);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof *row || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ml_fail(e, "benchmark %s failed%s%s", row->name, row->name[0] == '!' ? ": " : "",
                       row->name[0] == '!' ? row->name + 1 : "");
    /* the child's string pointers mean nothing here */
    row->unit = k == K_EVAL ? "sequences/s" : k == K_GENERATE ? "ms/completion" : "tokens/s";
    return 0;
}

int bench_job_run(const bench_spec *spec, bench_report *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    r->blas_config = openblas_get_config();
    r->thin_dim = GEMM_THIN;
    minigpt m;
    tok_vocab v;
    if (checkpoint_load(spec->base, &m, &v, NULL, e)) return -1;
    bench_spec fit = *spec; /* sequences of T + 1 tokens fill at most the context */
    if (fit.T > m.cfg.context) fit.T = m.cfg.context;
    const bench_spec *s = &fit;
    r->T = s->T;
    r->forward_flops = forward_flops(&m, s->T);
    minigpt_free(&m);
    double before;
    if (sgemm_peak(1, s->seconds, &r->peak1, e) || sgemm_peak(s->threads, s->seconds, &before, e))
        return -1;
    r->peak = before;
    static const struct {
        kind k;
        int rank, path;
        const char *name;
    } plan[] = {{K_TRAIN_FULL, -1, 0, "train full model"},
                {K_TRAIN_LORA, 0, LORA_PATH_THIN, "train LoRA r=0"},
                {K_TRAIN_LORA, 1, LORA_PATH_THIN, "train LoRA r=1"},
                {K_TRAIN_LORA, 1, LORA_PATH_MERGED, "train LoRA r=1 merged"},
                {K_TRAIN_LORA, 8, LORA_PATH_THIN, "train LoRA r=8"},
                {K_TRAIN_LORA, 8, LORA_PATH_MERGED, "train LoRA r=8 merged"},
                {K_TRAIN_LORA, 32, LORA_PATH_THIN, "train LoRA r=32"},
                {K_TRAIN_LORA, 32, LORA_PATH_MERGED, "train LoRA r=32 merged"},
                {K_EVAL, 0, 0, "score sequences"},
                {K_GENERATE, 0, 0, "greedy generation"}};
    for (size_t i = 0; i < sizeof plan / sizeof plan[0] && r->n_rows < BENCH_MAX_ROWS; i++) {
        if (s->only && !strstr(plan[i].name, s->only)) continue;
        bench_row *row = &r->rows[r->n_rows];
        snprintf(row->name, sizeof row->name, "%s", plan[i].name);
        if (run_child(plan[i].k, plan[i].rank, plan[i].path, s, row, e)) return -1;
        /* the peak next to each row: the machine's speed drifts when it is shared */
        double after;
        if (sgemm_peak(s->threads, s->seconds / 2, &after, e)) return -1;
        row->peak = 0.5 * (before + after);
        if (after > r->peak) r->peak = after;
        before = after;
        r->n_rows++;
    }
    return 0;
}
