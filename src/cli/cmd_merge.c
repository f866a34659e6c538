/* cmd_merge.c — `lora-merge`: fold an adapter into the base as a new F32 checkpoint, or mix
 * several adapters with weights (linear, cat, svd) into the base or into a new adapter, and
 * show how closely the result reproduces the adapters' logits. Options in, merge_job_run
 * (src/jobs/merge_job.c), a summary out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "merge_job.h"
#include "opts.h"
#include "text.h"

static const char *combine_name(int i) { return lora_mix_mode_name(i); }

enum { FILE_MAX = 4096 }; /* bytes of an adapter's file name given with a weight */

/* Splits "FILE:W" at its last ':' into s->adapters[k] (copied into file, the caller's) and
 * s->weights[k]; *weighted is set when a weight was given. A usage error (message into msg)
 * when W is not a number in -LORA_MAX_STRENGTH..LORA_MAX_STRENGTH. */
static int parse_adapter(const char *arg, merge_spec *s, int k, char file[FILE_MAX], int *weighted,
                         char *msg, size_t n) {
    const char *colon = strrchr(arg, ':');
    s->weights[k] = 1.0f;
    s->adapters[k] = arg;
    if (!colon) return 0;
    char *end;
    const double w = strtod(colon + 1, &end);
    char shown[64];
    if (end == colon + 1 || *end || !(w >= -LORA_MAX_STRENGTH && w <= LORA_MAX_STRENGTH)) {
        snprintf(msg, n,
                 "--adapter %s: the weight after the last ':' must be a number in -%g..%g "
                 "(FILE:W; write FILE:1 for a file name with ':')",
                 ml_one_line(shown, sizeof shown, arg), (double)LORA_MAX_STRENGTH,
                 (double)LORA_MAX_STRENGTH);
        return -1;
    }
    if ((size_t)(colon - arg) >= FILE_MAX) {
        snprintf(msg, n, "--adapter: a file name longer than %d bytes", FILE_MAX - 1);
        return -1;
    }
    memcpy(file, arg, (size_t)(colon - arg));
    file[colon - arg] = '\0';
    s->adapters[k] = file;
    s->weights[k] = (float)w;
    *weighted = 1;
    return 0;
}

int cmd_merge(int argc, char **argv) {
    const char *cmd = argv[0];
    merge_spec s = {
        .base = default_path("data/minigpt-base.safetensors"), .strength = 1.0f, .combine = -1};
    opt_list adapters = {0};
    opt_choice combine = {&s.combine, combine_name};
    opt_def defs[] = {
        {"adapter", OPT_LIST, &adapters, 0, 0, "FILE[:W]",
         "an adapter to merge, with weight W (default 1); repeat to mix several (required)"},
        {"out", OPT_PATH, &s.out, 0, 0, "FILE", "merged base checkpoint to write"},
        {"out-adapter", OPT_PATH, &s.out_adapter, 0, 0, "FILE",
         "write the mix as a new adapter instead of merging it into the base"},
        {"combine", OPT_CHOICE, &combine, 0, 0, "MODE",
         "how to mix: linear (PEFT's: A and B each summed with weights sqrt(W*scale); same rank "
         "and targets), cat (exact: rank = sum of ranks), svd (exact sum truncated to --rank) "
         "[cat when mixing]"},
        {"rank", OPT_INT, &s.svd_rank, 0, LORA_MAX_RANK, "R",
         "rank of an svd mix (0: the largest source rank, as PEFT)"},
        {"base", OPT_PATH, &s.base, 0, 0, "FILE", "base checkpoint"},
        {"scale", OPT_FLOAT, &s.strength, 0, LORA_MAX_STRENGTH, "S",
         "adapter strength: merge S times the adapter's update (S times every weight of a mix)"},
    };
    int pos;
    int r =
        opts_parse("--adapter FILE[:W] [--adapter FILE[:W] ...] (--out FILE | --out-adapter FILE) "
                   "[options] [DATA.jsonl ...]",
                   "Writes W + (alpha/r)·B·A for every adapted Linear into a new F32 base\n"
                   "checkpoint and prints the largest |logit difference| between the merged model\n"
                   "and base+adapter on DATA (default: the held-out files).\n"
                   "Several --adapter FILE:W (adapters of the same base), a weight, --combine or\n"
                   "--out-adapter make a mix, as PEFT's add_weighted_adapter: its update is\n"
                   "merged into the base (--out) or written as an adapter of rank r, alpha r\n"
                   "(--out-adapter) whose metadata lists the sources' files, sha256 and weights.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (!adapters.n || (!s.out && !s.out_adapter))
        return usage_fail(cmd, "--adapter and --out (or --out-adapter) are required");
    if (s.out && s.out_adapter)
        return usage_fail(cmd, "--out and --out-adapter exclude each other: a merged base or an "
                               "adapter");
    if (adapters.n > MERGE_MAX_ADAPTERS) return usage_fail(cmd, "at most 16 --adapter");
    int weighted = 0;
    char msg[256];
    static char files[MERGE_MAX_ADAPTERS][FILE_MAX];
    for (int k = 0; k < adapters.n; k++)
        if (parse_adapter(adapters.v[k], &s, k, files[k], &weighted, msg, sizeof msg))
            return usage_fail(cmd, msg);
    s.n_adapters = adapters.n;
    s.mix = adapters.n > 1 || weighted || s.combine >= 0 || s.out_adapter;
    if (s.svd_rank && s.combine != LORA_MIX_SVD)
        return usage_fail(cmd, "--rank sets the rank of --combine svd only");
    if (s.combine < 0) s.combine = LORA_MIX_CAT;
    if (argc - pos > MERGE_MAX_FILES) return usage_fail(cmd, "at most 16 DATA files");
    const char *defaults[MERGE_MAX_FILES];
    s.files = pos < argc ? (const char **)argv + pos : defaults;
    s.n_files = pos < argc ? argc - pos : default_eval_files(defaults, MERGE_MAX_FILES);
    ml_error e;
    merge_report rep;
    if (merge_job_run(&s, &rep, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    if (!s.mix) {
        printf("wrote %s: W + %g·B·A (rank %d, alpha %g) in %d Linear layers\n", s.out,
               (double)rep.scale, rep.rank, (double)rep.alpha, rep.n_layers);
        printf("max |logit(merged) - logit(base+adapter)| = %.3g over %zu logits (largest logit "
               "%.3g)\n",
               rep.max_diff, rep.n_logits, rep.max_logit);
        return EXIT_OK;
    }
    printf("mixed %d adapters (%s", s.n_adapters, lora_mix_mode_name(s.combine));
    for (int k = 0; k < s.n_adapters; k++)
        printf("%s%s:%g", k ? ", " : ": ", s.adapters[k], (double)s.weights[k]);
    printf(") into rank %d in %d Linear layers\n", rep.rank, rep.n_layers);
    if (s.out) {
        printf("wrote %s: W + B·A of the mix\n", s.out);
        printf("max |logit(merged) - logit(base+mix)| = %.3g over %zu logits (largest logit "
               "%.3g)\n",
               rep.max_diff, rep.n_logits, rep.max_logit);
    } else {
        printf("wrote %s: an adapter of rank %d, alpha %g\n", s.out_adapter, rep.rank,
               (double)rep.alpha);
        printf("max |logit(base+file) - logit(base+mix)| = %.3g over %zu logits (F16 rounding; "
               "largest logit %.3g)\n",
               rep.max_diff, rep.n_logits, rep.max_logit);
    }
    return EXIT_OK;
}
