/* cmd_train.c — `lora-train`: fine-tune a LoRA adapter (or, with --full, every Linear weight)
 * on the base checkpoint and write it atomically. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "finetune.h"
#include "opts.h"
#include "blas_runtime.h"
#include "sha256.h"
#include "text.h"

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

/* runs/<stem>-r<rank>.safetensors (or -full for the full fine-tune). */
static void default_out(char *buf, size_t n, const char *data, int rank, int full) {
    char stem[256];
    text_stem(stem, sizeof stem, data);
    if (full) snprintf(buf, n, "runs/%s-full.safetensors", stem);
    else snprintf(buf, n, "runs/%s-r%d.safetensors", stem, rank);
}

int cmd_train(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *config = default_path("configs/lora-irreg.json"), *base_path = default_path("data/minigpt-base.safetensors");
    const char *out = NULL, *val_path = NULL, *replay_path = "", *targets_s = "all";
    finetune_opts fo = {.rank = 8, .alpha = 16.0f, .targets = LORA_ALL_TARGETS};
    train_opts *o = &fo.train;
    *o = (train_opts){.steps = 300, .batch = 32, .micro = 16, .warmup = 20, .lr = 2e-3f,
                      .min_lr_frac = 0.1f, .weight_decay = 0.0f, .clip = 1.0f, .beta1 = 0.9f,
                      .beta2 = 0.999f, .eps = 1e-8f, .eval_every = 25, .seed = 1};
    float epochs = 0.0f;
    int json = 0;
    const char *resume = NULL, *state_path = NULL, *val_extra = "";
    opt_def defs[] = {
        {"config", OPT_STRING, &config, 0, 0, "FILE", "JSON file of defaults for these options"},
        {"rank", OPT_INT, &fo.rank, 0, LORA_MAX_RANK, "R", "LoRA rank r"},
        {"alpha", OPT_FLOAT, &fo.alpha, 1e-6, 1e6, "A", "LoRA alpha; the update is scaled by alpha/r"},
        {"rslora", OPT_FLAG, &fo.rslora, 0, 0, NULL, "scale by alpha/sqrt(r) (rank-stabilized LoRA)"},
        {"targets", OPT_STRING, &targets_s, 0, 0, "LIST", "layers to adapt: q,k,v,o,fc1,fc2,attn,ffn,all"},
        {"full", OPT_FLAG, &fo.full, 0, 0, NULL, "train the target Linear weights themselves (baseline)"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
        {"out", OPT_STRING, &out, 0, 0, "FILE", "adapter to write [runs/<data>-r<rank>.safetensors]"},
        {"val", OPT_STRING, &val_path, 0, 0, "FILE", "validation JSONL [<data>_val.jsonl if it exists]"},
        {"val-extra", OPT_STRING, &val_extra, 0, 0, "FILE", "held-out examples of what must not change, validated too"},
        {"replay", OPT_STRING, &replay_path, 0, 0, "FILE", "examples mixed into every batch against forgetting"},
        {"replay-frac", OPT_FLOAT, &o->replay_frac, 0, 0.95, "X", "share of each batch drawn from --replay"},
        {"preserve-kl", OPT_FLOAT, &o->preserve_kl, 0, 100, "L",
         "add L x KL(base || model) over every position of the replay sequences (0: off)"},
        {"epochs", OPT_FLOAT, &epochs, 0, 1e6, "E", "train for E passes over DATA instead of --steps"},
        TRAIN_OPT_DEFS(o),
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON summary on stdout"},
        {"resume", OPT_STRING, &resume, 0, 0, "FILE", "continue an interrupted run from its training state"},
        {"state", OPT_STRING, &state_path, 0, 0, "FILE", "where an interrupted run saves its state [OUT.state]"},
    };
    int pos;
    int r = opts_parse("[options] DATA.jsonl",
                       "Fine-tunes a LoRA adapter (W + (alpha/r)·B·A on each target Linear, W frozen)\n"
                       "on prompt/completion JSONL and writes it as an fp16 safetensors file with\n"
                       "PEFT names. Keeps the adapter with the best validation loss.",
                       defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - pos != 1) return usage_fail(cmd, "expects exactly one DATA.jsonl");
    const char *data_path = argv[pos];
    ml_error e;
    if (lora_parse_targets(targets_s, &fo.targets, &e)) return usage_fail(cmd, e.msg);
    if (o->micro > o->batch) o->micro = o->batch;
    o->threads = runtime_threads(o->threads);
    char out_buf[4096], *val_auto = NULL;
    if (!out) {
        default_out(out_buf, sizeof out_buf, data_path, fo.rank, fo.full);
        out = out_buf;
        mkdir("runs", 0777); /* the default location; an explicit --out must already have its directory */
    }
    if (!val_path) val_path = val_auto = val_sibling(data_path);

    minigpt m = {0};
    tok_vocab vocab;
    dataset train = {0}, val = {0}, replay = {0};
    finetune f = {0};
    int rc = EXIT_RUNTIME, have_f = 0;
    char base_sha[65], data_sha[65], val_sha[140] = "", extra_sha[65] = "", replay_sha[65] = "",
         state_buf[4200];
    dataset extra = {0};
    char *fingerprint = NULL;
    if (!state_path) {
        snprintf(state_buf, sizeof state_buf, "%s.state", out);
        state_path = state_buf;
    }
    const char *inputs[] = {base_path, data_path, val_path, replay_path, val_extra};
    if (check_not_input(out, inputs, 5, &e) || check_not_input(state_path, inputs, 5, &e) ||
        checkpoint_load(base_path, &m, &vocab, base_sha, &e) ||
        ds_load(&train, data_path, &vocab, m.cfg.context, &e) ||
        (val_path && val_path[0] && ds_load(&val, val_path, &vocab, m.cfg.context, &e)) ||
        (replay_path[0] && ds_load(&replay, replay_path, &vocab, m.cfg.context, &e)) ||
        sha256_file_hex(data_path, data_sha, &e) || check_writable(out, &e) ||
        check_writable(state_path, &e) || /* an interrupt must find it writable, not fail then */
        (val.n && sha256_file_hex(val_path, val_sha, &e)) ||
        (replay.n && sha256_file_hex(replay_path, replay_sha, &e)) ||
        (val_extra[0] && (ds_load(&extra, val_extra, &vocab, m.cfg.context, &e) ||
                          sha256_file_hex(val_extra, extra_sha, &e))))
        goto done;
    if (extra.n) { /* one validation set: the new behaviour and what must not change */
        dataset parts[2] = {val, extra}, joined;
        if (ds_concat(&joined, val.n ? parts : parts + 1, val.n ? 2 : 1, &e)) goto done;
        ds_free(&val);
        ds_free(&extra);
        val = joined;
        const size_t used = strlen(val_sha);
        snprintf(val_sha + used, sizeof val_sha - used, "%s%s", used ? "+" : "", extra_sha);
    }
    if (replay_path[0] && !(o->replay_frac > 0)) {
        rc = usage_fail(cmd, "--replay needs a --replay-frac above 0");
        goto done;
    }
    if (o->preserve_kl > 0 && !replay_path[0]) {
        rc = usage_fail(cmd, "--preserve-kl needs --replay (the term applies to the replay sequences)");
        goto done;
    }
    if (epochs > 0) {
        const int fresh = o->batch - (replay_path[0] ? (int)lroundf(o->replay_frac * o->batch) : 0);
        o->steps = (int)ceil(epochs * train.n / (fresh > 0 ? fresh : 1));
        if (o->steps < 1) o->steps = 1;
    }
    const size_t unit = lora_count(&m, 1, fo.targets), total = m.n_params;
    if (finetune_init(&f, &m, &train, replay_path[0] ? &replay : NULL, val.n ? &val : NULL, &fo, cmd, &e))
        goto done;
    have_f = 1;
    fingerprint = finetune_fingerprint(&fo, base_sha, data_sha, val.n ? val_sha : NULL, replay.n ? replay_sha : NULL);
    if (!fingerprint) {
        ml_fail(&e, "out of memory");
        goto done;
    }
    if (resume) {
        if (train_state_load(resume, &f.job, &f.state, fingerprint, &e)) goto done;
        if (!o->quiet) fprintf(stderr, "%s: resuming %s at step %d of %d\n", cmd, resume, f.state.step, o->steps);
    }
    /* warnings once nothing can fail before training: an error stays the only line on stderr */
    char warn[1024];
    if (!fo.full && lora_rank_warnings(&m, fo.rank, fo.targets, warn, sizeof warn)) {
        for (char *line = strtok(warn, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, "%s: warning: %s\n", cmd, line);
    }
    if (!o->quiet) {
        if (fo.full) {
            size_t n = 0;
            for (int i = 0; i < f.n_tensors; i++) n += f.tensors[i].n;
            fprintf(stderr, "%s: full fine-tune: %zu trainable parameters (the target Linear weights)\n", cmd, n);
        } else {
            fprintf(stderr, "%s: trainable parameters: %zu = %zu × %d (%.2f%% of %zu)\n", cmd,
                    f.adapter.n_params, unit, fo.rank, 100.0 * f.adapter.n_params / total, total);
        }
        char kl_note[64] = "";
        if (o->preserve_kl > 0)
            snprintf(kl_note, sizeof kl_note, " (KL to the base x %g)", (double)o->preserve_kl);
        fprintf(stderr, "%s: %d examples%s%s%s, %d steps x %d sequences, lr %g, %d threads, BLAS %s\n", cmd,
                train.n, replay_path[0] ? " + replay " : "", replay_path[0] ? replay_path : "", kl_note,
                o->steps, o->batch, (double)o->lr, f.g.nthreads, runtime_blas_note());
    }
    install_stop_handlers();
    int failed = finetune_run(&f, &e);
    char diverged[sizeof e.msg];
    if (failed) snprintf(diverged, sizeof diverged, "%s", e.msg);
    if (failed && f.state.best_step < 0) goto done; /* nothing good to keep */
    if (f.result.interrupted) {
        /* the state holds the current parameters; the adapter written below the best ones */
        if (train_state_save(state_path, &f.job, &f.state, fingerprint, &e)) goto done;
        finetune_use_best(&f);
    }
    /* write what is in place: the best validated adapter (or the last good one) */
    char seed_s[32], steps_s[32], best_s[32], hp[256];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)o->seed);
    snprintf(steps_s, sizeof steps_s, "%d", f.result.steps);
    snprintf(best_s, sizeof best_s, "%d", f.state.best_step);
    snprintf(hp, sizeof hp, "{\"lr\":%g,\"batch\":%d,\"warmup\":%d,\"weight_decay\":%g,\"replay_frac\":%g,"
             "\"preserve_kl\":%g}",
             (double)o->lr, o->batch, o->warmup, (double)o->weight_decay,
             replay_path[0] ? (double)o->replay_frac : 0.0, (double)o->preserve_kl);
    const char *keys[] = {"seed", "steps", "best_step", "data_sha256", "train_config"};
    const char *vals[] = {seed_s, steps_s, best_s, data_sha, hp};
    int saved;
    if (fo.full) {
        const char *fk[] = {"seed", "steps", "best_step", "data_sha256", "train_config", "base_sha256", "generator"};
        const char *fv[] = {seed_s, steps_s, best_s, data_sha, hp, base_sha, "minilora train --full"};
        saved = checkpoint_save(out, &m, &vocab, 7, fk, fv, &e) == 0;
    } else {
        saved = lora_save(&f.adapter, out, base_sha, 5, keys, vals, &e) == 0;
    }
    if (!saved) goto done;
    if (failed) {
        fprintf(stderr, "%s: error: %s; kept the adapter of step %d in %s\n", cmd, diverged,
                f.state.best_step, out);
        rc = EXIT_RUNTIME;
        goto cleanup;
    }
    struct stat st;
    const long bytes = stat(out, &st) == 0 ? (long)st.st_size : -1;
    const double tok_s = f.result.seconds > 0 ? f.result.positions / f.result.seconds : 0;
    if (f.result.interrupted) {
        char kept[64];
        if (f.state.best_step >= 0) snprintf(kept, sizeof kept, "the best adapter so far (step %d)", f.state.best_step);
        else snprintf(kept, sizeof kept, "the adapter of step %d (not validated yet)", f.result.steps);
        fprintf(stderr, "%s: interrupted at step %d; wrote %s to %s and "
                        "the training state to %s (continue with --resume %s)\n",
                cmd, f.result.steps, kept, out, state_path, state_path);
        rc = 128 + f.result.interrupted;
        goto cleanup;
    }
    if (json) {
        /* JSON has no NaN: no validation (no val file, rank 0) gives null */
        size_t trained = 0; /* what the optimizer updated: A and B, or the Linear weights */
        for (int i = 0; i < f.n_tensors; i++) trained += f.tensors[i].n;
        char best_val[32] = "null";
        if (f.state.best_step >= 0 && isfinite(f.state.best_val))
            snprintf(best_val, sizeof best_val, "%.6g", f.state.best_val);
        printf("{\"adapter\":");
        text_json_print(stdout, out);
        printf(",\"rank\":%d,\"alpha\":%g,\"rslora\":%s,\"full\":%s,"
               "\"trainable_params\":%zu,\"params_per_rank\":%zu,\"steps\":%d,\"best_step\":%d,"
               "\"best_val_loss\":%s,\"seconds\":%.3f,\"tokens_per_s\":%.0f,\"bytes\":%ld,"
               "\"payload_bytes\":%zu,\"threads\":%d,\"blas_kernel\":\"%s\"}\n",
               fo.full ? 0 : fo.rank, (double)fo.alpha, fo.rslora ? "true" : "false",
               fo.full ? "true" : "false", trained, unit, f.result.steps,
               f.state.best_step, best_val, f.result.seconds,
               tok_s, bytes, fo.full ? 0 : 2 * f.adapter.n_params, f.g.nthreads, runtime_blas_kernel());
    } else {
        printf("wrote %s (%ld bytes): %d steps in %.1fs, %.0f tokens/s", out, bytes, f.result.steps,
               f.result.seconds, tok_s);
        if (f.state.best_step >= 0) printf(", best validation loss %.4f at step %d", f.state.best_val, f.state.best_step);
        printf("\n");
    }
    rc = EXIT_OK;
done:
    if (rc == EXIT_RUNTIME) cli_error(cmd, e.msg);
cleanup:
    if (have_f) finetune_free(&f);
    ds_free(&train);
    ds_free(&val);
    ds_free(&extra);
    ds_free(&replay);
    minigpt_free(&m);
    free(val_auto);
    free(fingerprint);
    return rc;
}
