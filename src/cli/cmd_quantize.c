/* cmd_quantize.c — `lora-quantize`: store a base checkpoint in 4-bit NF4 (QLoRA's frozen base)
 * or F16 and print the quantization error of every stored tensor. Options in, quantize_job_run
 * (src/jobs/quantize_job.c), a table out. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "opts.h"
#include "quantize_job.h"

int cmd_quantize(int argc, char **argv) {
    const char *cmd = argv[0];
    quantize_spec s = {.base = default_path("data/minigpt-base.safetensors")};
    int nf4 = 0, f16 = 0, dq = 0;
    opt_def defs[] = {
        {"nf4", OPT_FLAG, &nf4, 0, 0, NULL,
         "4-bit NormalFloat, blocks of 64 with an F32 absmax each, for the Linear weights"},
        {"double-quant", OPT_FLAG, &dq, 0, 0, NULL,
         "with --nf4: absmax in int8, blocks of 256 with one F32 scale, minus their mean"},
        {"f16", OPT_FLAG, &f16, 0, 0, NULL, "every tensor in F16 instead (for comparison)"},
        {"out", OPT_PATH, &s.out, 0, 0, "FILE", "quantized checkpoint to write (required)"},
    };
    int pos;
    int r = opts_parse(
        "--nf4 [--double-quant] --out FILE [BASE]",
        "Writes BASE (default: the shipped base) with its 12 Linear weights in NF4, the storage\n"
        "of QLoRA's frozen base; the tied embedding/head, LayerNorms and biases stay F32. Every\n"
        "command that takes a base accepts the result (dequantized to F32 at load). Prints the\n"
        "file sizes and, per stored tensor, max |w - w'| and the relative RMS error.",
        NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (nf4 == f16) return usage_fail(cmd, "give exactly one of --nf4 and --f16");
    if (dq && !nf4) return usage_fail(cmd, "--double-quant needs --nf4");
    if (!s.out) return usage_fail(cmd, "--out is required");
    if (argc - pos > 1) return usage_fail(cmd, "at most one BASE checkpoint");
    if (pos < argc) s.base = argv[pos];
    s.quant = f16 ? CK_F16 : dq ? CK_NF4_DQ : CK_NF4;
    ml_error e;
    quantize_report rep;
    if (quantize_job_run(&s, &rep, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    printf("wrote %s: %s of %s\n", s.out,
           s.quant == CK_F16   ? "every tensor in F16"
           : s.quant == CK_NF4 ? "Linear weights in NF4 (blocks of 64, F32 absmax)"
                               : "Linear weights in NF4 (blocks of 64, absmax double-quantized "
                                 "to int8 in blocks of 256)",
           s.base);
    printf("bytes: %zu -> %zu (%.1f%% of the input file)\n", rep.in_bytes, rep.out_bytes,
           100.0 * (double)rep.out_bytes / (double)(rep.in_bytes ? rep.in_bytes : 1));
    printf("%d tensors stored quantized: %zu of %zu parameters%s\n\n", rep.n, rep.n_quantized,
           rep.n_params, s.quant == CK_F16 ? "" : "; the rest kept F32, bit for bit");
    printf("  %-34s %-10s %10s %11s %11s\n", "tensor", "shape", "max |w|", "max |err|",
           "rms rel err");
    for (int i = 0; i < rep.n; i++) {
        const quantize_tensor_error *t = &rep.err[i];
        char shape[32];
        if (t->ndim == 2) snprintf(shape, sizeof shape, "(%d, %d)", t->shape[0], t->shape[1]);
        else snprintf(shape, sizeof shape, "(%d)", t->shape[0]);
        printf("  %-34s %-10s %10.4g %11.4g %11.4g\n", t->name, shape, t->absmax, t->max_abs,
               t->rms_rel);
    }
    printf("  %-34s %-10s %10s %11.4g %11.4g\n", "all stored tensors", "", "", rep.max_abs,
           rep.rms_rel);
    printf("\nsha256 %s  %s (an adapter trained on this base records this sha)\n", rep.out_sha,
           s.out);
    quantize_report_free(&rep);
    return EXIT_OK;
}
