/* test_attention.c — causal self-attention (attention.c) against an independent reference.
 *
 *   - attention_forward's output and probabilities, and attention_backward's dq, dk, dv, match
 *     a plain double-precision implementation of the same formulas (scores, causal softmax,
 *     weighted sums; the backward by the chain rule written out) within float rounding, for
 *     sequence lengths that hit every shape of the kernels: 1 row, odd counts (a last row alone,
 *     rows left over after groups of four), one full key block (32), more than one (33, 70),
 *     and a head too large for the transposed scratch (the key-by-key path);
 *   - masked probabilities are exactly zero;
 *   - grouping rows does not change a bit: attention_forward_cached gives attention_forward's
 *     rows bit for bit one row at a time (decoding), all rows at once (the prefill) and from
 *     the middle on, and attention_forward on a single sequence gives that sequence's rows
 *     inside a batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "rng.h"

/* float rounding of sums of up to ~100 terms of size ~1, relative to the largest value */
#define TOL 2e-5

typedef struct {
    int B, T, C, NH;
} shape;

static float *randn(rng *r, size_t n, float sd) {
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = sd * rng_normal(r);
    return p;
}

/* The reference, in double: out (B,T,C), att (B,NH,T,T), and the gradients of Σ dy·out. */
static void reference(const shape *s, const float *q, const float *k, const float *v,
                      const float *dy, double *out, double *att, double *dq, double *dk,
                      double *dv) {
    const int T = s->T, C = s->C, HS = C / s->NH;
    const double scale = 1.0 / sqrt((double)HS);
    const size_t n = (size_t)s->B * T * C;
    memset(dq, 0, n * sizeof *dq), memset(dk, 0, n * sizeof *dk), memset(dv, 0, n * sizeof *dv);
    double *dA = malloc((size_t)T * sizeof *dA);
    assert_non_null(dA);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->NH; h++) {
#define AT(x, t, i) x[((size_t)b * T + (t)) * C + (size_t)h * HS + (i)]
            double *P = att + ((size_t)b * s->NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                double mx = -INFINITY, z = 0.0;
                for (int u = 0; u < T; u++) {
                    double d = 0.0;
                    for (int i = 0; i < HS; i++) d += (double)AT(q, t, i) * AT(k, u, i);
                    P[t * T + u] = u <= t ? d * scale : -INFINITY;
                    if (u <= t && P[t * T + u] > mx) mx = P[t * T + u];
                }
                for (int u = 0; u < T; u++) z += P[t * T + u] = exp(P[t * T + u] - mx);
                for (int u = 0; u < T; u++) P[t * T + u] /= z;
                for (int i = 0; i < HS; i++) {
                    double o = 0.0;
                    for (int u = 0; u <= t; u++) o += P[t * T + u] * AT(v, u, i);
                    AT(out, t, i) = o;
                }
                /* backward of row t: dP = dy·vᵀ, dS = P∘(dP − Σ P∘dP), S = q·kᵀ·scale */
                double dot = 0.0;
                for (int u = 0; u <= t; u++) {
                    dA[u] = 0.0;
                    for (int i = 0; i < HS; i++) dA[u] += (double)AT(dy, t, i) * AT(v, u, i);
                    dot += P[t * T + u] * dA[u];
                }
                for (int u = 0; u <= t; u++) {
                    const double ds = P[t * T + u] * (dA[u] - dot) * scale;
                    for (int i = 0; i < HS; i++) {
                        AT(dq, t, i) += ds * AT(k, u, i);
                        AT(dk, u, i) += ds * AT(q, t, i);
                        AT(dv, u, i) += P[t * T + u] * AT(dy, t, i);
                    }
                }
            }
#undef AT
        }
    free(dA);
}

/* max |got − want| ≤ TOL·max(1, max |want|) */
static void near(const char *what, const shape *s, const float *got, const double *want, size_t n) {
    double err = 0.0, big = 1.0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)got[i] - want[i]));
        big = fmax(big, fabs(want[i]));
    }
    if (!(err <= TOL * big))
        fail_msg("%s, B %d T %d C %d NH %d: max error %.3g over max %.3g", what, s->B, s->T, s->C,
                 s->NH, err, big);
}

