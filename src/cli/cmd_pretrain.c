/* cmd_pretrain.c — `lora pretrain`: train all 103,680 parameters of the base model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "grad_engine.h"
#include "eval.h"
#include "opts.h"
#include "blas_runtime.h"
#include "sha256.h"
#include "text.h"
#include "train_loop.h"

/* The learning curve: one CSV row per validation with the exact-match (and preference, where
 * there are distractors) of the model so far on each curve file. */
typedef struct {
    FILE *csv;
    engine *g;
    const tok_vocab *v;
    dataset sets[8];
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

int cmd_pretrain(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *config = default_path("configs/pretrain.json"), *model_cfg = default_path("configs/minigpt.json");
    const char *val_path = default_path("data/pretrain_val.jsonl"), *out = "data/minigpt-base.safetensors";
    train_opts o = {.steps = 20000, .batch = 64, .micro = 16, .warmup = 500, .lr = 3e-3f,
                    .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f, .beta1 = 0.9f,
                    .beta2 = 0.95f, .eps = 1e-8f, .eval_every = 1000, .seed = 1};
    int json = 0;
    const char *curve_path = "", *curve_files =
        "data/control_new.jsonl,data/regular_heldout_new.jsonl,data/irreg_nonpast_new.jsonl,data/irreg_test_new.jsonl";
    opt_def defs[] = {
        {"config", OPT_STRING, &config, 0, 0, "FILE", "JSON file of defaults for these options"},
        {"model", OPT_STRING, &model_cfg, 0, 0, "FILE", "model config and vocabulary"},
        {"val", OPT_STRING, &val_path, 0, 0, "FILE", "validation JSONL"},
        {"out", OPT_STRING, &out, 0, 0, "FILE", "checkpoint to write"},
        TRAIN_OPT_DEFS(&o),
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print a JSON summary on stdout"},
        {"curve", OPT_STRING, &curve_path, 0, 0, "FILE", "write the learning curve as CSV at every validation"},
        {"curve-data", OPT_STRING, &curve_files, 0, 0, "LIST", "comma-separated JSONL files scored on the curve"},
    };
    int pos;
    int r = opts_parse("[options] [DATA.jsonl]",
                       "Pretrains Mini-GPT from a random initialization on prompt/completion or text\n"
                       "JSONL (default data/pretrain.jsonl) and writes a base checkpoint.",
                       defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - pos > 1) return usage_fail(cmd, "expects at most one DATA file");
    const char *data_path = pos < argc ? argv[pos] : default_path("data/pretrain.jsonl");
    o.threads = runtime_threads(o.threads);

    ml_error e;
    minigpt_config cfg;
    tok_vocab vocab;
    minigpt m = {0};
    dataset train = {0}, val = {0};
    engine g = {0};
    train_state s = {0};
    train_tensor *tensors = NULL;
    curve cv = {0};
    int rc = EXIT_RUNTIME;
    char data_sha[65];
    if (model_config_load(model_cfg, &cfg, &vocab, &e) || minigpt_init(&m, &cfg, &e) ||
        ds_load(&train, data_path, &vocab, cfg.context, &e) ||
        (val_path[0] && ds_load(&val, val_path, &vocab, cfg.context, &e)) ||
        sha256_file_hex(data_path, data_sha, &e) || check_writable(out, &e) ||
        check_not_input(out, (const char *const[]){model_cfg, data_path, val_path}, 3, &e))
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
    train_job job = {.g = &g, .train = &train, .val = val_path[0] ? &val : NULL,
                     .tensors = tensors, .n_tensors = m.n_tensors, .label = cmd};
    if (curve_path[0]) {
        char header[1024] = "step,train_loss,val_loss", name[128], list[2048];
        snprintf(list, sizeof list, "%s", curve_files);
        for (char *f = strtok(list, ","); f && cv.nsets < 8; f = strtok(NULL, ",")) {
            if (ds_load(&cv.sets[cv.nsets], f, &vocab, cfg.context, &e)) goto done;
            text_stem(name, sizeof name, f);
            const size_t used = strlen(header);
            if (cv.sets[cv.nsets].ex[0].distractor)
                snprintf(header + used, sizeof header - used, ",%s_exact,%s_pref", name, name);
            else
                snprintf(header + used, sizeof header - used, ",%s_exact", name);
            cv.nsets++;
        }
        if (!(cv.csv = fopen(curve_path, "w"))) {
            ml_fail(&e, "%s: cannot write: %s", curve_path, strerror(errno));
            goto done;
        }
        fprintf(cv.csv, "%s\n", header);
        cv.g = &g;
        cv.v = &vocab;
        job.on_eval = curve_row;
        job.on_eval_ctx = &cv;
    }
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
             "\"warmup\":%d,\"weight_decay\":%g,\"clip\":%g,\"beta1\":%g,\"beta2\":%g}",
             o.steps, o.batch, g.micro, (double)o.lr, (double)o.min_lr_frac, o.warmup,
             (double)o.weight_decay, (double)o.clip, (double)o.beta1, (double)o.beta2);
    const char *keys[] = {"seed", "steps", "data", "data_sha256", "best_step", "val_loss", "train_config", "generator"};
    const char *vals[] = {seed_s, steps_s, data_path, data_sha, best_s, val_s, hp, "minilora pretrain"};
    if (checkpoint_save(out, &m, &vocab, 8, keys, vals, &e)) goto done;
    const double tok_s = res.positions / res.seconds;
    if (json) {
        char best_val[32] = "null"; /* JSON has no NaN: no validation set */
        if (isfinite(res.best_val)) snprintf(best_val, sizeof best_val, "%.6f", res.best_val);
        printf("{\"out\":");
        text_json_print(stdout, out);
        printf(",\"steps\":%d,\"best_step\":%d,\"val_loss\":%s,\"seconds\":%.2f,"
               "\"tokens_per_s\":%.0f,\"threads\":%d,\"blas_kernel\":\"%s\"}\n",
               res.steps, res.best_step, best_val, res.seconds, tok_s, g.nthreads,
               runtime_blas_kernel());
    } else
        printf("wrote %s: %d steps in %.1fs (%.0f tokens/s), best validation loss %.4f at step %d\n",
               out, res.steps, res.seconds, tok_s, res.best_val, res.best_step);
    rc = EXIT_OK;
done:
    if (rc == EXIT_RUNTIME) cli_error(cmd, e.msg);
    if (cv.csv) fclose(cv.csv);
    for (int i = 0; i < cv.nsets; i++) ds_free(&cv.sets[i]);
    train_state_free(&s);
    engine_free(&g);
    free(tensors);
    ds_free(&train);
    ds_free(&val);
    minigpt_free(&m);
    return rc;
}
