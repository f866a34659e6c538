/* export_job.h — lora-export without the command line: an adapter (file or PEFT directory)
 * written as a HuggingFace PEFT directory, DIR/adapter_config.json and
 * DIR/adapter_model.safetensors (peft.h), that PEFT and every minilora command load.
 *
 * Every tensor of the adapter is copied, in file order and under its own name (so tensors
 * other helpers add, e.g. DoRA's magnitudes, travel too), in the source's dtype or the one
 * asked for; the metadata is kept (base_sha256 and provenance) with export_source_sha256 and
 * export_dtype added. The adapter is loaded on the base first: one trained on another base,
 * or not an adapter at all, is refused before anything is written.
 *
 * The directory: created when missing (built as DIR.tmp.XXXXXX beside it and renamed into
 * place, so a failure leaves no directory); an existing one may hold only the two files (an
 * earlier export, replaced) unless force is set, and its two files are then each replaced
 * atomically, the weights first. The output rule (file_checks.h) applies to both files.
 */
#ifndef EXPORT_JOB_H
#define EXPORT_JOB_H

#include <stddef.h>

#include "ml_error.h"
#include "safetensors.h"

typedef enum { EXPORT_DTYPE_SOURCE = 0, EXPORT_DTYPE_F16, EXPORT_DTYPE_F32 } export_dtype;

/* "source", "f16", "f32" by index (the --dtype choices); NULL past the last. Static strings. */
const char *export_dtype_name(int i);

typedef struct {
    const char *adapter; /* adapter file or PEFT directory */
    const char *base;    /* base checkpoint it was trained on */
    const char *dir;     /* the PEFT directory to write */
    export_dtype dtype;
    int force; /* write into an existing directory that holds other files */
} export_spec;

typedef struct {
    int rank, n_tensors, created; /* created: dir did not exist before */
    float alpha;
    st_dtype dtype; /* of the written tensors (of the first, when they differ) */
    size_t config_bytes, weights_bytes;
} export_report;

/* Runs the export. Returns 0, or -1 with one line in e (nothing written). */
int export_job_run(const export_spec *s, export_report *r, ml_error *e);

#endif