static void check_shape(const shape *s, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    const size_t n = (size_t)s->B * s->T * s->C, na = (size_t)s->B * s->NH * s->T * s->T;
    float *q = randn(&r, n, 1.0f), *k = randn(&r, n, 1.0f), *v = randn(&r, n, 1.0f);
    float *dy = randn(&r, n, 1.0f);
    float *out = malloc(n * sizeof *out), *att = malloc(na * sizeof *att);
    float *dq = malloc(n * sizeof *dq), *dk = malloc(n * sizeof *dk), *dv = malloc(n * sizeof *dv);
    float *datt = malloc((size_t)s->T * s->T * sizeof *datt);
    double *rout = malloc(n * sizeof *rout), *ratt = malloc(na * sizeof *ratt);
    double *rdq = malloc(n * sizeof *rdq), *rdk = malloc(n * sizeof *rdk);
    double *rdv = malloc(n * sizeof *rdv);
    assert_true(out && att && dq && dk && dv && datt && rout && ratt && rdq && rdk && rdv);
    for (size_t i = 0; i < na; i++) att[i] = NAN; /* every entry must be written */

    attention_forward(out, att, q, k, v, s->B, s->T, s->C, s->NH);
    attention_backward(dq, dk, dv, datt, dy, att, q, k, v, s->B, s->T, s->C, s->NH);
    reference(s, q, k, v, dy, rout, ratt, rdq, rdk, rdv);
    near("out", s, out, rout, n);
    near("att", s, att, ratt, na);
    near("dq", s, dq, rdq, n);
    near("dk", s, dk, rdk, n);
    near("dv", s, dv, rdv, n);
    for (size_t i = 0; i < na; i++)
        if (ratt[i] == 0.0 && att[i] != 0.0f) /* a masked key: exactly 0 (+0 or −0 both fine) */
            fail_msg("masked probability %zu is %g, not 0 (T %d)", i, (double)att[i], s->T);

    free(q), free(k), free(v), free(dy), free(out), free(att), free(dq), free(dk), free(dv);
    free(datt), free(rout), free(ratt), free(rdq), free(rdk), free(rdv);
}

static void test_against_reference(void **state) {
    (void)state;
    /* the model's heads (HS 16) at lengths that hit every kernel shape; HS 24 (channels not in
     * whole 16-wide chunks); HS 128 at T 200 (128·224 floats exceed the transposed scratch) */
    const shape shapes[] = {{3, 1, 64, 4},  {3, 2, 64, 4},   {2, 5, 64, 4},  {2, 7, 64, 4},
                            {2, 17, 64, 4}, {2, 32, 64, 4},  {2, 33, 64, 4}, {1, 70, 64, 4},
                            {2, 9, 48, 2},  {1, 200, 256, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], 100 + i);
}

/* One row at a time (the cache) and a sequence alone give the batch's rows bit for bit. */
static void test_grouping_is_exact(void **state) {
    (void)state;
    const int Ts[] = {1, 6, 31, 32, 33, 45};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        const int B = 3, T = Ts[ti], C = 64, NH = 4;
        rng r;
        rng_seed(&r, 7 + ti);
        const size_t n = (size_t)B * T * C;
        float *q = randn(&r, n, 1.5f), *k = randn(&r, n, 1.5f), *v = randn(&r, n, 1.0f);
        float *out = malloc(n * sizeof *out), *one = malloc(n * sizeof *one);
        float *att = malloc((size_t)B * NH * T * T * sizeof *att);
        float *row = malloc((size_t)C * sizeof *row);
        assert_true(out && one && att && row);
        attention_forward(out, att, q, k, v, B, T, C, NH);
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * T * C;
            for (int t = 0; t < T; t++) {
                const int pos = t;
                attention_forward_cached(row, q + off + (size_t)t * C, k + off, v + off, &pos, 1, 1,
                                         T, C, NH);
                if (memcmp(row, out + off + (size_t)t * C, (size_t)C * sizeof *row) != 0)
                    fail_msg("T %d: row %d of sequence %d differs one row at a time", T, t, b);
            }
        }
        /* the cache's prefill (every row at once from position 0) and a continuation (the
         * rows from position T/2 on, in one call) */
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * T * C;
            const int zero = 0, half = T / 2;
            attention_forward_cached(one + off, q + off, k + off, v + off, &zero, 1, T, T, C, NH);
            if (memcmp(one + off, out + off, (size_t)T * C * sizeof *out) != 0)
                fail_msg("T %d: the cache's prefill differs from attention_forward", T);
            attention_forward_cached(one + off, q + off + (size_t)half * C, k + off, v + off, &half,
                                     1, T - half, T, C, NH);
            if (memcmp(one + off, out + off + (size_t)half * C,
                       (size_t)(T - half) * C * sizeof *out) != 0)
                fail_msg("T %d: the cache's rows from position %d differ", T, half);
        }
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * T * C;
            float *att1 = malloc((size_t)NH * T * T * sizeof *att1);
            assert_non_null(att1);
            attention_forward(one + off, att1, q + off, k + off, v + off, 1, T, C, NH);
            free(att1);
        }
        if (memcmp(one, out, n * sizeof *out) != 0)
            fail_msg("T %d: a sequence alone differs from the same sequence in a batch", T);
        free(q), free(k), free(v), free(out), free(one), free(att), free(row);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_grouping_is_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
