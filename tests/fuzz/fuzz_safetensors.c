/* fuzz_safetensors.c — libFuzzer target for the safetensors reader and what is built on it.
 *
 * One input is one whole file. It goes through:
 *   1. st_parse. Refused: the message must be one non-empty line starting with the label.
 *   2. Accepted: every tensor is read back with its own dtype and shape (st_read_f32 for
 *      F32/F16, st_read_i32 for I32, st_read_u8 for U8/I8) and must succeed except for non-finite floats; reads
 *      with another dtype or another shape must fail; st_find and st_meta must return the
 *      parsed entries; the tensors must tile the data section. What was read is written back
 *      with st_writer (no I64 there) and parses to the same tensors, bytes and metadata.
 *   3. The base-checkpoint path (what checkpoint_load does after st_open):
 *      checkpoint_read_model from the "config" metadata when that config makes a small model,
 *      then tok_from_json on the "vocab" metadata and the vocab_size check.
 *   4. The adapter path: when the file has "peft_type" metadata, lora_load of the same bytes
 *      (through an in-memory file) onto a tiny base model (FZ_TINY_* below).
 *
 * Build: make fuzz (see mk/fuzz.mk). Replay without libFuzzer: tests/test_regress.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_common.h"
#include "lora.h"
#include "minigpt.h"
#include "model_config.h"
#include "safetensors.h"
#include "tokenizer.h"

#define FZ_ST_LABEL "fuzz.safetensors"

/* The tiny base the adapter path loads onto; the seed adapters in
 * tests/fuzz/corpus/safetensors/ are made for it and carry FZ_TINY_SHA as base_sha256. */
#define FZ_TINY_CONFIG                                                                             \
    "{\"vocab_size\":4,\"d_model\":4,\"n_heads\":1,\"n_layers\":1,\"d_ff\":4,\"context\":4,"       \
    "\"ln_eps\":1e-05,\"rope_base\":10000}"
#define FZ_TINY_SHA "00000000000000000000000000000000000000000000000000000000000000aa"

/* How often each deeper path accepted its input (the replay test checks the seeds reach it). */
static int fz_st_models_loaded, fz_st_adapters_loaded, fz_st_adapters_refused;

/* Largest model the checkpoint path builds from a fuzzed config (floats). */
#define FZ_MAX_MODEL_FLOATS ((size_t)1 << 20)

static size_t model_floats(const minigpt_config *c) {
    const size_t V = (size_t)c->vocab_size, C = (size_t)c->d_model, F = (size_t)c->d_ff;
    const size_t L = (size_t)c->n_layers, T = (size_t)c->context;
    return V * C + L * (5 * C + 4 * C * C + 2 * C * F + F) + 2 * C + T * (C / (size_t)c->n_heads);
}

