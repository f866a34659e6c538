/* cmd_train.c — `lora-train`: fine-tune a LoRA adapter (or, with --full, every Linear weight)
 * on the base checkpoint. Options in (defaults: configs/lora-irreg.json), finetune_job_run
 * (src/jobs/finetune_job.c), a summary out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas_runtime.h"
#include "commands.h"
#include "common.h"
#include "finetune_job.h"
#include "lora_init.h"
#include "model_config.h"
#include "opts.h"
#include "safetensors.h"

/* data/irreg.jsonl -> data/irreg_val.jsonl when that file exists; malloc'ed or NULL. */
static char *val_sibling(const char *data) {
    const char *dot = strrchr(data, '.'), *slash = strrchr(data, '/');
    if (!dot || (slash && dot < slash)) dot = data + strlen(data);
    size_t n = (size_t)(dot - data);
    char *p = malloc(n + strlen(dot) + 5);
    if (!p) return NULL;
    memcpy(p, data, n);
    strcpy(p + n, "_val");
    strcat(p, dot);
    struct stat st;
    if (stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* The number of blocks of the base checkpoint (from its config metadata), so that --layers is
 * checked as a usage error; MINIGPT_MAX_LAYERS when it cannot be read (loading reports that). */
static int base_blocks(const char *base) {
    st_file f;
    ml_error e;
    minigpt_config c;
    int n = MINIGPT_MAX_LAYERS;
    if (st_open(&f, base, &e)) return n;
    const char *json = st_meta(&f, "config");
    if (json && !model_config_parse(&c, json, base, &e)) n = c.n_layers;
    st_close(&f);
    return n;
}

/* Progress header and warnings, printed when nothing can fail before training. */
static void on_ready(void *ctx, const finetune_report *r) {
    const finetune_spec *s = ctx;
    const finetune_opts *fo = &r->opts;
    const char *cmd = s->label;
    char warn[sizeof r->warnings];
    snprintf(warn, sizeof warn, "%s", r->warnings);
    for (char *line = strtok(warn, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "%s: warning: %s\n", cmd, line);
    if (fo->train.quiet) return;
    if (r->resumed_step >= 0)
        fprintf(stderr, "%s: resuming %s at step %d of %d\n", cmd, s->resume, r->resumed_step,
                r->steps);
    if (s->init_from)
        fprintf(stderr, "%s: starting from %s (rank %d, alpha %g%s%s)\n", cmd, s->init_from,
                fo->rank, (double)fo->alpha, fo->rslora ? ", rsLoRA" : "",
                fo->dora ? ", DoRA" : "");
    if (fo->full)
        fprintf(stderr, "%s: full fine-tune: %zu trainable parameters (%s)\n", cmd, r->trainable,
                fo->full == FINETUNE_FULL_ALL ? "every parameter of the base"
                                              : "the target Linear weights");
    else if (fo->dora)
        fprintf(stderr,
                "%s: trainable parameters: %zu = %zu × %d + %zu DoRA magnitudes (%.2f%% of %zu)\n",
                cmd, r->trainable, r->params_per_rank, fo->rank,
                r->trainable - r->params_per_rank * (size_t)fo->rank,
                100.0 * r->trainable / r->base_params, r->base_params);
    else
        fprintf(stderr, "%s: trainable parameters: %zu = %zu × %d (%.2f%% of %zu)\n", cmd,
                r->trainable, r->params_per_rank, fo->rank, 100.0 * r->trainable / r->base_params,
                r->base_params);
    char kl_note[64] = "";
    if (fo->train.preserve_kl > 0)
        snprintf(kl_note, sizeof kl_note, " (KL to the base x %g)", (double)fo->train.preserve_kl);
    char lp_note[192] = "";
    if (!fo->full && fo->loraplus_ratio != 1.0f)
        snprintf(lp_note, sizeof lp_note, " (B x %g: LoRA+)", (double)fo->loraplus_ratio);
    if (!fo->full && fo->dropout > 0.0f) {
        const size_t used = strlen(lp_note);
        snprintf(lp_note + used, sizeof lp_note - used, " (LoRA dropout %g)", (double)fo->dropout);
    }
    if (!fo->full && fo->lora_path != LORA_PATH_THIN) {
        const size_t used = strlen(lp_note);
        snprintf(lp_note + used, sizeof lp_note - used, " (%s path: %d of %d layers merged)",
                 lora_path_name(fo->lora_path), r->merged_layers, r->adapter_layers);
    }
    if (!fo->full && fo->init != LORA_INIT_KAIMING)
        fprintf(stderr, "%s: --init %s%s\n", cmd, lora_init_name(fo->init),
                lora_init_uses_base(fo->init)
                    ? ": training on the residual base W - s·B0·A0; the adapter is saved converted "
                      "to rank 2r for the original base"
                    : "");
    fprintf(stderr,
            "%s: %d examples%s%s%s, %d steps x %d sequences, %s lr %g%s, %d threads, BLAS %s\n",
            cmd, r->n_examples, s->replay[0] ? " + replay " : "", s->replay, kl_note, r->steps,
            fo->train.batch, optim_name_at(fo->train.optimizer), (double)fo->train.lr, lp_note,
            r->threads, runtime_blas_note());
}

static void print_json(const finetune_spec *s, const finetune_report *r) {
    const finetune_opts *fo = &r->opts;
    const double tok_s = r->result.seconds > 0 ? r->result.positions / r->result.seconds : 0;
    char best_val[32] = "null"; /* JSON has no NaN: no validation (no val file, rank 0) */
    if (r->best_step >= 0 && isfinite(r->best_val))
        snprintf(best_val, sizeof best_val, "%.6g", r->best_val);
    printf("{\"adapter\":");
    text_json_print(stdout, s->out);
    printf(
        ",\"rank\":%d,\"alpha\":%g,\"rslora\":%s,\"init\":\"%s\",\"full\":%s,\"full_params\":\"%s\","
        "\"trainable_params\":%zu,\"params_per_rank\":%zu,\"steps\":%d,\"best_step\":%d,"
        "\"best_val_loss\":%s,\"seconds\":%.3f,\"tokens_per_s\":%.0f,\"bytes\":%ld,"
        "\"payload_bytes\":%zu,\"threads\":%d,\"blas_kernel\":\"%s\",\"dora\":%s,"
        "\"dropout\":%g,\"lora_path\":\"%s\",\"merged_layers\":%d,\"init_from\":",
        fo->full ? 0 : fo->rank, (double)fo->alpha, fo->rslora ? "true" : "false",
        fo->full ? "kaiming" : lora_init_name(fo->init), fo->full ? "true" : "false",
        fo->full == FINETUNE_FULL_ALL ? "all"
        : fo->full                    ? "linear_weights"
                                      : "none",
        r->trainable, r->params_per_rank, r->result.steps, r->best_step, best_val,
        r->result.seconds, tok_s, r->bytes, r->payload_bytes, r->threads, runtime_blas_kernel(),
        !fo->full && fo->dora ? "true" : "false", fo->full ? 0.0 : (double)fo->dropout,
        fo->full ? "thin" : lora_path_name(fo->lora_path), r->merged_layers);
    if (s->init_from) text_json_print(stdout, s->init_from);
    else printf("null");
    printf("}\n");
}

int cmd_train(int argc, char **argv) {
    const char *cmd = argv[0], *config = NULL, *targets = NULL, *layers = NULL;
    finetune_spec s = {.base = default_path("data/minigpt-base.safetensors"),
                       .replay = "",
                       .val_extra = "",
                       .label = cmd};
    finetune_opts *fo = &s.opts;
    train_opts *o = &fo->train;
    o->eps = 1e-8f; /* AdamW's epsilon, fixed */
    int json = 0, full_all = 0;
    opt_def defs[] = {
        {"config", OPT_STRING, &config, 0, 0, "FILE",
         "JSON file of settings over the defaults file"},
        {"rank", OPT_INT, &fo->rank, 0, LORA_MAX_RANK, "R", "LoRA rank r"},
        {"alpha", OPT_FLOAT, &fo->alpha, 1e-6, 1e6, "A",
         "LoRA alpha; the update is scaled by alpha/r"},
        {"rslora", OPT_FLAG, &fo->rslora, 0, 0, NULL,
         "scale by alpha/sqrt(r) (rank-stabilized LoRA)"},
        {"targets", OPT_STRING, &targets, 0, 0, "LIST",
         "layers to adapt: q,k,v,o,fc1,fc2,attn,ffn,all"},
        {"layers", OPT_STRING, &layers, 0, 0, "LIST",
         "blocks to adapt: all, or indices such as 0 or 0,1"},
        {"full", OPT_FLAG, &fo->full, 0, 0, NULL,
         "full fine-tune of the target Linear weights (98,304 of the default model; baseline)"},
        {"full-all", OPT_FLAG, &full_all, 0, 0, NULL,
         "full fine-tune of every parameter (103,680: embedding, LayerNorms, biases too)"},
        {"base", OPT_PATH, &s.base, 0, 0, "FILE", "base checkpoint"},
        {"out", OPT_PATH, &s.out, 0, 0, "FILE",
         "adapter to write [runs/<data>-r<rank>.safetensors]"},
        {"val", OPT_PATH, &s.val, 0, 0, "FILE", "validation JSONL [<data>_val.jsonl if it exists]"},
        {"val-extra", OPT_PATH, &s.val_extra, 0, 0, "FILE",
         "held-out examples of what must not change, validated too"},
        {"replay", OPT_PATH, &s.replay, 0, 0, "FILE",
         "examples mixed into every batch against forgetting"},
        {"replay-frac", OPT_FLOAT, &o->replay_frac, 0, 0.95, "X",
         "share of each batch drawn from --replay"},
        {"preserve-kl", OPT_FLOAT, &o->preserve_kl, 0, 100, "L",
         "add L x KL(base || model) over every position of the replay sequences (0: off)"},
        {"epochs", OPT_FLOAT, &s.epochs, 0, 1e6, "E",
         "train for E passes over DATA instead of --steps (0: off)"},
        TRAIN_OPT_DEFS(o),
        {"loraplus-ratio", OPT_FLOAT, &fo->loraplus_ratio, 1e-3, 1e4, "X",
         "LoRA+: B's learning rate is X times A's (1: off; not with --full)"},
        {"dora", OPT_FLAG, &fo->dora, 0, 0, NULL,
         "DoRA: W' = m*(W+sBA)/||W+sBA|| per output row, m trained too (not with --full)"},
        {"dropout", OPT_FLOAT, &fo->dropout, 0, 1, "P",
         "LoRA dropout on the adapter's input path while training, 0 <= P < 1 (0: off)"},
        {"lora-path", OPT_CHOICE, &(opt_choice){&fo->lora_path, lora_path_name}, 0, 0, "NAME",
         "LoRA compute graph: thin, merged (x·W'ᵀ, W' = W + s·B·A once a step; not with "
         "--dropout, --dora, --full) or auto (per layer, fewer FLOPs)"},
        {"lr-ratio", OPT_ALIAS, "loraplus-ratio", 0, 0, "X",
         "PEFT's name for --loraplus-ratio (the same setting)"},
        {"init", OPT_CHOICE, &(opt_choice){&fo->init, lora_init_name}, 0, 0, "NAME",
         "A and B at step 0: kaiming, gaussian, pissa, olora (PEFT's init_lora_weights)"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON summary on stdout"},
        {"resume", OPT_PATH, &s.resume, 0, 0, "FILE",
         "continue an interrupted run from its training state"},
        {"state", OPT_PATH, &s.state, 0, 0, "FILE",
         "where an interrupted run saves its state [OUT.state]"},
        {"init-from", OPT_PATH, &s.init_from, 0, 0, "ADAPTER",
         "start from this adapter (file or PEFT dir, same base): its A, B, rank, alpha, "
         "rslora, targets, layers, dora (a conflicting flag is refused); fresh optimizer"},
    };
    int pos;
    const char *defaults = default_path("configs/lora-irreg.json");
    int r =
        opts_parse("[options] DATA.jsonl",
                   "Fine-tunes a LoRA adapter (W + (alpha/r)·B·A on each target Linear, W frozen)\n"
                   "on prompt/completion JSONL and writes it as an fp16 safetensors file with\n"
                   "PEFT names. Keeps the adapter with the best validation loss.",
                   defaults, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - pos != 1) return usage_fail(cmd, "expects exactly one DATA.jsonl");
    s.data = argv[pos];
    if (full_all) fo->full = FINETUNE_FULL_ALL;
    if (s.init_from && !s.init_from[0]) s.init_from = NULL; /* "": a fresh adapter */
    if (s.init_from) { /* what the user set (--config or a flag) must agree with the adapter */
        static const struct {
            const char *name;
            unsigned bit;
        } pins[] = {{"rank", FINETUNE_GIVEN_RANK},     {"alpha", FINETUNE_GIVEN_ALPHA},
                    {"rslora", FINETUNE_GIVEN_RSLORA}, {"targets", FINETUNE_GIVEN_TARGETS},
                    {"layers", FINETUNE_GIVEN_LAYERS}, {"dora", FINETUNE_GIVEN_DORA}};
        for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++)
            if (opts_given(pins[i].name)) s.init_given |= pins[i].bit;
    }
    ml_error e;
    if (!targets) return usage_fail(cmd, "no --targets (and none in the defaults file)");
    if (layers && lora_parse_layers(layers, base_blocks(s.base), &fo->layers, &e)) {
        char msg[sizeof e.msg + 16];
        snprintf(msg, sizeof msg, "--layers: %s", e.msg);
        return usage_fail(cmd, msg);
    }
    if (lora_parse_targets(targets, &fo->targets, &e) || finetune_spec_check(&s, &e))
        return usage_fail(cmd, e.msg);
    o->threads = runtime_threads(o->threads);
    char out_buf[4096], state_buf[4200], stem[256];
    if (!s.out) { /* runs/<stem>-r<rank>.safetensors, or -full for the full fine-tune */
        text_stem(stem, sizeof stem, s.data);
        if (fo->full)
            snprintf(out_buf, sizeof out_buf, "runs/%s-full%s.safetensors", stem,
                     fo->full == FINETUNE_FULL_ALL ? "-all" : "");
        else if (s.init_from) /* the rank is the adapter's, known once it is loaded */
            snprintf(out_buf, sizeof out_buf, "runs/%s-cont.safetensors", stem);
        else snprintf(out_buf, sizeof out_buf, "runs/%s-r%d.safetensors", stem, fo->rank);
        s.out = out_buf;
        mkdir("runs", 0777); /* the default location; an explicit --out must have its directory */
    }
    if (!s.state) {
        snprintf(state_buf, sizeof state_buf, "%s.state", s.out);
        s.state = state_buf;
    }
    char *val_auto = NULL;
    if (!s.val) s.val = val_auto = val_sibling(s.data);

    const io_path read_also[] = {{"--config", config, 0, NULL}, {"defaults", defaults, 0, NULL}};
    s.read_also = read_also;
    s.n_read_also = 2;
    finetune_report rep;
    install_stop_handlers();
    const int failed = finetune_job_run(&s, on_ready, &s, &rep, &e);
    free(val_auto);
    if (failed) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    if (rep.result.interrupted) {
        char kept[64];
        if (rep.best_step >= 0)
            snprintf(kept, sizeof kept, "the best adapter so far (step %d)", rep.best_step);
        else
            snprintf(kept, sizeof kept, "the adapter of step %d (not validated yet)",
                     rep.result.steps);
        fprintf(stderr,
                "%s: interrupted at step %d; wrote %s to %s and "
                "the training state to %s (continue with --resume %s)\n",
                cmd, rep.result.steps, kept, s.out, s.state, s.state);
        return 128 + rep.result.interrupted;
    }
    if (json) {
        print_json(&s, &rep);
    } else {
        const double tok_s = rep.result.seconds > 0 ? rep.result.positions / rep.result.seconds : 0;
        printf("wrote %s (%ld bytes): %d steps in %.1fs, %.0f tokens/s", s.out, rep.bytes,
               rep.result.steps, rep.result.seconds, tok_s);
        if (rep.best_step >= 0)
            printf(", best validation loss %.4f at step %d", rep.best_val, rep.best_step);
        printf("\n");
    }
    return EXIT_OK;
}
