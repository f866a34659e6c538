/* checkpoint.c — reading and writing base checkpoints (F32, or F16 / NF4 quantized). */
#include "checkpoint.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf4.h"
#include "sha256.h"

const char *ck_quant_name(ck_quant q) {
    switch (q) {
    case CK_F32: return "f32";
    case CK_F16: return "f16";
    case CK_NF4: return "nf4";
    case CK_NF4_DQ: return "nf4+dq";
    }
    return "?";
}

/* Metadata key must hold exactly want. */
static int meta_is(const st_file *f, const char *key, const char *want, ml_error *e) {
    const char *v = st_meta(f, key);
    char pb[64];
    if (!v) return ml_fail(e, "%s: an nf4 checkpoint needs metadata \"%s\"", f->label, key);
    if (strcmp(v, want) != 0)
        return ml_fail(e, "%s: metadata \"%s\" is '%s', expected '%s'", f->label, key,
                       ml_one_line(pb, sizeof pb, v), want);
    return 0;
}

int checkpoint_quant(const st_file *f, ck_quant *q, ml_error *e) {
    const char *s = st_meta(f, "quant");
    char pb[64];
    *q = CK_F32;
    if (!s) return 0;
    if (!strcmp(s, "f16")) {
        *q = CK_F16;
        return 0;
    }
    if (strcmp(s, "nf4") != 0)
        return ml_fail(e, "%s: metadata \"quant\" is '%s'; this build reads \"nf4\" and \"f16\"",
                       f->label, ml_one_line(pb, sizeof pb, s));
    const char *dq = st_meta(f, "nf4_double_quant"), *code = st_meta(f, "nf4_code");
    if (meta_is(f, "nf4_block_size", "64", e)) return -1;
    if (!dq || (strcmp(dq, "0") && strcmp(dq, "1")))
        return ml_fail(e, "%s: metadata \"nf4_double_quant\" must be \"0\" or \"1\"", f->label);
    if (*dq == '1' && meta_is(f, "nf4_dq_block_size", "256", e)) return -1;
    if (!code) return ml_fail(e, "%s: an nf4 checkpoint needs metadata \"nf4_code\"", f->label);
    if (nf4_check_code_json(code, f->label, e)) return -1;
    *q = *dq == '1' ? CK_NF4_DQ : CK_NF4;
    return 0;
}

/* Marks in nf4[i] the model tensors an NF4 checkpoint lists in "nf4_tensors", checking that
 * each is a tensor of m with the model's shape, listed once. */
static int read_nf4_list(const minigpt *m, const st_file *f, char *nf4, ml_error *e) {
    const char *js = st_meta(f, "nf4_tensors");
    if (!js) return ml_fail(e, "%s: an nf4 checkpoint needs metadata \"nf4_tensors\"", f->label);
    cJSON *o = cJSON_Parse(js);
    int rc = cJSON_IsObject(o)
                 ? 0
                 : ml_fail(e, "%s: metadata \"nf4_tensors\" is not a JSON object", f->label);
    char pb[80];
    for (const cJSON *c = o ? o->child : NULL; !rc && c; c = c->next) {
        const char *name = ml_one_line(pb, sizeof pb, c->string ? c->string : "");
        const int i = c->string ? minigpt_find_tensor(m, c->string) : -1;
        if (i < 0) {
            rc = ml_fail(e, "%s: \"nf4_tensors\" lists '%s', not a tensor of this model", f->label,
                         name);
            break;
        }
        if (nf4[i]) {
            rc = ml_fail(e, "%s: \"nf4_tensors\" lists '%s' twice", f->label, name);
            break;
        }
        const minigpt_tensor *t = &m->tensors[i];
        int same = cJSON_IsArray(c) && cJSON_GetArraySize(c) == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) {
            const cJSON *x = cJSON_GetArrayItem(c, d);
            same = cJSON_IsNumber(x) && x->valuedouble == (double)t->shape[d];
        }
        if (!same)
            rc = ml_fail(e, "%s: \"nf4_tensors\": the shape of '%s' is not the model's [%d%s%.0d]",
                         f->label, name, t->shape[0], t->ndim == 2 ? ", " : "",
                         t->ndim == 2 ? t->shape[1] : 0);
        nf4[i] = 1;
    }
    cJSON_Delete(o);
    return rc;
}

/* 1 if file tensor `name` is a quantized part of one of the tensors marked in nf4. */
static int is_nf4_part(const minigpt *m, const char *nf4, const char *name, int dq) {
    for (int i = 0; i < m->n_tensors; i++)
        if (nf4[i] && nf4_is_part(name, m->tensors[i].name, dq)) return 1;
    return 0;
}

