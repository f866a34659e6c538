/* gemm.c — small-matrix sgemm kernels with a runtime choice of path (see gemm.h).
 *
 * One driver for every transposition: C is cut in tiles of MR x NR (6 x 16), K in blocks of
 * KC. Each block of KC rows of op(B) and 16 columns is copied (transposed when B is, zero-padded
 * past N) into a stack panel; then every tile of MR rows of C runs the micro-kernel over it,
 * reading op(A) in place with a row and a column stride (the last rows of M through a
 * zero-padded copy). The first K block applies β, later ones add.
 */
#include "gemm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMM_X86 1
#endif

#define MR 6   /* rows of a tile of C */
#define NR 16  /* columns of a tile of C: two AVX2 registers */
#define KC 256 /* rows of op(B) per panel: 16 KiB, stays in L1 */

static gemm_path active = GEMM_BLAS;
static pthread_once_t once = PTHREAD_ONCE_INIT;

const char *gemm_path_name(gemm_path p) {
    static const char *const names[GEMM_N_PATHS] = {"blas", "portable", "avx2"};
    return p >= 0 && p < GEMM_N_PATHS ? names[p] : "?";
}

int gemm_path_supported(gemm_path p) {
    switch (p) {
    case GEMM_BLAS:
    case GEMM_PORTABLE: return 1;
    case GEMM_AVX2:
#ifdef GEMM_X86
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        return 0;
#endif
    default: return 0;
    }
}

/* blas, or MINILORA_KERNEL when it names a path this CPU runs. */
static void settle(void) {
    active = GEMM_BLAS;
    const char *env = getenv("MINILORA_KERNEL");
    if (!env || !*env) return;
    for (int p = 0; p < GEMM_N_PATHS; p++)
        if (strcmp(env, gemm_path_name((gemm_path)p)) == 0) {
            if (gemm_path_supported((gemm_path)p)) active = (gemm_path)p;
            else
                fprintf(stderr,
                        "minilora: warning: MINILORA_KERNEL=%s: this CPU cannot run it; "
                        "using %s\n",
                        env, gemm_path_name(active));
            return;
        }
    fprintf(stderr,
            "minilora: warning: MINILORA_KERNEL=%.32s is not blas, portable or avx2; using %s\n",
            env, gemm_path_name(active));
}

gemm_path gemm_active(void) {
    pthread_once(&once, settle);
    return active;
}

int gemm_set_path(gemm_path p) {
    pthread_once(&once, settle);
    if (!gemm_path_supported(p)) return -1;
    active = p;
    return 0;
}

/* c[0..n) = β·c + α·t (β = 0: c is not read). */
static inline void store_row(float *c, const float *t, int n, float alpha, float beta) {
    if (beta == 0.0f && alpha == 1.0f)
        for (int j = 0; j < n; j++) c[j] = t[j];
    else if (beta == 0.0f)
        for (int j = 0; j < n; j++) c[j] = alpha * t[j];
    else if (beta == 1.0f && alpha == 1.0f)
        for (int j = 0; j < n; j++) c[j] += t[j];
    else if (beta == 1.0f)
        for (int j = 0; j < n; j++) c[j] += alpha * t[j];
    else
        for (int j = 0; j < n; j++) c[j] = beta * c[j] + alpha * t[j];
}

/* A micro-kernel: acc (MR, NR) = Σ_k a[i·a_rs + k·a_cs] · b[k·bs + j] over k < kc, in
 * ascending k; wide = 0 when only the first 8 columns are needed. */
typedef void (*tile_fn)(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t bs,
                        int wide, float *acc);

/* The AVX2 kernel also stores a whole tile itself: C rows (ldc apart) = β·C + α·acc. */
typedef void (*tile_store_fn)(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                              size_t bs, int wide, float *c, size_t ldc, float alpha, float beta);

/* The portable micro-kernel: plain C with constant bounds, which the compiler vectorizes. */
static void tile_portable(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                          size_t bs, int wide, float *acc) {
    (void)wide;
    for (int i = 0; i < MR; i++) { /* one row of the tile at a time: 16 sums in registers */
        float t[NR] = {0};
        for (int k = 0; k < kc; k++) {
            const float ai = a[i * a_rs + k * a_cs];
            const float *bk = b + (size_t)k * bs;
            for (int j = 0; j < NR; j++) t[j] += ai * bk[j];
        }
        memcpy(acc + i * NR, t, sizeof t);
    }
}

#ifdef GEMM_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* The AVX2 micro-kernel: the 6 x 16 tile in 12 registers (6 x 8 in 6 when not wide), each
 * lane summing k in ascending order with FMA. */
/* c[0..8) = β·c + α·v (β = 0: c is not read). */
AVX2 static inline void store8(float *c, __m256 v, float alpha, float beta) {
    if (alpha != 1.0f) v = _mm256_mul_ps(_mm256_set1_ps(alpha), v);
    if (beta == 1.0f) v = _mm256_add_ps(_mm256_loadu_ps(c), v);
    else if (beta != 0.0f)
        v = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c)), v);
    _mm256_storeu_ps(c, v);
}

