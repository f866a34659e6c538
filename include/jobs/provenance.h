/* provenance.h — the metadata a written file carries about how it was made.
 *
 * Every file minilora writes (base checkpoint, adapter, full fine-tune, merged model) records
 * the seed, the data's sha256, the training settings and the generator as string key/value
 * pairs in its safetensors metadata. A provenance is that list, built once by the job that
 * writes the file and handed to checkpoint_save / lora_save as (n, keys, values).
 */
#ifndef PROVENANCE_H
#define PROVENANCE_H

#include "ml_error.h"

#define PROV_MAX 24

typedef struct {
    int n;
    const char *keys[PROV_MAX]; /* borrowed: string literals */
    const char *vals[PROV_MAX]; /* owned copies */
} provenance;

/* Adds key = printf(fmt, ...). The key must outlive p (a literal); the value is copied.
 * Fails (out of memory, or more than PROV_MAX pairs) with a message naming the key. */
int prov_add(provenance *p, ml_error *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Frees the values; p is empty again. */
void prov_free(provenance *p);

#endif