int checkpoint_read_model(minigpt *m, const st_file *f, int allow_extra, ml_error *e) {
    const char *cj = st_meta(f, "config");
    if (!cj)
        return ml_fail(e, "%s: no \"config\" in __metadata__; not a minigpt checkpoint", f->label);
    minigpt_config cfg;
    ck_quant q;
    if (model_config_parse(&cfg, cj, f->label, e) || checkpoint_quant(f, &q, e)) return -1;
    if (!m->params) {
        if (minigpt_init(m, &cfg, e)) return -1;
    } else if (memcmp(&cfg, &m->cfg, sizeof cfg) != 0) {
        return ml_fail(e, "%s: config differs from the model being loaded into", f->label);
    }
    const int dq = q == CK_NF4_DQ;
    char *nf4 = calloc((size_t)m->n_tensors, 1);
    if (!nf4) return ml_fail(e, "%s: out of memory", f->label);
    int rc = (q == CK_NF4 || q == CK_NF4_DQ) ? read_nf4_list(m, f, nf4, e) : 0;
    for (int i = 0; !rc && i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        if (!nf4[i]) {
            rc = st_read_f32(f, t->name, q == CK_F16 ? ST_F16 : ST_F32, m->params + t->offset,
                             t->ndim, shape, e);
        } else if (st_find(f, t->name)) {
            rc = ml_fail(e, "%s: tensor '%s' is stored both unquantized and in \"nf4_tensors\"",
                         f->label, t->name);
        } else {
            rc = nf4_read_tensor(f, t->name, m->params + t->offset, t->numel, dq, e);
        }
    }
    for (int i = 0; !rc && !allow_extra && i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        if (minigpt_find_tensor(m, name) < 0 && !is_nf4_part(m, nf4, name, dq))
            rc = ml_fail(e, "%s: unexpected tensor '%s' in a minigpt checkpoint", f->label, name);
    }
    free(nf4);
    return rc ? -1 : 0;
}

/* Adds every parameter tensor (checkpoint names, table order) to w, stored as q says. */
static int add_tensors(const minigpt *m, st_writer *w, ck_quant q, ml_error *e) {
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        const float *x = m->params + t->offset;
        int rc = (q == CK_NF4 || q == CK_NF4_DQ) && t->kind == MG_LINEAR_WEIGHT
                     ? nf4_write_tensor(w, t->name, x, t->numel, q == CK_NF4_DQ, e)
                     : st_writer_add_f32(w, t->name, q == CK_F16 ? ST_F16 : ST_F32, x, t->ndim,
                                         shape, e);
        if (rc) return -1;
    }
    return 0;
}

/* The quant metadata of an NF4 checkpoint of m. */
static int add_nf4_meta(const minigpt *m, st_writer *w, int dq, ml_error *e) {
    char *code = nf4_code_json();
    size_t cap = (size_t)m->n_tensors * (MINIGPT_MAX_NAME + 32) + 4, k = 0;
    char *list = malloc(cap);
    int rc = (!code || !list) ? ml_fail(e, "out of memory") : 0;
    if (!rc) {
        list[k++] = '{';
        for (int i = 0; i < m->n_tensors; i++) {
            const minigpt_tensor *t = &m->tensors[i];
            if (t->kind != MG_LINEAR_WEIGHT) continue;
            k += (size_t)snprintf(list + k, cap - k, "%s\"%s\":[%d,%d]", k > 1 ? "," : "", t->name,
                                  t->shape[0], t->shape[1]);
        }
        snprintf(list + k, cap - k, "}");
    }
    if (!rc)
        rc = st_writer_meta(w, "quant", "nf4", e) || st_writer_meta(w, "nf4_block_size", "64", e) ||
             st_writer_meta(w, "nf4_double_quant", dq ? "1" : "0", e) ||
             (dq && st_writer_meta(w, "nf4_dq_block_size", "256", e)) ||
             st_writer_meta(w, "nf4_code", code, e) || st_writer_meta(w, "nf4_tensors", list, e);
    free(code);
    free(list);
    return rc ? -1 : 0;
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

int checkpoint_save_quant(const char *path, const minigpt *m, const tok_vocab *v, ck_quant q,
                          int n_meta, const char *const *keys, const char *const *values,
                          ml_error *e) {
    st_writer *w = st_writer_new();
    char *cfg = model_config_json(&m->cfg), *voc = tok_to_json(v);
    int rc = (!w || !cfg || !voc) ? ml_fail(e, "out of memory") : 0;
    if (!rc) rc = st_writer_meta(w, "format", "minigpt", e);
    if (!rc) rc = st_writer_meta(w, "config", cfg, e);
    if (!rc) rc = st_writer_meta(w, "vocab", voc, e);
    if (!rc && q == CK_F16) rc = st_writer_meta(w, "quant", "f16", e);
    if (!rc && (q == CK_NF4 || q == CK_NF4_DQ)) rc = add_nf4_meta(m, w, q == CK_NF4_DQ, e);
    for (int i = 0; !rc && i < n_meta; i++) rc = st_writer_meta(w, keys[i], values[i], e);
    if (!rc) rc = add_tensors(m, w, q, e);
    if (!rc) rc = st_writer_save(w, path, e);
    st_writer_free(w);
    free(cfg);
    free(voc);
    return rc;
}

int checkpoint_save(const char *path, const minigpt *m, const tok_vocab *v, int n_meta,
                    const char *const *keys, const char *const *values, ml_error *e) {
    return checkpoint_save_quant(path, m, v, CK_F32, n_meta, keys, values, e);
}
