/* test_lora_init.c — lora-train --init: the factorizations (util/linalg.c) and the PiSSA and
 * OLoRA factors against an independent PyTorch reference (tests/reference/gen_init.py, PEFT's
 * formulas), the step-0 reconstruction W_res + s·B·A = W, the gaussian init's statistics, the
 * kaiming init bit for bit as before, and the converted adapter: merged model, adapter on the
 * original base and the training-time model give the same logits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "blas_runtime.h"
#include "atomic_file.h"
#include "checkpoint.h"
#include "finetune.h"
#include "linalg.h"
#include "lora_init.h"
#include "safetensors.h"
#include "test_util.h"

#define BASE "data/minigpt-base.safetensors"
#define FIXTURE "tests/fixtures/init-reference.safetensors"
#define REF_SEED 20261130u
#define REF_RANK 4
#define REF_ALPHA 8.0f

/* The three reference weights: name, its Linear in block 0, shape (out,in). */
static const struct {
    const char *name, *path;
    int out, in;
} refs[] = {{"q", "blocks.0.attn.q_proj", 64, 64},
            {"fc1", "blocks.0.ffn.fc1", 256, 64},
            {"fc2", "blocks.0.ffn.fc2", 64, 256}};

static st_file fx;
static char tmpdir[] = "/tmp/minilora-init-XXXXXX";

static int setup(void **state) {
    ml_error e;
    if (st_open(&fx, FIXTURE, &e)) {
        fprintf(stderr, "%s (regenerate: /usr/bin/python3 tests/reference/gen_init.py)\n", e.msg);
        return -1;
    }
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    st_close(&fx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The reference weight k (gen_init.py's weight()): exact in float32. */
static void ref_weight(int k, float *w) {
    const int n = refs[k].out * refs[k].in;
    for (int i = 0; i < n; i++) {
        const uint64_t u = splitmix64((uint64_t)(REF_SEED + k) * 1000003u + (uint64_t)i) >> 40;
        w[i] = (float)(((double)u / 16777216.0 - 0.5) / 2);
    }
}

/* Reads fixture tensor name (n floats) into a malloc'ed buffer. */
static float *fixture(const char *name, size_t n) {
    const st_tensor *t = st_find(&fx, name);
    if (!t) fail_msg("%s: no tensor %s", FIXTURE, name);
    assert_int_equal(t->numel, n);
    float *v = malloc(sizeof(float) * n);
    ml_error e;
    if (st_read_f32(&fx, name, ST_F32, v, t->ndim, t->shape, &e)) fail_msg("%s", e.msg);
    return v;
}

/* max |got − want| / max |want| */
static double rel_err_d(const double *got, const float *want, size_t n) {
    double err = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs(got[i] - (double)want[i]));
        mag = fmax(mag, fabs((double)want[i]));
    }
    return err / (mag > 0 ? mag : 1);
}

static double rel_err_f(const float *got, const float *want, size_t n) {
    double err = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)got[i] - (double)want[i]));
        mag = fmax(mag, fabs((double)want[i]));
    }
    return err / (mag > 0 ? mag : 1);
}

/* ---- the factorizations ------------------------------------------------------------------ */

static void test_svd_properties_and_reference(void **state) {
    for (int k = 0; k < 3; k++) {
        const int m = refs[k].out, n = refs[k].in, K = m < n ? m : n;
        float *w = malloc(sizeof(float) * m * n);
        ref_weight(k, w);
        double *sigma = malloc(sizeof(double) * K), *u = malloc(sizeof(double) * K * m),
               *vt = malloc(sizeof(double) * K * n);
        ml_error e;
        assert_int_equal(linalg_svd(w, m, n, sigma, u, vt, &e), 0);
        char name[64];
        snprintf(name, sizeof name, "%s.S", refs[k].name);
        float *S = fixture(name, K);
        const double es = rel_err_d(sigma, S, K);
        double orth = 0, recon = 0, wmax = 0;
        for (int i = 1; i < K; i++) assert_true(sigma[i] <= sigma[i - 1]); /* descending */
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) { /* rows of u and of vt orthonormal */
                double du = 0, dv = 0;
                for (int i = 0; i < m; i++) du += u[a * m + i] * u[b * m + i];
                for (int j = 0; j < n; j++) dv += vt[a * n + j] * vt[b * n + j];
                orth = fmax(orth, fmax(fabs(du - (a == b)), fabs(dv - (a == b))));
            }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) { /* Σ σ_t u_t v_tᵀ = W */
                double s = 0;
                for (int t = 0; t < K; t++) s += sigma[t] * u[t * m + i] * vt[t * n + j];
                recon = fmax(recon, fabs(s - w[i * n + j]));
                wmax = fmax(wmax, fabs(w[i * n + j]));
            }
        printf("  svd %-3s (%d,%d): σ vs PyTorch rel %.2e, orthonormality %.2e, reconstruction "
               "rel %.2e\n",
               refs[k].name, m, n, es, orth, recon / wmax);
        assert_true(es < 1e-5);
        assert_true(orth < 1e-10);
        assert_true(recon / wmax < 1e-10);
        free(S), free(w), free(sigma), free(u), free(vt);
    }
}