/* Step 2: reading every tensor back. */
static void check_tensors(const st_file *f) {
    size_t pos = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        ml_error e = {{0}};
        if (st_find(f, t->name) != t) fz_fail("st_find('%s') does not return its entry", t->name);
        if (t->begin != pos) fz_fail("tensor '%s' begins at %zu, not %zu", t->name, t->begin, pos);
        pos = t->end;
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            fz_fail("tensor '%s' has ndim %d", t->name, t->ndim);
            continue;
        }
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        if (numel != t->numel || t->end - t->begin != numel * st_dtype_size(t->dtype))
            fz_fail("tensor '%s': numel %zu / bytes %zu disagree with its shape", t->name, t->numel,
                    t->end - t->begin);
        /* numel <= file size: the byte count was checked against the data section */
        void *dst = malloc(t->numel * 4 + 4);
        if (!dst) abort();
        int rc;
        switch (t->dtype) {
        case ST_F32:
        case ST_F16:
            rc = st_read_f32(f, t->name, t->dtype, dst, t->ndim, t->shape, &e);
            if (rc) {
                fz_check_msg("st_read_f32", &e, FZ_ST_LABEL);
                if (!strstr(e.msg, " element "))
                    fz_fail("st_read_f32 refused '%s': %s", t->name, e.msg);
            } else {
                for (size_t k = 0; k < t->numel; k++)
                    if (!isfinite(((float *)dst)[k]))
                        fz_fail("st_read_f32 returned a non-finite value");
            }
            /* the other float dtype must be refused */
            if (!st_read_f32(f, t->name, t->dtype == ST_F32 ? ST_F16 : ST_F32, dst, t->ndim,
                             t->shape, &e))
                fz_fail("st_read_f32 accepted '%s' with the wrong dtype", t->name);
            fz_check_msg("st_read_f32 (wrong dtype)", &e, FZ_ST_LABEL);
            if (!st_read_i32(f, t->name, dst, t->ndim, t->shape, &e))
                fz_fail("st_read_i32 accepted float tensor '%s'", t->name);
            fz_check_msg("st_read_i32 (wrong dtype)", &e, FZ_ST_LABEL);
            break;
        case ST_I32:
            if (st_read_i32(f, t->name, dst, t->ndim, t->shape, &e))
                fz_fail("st_read_i32 refused '%s': %s", t->name, e.msg);
            else if (t->numel &&
                     memcmp(dst, f->bytes + f->data_start + t->begin, t->numel * 4) != 0)
                fz_fail("st_read_i32 changed the bytes of '%s'", t->name); /* x86: little-endian */
            if (!st_read_f32(f, t->name, ST_F32, dst, t->ndim, t->shape, &e))
                fz_fail("st_read_f32 accepted I32 tensor '%s'", t->name);
            fz_check_msg("st_read_f32 (I32)", &e, FZ_ST_LABEL);
            break;
        case ST_U8:
        case ST_I8:
            if (st_read_u8(f, t->name, t->dtype, dst, t->ndim, t->shape, &e))
                fz_fail("st_read_u8 refused '%s': %s", t->name, e.msg);
            else if (t->numel && memcmp(dst, f->bytes + f->data_start + t->begin, t->numel) != 0)
                fz_fail("st_read_u8 changed the bytes of '%s'", t->name);
            if (!st_read_u8(f, t->name, t->dtype == ST_U8 ? ST_I8 : ST_U8, dst, t->ndim, t->shape,
                            &e) ||
                !st_read_f32(f, t->name, ST_F32, dst, t->ndim, t->shape, &e))
                fz_fail("byte tensor '%s' was read with another dtype", t->name);
            fz_check_msg("st_read (byte tensor, wrong dtype)", &e, FZ_ST_LABEL);
            break;
        case ST_I64:
            if (!st_read_f32(f, t->name, ST_F32, dst, t->ndim, t->shape, &e) ||
                !st_read_i32(f, t->name, dst, t->ndim, t->shape, &e))
                fz_fail("I64 tensor '%s' was read as F32 or I32", t->name);
            fz_check_msg("st_read (I64)", &e, FZ_ST_LABEL);
            break;
        default: fz_fail("tensor '%s' has dtype %d", t->name, (int)t->dtype);
        }
        /* another shape must be refused */
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_I32) {
            int64_t other[ST_MAX_DIMS + 1] = {0};
            memcpy(other, t->shape, sizeof t->shape);
            int nd = t->ndim;
            if (nd > 0) other[0] += 1;
            else nd = 1;
            rc = t->dtype == ST_I32 ? st_read_i32(f, t->name, dst, nd, other, &e)
                                    : st_read_f32(f, t->name, t->dtype, dst, nd, other, &e);
            if (!rc) fz_fail("tensor '%s' was read with another shape", t->name);
            else fz_check_msg("st_read (wrong shape)", &e, FZ_ST_LABEL);
        }
        free(dst);
    }
    if (pos != f->size - f->data_start)
        fz_fail("tensors end at %zu, the data section at %zu", pos, f->size - f->data_start);
    ml_error e = {{0}};
    float one;
    if (!st_read_f32(f, "no such tensor \x01", ST_F32, &one, 0, NULL, &e))
        fz_fail("st_read_f32 found a tensor that is not there");
    for (int i = 0; i < f->n_meta; i++)
        if (st_meta(f, f->meta_keys[i]) != f->meta_values[i])
            fz_fail("st_meta('%s') does not return its value", f->meta_keys[i]);
    static const char *const keys[] = {"format",         "config",     "vocab",
                                       "peft_type",      "r",          "lora_alpha",
                                       "target_modules", "use_rslora", "base_sha256"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = st_meta(f, keys[k]);
        if (v && strlen(v) > f->size) fz_fail("st_meta('%s') is longer than the file", keys[k]);
    }
}

