/* test_nf4.c — NF4 quantization (nf4.h) and NF4 / F16 checkpoints (checkpoint.h): the code
 * table, the error bounds, exact codes, double quantization, bit-for-bit agreement with the
 * independent NumPy implementation (tests/reference/gen_nf4_reference.py, committed fixture
 * tests/fixtures/nf4_reference.safetensors), and corrupt files refused with a message naming the
 * tensor or key. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "nf4.h"
#include "rng.h"
#include "test_util.h"

#define FIXTURE "tests/fixtures/nf4_reference.safetensors"

/* QLoRA, Appendix E, typed in again here (not taken from nf4.c). */
static const double paper_code[16] = {-1.0,
                                      -0.6961928009986877,
                                      -0.5250730514526367,
                                      -0.39491748809814453,
                                      -0.28444138169288635,
                                      -0.18477343022823334,
                                      -0.09105003625154495,
                                      0.0,
                                      0.07958029955625534,
                                      0.16093020141124725,
                                      0.24611230194568634,
                                      0.33791524171829224,
                                      0.44070982933044434,
                                      0.5626170039176941,
                                      0.7229568362236023,
                                      1.0};

/* The largest half gap between neighbouring codes: the worst rounding error at absmax 1. */
static double max_half_gap(void) {
    double h = 0;
    for (int i = 0; i < 15; i++)
        if ((paper_code[i + 1] - paper_code[i]) / 2 > h)
            h = (paper_code[i + 1] - paper_code[i]) / 2;
    return h;
}

static void test_code_table(void **state) {
    for (int i = 0; i < 16; i++) assert_true(nf4_code[i] == (float)paper_code[i]);
    for (int i = 0; i < 15; i++) assert_true(nf4_code[i] < nf4_code[i + 1]);
    assert_true(nf4_code[7] == 0.0f && nf4_code[0] == -1.0f && nf4_code[15] == 1.0f);
    /* the metadata form reads back to the same floats, and a changed entry is refused */
    char *js = nf4_code_json();
    assert_non_null(js);
    ml_error e;
    assert_int_equal(nf4_check_code_json(js, "x", &e), 0);
    char *p = strstr(js, "0.0795802996");
    assert_non_null(p);
    p[5] = '9'; /* 0.07959...: another float */
    assert_int_equal(nf4_check_code_json(js, "x.st", &e), -1);
    assert_non_null(strstr(e.msg, "x.st: metadata \"nf4_code\" entry 8"));
    free(js);
}

/* A code value scaled by the block's absmax quantizes to itself and dequantizes exactly. */
static void test_exact_codes(void **state) {
    for (int i = 0; i < 16; i++) assert_int_equal(nf4_encode(nf4_code[i]), i);
    const float scales[] = {1.0f, 3.7f, 0.015625f, 123.25f};
    for (int k = 0; k < 4; k++) {
        float w[NF4_BLOCK], back[NF4_BLOCK], absmax[1];
        uint8_t packed[NF4_BLOCK / 2];
        for (int i = 0; i < NF4_BLOCK; i++) w[i] = nf4_code[(i * 7) % 16] * scales[k];
        nf4_quantize(packed, absmax, w, NF4_BLOCK);
        assert_true(absmax[0] == scales[k]);
        for (int i = 0; i < NF4_BLOCK; i++) {
            const int q = i % 2 ? packed[i / 2] & 15 : packed[i / 2] >> 4;
            assert_int_equal(q, (i * 7) % 16);
        }
        nf4_dequantize(back, packed, absmax, NF4_BLOCK);
        assert_memory_equal(back, w, sizeof w);
    }
    /* ties go to the lower code; just above a midpoint, to the upper one */
    for (int i = 0; i < 15; i++) {
        const double mid = ((double)nf4_code[i] + nf4_code[i + 1]) / 2;
        if ((double)(float)mid == mid) assert_int_equal(nf4_encode((float)mid), i);
        assert_int_equal(nf4_encode(nextafterf((float)mid, 2.0f)), i + 1);
        assert_int_equal(nf4_encode(nextafterf((float)mid, -2.0f)), i);
    }
}

/* |w - deq(q(w))| <= absmax · (max half gap) in every block, for lengths around the block size,
 * an all-zero block included. */
