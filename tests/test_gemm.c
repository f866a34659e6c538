/* test_gemm.c — every gemm path (blas, portable, avx2 when the CPU has it) against a product
 * computed in double, over all transposition pairs, α and β values (0 must not read C: C
 * starts as NaN there) and shapes that exercise every tile remainder (M not a multiple of 6,
 * N not of 8 or 16, K over one KC block of 256), with row strides wider than the matrices.
 *
 * Tolerance, justified: a float dot product of K terms accumulated in any order is within
 * K·2⁻²⁴·Σ|a·b| of the exact value (Higham's bound γ_K), so each element is checked against
 * that bound (times 2 for the α, β roundings) — a wrong index or a dropped term is off by
 * O(|a·b|), far outside. Each path is also run twice on the same inputs: bit-identical.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "layers.h"
#include "rng.h"

static void fill(float *x, size_t n, rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r);
}

/* One product on path p against the double reference; returns the number of bad elements. */
static int check_one(gemm_path p, int ta, int tb, int M, int N, int K, float alpha, float beta,
                     rng *r) {
    const int pad = 3; /* row strides wider than the rows */
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = malloc(sizeof(float) * (size_t)ar * lda),
          *B = malloc(sizeof(float) * (size_t)br * ldb);
    float *C0 = malloc(sizeof(float) * (size_t)M * ldc),
          *C = malloc(sizeof(float) * (size_t)M * ldc);
    float *C2 = malloc(sizeof(float) * (size_t)M * ldc);
    assert_true(A && B && C0 && C && C2);
    fill(A, (size_t)ar * lda, r);
    fill(B, (size_t)br * ldb, r);
    fill(C0, (size_t)M * ldc, r);
    if (beta == 0.0f) /* β = 0 must overwrite, never read */
        for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = NAN;
    memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
    memcpy(C2, C0, sizeof(float) * (size_t)M * ldc);
    assert_int_equal(gemm_set_path(p), 0);
    const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans,
                               TB = tb ? CblasTrans : CblasNoTrans;
    gemm_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    gemm_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                const double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            const double c0 = C0[(size_t)i * ldc + j];
            const double want = alpha * s + (beta == 0.0f ? 0.0 : beta * c0);
            const double tol = 2.0 * (K + 2) * ldexp(1.0, -24) *
                               (fabs(alpha) * mag + fabs(beta * (beta == 0.0f ? 0.0 : c0)) + 1e-30);
            const float got = C[(size_t)i * ldc + j];
            if (!(fabs(got - want) <= tol)) {
                if (bad < 3)
                    print_error(
                        "%s %c%c M%d N%d K%d α%g β%g: C[%d][%d] = %.9g, want %.9g (tol %.3g)\n",
                        gemm_path_name(p), ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, (double)alpha,
                        (double)beta, i, j, (double)got, want, tol);
                bad++;
            }
        }
    /* the padding columns of C are untouched */
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            if (memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof(float)) != 0)
                bad++;
    if (memcmp(C, C2, sizeof(float) * (size_t)M * ldc) != 0) {
        print_error("%s: two runs of the same product differ\n", gemm_path_name(p));
        bad++;
    }
    free(A), free(B), free(C0), free(C), free(C2);
    return bad;
}

static void check_path(gemm_path p) {
    if (!gemm_path_supported(p)) {
        print_message("skipped: this CPU cannot run the %s path\n", gemm_path_name(p));
        skip();
    }
    static const int dims[][3] = {{1, 1, 1},    {5, 7, 3},     {6, 16, 64},  {13, 8, 64},
                                  {64, 64, 64}, {37, 24, 9},   {8, 64, 300}, {64, 8, 520},
                                  {7, 17, 256}, {12, 33, 257}, {3, 5, 0}};
    static const float ab[][2] = {
        {1.0f, 0.0f}, {1.0f, 1.0f}, {0.5f, 0.0f}, {-2.0f, 1.0f}, {1.5f, 0.25f}};
    rng r;
    rng_seed(&r, 11);
    int bad = 0;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int t = 0; t < 4; t++)
            for (size_t s = 0; s < sizeof ab / sizeof ab[0]; s++)
                bad += check_one(p, t & 1, t >> 1, dims[d][0], dims[d][1], dims[d][2], ab[s][0],
                                 ab[s][1], &r);
    assert_int_equal(bad, 0);
}

