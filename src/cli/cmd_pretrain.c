/* cmd_pretrain.c — `lora pretrain`: train all 103,680 parameters of the base model.
 * Options in, pretrain_job_run (src/jobs/pretrain_job.c), a summary out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_runtime.h"
#include "commands.h"
#include "common.h"
#include "opts.h"
#include "pretrain_job.h"

static void on_ready(void *ctx, const pretrain_report *r) {
    const pretrain_spec *s = ctx;
    if (!s->train.quiet)
        fprintf(stderr,
                "%s: %zu parameters, %d examples, %d steps x %d sequences, %d threads, BLAS %s\n",
                s->label, r->n_params, r->n_examples, s->train.steps, s->train.batch, r->threads,
                runtime_blas_note());
}

int cmd_pretrain(int argc, char **argv) {
    const char *cmd = argv[0], *config = NULL;
    pretrain_spec s = {.model_config = default_path("configs/minigpt.json"),
                       .val = default_path("data/pretrain_val.jsonl"),
                       .out = "data/minigpt-base.safetensors",
                       .curve = "",
                       .curve_data = "",
                       .label = cmd};
    train_opts *o = &s.train;
    o->eps = 1e-8f; /* AdamW's epsilon, fixed */
    int json = 0;
    opt_def defs[] = {
        {"config", OPT_STRING, &config, 0, 0, "FILE",
         "JSON file of settings over the defaults file"},
        {"model", OPT_PATH, &s.model_config, 0, 0, "FILE", "model config and vocabulary"},
        {"val", OPT_PATH, &s.val, 0, 0, "FILE", "validation JSONL"},
        {"out", OPT_PATH, &s.out, 0, 0, "FILE", "checkpoint to write"},
        TRAIN_OPT_DEFS(o),
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print a JSON summary on stdout"},
        {"curve", OPT_PATH, &s.curve, 0, 0, "FILE",
         "write the learning curve as CSV at every validation"},
        {"curve-data", OPT_PATHS, &s.curve_data, 0, 0, "LIST",
         "comma-separated JSONL files scored on the curve"},
    };
    int pos;
    const char *defaults = default_path("configs/pretrain.json");
    int r =
        opts_parse("[options] [DATA.jsonl]",
                   "Pretrains Mini-GPT from a random initialization on prompt/completion or text\n"
                   "JSONL (default data/pretrain.jsonl) and writes a base checkpoint.",
                   defaults, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - pos > 1) return usage_fail(cmd, "expects at most one DATA file");
    s.data = pos < argc ? argv[pos] : default_path("data/pretrain.jsonl");
    o->threads = runtime_threads(o->threads);
    const io_path read_also[] = {{"--config", config, 0, NULL}, {"defaults", defaults, 0, NULL}};
    s.read_also = read_also;
    s.n_read_also = 2;

    ml_error e;
    pretrain_report rep;
    install_stop_handlers();
    const int failed = pretrain_job_run(&s, on_ready, &s, &rep, &e);
    if (failed) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    const train_result *res = &rep.result;
    if (res->interrupted) {
        fprintf(stderr, "%s: interrupted at step %d; %s left unchanged\n", cmd, res->steps, s.out);
        return 128 + res->interrupted;
    }
    const double tok_s = res->seconds > 0 ? res->positions / res->seconds : 0; /* finite */
    if (json) {
        char best_val[32] = "null"; /* JSON has no NaN: no validation set */
        if (isfinite(res->best_val)) snprintf(best_val, sizeof best_val, "%.6f", res->best_val);
        printf("{\"out\":");
        text_json_print(stdout, s.out);
        printf(",\"steps\":%d,\"best_step\":%d,\"val_loss\":%s,\"seconds\":%.2f,"
               "\"tokens_per_s\":%.0f,\"threads\":%d,\"blas_kernel\":\"%s\"}\n",
               res->steps, res->best_step, best_val, res->seconds, tok_s, rep.threads,
               runtime_blas_kernel());
    } else {
        printf(
            "wrote %s: %d steps in %.1fs (%.0f tokens/s), best validation loss %.4f at step %d\n",
            s.out, res->steps, res->seconds, tok_s, res->best_val, res->best_step);
    }
    return EXIT_OK;
}
