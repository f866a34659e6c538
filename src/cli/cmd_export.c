/* cmd_export.c — `lora-export`: an adapter as a HuggingFace PEFT directory. Options in,
 * export_job_run (src/jobs/export_job.c), a summary out. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "export_job.h"
#include "opts.h"

int cmd_export(int argc, char **argv) {
    const char *cmd = argv[0];
    export_spec s = {.base = default_path("data/minigpt-base.safetensors")};
    int dtype = EXPORT_DTYPE_SOURCE;
    opt_def defs[] = {
        {"peft", OPT_PATH, &s.dir, 0, 0, "DIR",
         "write DIR/adapter_config.json and DIR/adapter_model.safetensors (required)"},
        {"base", OPT_PATH, &s.base, 0, 0, "FILE", "base checkpoint the adapter was trained on"},
        {"dtype", OPT_CHOICE, &(opt_choice){&dtype, export_dtype_name}, 0, 0, "NAME",
         "tensor dtype: source (as in the adapter), f16 or f32"},
        {"force", OPT_FLAG, &s.force, 0, 0, NULL,
         "write into an existing DIR that holds other files too"},
    };
    int pos;
    int r =
        opts_parse("--peft DIR [options] ADAPTER",
                   "Writes the adapter (a file, or a PEFT directory) as HuggingFace PEFT lays it\n"
                   "out: DIR/adapter_config.json (LoraConfig) and DIR/adapter_model.safetensors\n"
                   "(every tensor, PEFT names). DIR is created when missing; an existing DIR\n"
                   "may hold only those two files unless --force. Every lora-* command reads\n"
                   "DIR wherever it takes an adapter file.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (!s.dir) return usage_fail(cmd, "--peft DIR is required");
    if (argc - pos != 1) return usage_fail(cmd, "give exactly one ADAPTER");
    s.adapter = argv[pos];
    s.dtype = (export_dtype)dtype;
    ml_error e;
    export_report rep;
    if (export_job_run(&s, &rep, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    printf("wrote %s/: %s (%zu bytes), %s (%zu bytes: %d tensors, %s), rank %d, alpha %g\n", s.dir,
           "adapter_config.json", rep.config_bytes, "adapter_model.safetensors", rep.weights_bytes,
           rep.n_tensors, st_dtype_name(rep.dtype), rep.rank, (double)rep.alpha);
    return EXIT_OK;
}