static void test_qr_properties_and_reference(void **state) {
    for (int k = 0; k < 3; k++) {
        const int m = refs[k].out, n = refs[k].in, K = m < n ? m : n;
        float *w = malloc(sizeof(float) * m * n);
        ref_weight(k, w);
        double *q = malloc(sizeof(double) * m * K), *r = malloc(sizeof(double) * K * n);
        ml_error e;
        assert_int_equal(linalg_qr(w, m, n, q, r, &e), 0);
        double orth = 0, recon = 0, wmax = 0;
        for (int a = 0; a < K; a++) /* columns of q orthonormal */
            for (int b = 0; b < K; b++) {
                double d = 0;
                for (int i = 0; i < m; i++) d += q[i * K + a] * q[i * K + b];
                orth = fmax(orth, fabs(d - (a == b)));
            }
        for (int i = 0; i < K; i++)
            for (int j = 0; j < i && j < n; j++) assert_true(r[i * n + j] == 0.0); /* upper */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int t = 0; t < K; t++) s += q[i * K + t] * r[t * n + j];
                recon = fmax(recon, fabs(s - w[i * n + j]));
                wmax = fmax(wmax, fabs(w[i * n + j]));
            }
        char name[64];
        snprintf(name, sizeof name, "%s.Rdiag", refs[k].name);
        float *want = fixture(name, K);
        double *diag = malloc(sizeof(double) * K);
        for (int t = 0; t < K; t++) diag[t] = r[t * n + t];
        const double ed = rel_err_d(diag, want, K); /* values and LAPACK's signs */
        printf("  qr  %-3s (%d,%d): diag(R) vs PyTorch rel %.2e, orthonormality %.2e, "
               "reconstruction rel %.2e\n",
               refs[k].name, m, n, ed, orth, recon / wmax);
        assert_true(ed < 1e-5);
        assert_true(orth < 1e-10);
        assert_true(recon / wmax < 1e-10);
        free(want), free(diag), free(w), free(q), free(r);
    }
}

static void test_linalg_refuses_bad_input(void **state) {
    float w[4] = {1, 2, NAN, 4};
    double s[2], q[4], r[4];
    ml_error e;
    assert_int_equal(linalg_svd(w, 2, 2, s, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "not finite"));
    assert_int_equal(linalg_qr(w, 2, 2, q, r, &e), -1);
    assert_non_null(strstr(e.msg, "not finite"));
    assert_int_equal(linalg_qr(w, 0, 2, q, r, &e), -1);
}

/* ---- PiSSA and OLoRA against PEFT's formulas --------------------------------------------- */

/* A model whose block-0 q, fc1 and fc2 hold the reference weights, with a rank-4 α=8 adapter
 * on them (s = 2) initialized by kind. */
static void ref_adapter(minigpt *m, lora *a, int kind, float **orig) {
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    assert_int_equal(minigpt_init(m, &cfg, &e), 0);
    tu_random_weights(m, 11);
    for (int k = 0; k < 3; k++) {
        minigpt_linear *L = minigpt_find_linear(m, refs[k].path);
        assert_non_null(L);
        assert_int_equal(L->out, refs[k].out);
        assert_int_equal(L->in, refs[k].in);
        ref_weight(k, L->w);
        orig[k] = malloc(sizeof(float) * L->out * L->in);
        memcpy(orig[k], L->w, sizeof(float) * L->out * L->in);
    }
    const unsigned targets = 1u << MG_Q | 1u << MG_FC1 | 1u << MG_FC2;
    assert_int_equal(lora_init_layers(a, m, REF_RANK, REF_ALPHA, 0, targets, 1u, &e), 0);
    assert_int_equal(a->n_layers, 3);
    if (lora_init_apply(a, kind, 1, &e)) fail_msg("%s", e.msg);
}