static void test_roundtrip_bound(void **state) {
    const size_t lens[] = {1, 2, 63, 64, 65, 127, 1001, 4096};
    const double h = max_half_gap();
    rng r;
    rng_seed(&r, 7);
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        const size_t n = lens[k], nb = nf4_n_blocks(n);
        float *w = malloc(n * sizeof *w), *back = malloc(n * sizeof *back);
        float *absmax = malloc(nb * sizeof *absmax);
        uint8_t *packed = malloc(nf4_n_packed(n));
        assert_true(w && back && absmax && packed);
        for (size_t i = 0; i < n; i++)
            w[i] = rng_normal(&r) * (float)(0.01 + (i / NF4_BLOCK) % 5) * 0.1f;
        if (n > 2 * NF4_BLOCK)
            for (size_t i = NF4_BLOCK; i < 2 * NF4_BLOCK; i++) w[i] = 0.0f;
        nf4_quantize(packed, absmax, w, n);
        nf4_dequantize(back, packed, absmax, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double a = absmax[i / NF4_BLOCK], d = fabs((double)w[i] - back[i]);
            assert_true(a >= fabs(w[i]));
            if (!(d <= a * h * (1 + 1e-6)))
                fail_msg("n=%zu element %zu: |w - deq| = %g > absmax %g · %g", n, i, d, a, h);
            if (a > 0 && d / (a * h) > worst) worst = d / (a * h);
        }
        if (n > 2 * NF4_BLOCK) {
            assert_true(absmax[1] == 0.0f);
            for (size_t i = NF4_BLOCK; i < 2 * NF4_BLOCK; i++) assert_true(back[i] == 0.0f);
        }
        if (n >= 1001) assert_true(worst > 0.5); /* the bound is not vacuous */
        if (n % 2) assert_int_equal(packed[n / 2] & 15, 0);
        free(w);
        free(back);
        free(absmax);
        free(packed);
    }
}

/* Double quantization: |absmax - deq| <= s/254 (+ float rounding) per 256-block; a constant
 * list has scale 0 and comes back exactly. */
static void test_double_quant_bound(void **state) {
    const size_t nbs[] = {1, 255, 256, 257, 1000};
    rng r;
    rng_seed(&r, 11);
    for (size_t k = 0; k < sizeof nbs / sizeof *nbs; k++) {
        const size_t nb = nbs[k], nd = nf4_n_dq_blocks(nb);
        float *a = malloc(nb * sizeof *a), *back = malloc(nb * sizeof *back);
        float *scale = malloc(nd * sizeof *scale), mean;
        int8_t *q = malloc(nb);
        assert_true(a && back && scale && q);
        for (size_t i = 0; i < nb; i++) a[i] = 0.1f * expf(0.7f * rng_normal(&r));
        nf4_dq_quantize(q, scale, &mean, a, nb);
        nf4_dq_dequantize(back, q, scale, mean, nb);
        double sum = 0;
        for (size_t i = 0; i < nb; i++) sum += a[i];
        assert_true(fabs(mean - sum / nb) <= 1e-6 * fabs(sum / nb));
        for (size_t i = 0; i < nb; i++) {
            const double s = scale[i / NF4_DQ_BLOCK];
            const double bound = s / 254 * (1 + 1e-5) + 4 * FLT_EPSILON * (fabs(mean) + s);
            assert_true(q[i] >= -127 && q[i] <= 127);
            if (!(fabs((double)a[i] - back[i]) <= bound))
                fail_msg("nb=%zu block %zu: |a - deq| = %g > %g", nb, i, fabs(a[i] - back[i]),
                         bound);
        }
        for (size_t i = 0; i < nb; i++) a[i] = 0.375f;
        nf4_dq_quantize(q, scale, &mean, a, nb);
        nf4_dq_dequantize(back, q, scale, mean, nb);
        for (size_t i = 0; i < nd; i++) assert_true(scale[i] == 0.0f);
        assert_memory_equal(back, a, nb * sizeof *a);
        free(a);
        free(back);
        free(scale);
        free(q);
    }
    /* with quantized weights: the double-quantized absmax adds at most s/254 per element */
    const size_t n = 300 * NF4_BLOCK, nb = nf4_n_blocks(n);
    float *w = malloc(n * sizeof *w), *back = malloc(n * sizeof *back);
    float *absmax = malloc(nb * sizeof *absmax), *adq = malloc(nb * sizeof *adq), scale[2], mean;
    uint8_t *packed = malloc(nf4_n_packed(n));
    int8_t *q = malloc(nb);
    assert_true(w && back && absmax && adq && packed && q);
    for (size_t i = 0; i < n; i++) w[i] = 0.2f * rng_normal(&r) * (1 + (float)(i / 640));
    nf4_quantize(packed, absmax, w, n);
    nf4_dq_quantize(q, scale, &mean, absmax, nb);
    nf4_dq_dequantize(adq, q, scale, mean, nb);
    nf4_dequantize(back, packed, adq, n);
    for (size_t i = 0; i < n; i++) {
        const double a = absmax[i / NF4_BLOCK], s = scale[i / NF4_BLOCK / NF4_DQ_BLOCK];
        const double bound = a * max_half_gap() * (1 + 1e-6) + s / 254 * (1 + 1e-5) +
                             4 * FLT_EPSILON * (fabs(mean) + s);
        assert_true(fabs((double)w[i] - back[i]) <= bound);
    }
    free(w);
    free(back);
    free(absmax);
    free(adq);
    free(packed);
    free(q);
}

