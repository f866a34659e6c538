/* quantize_job.h — lora-quantize without the command line: write a base checkpoint as F16 or
 * NF4 (QLoRA's 4-bit NormalFloat, optionally with double-quantized scales; checkpoint.h and
 * nf4.h describe the storage), read the written file back the way every command reads a base,
 * and measure the quantization error of each stored tensor against the F32 original.
 */
#ifndef QUANTIZE_JOB_H
#define QUANTIZE_JOB_H

#include <stddef.h>

#include "checkpoint.h"
#include "ml_error.h"

typedef struct {
    const char *base, *out;
    ck_quant quant; /* CK_F16, CK_NF4 or CK_NF4_DQ */
} quantize_spec;

/* The error of one stored tensor: original w, read back w'. */
typedef struct {
    char name[64];
    int shape[2], ndim;
    double max_abs; /* max |w - w'| */
    double rms_rel; /* sqrt(Σ (w - w')² / Σ w²) */
    double absmax;  /* max |w| */
} quantize_tensor_error;

typedef struct {
    size_t in_bytes, out_bytes;   /* file sizes */
    int n;                        /* tensors stored quantized (NF4: the Linear weights) */
    quantize_tensor_error *err;   /* (n); owned: quantize_report_free */
    double max_abs, rms_rel;      /* over all n tensors together */
    size_t n_quantized, n_params; /* values stored quantized, all parameters */
    char out_sha[65];
} quantize_report;

/* Runs the job; out is checked by the output rule (file_checks.h) before anything is read and
 * written atomically. A base that is already quantized (metadata "quant") is refused. Returns 0
 * with r filled (free with quantize_report_free), or -1 with e filled and nothing written. */
int quantize_job_run(const quantize_spec *s, quantize_report *r, ml_error *e);

void quantize_report_free(quantize_report *r);

#endif