static void test_pissa_olora_match_peft(void **state) {
    for (int kind = LORA_INIT_PISSA; kind <= LORA_INIT_OLORA; kind++) {
        minigpt m;
        lora a;
        float *orig[3];
        ref_adapter(&m, &a, kind, orig);
        assert_non_null(a.init0);
        assert_memory_equal(a.init0, a.params, sizeof(float) * a.n_params);
        const int r = REF_RANK;
        for (int k = 0; k < 3; k++) {
            const lora_layer *L = &a.layers[k];
            const int out = L->slot->out, in = L->slot->in;
            float *A = malloc(sizeof(float) * r * in), *B = malloc(sizeof(float) * out * r);
            memcpy(A, L->A, sizeof(float) * r * in);
            memcpy(B, L->B, sizeof(float) * out * r);
            if (kind == LORA_INIT_PISSA) /* the reference's sign normalization */
                for (int t = 0; t < r; t++) {
                    int big = 0;
                    for (int j = 1; j < in; j++)
                        if (fabsf(A[t * in + j]) > fabsf(A[t * in + big])) big = j;
                    if (A[t * in + big] < 0) {
                        for (int j = 0; j < in; j++) A[t * in + j] = -A[t * in + j];
                        for (int i = 0; i < out; i++) B[i * r + t] = -B[i * r + t];
                    }
                }
            char na[64], nb[64];
            snprintf(na, sizeof na, "%s.%s.A", refs[k].name, lora_init_name(kind));
            snprintf(nb, sizeof nb, "%s.%s.B", refs[k].name, lora_init_name(kind));
            float *wa = fixture(na, (size_t)r * in), *wb = fixture(nb, (size_t)out * r);
            const double ea = rel_err_f(A, wa, (size_t)r * in),
                         eb = rel_err_f(B, wb, (size_t)out * r);
            /* step 0: W_res + s·B·A = W (in double from the float values the model holds) */
            double err = 0, mag = 0;
            for (int i = 0; i < out; i++)
                for (int j = 0; j < in; j++) {
                    double ba = 0;
                    for (int t = 0; t < r; t++) ba += (double)L->B[i * r + t] * L->A[t * in + j];
                    const double w = (double)L->slot->w[i * in + j] + (double)a.scale * ba;
                    err = fmax(err, fabs(w - orig[k][i * in + j]));
                    mag = fmax(mag, fabs((double)orig[k][i * in + j]));
                }
            printf("  %-5s %-3s: A vs PEFT rel %.2e, B rel %.2e; |W_res + s·B·A − W| rel %.2e\n",
                   lora_init_name(kind), refs[k].name, ea, eb, err / mag);
            assert_true(ea < 1e-5 && eb < 1e-5);
            assert_true(err / mag < 1e-6);
            /* the residual really moved: W_res differs from W by s·B·A */
            assert_true(memcmp(L->slot->w, orig[k], sizeof(float) * out * in) != 0);
            free(A), free(B), free(wa), free(wb), free(orig[k]);
        }
        lora_free(&a);
        minigpt_free(&m);
    }
}

/* Step 0 on every Linear of a trained-scale model, rsLoRA scale: the logits of the residual
 * model plus the adapter equal the base's (to float rounding: 1e-5 relative). */