/* Step 2b: whatever the reader accepts, the writer writes back (F32, F16, I32, U8 and I8 tensors with
 * finite values; the writer has no I64) and the reader reads the same tensors and metadata. */
static void check_writer_roundtrip(const st_file *f) {
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].dtype == ST_I64) return;
    st_writer *w = st_writer_new();
    if (!w) abort();
    ml_error e = {{0}};
    int rc = 0;
    for (int i = 0; !rc && i < f->n_meta; i++) {
        rc = st_writer_meta(w, f->meta_keys[i], f->meta_values[i], &e);
        if (rc) fz_fail("writer refuses metadata the reader accepted: %s", e.msg);
    }
    for (int i = 0; !rc && i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        void *buf = malloc(t->numel * 4 + 4);
        if (!buf) abort();
        if (t->dtype == ST_I32) {
            rc = st_read_i32(f, t->name, buf, t->ndim, t->shape, &e) ||
                 st_writer_add_i32(w, t->name, buf, t->ndim, t->shape, &e);
            if (rc) fz_fail("I32 tensor '%s' does not write back: %s", t->name, e.msg);
        } else if (t->dtype == ST_U8 || t->dtype == ST_I8) {
            rc = st_read_u8(f, t->name, t->dtype, buf, t->ndim, t->shape, &e) ||
                 st_writer_add_u8(w, t->name, t->dtype, buf, t->ndim, t->shape, &e);
            if (rc) fz_fail("byte tensor '%s' does not write back: %s", t->name, e.msg);
        } else if (st_read_f32(f, t->name, t->dtype, buf, t->ndim, t->shape, &e)) {
            rc = 1; /* a non-finite value: the writer refuses those by design */
        } else if (st_writer_add_f32(w, t->name, t->dtype, buf, t->ndim, t->shape, &e)) {
            fz_fail("tensor '%s' does not write back: %s", t->name, e.msg);
            rc = 1;
        }
        free(buf);
    }
    uint8_t *out = NULL;
    size_t n = 0;
    if (!rc && st_writer_serialize(w, &out, &n, &e)) {
        fz_fail("st_writer_serialize: %s", e.msg);
        rc = 1;
    }
    st_writer_free(w);
    if (rc) return;
    st_file g;
    if (st_parse(&g, "again", out, n, &e)) { /* takes out */
        fz_fail("the writer's copy does not parse: %s", e.msg);
        return;
    }
    if (g.n_tensors != f->n_tensors || g.n_meta != f->n_meta)
        fz_fail("the writer's copy differs in size");
    for (int i = 0; i < g.n_tensors && i < f->n_tensors; i++) {
        const st_tensor *a = &f->tensors[i], *b = &g.tensors[i];
        if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim ||
            memcmp(a->shape, b->shape, sizeof a->shape) || a->end - a->begin != b->end - b->begin ||
            memcmp(f->bytes + f->data_start + a->begin, g.bytes + g.data_start + b->begin,
                   a->end - a->begin) != 0)
            fz_fail("tensor %d ('%s') changes through the writer", i, a->name);
    }
    for (int i = 0; i < g.n_meta && i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], g.meta_keys[i]) || strcmp(f->meta_values[i], g.meta_values[i]))
            fz_fail("metadata '%s' changes through the writer", f->meta_keys[i]);
    st_close(&g);
}