/* acc (MR, NR) when c is NULL, else the tile's 6 rows of 16 (8 when not wide) of C directly,
 * through store8. */
AVX2 static inline __attribute__((always_inline)) void
tile_avx2_body(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t bs,
               int wide, float *acc, float *c, size_t ldc, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c10 = c00, c20 = c00, c30 = c00, c40 = c00, c50 = c00;
    const float *a0 = a, *a1 = a + a_rs, *a2 = a + 2 * a_rs, *a3 = a + 3 * a_rs;
    const float *a4 = a + 4 * a_rs, *a5 = a + 5 * a_rs;
    if (wide) {
        __m256 c01 = c00, c11 = c00, c21 = c00, c31 = c00, c41 = c00, c51 = c00;
        for (int k = 0; k < kc; k++) {
            const float *bk = b + (size_t)k * bs;
            const size_t o = (size_t)k * a_cs;
            const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
            __m256 x = _mm256_broadcast_ss(a0 + o);
            c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a1 + o);
            c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a2 + o);
            c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a3 + o);
            c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(a4 + o);
            c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a5 + o);
            c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
        }
        if (c) {
            store8(c + 0 * ldc + 8, c01, alpha, beta), store8(c + 1 * ldc + 8, c11, alpha, beta);
            store8(c + 2 * ldc + 8, c21, alpha, beta), store8(c + 3 * ldc + 8, c31, alpha, beta);
            store8(c + 4 * ldc + 8, c41, alpha, beta), store8(c + 5 * ldc + 8, c51, alpha, beta);
        } else {
            _mm256_storeu_ps(acc + 0 * NR + 8, c01), _mm256_storeu_ps(acc + 1 * NR + 8, c11);
            _mm256_storeu_ps(acc + 2 * NR + 8, c21), _mm256_storeu_ps(acc + 3 * NR + 8, c31);
            _mm256_storeu_ps(acc + 4 * NR + 8, c41), _mm256_storeu_ps(acc + 5 * NR + 8, c51);
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const size_t o = (size_t)k * a_cs;
            const __m256 b0 = _mm256_loadu_ps(b + (size_t)k * bs);
            c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + o), b0, c00);
            c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + o), b0, c10);
            c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + o), b0, c20);
            c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + o), b0, c30);
            c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + o), b0, c40);
            c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + o), b0, c50);
        }
    }
    if (c) {
        store8(c + 0 * ldc, c00, alpha, beta), store8(c + 1 * ldc, c10, alpha, beta);
        store8(c + 2 * ldc, c20, alpha, beta), store8(c + 3 * ldc, c30, alpha, beta);
        store8(c + 4 * ldc, c40, alpha, beta), store8(c + 5 * ldc, c50, alpha, beta);
        return;
    }
    _mm256_storeu_ps(acc + 0 * NR, c00), _mm256_storeu_ps(acc + 1 * NR, c10);
    _mm256_storeu_ps(acc + 2 * NR, c20), _mm256_storeu_ps(acc + 3 * NR, c30);
    _mm256_storeu_ps(acc + 4 * NR, c40), _mm256_storeu_ps(acc + 5 * NR, c50);
}

AVX2 static void tile_avx2(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                           size_t bs, int wide, float *acc) {
    tile_avx2_body(kc, a, a_rs, a_cs, b, bs, wide, acc, NULL, 0, 1.0f, 0.0f);
}

AVX2 static void tile_avx2_store(int kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                                 size_t bs, int wide, float *c, size_t ldc, float alpha,
                                 float beta) {
    tile_avx2_body(kc, a, a_rs, a_cs, b, bs, wide, NULL, c, ldc, alpha, beta);
}
#endif

/* panel (kc, NR) = op(B)[k0..k0+kc, j0..j0+nr), zero beyond nr. */
static void pack_panel(float *panel, const float *B, int ldb, int tb, int k0, int kc, int j0,
                       int nr) {
    if (tb) {
        for (int j = 0; j < nr; j++) { /* op(B)[k][j] = B[j][k]: read each row of B along k */
            const float *src = B + (size_t)(j0 + j) * ldb + k0;
            for (int k = 0; k < kc; k++) panel[k * NR + j] = src[k];
        }
    } else {
        for (int k = 0; k < kc; k++)
            memcpy(panel + k * NR, B + (size_t)(k0 + k) * ldb + j0, sizeof(float) * (size_t)nr);
    }
    if (nr < NR)
        for (int k = 0; k < kc; k++)
            for (int j = nr; j < NR; j++) panel[k * NR + j] = 0.0f;
}