static void test_blas(void **state) { (void)state, check_path(GEMM_BLAS); }
static void test_portable(void **state) { (void)state, check_path(GEMM_PORTABLE); }
static void test_avx2(void **state) { (void)state, check_path(GEMM_AVX2); }

/* Without MINILORA_KERNEL the path is blas (bit-identical to earlier versions). */
static void test_default_is_blas(void **state) {
    (void)state;
    if (getenv("MINILORA_KERNEL")) skip(); /* the environment chose */
    assert_int_equal(gemm_active(), GEMM_BLAS);
}

/* The tally (lora bench's time split) counts each product once, in its class, with its
 * 2·M·N·K FLOPs, and nothing while it is off. */
static void test_tally(void **state) {
    (void)state;
    enum { M = 48, N = 40, K = 64, R = 8 };
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)N * K, sizeof(float));
    float *c = calloc((size_t)M * N, sizeof(float));
    assert_true(a && b && c);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N); /* off */
    gemm_tally_start();
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, K, 1, a, K, b, K, 0, c, R);
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, N, M, 1, a, R, b, N, 1, c, N);
    const gemm_tally t = gemm_tally_stop();
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N); /* off */
    assert_int_equal(t.calls[0], 1);
    assert_int_equal(t.calls[1], 2);
    assert_true(t.flops[0] == 2.0 * M * N * K);
    assert_true(t.flops[1] == 2.0 * M * R * K + 2.0 * R * N * M);
    assert_true(t.seconds[0] > 0 && t.seconds[1] > 0 && t.seconds[0] < 10 && t.seconds[1] < 10);
    const gemm_tally u = gemm_tally_stop(); /* stopping again: the same counts, none added */
    assert_int_equal(u.calls[0] + u.calls[1], 3);
    for (int o = 0; o < TALLY_N_OPS; o++) assert_true(t.op_seconds[o] == 0.0); /* none ran */
    free(a), free(b), free(c);
}

/* The other work's tally: a kernel's time goes to its own kind only, and nothing while the
 * tally is off (a begin while off returns 0, and an end then adds nothing). */
static void test_tally_ops(void **state) {
    (void)state;
    enum { N = 1 << 18, C = 64 };
    float *x = calloc(N, sizeof(float)), *y = calloc(N, sizeof(float));
    float *mean = calloc(N / C, sizeof(float)), *rstd = calloc(N / C, sizeof(float));
    float *w = calloc(C, sizeof(float)), *b = calloc(C, sizeof(float));
    assert_true(x && y && mean && rstd && w && b);
    assert_true(gemm_tally_op_begin() == 0); /* off */
    gelu_forward(y, x, N);
    gemm_tally_start();
    gelu_forward(y, x, N);
    layernorm_forward(y, mean, rstd, x, w, b, N / C, C, 1e-5f);
    gemm_tally_op_end(TALLY_LOSS, 0); /* a begin taken while off: nothing */
    const gemm_tally t = gemm_tally_stop();
    gelu_forward(y, x, N);
    const gemm_tally u = gemm_tally_stop();
    assert_true(t.op_seconds[TALLY_GELU] > 0 && t.op_seconds[TALLY_GELU] < 10);
    assert_true(t.op_seconds[TALLY_LAYERNORM] > 0 && t.op_seconds[TALLY_LAYERNORM] < 10);
    for (int o = 0; o < TALLY_N_OPS; o++) {
        if (o != TALLY_GELU && o != TALLY_LAYERNORM) assert_true(t.op_seconds[o] == 0.0);
        assert_true(u.op_seconds[o] == t.op_seconds[o]); /* nothing added while off */
        assert_non_null(gemm_tally_op_name(o));
    }
    assert_null(gemm_tally_op_name(TALLY_N_OPS));
    assert_true(t.calls[0] + t.calls[1] == 0); /* no product ran */
    free(x), free(y), free(mean), free(rstd), free(w), free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_blas), cmocka_unit_test(test_tally),
        cmocka_unit_test(test_tally_ops),       cmocka_unit_test(test_blas),
        cmocka_unit_test(test_portable),        cmocka_unit_test(test_avx2)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