/* Step 3: what checkpoint_load does with an opened file. */
static void check_checkpoint(const st_file *f) {
    const char *cj = st_meta(f, "config");
    if (!cj) return;
    minigpt_config cfg;
    ml_error e = {{0}};
    if (model_config_parse(&cfg, cj, f->label, &e)) {
        fz_check_msg("model_config_parse (metadata)", &e, FZ_ST_LABEL);
        return;
    }
    if (model_floats(&cfg) > FZ_MAX_MODEL_FLOATS) return;
    minigpt m;
    memset(&m, 0, sizeof m);
    int rc = checkpoint_read_model(&m, f, 0, &e);
    if (rc) {
        fz_check_msg("checkpoint_read_model", &e, FZ_ST_LABEL);
    } else {
        fz_st_models_loaded++;
        for (size_t i = 0; i < m.n_params; i++)
            if (!isfinite(m.params[i]))
                fz_fail("checkpoint_read_model left a non-finite parameter");
        const char *vj = st_meta(f, "vocab");
        tok_vocab v;
        if (vj && tok_from_json(&v, vj, f->label, &e))
            fz_check_msg("tok_from_json (metadata)", &e, FZ_ST_LABEL);
    }
    minigpt_free(&m);
}

/* Step 4: lora_load onto the tiny base: refused files give a one-line message even when the
 * metadata values quoted in it hold control characters. */
static void check_adapter(const st_file *f, const uint8_t *data, size_t size) {
    static minigpt base;
    static int ready;
    if (!st_meta(f, "peft_type")) return;
    if (!ready) {
        minigpt_config cfg;
        ml_error e;
        if (model_config_parse(&cfg, FZ_TINY_CONFIG, "tiny", &e) || minigpt_init(&base, &cfg, &e)) {
            fprintf(stderr, "fuzz_safetensors: cannot build the tiny base: %s\n", e.msg);
            abort();
        }
        ready = 1;
    }
    const char *path = fz_memfile(data, size);
    if (!path) return;
    lora a;
    ml_error e = {{0}};
    if (lora_load(&a, &base, path, FZ_TINY_SHA, &e)) {
        fz_st_adapters_refused++;
        fz_check_msg("lora_load", &e, path);
    } else {
        fz_st_adapters_loaded++;
        if (a.rank < 0 || a.rank > LORA_MAX_RANK || !(a.scale >= 0) || !isfinite(a.scale))
            fz_fail("lora_load accepted rank %d scale %g", a.rank, (double)a.scale);
        for (size_t i = 0; i < a.n_params; i++)
            if (!isfinite(a.params[i])) fz_fail("lora_load left a non-finite parameter");
        lora_free(&a);
    }
    for (int i = 0; i < base.n_linears; i++)
        if (base.linears[i].ext) fz_fail("lora_load left a plug-in installed in the base");
}

int fuzz_safetensors_one(const uint8_t *data, size_t size, ml_error *err) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) abort();
    if (size) memcpy(copy, data, size);
    st_file f;
    ml_error e = {{0}};
    if (st_parse(&f, FZ_ST_LABEL, copy, size, &e)) { /* takes ownership of copy */
        fz_check_msg("st_parse", &e, FZ_ST_LABEL);
        if (f.bytes || f.tensors || f.n_tensors || f.n_meta)
            fz_fail("st_parse left *f filled on failure");
        st_close(&f);
        if (err) *err = e;
        return 0;
    }
    if (f.size != size || f.data_start < 8 || f.data_start > size)
        fz_fail("st_parse: bad framing fields");
    check_tensors(&f);
    check_writer_roundtrip(&f);
    check_checkpoint(&f);
    check_adapter(&f, data, size);
    st_close(&f);
    return 1;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_safetensors_one(data, size, NULL);
    return 0;
}
#endif