/* Reads tensor name of f (dtype, any shape) into a new buffer of its bytes (caller frees). */
static void *read_any(const st_file *f, const char *name, size_t *numel) {
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    void *buf = malloc(t->numel * 4 + 4);
    assert_non_null(buf);
    ml_error e;
    int rc = t->dtype == ST_F32 ? st_read_f32(f, name, ST_F32, buf, t->ndim, t->shape, &e)
                                : st_read_u8(f, name, t->dtype, buf, t->ndim, t->shape, &e);
    if (rc) fail_msg("%s", e.msg);
    *numel = t->numel;
    return buf;
}

/* The C quantizer against the NumPy one: every code, scale and dequantized value equal. */
static void test_reference_fixture(void **state) {
    st_file f;
    ml_error e;
    if (st_open(&f, FIXTURE, &e))
        fail_msg("%s (regenerate: tests/reference/gen_nf4_reference.py)", e.msg);
    const char *cases[] = {"a", "b", "c", "d"};
    for (int c = 0; c < 4; c++) {
        char name[32];
        size_t n, k;
        snprintf(name, sizeof name, "%s.w", cases[c]);
        float *w = read_any(&f, name, &n);
        assert_non_null(w);
        const size_t nb = nf4_n_blocks(n), np = nf4_n_packed(n), nd = nf4_n_dq_blocks(nb);
        uint8_t *packed = malloc(np);
        float *absmax = malloc(nb * 4), *back = malloc(n * 4), *adq = malloc(nb * 4);
        float *scale = malloc(nd * 4), mean;
        int8_t *q = malloc(nb);
        assert_true(packed && absmax && back && adq && scale && q);
        nf4_quantize(packed, absmax, w, n);
        nf4_dq_quantize(q, scale, &mean, absmax, nb);
        nf4_dq_dequantize(adq, q, scale, mean, nb);
        const struct {
            const char *suffix;
            const void *got;
            size_t bytes;
        } parts[] = {{"nf4", packed, np},       {"absmax", absmax, nb * 4},
                     {"absmax_q", q, nb},       {"absmax_scale", scale, nd * 4},
                     {"absmax_mean", &mean, 4}, {"deq", NULL, n * 4},
                     {"deq_dq", NULL, n * 4}};
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
            snprintf(name, sizeof name, "%s.%s", cases[c], parts[p].suffix);
            void *ref = read_any(&f, name, &k);
            if (!ref && parts[p].got == NULL) continue; /* the long case has no deq */
            assert_non_null(ref);
            const void *got = parts[p].got;
            if (!got) {
                nf4_dequantize(back, packed, p == 5 ? absmax : adq, n);
                got = back;
            }
            if (memcmp(got, ref, parts[p].bytes) != 0) {
                size_t at = 0;
                while (((const uint8_t *)got)[at] == ((const uint8_t *)ref)[at]) at++;
                fail_msg("case %s: %s differs from the NumPy reference at byte %zu", cases[c], name,
                         at);
            }
            free(ref);
        }
        printf("  case %s: %zu values, %zu blocks: codes, absmax, int8 scales and dequantized "
               "values equal the reference\n",
               cases[c], n, nb);
        free(w);
        free(packed);
        free(absmax);
        free(back);
        free(adq);
        free(scale);
        free(q);
    }
    st_close(&f);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