static void test_step0_reconstruction_all_targets(void **state) {
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    enum { NB = 2, NT = 12 };
    int tok[NB * NT];
    for (int i = 0; i < NB * NT; i++) tok[i] = (i * 7 + 3) % 64;
    for (int kind = LORA_INIT_GAUSSIAN; kind <= LORA_INIT_OLORA; kind++) {
        minigpt m;
        assert_int_equal(minigpt_init(&m, &cfg, &e), 0);
        tu_random_weights(&m, 5);
        float *w0 = malloc(sizeof(float) * m.n_params);
        memcpy(w0, m.params, sizeof(float) * m.n_params);
        minigpt_ws ws;
        assert_int_equal(minigpt_ws_init(&ws, &m, NB, NT, &e), 0);
        minigpt_forward(&m, &ws, tok, NB, NT);
        const size_t nl = (size_t)NB * NT * cfg.vocab_size;
        float *base = malloc(sizeof(float) * nl);
        memcpy(base, ws.logits, sizeof(float) * nl);
        minigpt_ws_free(&ws);
        lora a;
        assert_int_equal(lora_init(&a, &m, 8, 16.0f, 1, LORA_ALL_TARGETS, &e), 0);
        if (lora_init_apply(&a, kind, 3, &e)) fail_msg("%s", e.msg);
        double worst = 0;
        for (int i = 0; i < a.n_layers; i++) {
            const lora_layer *L = &a.layers[i];
            const int out = L->slot->out, in = L->slot->in, r = a.rank;
            const float *w = w0 + (L->slot->w - m.params);
            double err = 0, mag = 0;
            for (int p = 0; p < out; p++)
                for (int j = 0; j < in; j++) {
                    float ba = 0; /* in float, as the forward computes it */
                    for (int t = 0; t < r; t++) ba += L->B[p * r + t] * L->A[t * in + j];
                    err = fmaxf(err, fabsf(L->slot->w[p * in + j] + a.scale * ba - w[p * in + j]));
                    mag = fmax(mag, fabs(w[p * in + j]));
                }
            worst = fmax(worst, err / mag);
        }
        assert_int_equal(minigpt_ws_init(&ws, &m, NB, NT, &e), 0);
        minigpt_forward(&m, &ws, tok, NB, NT);
        double dl, lmax;
        tu_max_err(ws.logits, base, nl, &dl, &lmax);
        printf("  %-8s step 0: max |W_res + s·B·A − W| rel %.2e over 12 Linears; max |Δlogit| "
               "%.2e (logits up to %.1f)\n",
               lora_init_name(kind), worst, dl, lmax);
        assert_true(worst < 1e-5);
        if (kind == LORA_INIT_GAUSSIAN) assert_true(dl == 0.0); /* B = 0: exactly the base */
        else assert_true(dl / lmax < 1e-5);
        minigpt_ws_free(&ws);
        lora_free(&a);
        minigpt_free(&m);
        free(w0), free(base);
    }
}

/* ---- gaussian and kaiming ---------------------------------------------------------------- */

