/* bench_job.h — lora bench without the command line: training, scoring and generation
 * throughput against the machine's practical peak (a large sgemm measured in the same run, on
 * the same threads).
 *
 * Model FLOPs per token, counted from the shapes (multiply-add = 2 FLOPs; elementwise work such
 * as LayerNorm, GELU and softmax is not counted: it is overhead, not model math):
 *   Linear layers   W = Σ in·out over the 12 Linears (98,304)       forward 2W
 *   tied head       2·C·V                                            forward
 *   attention       per layer, position t attends to t+1 positions: q·k and a·v cost
 *                   2·C·(t+1) each; averaged over t < T: 2·C·(T+1) per layer, L layers
 *   backward        base trained (pretraining): 2× the forward of Linears, head and attention
 *                   (input and weight gradients); base frozen (LoRA): 1× for the head (input
 *                   gradient only), 2× for attention (it has no weights)
 *   LoRA Linears    per Linear, lora_step_flops (lora.h: the one place of the formulas) of its
 *                   compute path over the tokens of a step, divided by them: the frozen x·Wᵀ
 *                   and its input gradient (none for block 0's q,k,v: nothing below needs it)
 *                   plus rank r's products — thin: 2·r·(in+out) forward, 4·r·(in+out) backward
 *                   (2·r·(2·out+in) without the input gradient); merged: none forward,
 *                   4·r·(in+out) backward (xa = x·Aᵀ again), and W' = W + s·B·A, 2·r·in·out once
 *                   a step, amortized over the step's B·T tokens
 *
 * The plan: train the full model, train LoRA at ranks 0, 1, 8 and 32 on the thin path and at
 * ranks 1, 8 and 32 on the merged one ("merged" rows), score full-length sequences, decode
 * greedily. Each row runs in a child process (fork) so its peak resident
 * memory is its own; each figure is the best of BENCH_WINDOWS windows of seconds/BENCH_WINDOWS,
 * and each row's peak is the mean of the sgemm measured just before and just after it.
 */
#ifndef BENCH_JOB_H
#define BENCH_JOB_H

#include "ml_error.h"

#define BENCH_WINDOWS 4
#define BENCH_MAX_ROWS 12
#define BENCH_OPS 6 /* kinds of work outside the products that the split names */

/* The name of kind i < BENCH_OPS ("attention", "GELU", ...); NULL out of range. */
const char *bench_op_name(int i);

typedef struct {
    const char *base; /* base checkpoint */
    int threads;      /* already settled (runtime_threads) */
    int batch;        /* sequences per training step */
    int T;            /* tokens per sequence (full-length random sequences; cut to the
                                * model's context) */
    double seconds;   /* time per measurement */
    const char *only; /* run only the rows whose name contains this; NULL: all */
} bench_spec;

typedef struct {
    char name[48]; /* "train LoRA r=8", "train LoRA r=8 merged", "greedy generation (5.0 tokens)" */
    double value;  /* tokens/s, sequences/s or ms */
    const char *unit; /* static string: "tokens/s", "sequences/s", "ms/completion" */
    double flops_tok; /* model FLOPs per token (0: not a FLOP measurement) */
    double gflops;    /* achieved */
    double peak;      /* sgemm GFLOP/s measured right before and after this row (mean) */
    long rss_kib;     /* peak resident memory of the child */
    /* training and scoring rows: the share of the threads' time spent inside gemm_sgemm over
     * the timed windows, and the GFLOP/s of those products per thread, for all products, the
     * wide ones and the thin (r-wide) ones (gemm.h); 0: not measured or none */
    double gemm_share, gemm_gflops;
    double wide_share, wide_gflops;
    double thin_share, thin_gflops;
    /* the share of the threads' time in each kind of work outside the products (tally_op in
     * gemm.h: attention, GELU, LayerNorm, loss, RoPE/residual/embedding, optimizer) */
    double op_share[BENCH_OPS];
} bench_row;

/* Everything inline: no memory to free. */
typedef struct {
    const char *blas_config; /* OpenBLAS's configuration line; static, owned by OpenBLAS */
    int T;                   /* tokens per sequence used: the spec's, at most the context */
    double forward_flops;    /* model forward FLOPs per token at T */
    double peak;             /* best sgemm GFLOP/s on the spec's threads over the run */
    double peak1;            /* sgemm GFLOP/s on one thread */
    int thin_dim;            /* a product is thin when a dimension is at most this (gemm.h) */
    int n_rows;
    bench_row rows[BENCH_MAX_ROWS];
} bench_report;

/* Runs the plan into r (zeroed first); nothing is printed. Fails when the base does not load
 * or a row's child fails (the message names the row and the child's error). */
int bench_job_run(const bench_spec *s, bench_report *r, ml_error *e);

#endif
