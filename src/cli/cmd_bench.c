/* cmd_bench.c — `lora bench`: training, evaluation and generation throughput against the
 * machine's practical peak. Options in, bench_job_run (src/jobs/bench_job.c: the FLOP counts,
 * the measurements and the sgemm peak), a table or JSON out. */
#include <stdio.h>

#include "bench_job.h"
#include "blas_runtime.h"
#include "commands.h"
#include "common.h"
#include "opts.h"

/* Where a row's time goes: inside the matrix products (gemm_sgemm), wide and thin (LoRA's
 * r-wide ones), or elsewhere (attention, GELU, LayerNorm, RoPE, the loss, the optimizer, the
 * gradient reduction), and the fraction of the peak the row would reach if everything else
 * took no time: its upper bound at the products' own speed. */
static void print_time_split(const bench_row *rows, int n, double peak1, int thin_dim) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= rows[i].gemm_share > 0;
    if (!any) return;
    printf(
        "\nwhere the time goes: each row's share of the threads' time inside the matrix products\n"
        "(wide: every dimension > %d; thin: LoRA's r-wide ones) and their GFLOP/s per thread (of\n"
        "the 1-thread peak); last, the row's fraction of the peak if all other work took no time\n\n",
        thin_dim);
    printf("  %-24s %9s %18s %9s %18s %9s %12s\n", "", "products", "wide GFLOP/s", "thin",
           "thin GFLOP/s", "other", "rest free");
    for (int i = 0; i < n; i++) {
        const bench_row *w = &rows[i];
        if (!(w->gemm_share > 0)) continue;
        char thin[24] = "-";
        if (w->thin_share > 0)
            snprintf(thin, sizeof thin, "%.1f (%.0f%%)", w->thin_gflops,
                     100 * w->thin_gflops / peak1);
        printf("  %-24s %8.1f%% %11.1f (%3.0f%%) %8.1f%% %18s %8.1f%% %11.1f%%\n", w->name,
               100 * w->gemm_share, w->wide_gflops, 100 * w->wide_gflops / peak1,
               100 * w->thin_share, thin, 100 * (1 - w->gemm_share),
               100 * w->gflops / w->peak / w->gemm_share);
    }
    /* the "other" column split: each kernel kind timed the same way; the rest is what no
     * kernel covers (waiting for the other thread, copies and zeroing, gradient sums) */
    printf(
        "\nthe other work, as shares of the threads' time (elementwise: RoPE, residual adds, the\n"
        "embedding; rest: thread waits, copies, zeroing, gradient sums)\n\n  %-24s",
        "");
    for (int o = 0; o < BENCH_OPS; o++) printf(" %10s", bench_op_name(o));
    printf(" %10s\n", "rest");
    for (int i = 0; i < n; i++) {
        const bench_row *w = &rows[i];
        if (!(w->gemm_share > 0)) continue;
        double rest = 1 - w->gemm_share;
        printf("  %-24s", w->name);
        for (int o = 0; o < BENCH_OPS; o++) {
            printf(" %9.1f%%", 100 * w->op_share[o]);
            rest -= w->op_share[o];
        }
        printf(" %9.1f%%\n", 100 * rest);
    }
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base = default_path("data/minigpt-base.safetensors");
    int threads = 0, json = 0, B = 64, T = 32;
    const char *only = NULL;
    float seconds = 3.0f;
    opt_def defs[] = {
        {"base", OPT_STRING, &base, 0, 0, "FILE", "base checkpoint"},
        {"threads", OPT_INT, &threads, 0, 1024, "N", "threads (0: all cores)"},
        {"batch", OPT_INT, &B, 1, 4096, "N", "sequences per training step"},
        {"seconds", OPT_FLOAT, &seconds, 0.1, 600, "S", "time per measurement"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print JSON"},
        {"only", OPT_STRING, &only, 0, 0, "TEXT",
         "run only the measurements whose name contains TEXT"},
    };
    int pos;
    int r =
        opts_parse("[options]",
                   "Measures training steps (full model and LoRA at ranks 0, 1, 8, 32), scoring\n"
                   "and greedy generation, against a 2048^3 sgemm measured in the same run.\n"
                   "Each figure is the best of 4 windows of S/4 seconds.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (pos < argc) return usage_fail(cmd, "takes no arguments");
    threads = runtime_threads(threads);
    const bench_spec spec = {
        .base = base, .threads = threads, .batch = B, .T = T, .seconds = seconds, .only = only};
    ml_error e;
    bench_report rep;
    if (bench_job_run(&spec, &rep, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    const bench_row *rows = rep.rows;
    const int n = rep.n_rows;
    const double peak = rep.peak, peak1 = rep.peak1, fwd = rep.forward_flops;
    if (json) {
        printf(
            "{\"blas\":\"%s\",\"kernel\":\"%s\",\"threads\":%d,\"batch\":%d,\"T\":%d,"
            "\"sgemm_peak_gflops\":%.2f,\"sgemm_1thread_gflops\":%.2f,\"forward_flops_per_token\":%.0f,\"rows\":[",
            rep.blas_config, runtime_blas_kernel(), threads, B, rep.T, peak, peak1, fwd);
        for (int i = 0; i < n; i++) {
            printf(
                "%s{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",\"flops_per_token\":%.0f,"
                "\"gflops\":%.3f,\"peak_gflops\":%.3f,\"fraction_of_peak\":%.4f,\"peak_rss_kib\":%ld,"
                "\"gemm_share\":%.4f,\"gemm_gflops_per_thread\":%.3f,\"thin_share\":%.4f,"
                "\"thin_gflops_per_thread\":%.3f,\"op_share\":{",
                i ? "," : "", rows[i].name, rows[i].value, rows[i].unit, rows[i].flops_tok,
                rows[i].gflops, rows[i].peak, rows[i].gflops / rows[i].peak, rows[i].rss_kib,
                rows[i].gemm_share, rows[i].gemm_gflops, rows[i].thin_share, rows[i].thin_gflops);
            for (int o = 0; o < BENCH_OPS; o++)
                printf("%s\"%s\":%.4f", o ? "," : "", bench_op_name(o), rows[i].op_share[o]);
            printf("}}");
        }
        printf("]}\n");
        return EXIT_OK;
    }
    printf("BLAS: %s\nkernel: %s\nthreads: %d   batch %d x %d tokens\n", rep.blas_config,
           runtime_blas_note(), threads, B, rep.T);
    printf(
        "peak: sgemm 2048^3 up to %.1f GFLOP/s on %d threads (%.1f on 1); each row's fraction uses\n"
        "      the mean of the sgemm measured just before and just after it\n",
        peak, threads, peak1);
    printf("model forward: %.0f FLOPs per token (T = %d)\n\n", fwd, rep.T);
    printf("  %-34s %14s %-14s %12s %10s %8s %8s %9s\n", "", "", "", "FLOPs/token", "GFLOP/s",
           "peak", "of peak", "peak RSS");
    for (int i = 0; i < n; i++) {
        char flops[32] = "", gf[32] = "", frac[32] = "";
        if (rows[i].flops_tok > 0) {
            snprintf(flops, sizeof flops, "%.0f", rows[i].flops_tok);
            snprintf(gf, sizeof gf, "%.1f", rows[i].gflops);
            snprintf(frac, sizeof frac, "%.1f%%", 100 * rows[i].gflops / rows[i].peak);
        }
        printf("  %-34s %14.1f %-14s %12s %10s %8.1f %8s %6.1f MiB\n", rows[i].name, rows[i].value,
               rows[i].unit, flops, gf, rows[i].peak, frac, rows[i].rss_kib / 1024.0);
    }
    print_time_split(rows, n, peak1, rep.thin_dim);
    return EXIT_OK;
}
