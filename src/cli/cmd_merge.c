/* cmd_merge.c — `lora-merge`: fold an adapter into the base as a new F32 checkpoint and show
 * how closely the merged model reproduces the adapter's logits. Options in, merge_job_run
 * (src/jobs/merge_job.c), a summary out. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "merge_job.h"
#include "opts.h"

int cmd_merge(int argc, char **argv) {
    const char *cmd = argv[0];
    merge_spec s = {.base = default_path("data/minigpt-base.safetensors"), .strength = 1.0f};
    opt_def defs[] = {
        {"adapter", OPT_PATH, &s.adapter, 0, 0, "FILE", "the LoRA adapter to merge (required)"},
        {"out", OPT_PATH, &s.out, 0, 0, "FILE", "merged checkpoint to write (required)"},
        {"base", OPT_PATH, &s.base, 0, 0, "FILE", "base checkpoint"},
        {"scale", OPT_FLOAT, &s.strength, 0, LORA_MAX_STRENGTH, "S",
         "adapter strength: merge S times the adapter's update"},
    };
    int pos;
    int r =
        opts_parse("--adapter FILE --out FILE [options] [DATA.jsonl ...]",
                   "Writes W + (alpha/r)·B·A for every adapted Linear into a new F32 base\n"
                   "checkpoint and prints the largest |logit difference| between the merged model\n"
                   "and base+adapter on DATA (default: the held-out files).",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (!s.adapter || !s.out) return usage_fail(cmd, "--adapter and --out are required");
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
    printf("wrote %s: W + %g·B·A (rank %d, alpha %g) in %d Linear layers\n", s.out,
           (double)rep.scale, rep.rank, (double)rep.alpha, rep.n_layers);
    printf(
        "max |logit(merged) - logit(base+adapter)| = %.3g over %zu logits (largest logit %.3g)\n",
        rep.max_diff, rep.n_logits, rep.max_logit);
    return EXIT_OK;
}
