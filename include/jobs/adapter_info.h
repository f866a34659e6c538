/* adapter_info.h — what an adapter file holds, for lora-info: its hyperparameters, targets and
 * layer shapes, sizes, the base it was trained on and its provenance metadata.
 *
 * Only a file that loads is described: its metadata, tensor names, shapes and values are
 * checked as lora_load does, on any base (a file trained on another base is described, with
 * matches_base = ADAPTER_BASE_NO, not refused).
 */
#ifndef ADAPTER_INFO_H
#define ADAPTER_INFO_H

#include <stddef.h>

#include "minigpt.h"
#include "ml_error.h"

typedef enum { ADAPTER_BASE_UNKNOWN, ADAPTER_BASE_YES, ADAPTER_BASE_NO } adapter_base_match;

typedef struct {
    char path[MINIGPT_MAX_NAME]; /* "blocks.0.attn.q_proj" */
    int out, in;                 /* of the Linear; A is (rank,in), B (out,rank) */
} adapter_info_layer;

/* All owned: free with adapter_info_free. */
typedef struct {
    int rank;              /* metadata "r" */
    double alpha;          /* metadata "lora_alpha" */
    int rslora;            /* metadata "use_rslora" is "true" */
    double scale;          /* alpha/r, or alpha/sqrt(r) with rsLoRA; 0 when r = 0 */
    unsigned targets;      /* bit (1 << role) per targeted role, as loaded */
    unsigned layer_mask;   /* bit (1 << block) per adapted block, as loaded */
    int layers_restricted; /* the file has layers_to_transform leaving out a block */
    int dora;              /* metadata "use_dora" is "true" */
    double dropout;        /* metadata "lora_dropout" (training only); 0 when absent */
    size_t dora_params;    /* DoRA's magnitudes (F32), Σ out; 0 without DoRA */
    int n_layers;
    adapter_info_layer layers[MINIGPT_MAX_LAYERS * MINIGPT_LINEARS_PER_BLOCK];
    int n_tensors;
    size_t params;        /* elements over every tensor */
    size_t payload_bytes; /* tensor data */
    size_t header_bytes;  /* 8 + header length */
    size_t file_bytes;
    const char *base_sha256; /* metadata "base_sha256"; NULL when absent; in meta_values */
    const char *init;        /* metadata "init" (kaiming, gaussian, pissa, olora); NULL when
                              * absent (files from before --init: kaiming); in meta_values */
    int converted_from_r;    /* metadata "converted_from_r": the rank trained before the pissa /
                              * olora conversion to the original base; 0 when absent */
    adapter_base_match matches_base;
    int n_meta; /* every metadata pair, in file order */
    char **meta_keys, **meta_values;
} adapter_info;

/* Describes the adapter at path into *a (zeroed first). m is the model it is loaded on to be
 * checked (installed and uninstalled again; m is left as it was); base_sha256 is m's file
 * digest, NULL when unknown (then matches_base is UNKNOWN or NO). */
int adapter_info_read(adapter_info *a, minigpt *m, const char *path, const char *base_sha256,
                      ml_error *e);
void adapter_info_free(adapter_info *a);

#endif