#define TINY_CONFIG                                                                                \
    "{\"vocab_size\":8,\"d_model\":16,\"n_heads\":2,\"n_layers\":1,\"d_ff\":64,\"context\":8,"     \
    "\"ln_eps\":1e-05,\"rope_base\":10000}"
#define TINY_VOCAB "[\"\\n\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]"

static char g_dir[64];

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_nf4.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tiny_model(minigpt *m, tok_vocab *v) {
    minigpt_config cfg;
    ml_error e;
    memset(m, 0, sizeof *m);
    assert_int_equal(model_config_parse(&cfg, TINY_CONFIG, "tiny", &e), 0);
    assert_int_equal(minigpt_init(m, &cfg, &e), 0);
    assert_int_equal(tok_from_json(v, TINY_VOCAB, "tiny", &e), 0);
    tu_random_weights(m, 3);
}

static const char *path_in_dir(const char *name) {
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

/* Saved as q and loaded back: NF4 weights within the bound, everything else exact. */
static void test_checkpoint_roundtrip(void **state) {
    const ck_quant qs[] = {CK_NF4, CK_NF4_DQ, CK_F16};
    for (int k = 0; k < 3; k++) {
        minigpt m, back;
        tok_vocab v, v2;
        ml_error e;
        tiny_model(&m, &v);
        const char *p = path_in_dir("q.st");
        const char *keys[] = {"note"}, *vals[] = {"x"};
        assert_int_equal(checkpoint_save_quant(p, &m, &v, qs[k], 1, keys, vals, &e), 0);
        char sha[65];
        if (checkpoint_load(p, &back, &v2, sha, &e)) fail_msg("%s", e.msg);
        st_file f;
        assert_int_equal(st_open(&f, p, &e), 0);
        ck_quant got;
        assert_int_equal(checkpoint_quant(&f, &got, &e), 0);
        assert_int_equal(got, qs[k]);
        st_close(&f);
        for (int i = 0; i < m.n_tensors; i++) {
            const minigpt_tensor *t = &m.tensors[i];
            const float *x = m.params + t->offset, *y = back.params + t->offset;
            if (qs[k] != CK_F16 && t->kind != MG_LINEAR_WEIGHT) {
                assert_memory_equal(x, y, t->numel * sizeof *x); /* kept F32 */
                continue;
            }
            float amax = 0;
            for (size_t j = 0; j < t->numel; j++) amax = fmaxf(amax, fabsf(x[j]));
            const double tol = qs[k] == CK_F16 ? fabs(amax) / 1024 : amax * max_half_gap() * 1.1;
            double worst = 0;
            for (size_t j = 0; j < t->numel; j++) worst = fmax(worst, fabs((double)x[j] - y[j]));
            if (!(worst <= tol) || worst == 0)
                fail_msg("%s %s: max |err| %g (bound %g)", ck_quant_name(qs[k]), t->name, worst,
                         tol);
        }
        minigpt_free(&m);
        minigpt_free(&back);
    }
}

/* Rewrites src into dst with metadata key set to value (NULL: removed), tensor `drop` left
 * out, tensor `shorten` one element shorter, and `add` (an F32 model tensor copied from the
 * model m) added. */
static void rewrite(const char *src, const char *dst, const char *key, const char *value,
                    const char *drop, const char *shorten, const char *add, const minigpt *m) {
    st_file f;
    ml_error e;
    assert_int_equal(st_open(&f, src, &e), 0);
    st_writer *w = st_writer_new();
    assert_non_null(w);
    for (int i = 0; i < f.n_meta; i++)
        if (!key || strcmp(f.meta_keys[i], key) != 0)
            assert_int_equal(st_writer_meta(w, f.meta_keys[i], f.meta_values[i], &e), 0);
    if (key && value) assert_int_equal(st_writer_meta(w, key, value, &e), 0);
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        size_t n;
        void *buf = read_any(&f, t->name, &n);
        int64_t shape[4];
        memcpy(shape, t->shape, sizeof shape);
        if (shorten && !strcmp(t->name, shorten)) shape[0]--;
        int rc = t->dtype == ST_F32
                     ? st_writer_add_f32(w, t->name, ST_F32, buf, t->ndim, shape, &e)
                     : st_writer_add_u8(w, t->name, t->dtype, buf, t->ndim, shape, &e);
        assert_int_equal(rc, 0);
        free(buf);
    }
    if (add) {
        const minigpt_tensor *t = &m->tensors[minigpt_find_tensor(m, add)];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        assert_int_equal(
            st_writer_add_f32(w, t->name, ST_F32, m->params + t->offset, t->ndim, shape, &e), 0);
    }
    assert_int_equal(st_writer_save(w, dst, &e), 0);
    st_writer_free(w);
    st_close(&f);
}