static void test_gaussian_statistics(void **state) {
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    minigpt m;
    assert_int_equal(minigpt_init(&m, &cfg, &e), 0);
    tu_random_weights(&m, 2);
    const int ranks[] = {2, 8, 32};
    for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
        const int r = ranks[ri];
        lora a;
        assert_int_equal(lora_init(&a, &m, r, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
        assert_int_equal(lora_init_apply(&a, LORA_INIT_GAUSSIAN, 9, &e), 0);
        assert_null(a.init0);
        double s1 = 0, s2 = 0, s4 = 0;
        size_t n = 0;
        for (int i = 0; i < a.n_layers; i++) {
            const lora_layer *L = &a.layers[i];
            for (size_t j = 0; j < (size_t)r * L->slot->in; j++, n++) {
                const double x = L->A[j];
                s1 += x, s2 += x * x, s4 += x * x * x * x;
            }
            for (size_t j = 0; j < (size_t)L->slot->out * r; j++) assert_true(L->B[j] == 0.0f);
        }
        const double mean = s1 / n, var = s2 / n - mean * mean, sd = sqrt(var);
        const double kurt = (s4 / n) / (var * var), want = 1.0 / r;
        printf("  gaussian r=%-2d: %zu entries of A, mean %+.2e, std %.5f (PEFT: 1/r = %.5f), "
               "kurtosis %.2f (normal: 3)\n",
               r, n, mean, sd, want, kurt);
        /* bounds ~4 standard errors: std's relative s.e. is 1/sqrt(2n) */
        assert_true(fabs(mean) < 4 * want / sqrt((double)n));
        assert_true(fabs(sd / want - 1) < 4 / sqrt(2.0 * n));
        assert_true(fabs(kurt - 3) < 0.25); /* uniform would give 1.8 */
        lora_free(&a);
    }
    minigpt_free(&m);
}

static void test_kaiming_is_the_old_init_bit_for_bit(void **state) {
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    minigpt m;
    assert_int_equal(minigpt_init(&m, &cfg, &e), 0);
    lora a, b;
    assert_int_equal(lora_init(&a, &m, 8, 16.0f, 1, LORA_ALL_TARGETS, &e), 0);
    lora_init_weights(&a, 42);
    float *old = malloc(sizeof(float) * a.n_params);
    memcpy(old, a.params, sizeof(float) * a.n_params);
    lora_free(&a);
    assert_int_equal(lora_init(&b, &m, 8, 16.0f, 1, LORA_ALL_TARGETS, &e), 0);
    assert_int_equal(lora_init_apply(&b, LORA_INIT_KAIMING, 42, &e), 0);
    assert_memory_equal(old, b.params, sizeof(float) * b.n_params);
    assert_null(b.init0);
    /* the bound of SPEC §3 */
    for (int i = 0; i < b.n_layers; i++) {
        const float bound = 1.0f / sqrtf((float)b.layers[i].slot->in);
        for (size_t j = 0; j < (size_t)8 * b.layers[i].slot->in; j++)
            assert_true(fabsf(b.layers[i].A[j]) <= bound);
    }
    lora_free(&b);
    free(old);
    minigpt_free(&m);
}

static void test_rank_limits(void **state) {
    ml_error e;
    for (int kind = 0; kind < LORA_INIT_COUNT; kind++) {
        const int base = lora_init_uses_base(kind);
        assert_int_equal(lora_init_check_rank(kind, 0, &e), base ? -1 : 0);
        if (base) assert_non_null(strstr(e.msg, "--rank"));
        assert_int_equal(lora_init_check_rank(kind, LORA_MAX_RANK / 2, &e), 0);
        assert_int_equal(lora_init_check_rank(kind, LORA_MAX_RANK / 2 + 1, &e), base ? -1 : 0);
    }
    assert_null(lora_init_name(LORA_INIT_COUNT));
    assert_null(lora_init_name(-1));
    /* a rank above min(out,in) of a target: no r principal directions to take */
    minigpt_config cfg = minigpt_default_config();
    cfg.d_model = 16, cfg.n_heads = 2, cfg.d_ff = 32;
    minigpt m;
    assert_int_equal(minigpt_init(&m, &cfg, &e), 0);
    tu_random_weights(&m, 1);
    lora a;
    assert_int_equal(lora_init(&a, &m, 20, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    assert_int_equal(lora_init_apply(&a, LORA_INIT_PISSA, 1, &e), -1);
    assert_non_null(strstr(e.msg, "blocks.0.attn.q_proj"));
    assert_non_null(strstr(e.msg, "min(out,in) = 16"));
    lora_free(&a);
    minigpt_free(&m);
}

/* ---- the saved adapter: the original base plus the rank-2r conversion ------------------- */

/* Logits (n,ctx,V) of m on the first n examples of d; malloc'ed. */
static float *logits_on(minigpt *m, const dataset *d, int n, int **tgt_out) {
    ml_error e;
    const int ctx = m->cfg.context, V = m->cfg.vocab_size;
    int *tok = malloc(sizeof(int) * n * ctx), *tgt = malloc(sizeof(int) * n * ctx);
    const ds_example **ex = malloc(sizeof *ex * n);
    for (int i = 0; i < n; i++) ex[i] = &d->ex[i];
    ds_batch(ex, n, ctx, tok, tgt);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, m, n, ctx, &e), 0);
    minigpt_forward(m, &ws, tok, n, ctx);
    float *out = malloc(sizeof(float) * n * ctx * V);
    memcpy(out, ws.logits, sizeof(float) * n * ctx * V);
    minigpt_ws_free(&ws);
    free(tok), free((void *)ex);
    if (tgt_out) *tgt_out = tgt;
    else free(tgt);
    return out;
}

/* largest |a − b| over the positions that carry a target */
static double max_dlogit(const float *a, const float *b, const int *tgt, int n, int ctx, int V) {
    double d = 0;
    for (int i = 0; i < n * ctx; i++)
        if (tgt[i] >= 0)
            for (int v = 0; v < V; v++) d = fmax(d, fabs((double)a[i * V + v] - b[i * V + v]));
    return d;
}

static void test_converted_adapter_gives_the_training_model(void **state) {
    ml_error e;
    tok_vocab vocab;
    char sha[65];
    minigpt m;
    dataset train, val;
    assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
    assert_int_equal(ds_load(&train, "data/irreg.jsonl", &vocab, m.cfg.context, &e), 0);
    assert_int_equal(ds_load(&val, "data/irreg_val.jsonl", &vocab, m.cfg.context, &e), 0);
    const int n = 48, ctx = m.cfg.context, V = m.cfg.vocab_size;
    for (int kind = LORA_INIT_PISSA; kind <= LORA_INIT_OLORA; kind++)
        for (int rs = 0; rs <= 1; rs++) {
            finetune_opts o = {.rank = 4, .alpha = 8.0f, .rslora = rs, .init = kind};
            o.targets = LORA_ALL_TARGETS;
            o.train = tu_train_opts(12, 2, 5);
            o.train.micro = 8, o.train.lr = 4e-3f, o.train.eval_every = 12;
            finetune f;
            if (finetune_init(&f, &m, &train, NULL, &val, &o, "test", &e)) fail_msg("%s", e.msg);
            assert_int_equal(finetune_run(&f, &e), 0);
            int *tgt;
            float *trained = logits_on(&m, &val, n, &tgt); /* W_res + s·B·A, float32 */
            /* the conversion's algebra, before any fp16: W + s·(B'·A') = W_res + s·B·A */
            minigpt orig;
            tok_vocab v2;
            assert_int_equal(checkpoint_load(BASE, &orig, &v2, NULL, &e), 0);
            double conv_err = 0;
            for (int i = 0; i < f.adapter.n_layers; i++) {
                const lora_layer *L = &f.adapter.layers[i];
                const int out = L->slot->out, in = L->slot->in, r = o.rank;
                const float *a0 = f.adapter.init0 + L->a_off, *b0 = f.adapter.init0 + L->b_off;
                const float *w = minigpt_find_linear(&orig, L->slot->path)->w;
                double err = 0, mag = 0;
                for (int p = 0; p < out; p++)
                    for (int j = 0; j < in; j++) {
                        double ba = 0, ba0 = 0;
                        for (int t = 0; t < r; t++) {
                            ba += (double)L->B[p * r + t] * L->A[t * in + j];
                            ba0 += (double)b0[p * r + t] * a0[t * in + j];
                        }
                        const double train_w = L->slot->w[p * in + j] + f.adapter.scale * ba;
                        const double conv_w = w[p * in + j] + f.adapter.scale * (ba - ba0);
                        err = fmax(err, fabs(train_w - conv_w));
                        mag = fmax(mag, fabs((double)w[p * in + j]));
                    }
                conv_err = fmax(conv_err, err / mag);
            }
            minigpt_free(&orig);
            assert_true(conv_err < 1e-5);
            char path[256];
            snprintf(path, sizeof path, "%s/%s-%d.safetensors", tmpdir, lora_init_name(kind), rs);
            assert_int_equal(lora_save(&f.adapter, path, sha, 0, NULL, NULL, &e), 0);
            const float scale = f.adapter.scale;
            finetune_free(&f);
            minigpt_free(&m);
            /* the adapter on the ORIGINAL base, as lora-eval and lora-generate load it */
            assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
            lora a;
            if (lora_load(&a, &m, path, sha, &e)) fail_msg("%s", e.msg);
            assert_int_equal(a.rank, 8);
            assert_float_equal(a.scale, scale, 1e-6 * scale);
            float *applied = logits_on(&m, &val, n, NULL);
            /* merged, as lora-merge writes it */
            assert_int_equal(lora_merge_into(&a, &e), 0);
            lora_free(&a);
            float *merged = logits_on(&m, &val, n, NULL);
            st_file sf;
            assert_int_equal(st_open(&sf, path, &e), 0);
            const char *init = st_meta(&sf, "init"), *r0 = st_meta(&sf, "converted_from_r");
            assert_string_equal(init, lora_init_name(kind));
            assert_string_equal(r0, "4");
            assert_string_equal(st_meta(&sf, "r"), "8");
            st_close(&sf);
            const double d_apply = max_dlogit(trained, applied, tgt, n, ctx, V),
                         d_merge = max_dlogit(applied, merged, tgt, n, ctx, V);
            printf("  %-5s %s: W + s·B'·A' vs W_res + s·B·A rel %.1e; max |Δlogit| training "
                   "model vs saved adapter on the original base %.2e (fp16), vs merged %.2e\n",
                   lora_init_name(kind), rs ? "rsLoRA" : "alpha/r", conv_err, d_apply, d_merge);
            assert_true(d_apply < 1e-2);
            assert_true(d_merge < 1e-3);
            free(trained), free(applied), free(merged), free(tgt);
            minigpt_free(&m);
            assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
        }
    ds_free(&train);
    ds_free(&val);
    minigpt_free(&m);
}

/* Stops the loop at the validation of step 6, as SIGINT would. */
static void stop_at_6(void *ctx, int step, double train_loss, double val_loss) {
    if (step == 6) train_stop_signal = 2;
}

/* A pissa run interrupted and resumed (the residual and the initial factors recomputed from the
 * base, as a new process does) ends with the uninterrupted run's bytes; the fingerprint names
 * the init, so a resume under another init is refused. */
static void test_pissa_resume_is_bit_identical(void **state) {
    ml_error e;
    tok_vocab vocab;
    char sha[65];
    minigpt m;
    dataset train, val;
    assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
    assert_int_equal(ds_load(&train, "data/irreg.jsonl", &vocab, m.cfg.context, &e), 0);
    assert_int_equal(ds_load(&val, "data/irreg_val.jsonl", &vocab, m.cfg.context, &e), 0);
    finetune_opts o = {.rank = 4, .alpha = 8.0f, .rslora = 1, .init = LORA_INIT_PISSA};
    o.targets = LORA_ALL_TARGETS;
    o.train = tu_train_opts(12, 2, 5);
    o.train.batch = 8, o.train.lr = 4e-3f, o.train.eval_every = 6;
    char straight[256], resumed[256], state_path[256];
    snprintf(straight, sizeof straight, "%s/straight.safetensors", tmpdir);
    snprintf(resumed, sizeof resumed, "%s/resumed.safetensors", tmpdir);
    snprintf(state_path, sizeof state_path, "%s/run.state", tmpdir);
    char *fp = finetune_fingerprint(&o, sha, "d", "v", NULL);
    assert_non_null(strstr(fp, "\"init\":\"pissa\""));
    finetune f;
    assert_int_equal(finetune_init(&f, &m, &train, NULL, &val, &o, "test", &e), 0);
    assert_int_equal(finetune_run(&f, &e), 0);
    assert_int_equal(lora_save(&f.adapter, straight, sha, 0, NULL, NULL, &e), 0);
    finetune_free(&f);
    for (int part = 0; part < 2; part++) { /* each part a fresh process: the shipped base */
        minigpt_free(&m);
        assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
        assert_int_equal(finetune_init(&f, &m, &train, NULL, &val, &o, "test", &e), 0);
        if (part == 0) {
            f.job.on_eval = stop_at_6;
            assert_int_equal(finetune_run(&f, &e), 0);
            train_stop_signal = 0;
            assert_int_equal(f.result.interrupted, 2);
            assert_int_equal(train_state_save(state_path, &f.job, &f.state, fp, &e), 0);
        } else {
            if (train_state_load(state_path, &f.job, &f.state, fp, &e)) fail_msg("%s", e.msg);
            assert_int_equal(finetune_run(&f, &e), 0);
            assert_int_equal(lora_save(&f.adapter, resumed, sha, 0, NULL, NULL, &e), 0);
        }
        finetune_free(&f);
    }
    char *a, *b;
    size_t na, nb;
    assert_int_equal(read_file(straight, 1 << 24, &a, &na, &e), 0);
    assert_int_equal(read_file(resumed, 1 << 24, &b, &nb, &e), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* the kaiming fingerprint of the same settings differs, naming init */
    finetune_opts ok = o;
    ok.init = LORA_INIT_KAIMING;
    char *fpk = finetune_fingerprint(&ok, sha, "d", "v", NULL);
    minigpt_free(&m);
    assert_int_equal(checkpoint_load(BASE, &m, &vocab, sha, &e), 0);
    assert_int_equal(finetune_init(&f, &m, &train, NULL, &val, &ok, "test", &e), 0);
    assert_int_equal(train_state_load(state_path, &f.job, &f.state, fpk, &e), -1);
    assert_non_null(strstr(e.msg, "init"));
    finetune_free(&f);
    free(a), free(b), free(fp), free(fpk);
    ds_free(&train);
    ds_free(&val);
    minigpt_free(&m);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svd_properties_and_reference),
        cmocka_unit_test(test_qr_properties_and_reference),
        cmocka_unit_test(test_linalg_refuses_bad_input),
        cmocka_unit_test(test_pissa_olora_match_peft),
        cmocka_unit_test(test_step0_reconstruction_all_targets),
        cmocka_unit_test(test_gaussian_statistics),
        cmocka_unit_test(test_kaiming_is_the_old_init_bit_for_bit),
        cmocka_unit_test(test_rank_limits),
        cmocka_unit_test(test_converted_adapter_gives_the_training_model),
        cmocka_unit_test(test_pissa_resume_is_bit_identical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
