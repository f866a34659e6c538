/* checkpoint.c — reading and writing base checkpoints. */
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

int checkpoint_read_model(minigpt *m, const st_file *f, int allow_extra, ml_error *e) {
    const char *cj = st_meta(f, "config");
    if (!cj)
        return ml_fail(e, "%s: no \"config\" in __metadata__; not a minigpt checkpoint", f->label);
    minigpt_config cfg;
    if (model_config_parse(&cfg, cj, f->label, e)) return -1;
    if (!m->params) {
        if (minigpt_init(m, &cfg, e)) return -1;
    } else if (memcmp(&cfg, &m->cfg, sizeof cfg) != 0) {
        return ml_fail(e, "%s: config differs from the model being loaded into", f->label);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        if (st_read_f32(f, t->name, ST_F32, m->params + t->offset, t->ndim, shape, e)) return -1;
    }
    if (!allow_extra)
        for (int i = 0; i < f->n_tensors; i++)
            if (minigpt_find_tensor(m, f->tensors[i].name) < 0)
                return ml_fail(e, "%s: unexpected tensor '%s' in a minigpt checkpoint", f->label,
                               f->tensors[i].name);
    return 0;
}

/* Adds every parameter tensor (F32, checkpoint names, table order) to w. */
static int add_tensors(const minigpt *m, st_writer *w, ml_error *e) {
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        if (st_writer_add_f32(w, t->name, ST_F32, m->params + t->offset, t->ndim, shape, e))
            return -1;
    }
    return 0;
}

int checkpoint_load(const char *path, minigpt *m, tok_vocab *v, char sha256[65], ml_error *e) {
    st_file f;
    memset(m, 0, sizeof *m);
    if (st_open(&f, path, e)) return -1;
    int rc = checkpoint_read_model(m, &f, 0, e);
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
    char *cfg = model_config_json(&m->cfg), *voc = tok_to_json(v);
    int rc = (!w || !cfg || !voc) ? ml_fail(e, "out of memory") : 0;
    if (!rc) rc = st_writer_meta(w, "format", "minigpt", e);
    if (!rc) rc = st_writer_meta(w, "config", cfg, e);
    if (!rc) rc = st_writer_meta(w, "vocab", voc, e);
    for (int i = 0; !rc && i < n_meta; i++) rc = st_writer_meta(w, keys[i], values[i], e);
    if (!rc) rc = add_tensors(m, w, e);
    if (!rc) rc = st_writer_save(w, path, e);
    st_writer_free(w);
    free(cfg);
    free(voc);
    return rc;
}