/* Copies src to dst with the first 4 bytes of tensor `name` (element elem) replaced by v. */
static void patch(const char *src, const char *dst, const char *name, size_t elem, size_t width,
                  uint32_t v) {
    st_file f;
    ml_error e;
    assert_int_equal(st_open(&f, src, &e), 0);
    const st_tensor *t = st_find(&f, name);
    assert_non_null(t);
    memcpy(f.bytes + f.data_start + t->begin + elem * width, &v, width);
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(f.bytes, 1, f.size, out), f.size);
    fclose(out);
    st_close(&f);
}

/* The load must fail with a message holding every '|'-separated word of want. */
static void expect_refused(const char *path, const char *want) {
    minigpt m;
    tok_vocab v;
    ml_error e;
    if (!checkpoint_load(path, &m, &v, NULL, &e)) {
        minigpt_free(&m);
        fail_msg("a corrupt checkpoint was loaded (expected: %s)", want);
    }
    assert_null(strchr(e.msg, '\n'));
    char w[256];
    snprintf(w, sizeof w, "%s", want);
    for (char *s = strtok(w, "|"); s; s = strtok(NULL, "|"))
        if (!strstr(e.msg, s)) fail_msg("message '%s' does not name '%s'", e.msg, s);
    printf("  refused: %s\n", e.msg);
}

