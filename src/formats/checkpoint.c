/* checkpoint.c — reading and writing base checkpoints. */
#include "checkpoint.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "safetensors.h"
#include "sha256.h"

int checkpoint_load(const char *path, minigpt *m, tok_vocab *v, char sha256[65], ml_error *e) {
    st_file f;
    memset(m, 0, sizeof *m);
    if (st_open(&f, path, e)) return -1;
    int rc = minigpt_load(m, &f, 0, e);
    const char *vj = st_meta(&f, "vocab");
    if (!rc && !vj) rc = ml_fail(e, "%s: no \"vocab\" in __metadata__", path);
    if (!rc) rc = tok_from_json(v, vj, path, e);
    if (!rc && v->n != m->cfg.vocab_size)
        rc = ml_fail(e, "%s: vocab has %d symbols but the config says vocab_size %d", path, v->n,
                     m->cfg.vocab_size);
    if (!rc && sha256) sha256_hex(f.bytes, f.size, sha256);
    st_close(&f);
    if (rc) minigpt_free(m);
    return rc;
}

int checkpoint_save(const char *path, const minigpt *m, const tok_vocab *v, int n_meta,
                    const char *const *keys, const char *const *values, ml_error *e) {
    st_writer *w = st_writer_new();
    char *cfg = minigpt_config_json(&m->cfg), *voc = tok_to_json(v);
    int rc = (!w || !cfg || !voc) ? ml_fail(e, "out of memory") : 0;
    if (!rc) rc = st_writer_meta(w, "format", "minigpt", e);
    if (!rc) rc = st_writer_meta(w, "config", cfg, e);
    if (!rc) rc = st_writer_meta(w, "vocab", voc, e);
    for (int i = 0; !rc && i < n_meta; i++) rc = st_writer_meta(w, keys[i], values[i], e);
    if (!rc) rc = minigpt_add_tensors(m, w, e);
    if (!rc) rc = st_writer_save(w, path, e);
    st_writer_free(w);
    free(cfg);
    free(voc);
    return rc;
}

int model_config_load(const char *path, minigpt_config *cfg, tok_vocab *v, ml_error *e) {
    char *text;
    size_t n;
    if (read_file(path, 1 << 20, &text, &n, e)) return -1;
    int rc = minigpt_config_parse(cfg, text, path, e);
    cJSON *o = rc ? NULL : cJSON_ParseWithOpts(text, NULL, 1);
    const cJSON *arr = o ? cJSON_GetObjectItemCaseSensitive(o, "vocab") : NULL;
    if (!rc && !arr) rc = ml_fail(e, "%s: no \"vocab\" array", path);
    char *vj = rc ? NULL : cJSON_PrintUnformatted(arr);
    if (!rc) rc = vj ? tok_from_json(v, vj, path, e) : ml_fail(e, "out of memory");
    if (!rc && v->n != cfg->vocab_size)
        rc = ml_fail(e, "%s: vocab has %d symbols but vocab_size is %d", path, v->n, cfg->vocab_size);
    free(vj);
    cJSON_Delete(o);
    free(text);
    return rc;
}
