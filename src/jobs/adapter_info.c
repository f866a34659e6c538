/* adapter_info.c — an adapter file described from its metadata and tensor table. */
#include "adapter_info.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "peft.h"
#include "safetensors.h"

/* Copies f's metadata into a (owned by a, also after a failure). */
static int copy_meta(adapter_info *a, const st_file *f, ml_error *e) {
    const size_t n = (size_t)f->n_meta + 1;
    if (!(a->meta_keys = calloc(n, sizeof *a->meta_keys)) ||
        !(a->meta_values = calloc(n, sizeof *a->meta_values)))
        return ml_fail(e, "out of memory");
    for (; a->n_meta < f->n_meta; a->n_meta++) {
        const int i = a->n_meta;
        a->meta_keys[i] = strdup(f->meta_keys[i]);
        a->meta_values[i] = strdup(f->meta_values[i]);
        if (!a->meta_keys[i] || !a->meta_values[i]) {
            a->n_meta++; /* free what was copied */
            return ml_fail(e, "out of memory");
        }
        if (!a->base_sha256 && !strcmp(f->meta_keys[i], "base_sha256"))
            a->base_sha256 = a->meta_values[i]; /* the first, as st_meta finds it */
        if (!a->init && !strcmp(f->meta_keys[i], "init")) a->init = a->meta_values[i];
    }
    return 0;
}

int adapter_info_read(adapter_info *a, minigpt *m, const char *path, const char *base_sha256,
                      ml_error *e) {
    memset(a, 0, sizeof *a);
    lora check;
    if (lora_load(&check, m, path, NULL, e)) return -1;
    a->targets = check.targets;
    a->layer_mask = check.layer_mask;
    a->layers_restricted = lora_layers_restricted(m, check.layer_mask);
    a->n_layers = check.n_layers;
    a->dora = check.dora;
    a->dropout = check.dropout;
    for (int i = 0; i < check.n_layers; i++) {
        const minigpt_linear *L = check.layers[i].slot;
        adapter_info_layer *l = &a->layers[i];
        memcpy(l->path, L->path, sizeof l->path);
        l->out = L->out, l->in = L->in;
        if (check.dora) a->dora_params += (size_t)L->out;
    }
    lora_free(&check);
    st_file f;
    st_dtype dt;
    if (adapter_open(&f, path, &dt, e)) return -1; /* a PEFT directory: its config's fields */
    if (copy_meta(a, &f, e)) {
        st_close(&f);
        adapter_info_free(a);
        return -1;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        a->params += f.tensors[i].numel;
        a->payload_bytes += f.tensors[i].end - f.tensors[i].begin;
    }
    a->n_tensors = f.n_tensors;
    a->header_bytes = f.data_start;
    a->file_bytes = f.size;
    const char *r = st_meta(&f, "r"), *al = st_meta(&f, "lora_alpha");
    const char *rs = st_meta(&f, "use_rslora"), *r0 = st_meta(&f, "converted_from_r");
    a->converted_from_r = r0 ? atoi(r0) : 0;
    a->rank = r ? atoi(r) : 0;
    a->alpha = al ? atof(al) : 0;
    a->rslora = rs && !strcmp(rs, "true");
    a->scale = a->rank ? (a->rslora ? a->alpha / sqrt((double)a->rank) : a->alpha / a->rank) : 0;
    a->matches_base = !a->base_sha256                                       ? ADAPTER_BASE_UNKNOWN
                      : base_sha256 && !strcmp(a->base_sha256, base_sha256) ? ADAPTER_BASE_YES
                                                                            : ADAPTER_BASE_NO;
    st_close(&f);
    return 0;
}

void adapter_info_free(adapter_info *a) {
    for (int i = 0; i < a->n_meta; i++) {
        free(a->meta_keys[i]);
        free(a->meta_values[i]);
    }
    free(a->meta_keys);
    free(a->meta_values);
    memset(a, 0, sizeof *a);
}