static void test_corrupt_files(void **state) {
    minigpt m;
    tok_vocab v;
    ml_error e;
    tiny_model(&m, &v);
    const char *good = path_in_dir("good.st"), *gdq = path_in_dir("gooddq.st");
    const char *bad = path_in_dir("bad.st");
    assert_int_equal(checkpoint_save_quant(good, &m, &v, CK_NF4, 0, NULL, NULL, &e), 0);
    assert_int_equal(checkpoint_save_quant(gdq, &m, &v, CK_NF4_DQ, 0, NULL, NULL, &e), 0);
    const char *W = "blocks.0.attn.k_proj.weight";
    uint32_t nan_bits = 0x7fc00000u, inf_bits = 0x7f800000u, neg_bits = 0xbf800000u;

    patch(good, bad, "blocks.0.attn.k_proj.weight.absmax", 2, 4, nan_bits);
    expect_refused(bad, "bad.st|'blocks.0.attn.k_proj.weight.absmax' element 2 is NaN");
    patch(good, bad, "blocks.0.ffn.fc1.weight.absmax", 0, 4, neg_bits);
    expect_refused(bad, "blocks.0.ffn.fc1.weight.absmax|negative");
    rewrite(good, bad, NULL, NULL, NULL, "blocks.0.attn.q_proj.weight.nf4", NULL, &m);
    expect_refused(bad, "blocks.0.attn.q_proj.weight.nf4|has shape [127], expected [128]");
    rewrite(good, bad, NULL, NULL, "blocks.0.attn.v_proj.weight.absmax", NULL, NULL, &m);
    expect_refused(bad, "'blocks.0.attn.v_proj.weight.absmax' not found");
    rewrite(good, bad, "nf4_code", "[-1,0,1]", NULL, NULL, NULL, &m);
    expect_refused(bad, "bad.st|nf4_code");
    rewrite(good, bad, "quant", "nf3", NULL, NULL, NULL, &m);
    expect_refused(bad, "bad.st|\"quant\" is 'nf3'");
    rewrite(good, bad, "nf4_block_size", "128", NULL, NULL, NULL, &m);
    expect_refused(bad, "nf4_block_size|'128', expected '64'");
    rewrite(good, bad, "nf4_double_quant", "yes", NULL, NULL, NULL, &m);
    expect_refused(bad, "nf4_double_quant");
    rewrite(good, bad, "nf4_tensors", "{\"blocks.0.attn.q_proj.weight\":[16,16]}", NULL, NULL, NULL,
            &m);
    expect_refused(bad, "'blocks.0.attn.k_proj.weight' not found");
    rewrite(good, bad, "nf4_tensors", "{\"blocks.0.attn.zz.weight\":[16,16]}", NULL, NULL, NULL,
            &m);
    expect_refused(bad, "'blocks.0.attn.zz.weight', not a tensor of this model");
    rewrite(good, bad, NULL, NULL, NULL, NULL, W, &m);
    expect_refused(bad, "'blocks.0.attn.k_proj.weight' is stored both");
    rewrite(good, bad, "nf4_double_quant", "1", NULL, NULL, NULL, &m); /* parts do not match */
    expect_refused(bad, "nf4_dq_block_size");
    /* the double-quantized parts */
    patch(gdq, bad, "blocks.0.attn.o_proj.weight.absmax_q", 1, 1, 0x80u);
    expect_refused(bad, "blocks.0.attn.o_proj.weight.absmax_q' element 1 is -128");
    patch(gdq, bad, "blocks.0.attn.o_proj.weight.absmax_scale", 0, 4, nan_bits);
    expect_refused(bad, "blocks.0.attn.o_proj.weight.absmax_scale' element 0 is NaN");
    patch(gdq, bad, "blocks.0.ffn.fc2.weight.absmax_mean", 0, 4, inf_bits);
    expect_refused(bad, "blocks.0.ffn.fc2.weight.absmax_mean' element 0 is inf");
    patch(gdq, bad, "blocks.0.ffn.fc2.weight.absmax_scale", 0, 4, 0x7f7fffffu); /* FLT_MAX */
    patch(bad, bad, "blocks.0.ffn.fc2.weight.absmax_mean", 0, 4, 0x7f7fffffu);
    expect_refused(bad, "blocks.0.ffn.fc2.weight|dequantized absmax of block");
    rewrite(gdq, bad, NULL, NULL, "blocks.0.ffn.fc2.weight.absmax_mean", NULL, NULL, &m);
    expect_refused(bad, "'blocks.0.ffn.fc2.weight.absmax_mean' not found");
    /* an extra, unknown part */
    rewrite(good, bad, "nf4_double_quant", "0", NULL, NULL, NULL, &m);
    minigpt back;
    tok_vocab v2;
    assert_int_equal(checkpoint_load(bad, &back, &v2, NULL, &e), 0); /* the rewrite is sound */
    minigpt_free(&back);
    minigpt_free(&m);
}

/* An odd number of values: the padding nibble must be 0 on read. */
static void test_padding_nibble(void **state) {
    float w[5] = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f}, back[5];
    ml_error e;
    st_writer *wr = st_writer_new();
    assert_non_null(wr);
    assert_int_equal(nf4_write_tensor(wr, "t", w, 5, 0, &e), 0);
    uint8_t *bytes;
    size_t n;
    assert_int_equal(st_writer_serialize(wr, &bytes, &n, &e), 0);
    st_writer_free(wr);
    st_file f;
    uint8_t *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, bytes, n);
    assert_int_equal(st_parse(&f, "odd.st", bytes, n, &e), 0);
    assert_int_equal(nf4_read_tensor(&f, "t", back, 5, 0, &e), 0);
    for (int i = 0; i < 5; i++) assert_true(fabsf(w[i] - back[i]) <= 0.4f * 0.14f);
    const st_tensor *t = st_find(&f, "t.nf4");
    assert_non_null(t);
    copy[f.data_start + t->begin + 2] |= 5;
    st_close(&f);
    assert_int_equal(st_parse(&f, "odd.st", copy, n, &e), 0);
    assert_int_equal(nf4_read_tensor(&f, "t", back, 5, 0, &e), -1);
    assert_non_null(strstr(e.msg, "odd.st: tensor 't.nf4': the padding nibble"));
    st_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_table),        cmocka_unit_test(test_exact_codes),
        cmocka_unit_test(test_roundtrip_bound),   cmocka_unit_test(test_double_quant_bound),
        cmocka_unit_test(test_reference_fixture), cmocka_unit_test(test_checkpoint_roundtrip),
        cmocka_unit_test(test_corrupt_files),     cmocka_unit_test(test_padding_nibble),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
