/* cmd_pretrain.c — `lora pretrain`: train all 103,680 parameters of the base model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "engine.h"
#include "opts.h"
#include "runtime.h"
#include "sha256.h"
#include "train.h"

int cmd_pretrain(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *config = "configs/pretrain.json", *model_cfg = "configs/minigpt.json";
    const char *val_path = "data/pretrain_val.jsonl", *out = "data/minigpt-base.safetensors";
    train_opts o = {.steps = 20000, .batch = 64, .micro = 16, .warmup = 500, .lr = 3e-3f,
                    .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f, .beta1 = 0.9f,
                    .beta2 = 0.95f, .eps = 1e-8f, .eval_every = 1000, .seed = 1};
    int json = 0;
    opt_def defs[] = {
        {"config", OPT_STRING, &config, 0, 0, "FILE", "JSON file of defaults for these options"},
        {"model", OPT_STRING, &model_cfg, 0, 0, "FILE", "model config and vocabulary"},
        {"val", OPT_STRING, &val_path, 0, 0, "FILE", "validation JSONL"},
        {"out", OPT_STRING, &out, 0, 0, "FILE", "checkpoint to write"},
        {"steps", OPT_INT, &o.steps, 1, 1e8, "N", "optimizer steps"},
        {"batch", OPT_INT, &o.batch, 1, 4096, "N", "sequences per step"},
        {"micro-batch", OPT_INT, &o.micro, 1, 4096, "N", "sequences per thread chunk"},
        {"lr", OPT_FLOAT, &o.lr, 0, 10, "X", "peak learning rate"},
        {"min-lr-frac", OPT_FLOAT, &o.min_lr_frac, 0, 1, "X", "final learning rate as a fraction of the peak"},
        {"warmup", OPT_INT, &o.warmup, 0, 1e8, "N", "linear warmup steps"},
        {"weight-decay", OPT_FLOAT, &o.weight_decay, 0, 10, "X", "AdamW weight decay (weights and embedding)"},
        {"clip", OPT_FLOAT, &o.clip, 0, 1e6, "X", "gradient-norm clipping (0: off)"},
        {"beta1", OPT_FLOAT, &o.beta1, 0, 0.999999, "X", "AdamW beta1"},
        {"beta2", OPT_FLOAT, &o.beta2, 0, 0.999999, "X", "AdamW beta2"},
        {"seed", OPT_U64, &o.seed, 0, 1.8e19, "N", "random seed (initialization and data order)"},
        {"eval-every", OPT_INT, &o.eval_every, 0, 1e8, "N", "validation every N steps"},
        {"log-every", OPT_INT, &o.log_every, 0, 1e8, "N", "log line every N steps when not on a terminal"},
        {"threads", OPT_INT, &o.threads, 0, 1024, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &o.quiet, 0, 0, NULL, "no progress output"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print a JSON summary on stdout"},
    };
    int pos;
    int r = opts_parse("[options] [DATA.jsonl]",
                       "Pretrains Mini-GPT from a random initialization on prompt/completion or text\n"
                       "JSONL (default data/pretrain.jsonl) and writes a base checkpoint.",
                       defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - pos > 1) return usage_fail(cmd, "expects at most one DATA file");
    const char *data_path = pos < argc ? argv[pos] : "data/pretrain.jsonl";
    o.threads = runtime_threads(o.threads);

    ml_error e;
    minigpt_config cfg;
    tok_vocab vocab;
    minigpt m = {0};
    dataset train = {0}, val = {0};
    engine g = {0};
    train_state s = {0};
    train_tensor *tensors = NULL;
    int rc = EXIT_RUNTIME;
    char data_sha[65];
    if (model_config_load(model_cfg, &cfg, &vocab, &e) || minigpt_init(&m, &cfg, &e) ||
        ds_load(&train, data_path, &vocab, cfg.context, &e) ||
        (val_path[0] && ds_load(&val, val_path, &vocab, cfg.context, &e)) ||
        sha256_file_hex(data_path, data_sha, &e) || check_writable(out, &e))
        goto done;
    minigpt_init_random(&m, o.seed);
    tensors = calloc((size_t)m.n_tensors, sizeof *tensors);
    if (!tensors) {
        ml_fail(&e, "out of memory");
        goto done;
    }
    for (int i = 0; i < m.n_tensors; i++) {
        const minigpt_tensor *t = &m.tensors[i];
        tensors[i] = (train_tensor){m.params + t->offset, t->numel, t->offset,
                                    t->kind == MG_EMBEDDING || t->kind == MG_LINEAR_WEIGHT, t->name};
    }
    if (engine_init(&g, &m, o.threads, o.batch, o.micro, 1, 0, &e)) goto done;
    train_job job = {&g, &train, NULL, val_path[0] ? &val : NULL, tensors, m.n_tensors, cmd};
    if (train_state_init(&s, &job, &o, &e)) goto done;
    if (!o.quiet)
        fprintf(stderr, "%s: %zu parameters, %d examples, %d steps x %d sequences, %d threads, BLAS %s\n",
                cmd, m.n_params, train.n, o.steps, o.batch, g.nthreads, runtime_blas_note());
    install_stop_handlers();
    train_result res;
    if (train_run(&job, &o, &s, &res, &e)) goto done;
    if (res.interrupted) {
        fprintf(stderr, "%s: interrupted at step %d; %s left unchanged\n", cmd, res.steps, out);
        rc = 128 + res.interrupted;
        goto done;
    }
    train_use_best(&job, &s);
    char seed_s[32], steps_s[32], best_s[32], val_s[64], hp[512];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)o.seed);
    snprintf(steps_s, sizeof steps_s, "%d", res.steps);
    snprintf(best_s, sizeof best_s, "%d", res.best_step);
    snprintf(val_s, sizeof val_s, "%.6f", res.best_val);
    snprintf(hp, sizeof hp,
             "{\"steps\":%d,\"batch\":%d,\"micro_batch\":%d,\"lr\":%g,\"min_lr_frac\":%g,"
             "\"warmup\":%d,\"weight_decay\":%g,\"clip\":%g,\"beta1\":%g,\"beta2\":%g,\"threads\":%d}",
             o.steps, o.batch, g.micro, (double)o.lr, (double)o.min_lr_frac, o.warmup,
             (double)o.weight_decay, (double)o.clip, (double)o.beta1, (double)o.beta2, g.nthreads);
    const char *keys[] = {"seed", "steps", "data", "data_sha256", "best_step", "val_loss", "train_config", "generator"};
    const char *vals[] = {seed_s, steps_s, data_path, data_sha, best_s, val_s, hp, "minilora pretrain"};
    if (checkpoint_save(out, &m, &vocab, 8, keys, vals, &e)) goto done;
    const double tok_s = res.positions / res.seconds;
    if (json)
        printf("{\"out\":\"%s\",\"steps\":%d,\"best_step\":%d,\"val_loss\":%.6f,\"seconds\":%.2f,"
               "\"tokens_per_s\":%.0f,\"threads\":%d,\"blas_kernel\":\"%s\"}\n",
               out, res.steps, res.best_step, res.best_val, res.seconds, tok_s, g.nthreads,
               runtime_blas_kernel());
    else
        printf("wrote %s: %d steps in %.1fs (%.0f tokens/s), best validation loss %.4f at step %d\n",
               out, res.steps, res.seconds, tok_s, res.best_val, res.best_step);
    rc = EXIT_OK;
done:
    if (rc == EXIT_RUNTIME) cli_error(cmd, e.msg);
    train_state_free(&s);
    engine_free(&g);
    free(tensors);
    ds_free(&train);
    ds_free(&val);
    minigpt_free(&m);
    return rc;
}