static void drive(tile_fn tile, tile_store_fn tile_store, int ta, int tb, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc) {
    const size_t a_rs = ta ? 1 : (size_t)lda, a_cs = ta ? (size_t)lda : 1;
    if (K <= 0) { /* no products: C = β·C */
        const float zero[1] = {0.0f};
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) store_row(C + (size_t)i * ldc + j, zero, 1, 1.0f, beta);
        return;
    }
    _Alignas(64) float panel[KC * NR], apad[KC * MR], acc[MR * NR];
    for (int j0 = 0; j0 < N; j0 += NR) {
        const int nr = N - j0 < NR ? N - j0 : NR;
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC;
            /* always packed: B's own rows, 64 floats apart, would alias in L1 */
            const float *bp = panel;
            const size_t bs = NR;
            pack_panel(panel, B, ldb, tb, k0, kc, j0, nr);
            const float bb = k0 == 0 ? beta : 1.0f;
            for (int i0 = 0; i0 < M; i0 += MR) {
                const int mr = M - i0 < MR ? M - i0 : MR;
                const float *a = A + i0 * a_rs + k0 * a_cs;
                size_t rs = a_rs, cs = a_cs;
                if (mr < MR) { /* the last rows: a zero-padded copy, so the kernel reads 6 */
                    for (int k = 0; k < kc; k++)
                        for (int i = 0; i < MR; i++)
                            apad[k * MR + i] = i < mr ? a[i * a_rs + k * a_cs] : 0.0f;
                    a = apad, rs = 1, cs = MR;
                }
                if (tile_store && mr == MR && (nr == NR || nr == 8)) {
                    tile_store(kc, a, rs, cs, bp, bs, nr > 8, C + (size_t)i0 * ldc + j0,
                               (size_t)ldc, alpha, bb);
                    continue;
                }
                tile(kc, a, rs, cs, bp, bs, nr > 8, acc);
                for (int i = 0; i < mr; i++)
                    store_row(C + (size_t)(i0 + i) * ldc + j0, acc + i * NR, nr, alpha, bb);
            }
        }
    }
}

/* gemm_sgemm without the tally */
static void sgemm_dispatch(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                           int M, int N, int K, float alpha, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C, int ldc) {
    const gemm_path p = gemm_active();
    if (p == GEMM_BLAS || order != CblasRowMajor) {
        cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M <= 0 || N <= 0) return;
    tile_fn tile = tile_portable;
    tile_store_fn tile_store = NULL;
#ifdef GEMM_X86
    if (p == GEMM_AVX2) tile = tile_avx2, tile_store = tile_avx2_store;
#endif
    drive(tile, tile_store, ta == CblasTrans, tb == CblasTrans, M, N, K, alpha, A, lda, B, ldb,
          beta, C, ldc);
}

/* ---- the tally -------------------------------------------------------------------------- */

static atomic_int tally_on;
static atomic_llong tally_ns[2], tally_flops[2], tally_calls[2], tally_op_ns[TALLY_N_OPS];

void gemm_tally_start(void) {
    for (int c = 0; c < 2; c++) {
        atomic_store(&tally_ns[c], 0);
        atomic_store(&tally_flops[c], 0);
        atomic_store(&tally_calls[c], 0);
    }
    for (int o = 0; o < TALLY_N_OPS; o++) atomic_store(&tally_op_ns[o], 0);
    atomic_store(&tally_on, 1);
}

const char *gemm_tally_op_name(int op) {
    static const char *const names[TALLY_N_OPS] = {"attention", "GELU",        "LayerNorm",
                                                   "loss",      "elementwise", "optimizer"};
    return op >= 0 && op < TALLY_N_OPS ? names[op] : NULL;
}

gemm_tally gemm_tally_stop(void) {
    atomic_store(&tally_on, 0);
    gemm_tally t;
    for (int c = 0; c < 2; c++) {
        t.seconds[c] = (double)atomic_load(&tally_ns[c]) * 1e-9;
        t.flops[c] = (double)atomic_load(&tally_flops[c]);
        t.calls[c] = (long)atomic_load(&tally_calls[c]);
    }
    for (int o = 0; o < TALLY_N_OPS; o++)
        t.op_seconds[o] = (double)atomic_load(&tally_op_ns[o]) * 1e-9;
    return t;
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

long long gemm_tally_op_begin(void) {
    return atomic_load_explicit(&tally_on, memory_order_relaxed) ? now_ns() : 0;
}

void gemm_tally_op_end(tally_op op, long long t0) {
    if (t0 && op >= 0 && op < TALLY_N_OPS)
        atomic_fetch_add_explicit(&tally_op_ns[op], now_ns() - t0, memory_order_relaxed);
}

void gemm_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc) {
    if (!atomic_load_explicit(&tally_on, memory_order_relaxed)) {
        sgemm_dispatch(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const long long t0 = now_ns();
    sgemm_dispatch(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const int c = M <= GEMM_THIN || N <= GEMM_THIN || K <= GEMM_THIN;
    atomic_fetch_add_explicit(&tally_ns[c], now_ns() - t0, memory_order_relaxed);
    atomic_fetch_add_explicit(&tally_flops[c], 2LL * M * N * K, memory_order_relaxed);
    atomic_fetch_add_explicit(&tally_calls[c], 1, memory_order_relaxed);
}
