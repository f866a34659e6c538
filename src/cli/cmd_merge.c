/* cmd_merge.c — `lora-merge`: fold an adapter into the base (W + s·B·A) as a new F32
 * checkpoint, and show how closely the merged model reproduces the adapter's logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "dataset.h"
#include "eval.h"
#include "opts.h"
#include "sha256.h"

int cmd_merge(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors"), *adapter = NULL, *out = NULL;
    opt_def defs[] = {
        {"adapter", OPT_STRING, &adapter, 0, 0, "FILE", "the LoRA adapter to merge (required)"},
        {"out", OPT_STRING, &out, 0, 0, "FILE", "merged checkpoint to write (required)"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
    };
    int pos;
    int r = opts_parse("--adapter FILE --out FILE [options] [DATA.jsonl ...]",
                       "Writes W + (alpha/r)·B·A for every adapted Linear into a new F32 base\n"
                       "checkpoint and prints the largest |logit difference| between the merged model\n"
                       "and base+adapter on DATA (default: the held-out files).",
                       NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (!adapter || !out) return usage_fail(cmd, "--adapter and --out are required");
    const char *defaults[16];
    int ndefaults = 0;
    for (; eval_default_files[ndefaults]; ndefaults++)
        defaults[ndefaults] = default_path(eval_default_files[ndefaults]);
    const char **files = pos < argc ? (const char **)argv + pos : defaults;
    const int nfiles = pos < argc ? argc - pos : ndefaults;
    ml_error e;
    loaded_model lm = {0};
    dataset data[16] = {{0}};
    const dataset *sets[16];
    float *before = NULL, *after = NULL;
    int rc = EXIT_RUNTIME;
    if (nfiles > 16) return usage_fail(cmd, "at most 16 DATA files");
    if (loaded_model_init(&lm, base_path, adapter, &e)) goto done;
    if (lm.m != &lm.base) {
        ml_fail(&e, "%s: not a LoRA adapter (a full checkpoint needs no merging)", adapter);
        goto done;
    }
    for (int f = 0; f < nfiles; f++) {
        if (ds_load(&data[f], files[f], &lm.vocab, lm.base.cfg.context, &e)) goto done;
        sets[f] = &data[f];
    }
    const char *inputs[18] = {base_path, adapter};
    for (int f = 0; f < nfiles; f++) inputs[2 + f] = files[f];
    if (check_not_input(out, inputs, 2 + nfiles, &e) || check_writable(out, &e)) goto done;
    size_t n_before, n_after;
    if (!(before = eval_logits(&lm.base, sets, nfiles, &n_before, &e))) goto done;
    lora_merge_into(&lm.adapter);
    const int rank = lm.adapter.rank;
    const float alpha = lm.adapter.alpha, scale = lm.adapter.scale;
    const int n_layers = lm.adapter.n_layers;
    lora_free(&lm.adapter); /* uninstall: the merged weights now carry the update */
    if (!(after = eval_logits(&lm.base, sets, nfiles, &n_after, &e))) goto done;
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < n_before; i++) {
        const double d = fabs((double)after[i] - before[i]);
        if (d > maxd) maxd = d;
        if (fabs(before[i]) > maxv) maxv = fabs(before[i]);
    }
    char adapter_sha[65], rank_s[16], alpha_s[32];
    if (sha256_file_hex(adapter, adapter_sha, &e)) goto done;
    snprintf(rank_s, sizeof rank_s, "%d", rank);
    snprintf(alpha_s, sizeof alpha_s, "%g", (double)alpha);
    const char *keys[] = {"merged_adapter", "merged_adapter_sha256", "base_sha256", "lora_r", "lora_alpha", "generator"};
    const char *vals[] = {adapter, adapter_sha, lm.base_sha, rank_s, alpha_s, "minilora merge"};
    if (checkpoint_save(out, &lm.base, &lm.vocab, 6, keys, vals, &e)) goto done;
    printf("wrote %s: W + %g·B·A (rank %d, alpha %g) in %d Linear layers\n", out, (double)scale, rank,
           (double)alpha, n_layers);
    printf("max |logit(merged) - logit(base+adapter)| = %.3g over %zu logits (largest logit %.3g)\n", maxd,
           n_before, maxv);
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) cli_error(cmd, e.msg);
    free(before);
    free(after);
    for (int f = 0; f < nfiles && f < 16; f++) ds_free(&data[f]);
    loaded_model_free(&lm);
    return rc;
}
