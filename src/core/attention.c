/* attention.c — causal self-attention, forward and backward (declared in layers.h).
 *
 * Attention works on one (sequence, head) at a time, as loops: a 32x32 head is too small for a
 * BLAS call to pay. K (forward) and V (backward) are first copied transposed, (HS, Tp) with
 * Tp = T rounded up to whole blocks of KB keys and zero padding, so a row of scores (or of
 * probability gradients) is computed key-parallel, vector lanes over keys, in loops of
 * constant width KB instead of as horizontal dot products over the channels of a head.
 *
 * Rows are independent, so the kernels take several at once: two rows of scores share each
 * loaded key block, four rows of weighted sums share each loaded value row, and the rows'
 * chains of adds interleave instead of each row waiting on its own. Every output element still
 * goes through the same operations in the same order as in a one-row loop (products rounded,
 * then added from 0 in increasing key or position order), so the results are the same bit for
 * bit however the rows are grouped: attention_forward_cached, which groups the rows of its
 * calls (one at a time while decoding), relies on it.
 */
#include "layers.h"

#include "fastmath.h"
#include "gemm.h"

#include <math.h>
#include <string.h>

#define KB 32             /* keys per block */
#define CB 16             /* channels per chunk of a weighted sum */
#define ROWS 4            /* rows of one weighted-sum kernel call */
#define ATT_SCRATCH 16384 /* floats of transposed K or V: HS·Tp up to this */
#define MAX_TP 4096       /* longest padded row of scores the stack buffers hold */

/* Eight floats as one value: GCC and Clang map the arithmetic on it to vector instructions of
 * the target (two SSE or one AVX operation), lane by lane, with ordinary float rounding. */
typedef float v8 __attribute__((vector_size(32)));

/* v (an lvalue of type v8) from or to eight floats at p, which need no alignment. Macros: a
 * vector passed by value to a function would change the ABI on a target without AVX. */
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8))
#define STORE8(p, v) memcpy((p), &(v), sizeof(v8))

static void transpose_head(float *dst, const float *src, int T, int Tp, int C, int HS) {
    // dst (HS,Tp) from src rows (T, stride C) of one head; columns T..Tp-1 are zero
    for (int i = 0; i < HS; i++) {
        float *d = dst + (size_t)i * Tp;
        for (int t = 0; t < T; t++) d[t] = src[(size_t)t * C + i];
        for (int t = T; t < Tp; t++) d[t] = 0.0f;
    }
}

/* s0, s1 [0..nb·KB) = wscale · Σ_i w0[i]·M[i][0..nb·KB) (and w1), M rows of stride Tp: two rows
 * of scores (or of probability gradients) against whole blocks of keys, each block accumulated
 * in registers; each loaded key block serves both rows. */
static void two_rows_times_blocks(float *s0, float *s1, const float *w0, const float *w1,
                                  float wscale, const float *M, int HS, int Tp, int nb) {
    for (int b = 0; b < nb; b++) {
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
        for (int i = 0; i < HS; i++) {
            const float *m = M + (size_t)i * Tp + b * KB;
            v8 m0, m1, m2, m3;
            LOAD8(m0, m), LOAD8(m1, m + 8), LOAD8(m2, m + 16), LOAD8(m3, m + 24);
            const float x = w0[i], y = w1[i];
            a0 += x * m0, a1 += x * m1, a2 += x * m2, a3 += x * m3;
            c0 += y * m0, c1 += y * m1, c2 += y * m2, c3 += y * m3;
        }
        float *o = s0 + b * KB, *p = s1 + b * KB;
        a0 *= wscale, a1 *= wscale, a2 *= wscale, a3 *= wscale;
        c0 *= wscale, c1 *= wscale, c2 *= wscale, c3 *= wscale;
        STORE8(o, a0), STORE8(o + 8, a1), STORE8(o + 16, a2), STORE8(o + 24, a3);
        STORE8(p, c0), STORE8(p + 8, c1), STORE8(p + 16, c2), STORE8(p + 24, c3);
    }
}

/* Rows t0 and t1 (t1 = t0 when t0 is the last row) of scores against all keys:
 * s0, s1 [0..Tp) = wscale · w·kᵀ, from kt (HS,Tp) when fast, else key by key from k rows of
 * stride C. Only the first t+1 entries of row t are meaningful (the causal keys); at least the
 * first t1+1 rounded up to 8 are written. */
static void score_rows(float *s0, float *s1, const float *w0, const float *w1, float wscale,
                       const float *kt, const float *k, int fast, int t1, int HS, int Tp, int C) {
    if (fast) {
        two_rows_times_blocks(s0, s1, w0, w1, wscale, kt, HS, Tp, t1 / KB + 1);
        return;
    }
    for (int t2 = 0; t2 <= t1; t2++) {
        s0[t2] = wscale * dot16(w0, k + (size_t)t2 * C, HS);
        s1[t2] = wscale * dot16(w1, k + (size_t)t2 * C, HS);
    }
    for (int t2 = t1 + 1; t2 < (t1 + 8) / 8 * 8; t2++) s0[t2] = s1[t2] = 0.0f; /* see softmax_row */
}

/* a[0..T) = the causal softmax of the scores s[0..n) (s is overwritten), exact zeros after.
 * s must hold n rounded up to 8 written floats and a room for `cap` >= T: the exponentials and
 * the scaling run over whole 8-lane vectors (no scalar tail; the extra lanes are discarded), and
 * every kept value is computed as before. */
static void softmax_row(float *a, float *s, int n, int T, int cap) {
    /* the maximum, in 8 lanes: it is exact, so any order gives the serial loop's value (NaNs
     * are skipped as there, unless s[0] is one) */
    float m8[8], maxv = s[0];
    for (int l = 0; l < 8; l++) m8[l] = s[0];
    int t2 = 1;
    for (; t2 + 8 <= n; t2 += 8)
        for (int l = 0; l < 8; l++) m8[l] = s[t2 + l] > m8[l] ? s[t2 + l] : m8[l];
    for (; t2 < n; t2++) maxv = s[t2] > maxv ? s[t2] : maxv;
    for (int l = 0; l < 8; l++) maxv = m8[l] > maxv ? m8[l] : maxv;
    const int n8 = (n + 7) / 8 * 8, na = n8 < cap ? n8 : cap;
    for (t2 = 0; t2 < n8; t2++) s[t2] = fast_expf(s[t2] - maxv);
    const float inv = 1.0f / sum16(s, n);
    for (t2 = 0; t2 < na; t2++) a[t2] = s[t2] * inv;
    for (t2 = n; t2 < T; t2++) a[t2] = 0.0f; /* masked keys: exactly zero */
}

/* y[0..HS) += Σ_{lo<=j<hi} w[j·ws] · x[j·xs .. j·xs+HS): a weighted sum of rows of one head,
 * one output row. Each CB-channel chunk accumulates in registers, then is stored once. */
static void weighted_rows(float *y, const float *w, size_t ws, const float *x, size_t xs, int lo,
                          int hi, int HS) {
    if (HS % CB != 0) {
        for (int i = 0; i < HS; i++) {
            float acc = y[i];
            for (int j = lo; j < hi; j++) acc += w[j * ws] * x[j * xs + i];
            y[i] = acc;
        }
        return;
    }
    for (int c = 0; c < HS; c += CB) {
        float acc[CB];
        for (int i = 0; i < CB; i++) acc[i] = y[c + i];
        for (int j = lo; j < hi; j++) {
            const float wj = w[j * ws];
            const float *xr = x + j * xs + c;
            for (int i = 0; i < CB; i++) acc[i] += wj * xr[i];
        }
        for (int i = 0; i < CB; i++) y[c + i] = acc[i];
    }
}

/* weighted_rows for ROWS output rows at once: y[r] += Σ_{lo[r]<=j<hi[r]} w[r][j·ws] · x[j·xs..].
 * The rows' accumulators stay in registers and share each loaded x row; a row takes a term only
 * inside its own range, and its terms are still added in increasing j. */
static void weighted_rows4(float *const y[ROWS], const float *const w[ROWS], size_t ws,
                           const float *x, size_t xs, const int lo[ROWS], const int hi[ROWS],
                           int HS) {
    int jlo = lo[0], jhi = hi[0], clo = lo[0], chi = hi[0]; /* all rows' span, common stretch */
    for (int r = 1; r < ROWS; r++) {
        jlo = lo[r] < jlo ? lo[r] : jlo, jhi = hi[r] > jhi ? hi[r] : jhi;
        clo = lo[r] > clo ? lo[r] : clo, chi = hi[r] < chi ? hi[r] : chi;
    }
    if (HS % CB != 0 || chi <= clo) { /* no common stretch: row by row */
        for (int r = 0; r < ROWS; r++) weighted_rows(y[r], w[r], ws, x, xs, lo[r], hi[r], HS);
        return;
    }
    for (int c = 0; c < HS; c += CB) {
        v8 acc[ROWS][2];
        for (int r = 0; r < ROWS; r++) LOAD8(acc[r][0], y[r] + c), LOAD8(acc[r][1], y[r] + c + 8);
        for (int j = jlo; j < jhi; j++) {
            const float *xr = x + j * xs + c;
            v8 x0, x1;
            LOAD8(x0, xr), LOAD8(x1, xr + 8);
            if (j >= clo && j < chi) /* the common stretch: every row */
                for (int r = 0; r < ROWS; r++) {
                    const float wj = w[r][j * ws];
                    acc[r][0] += wj * x0, acc[r][1] += wj * x1;
                }
            else
                for (int r = 0; r < ROWS; r++)
                    if (j >= lo[r] && j < hi[r]) {
                        const float wj = w[r][j * ws];
                        acc[r][0] += wj * x0, acc[r][1] += wj * x1;
                    }
        }
        for (int r = 0; r < ROWS; r++) STORE8(y[r] + c, acc[r][0]), STORE8(y[r] + c + 8, acc[r][1]);
    }
}

/* The weighted sums of one head for every row t < T, rows of stride C from y0 (zeroed first):
 * causal (rows t: positions j <= t, weights W[t·T + j]) or, transposed, by column (rows t:
 * positions j >= t, weights W[j·T + t]). x rows have stride C. */
static void head_weighted_sums(float *y0, const float *W, const float *x, int causal, int T, int C,
                               int HS) {
    for (int t = 0; t < T; t++) memset(y0 + (size_t)t * C, 0, (size_t)HS * sizeof(float));
    int t = 0;
    for (; t + ROWS <= T; t += ROWS) {
        float *y[ROWS];
        const float *w[ROWS];
        int lo[ROWS], hi[ROWS];
        for (int r = 0; r < ROWS; r++) {
            y[r] = y0 + (size_t)(t + r) * C;
            w[r] = causal ? W + (size_t)(t + r) * T : W + t + r;
            lo[r] = causal ? 0 : t + r;
            hi[r] = causal ? t + r + 1 : T;
        }
        weighted_rows4(y, w, causal ? 1 : (size_t)T, x, (size_t)C, lo, hi, HS);
    }
    for (; t < T; t++)
        weighted_rows(y0 + (size_t)t * C, causal ? W + (size_t)t * T : W + t,
                      causal ? 1 : (size_t)T, x, (size_t)C, causal ? 0 : t, causal ? t + 1 : T, HS);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int C, int NH) {
    // out (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const long long tally_t0 = gemm_tally_op_begin();
    const int HS = C / NH, Tp = (T + KB - 1) / KB * KB;
    const float scale = 1.0f / sqrtf((float)HS);
    float kt[ATT_SCRATCH], s[2][MAX_TP + KB];
    const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= MAX_TP;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * T * C + (size_t)h * HS;
            float *A = att + ((size_t)b * NH + h) * T * T; // (T,T) this head's probabilities
            if (fast) transpose_head(kt, k + head, T, Tp, C, HS);
            for (int t = 0; t < T; t += 2) { /* causal: row t sees keys 0..t */
                const int t1 = t + 1 < T ? t + 1 : t;
                score_rows(s[0], s[1], q + head + (size_t)t * C, q + head + (size_t)t1 * C, scale,
                           kt, k + head, fast, t1, HS, Tp, C);
                softmax_row(A + (size_t)t * T, s[0], t + 1, T, T);
                if (t1 != t) softmax_row(A + (size_t)t1 * T, s[1], t1 + 1, T, T);
            }
            head_weighted_sums(out + head, A, v + head, 1, T, C, HS);
        }
    gemm_tally_op_end(TALLY_ATTENTION, tally_t0);
}

void attention_forward_cached(float *out, const float *q, const float *kc, const float *vc,
                              const int *pos, int B, int n, int ctx, int C, int NH) {
    // out (B,n,C), q (B,n,C), kc/vc (B,ctx,C) keys (after RoPE) and values by position
    const long long tally_t0 = gemm_tally_op_begin();
    const int HS = C / NH;
    const float scale = 1.0f / sqrtf((float)HS);
    float kt[ATT_SCRATCH], s[2][MAX_TP + KB], a[ROWS][MAX_TP];
    for (int b = 0; b < B; b++) {
        const int T = pos[b] + n, Tp = (T + KB - 1) / KB * KB; /* positions this row sees */
        const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= MAX_TP;
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * ctx * C + (size_t)h * HS; /* in the cache */
            if (fast) transpose_head(kt, kc + head, T, Tp, C, HS);
            /* query rows i (position pos[b]+i) as attention_forward's rows, ROWS at a time */
            for (int i0 = 0; i0 < n; i0 += ROWS) {
                const int R = n - i0 < ROWS ? n - i0 : ROWS;
                float *y[ROWS];
                const float *w[ROWS];
                int lo[ROWS], hi[ROWS];
                for (int r = 0; r < R; r += 2) {
                    const int r1 = r + 1 < R ? r + 1 : r, t = pos[b] + i0 + r, t1 = t + r1 - r;
                    score_rows(s[0], s[1], q + ((size_t)b * n + i0 + r) * C + (size_t)h * HS,
                               q + ((size_t)b * n + i0 + r1) * C + (size_t)h * HS, scale, kt,
                               kc + head, fast, t1, HS, Tp, C);
                    softmax_row(a[r], s[0], t + 1, t + 1, MAX_TP);
                    if (r1 != r) softmax_row(a[r1], s[1], t1 + 1, t1 + 1, MAX_TP);
                }
                for (int r = 0; r < R; r++) {
                    y[r] = out + ((size_t)b * n + i0 + r) * C + (size_t)h * HS;
                    w[r] = a[r];
                    lo[r] = 0;
                    hi[r] = pos[b] + i0 + r + 1;
                    memset(y[r], 0, (size_t)HS * sizeof(float));
                }
                if (R == ROWS) weighted_rows4(y, w, 1, vc + head, (size_t)C, lo, hi, HS);
                else
                    for (int r = 0; r < R; r++)
                        weighted_rows(y[r], w[r], 1, vc + head, (size_t)C, 0, hi[r], HS);
            }
        }
    }
    gemm_tally_op_end(TALLY_ATTENTION, tally_t0);
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *att, const float *q, const float *k, const float *v, int B,
                        int T, int C, int NH) {
    // dq/dk/dv (B,T,C), datt (T,T) scratch, dout (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const long long tally_t0 = gemm_tally_op_begin();
    const int HS = C / NH, Tp = (T + KB - 1) / KB * KB;
    const float scale = 1.0f / sqrtf((float)HS);
    float vt[ATT_SCRATCH], g[2][MAX_TP + KB];
    const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= MAX_TP;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * T * C + (size_t)h * HS;
            const float *A = att + ((size_t)b * NH + h) * T * T; // (T,T) this head's probabilities
            if (fast) transpose_head(vt, v + head, T, Tp, C, HS);
            /* dA[t][t2] = dy[t]·v[t2], then dP = softmax'(dA) into datt, two rows at a time */
            for (int t = 0; t < T; t += 2) {
                const int t1 = t + 1 < T ? t + 1 : t;
                score_rows(g[0], g[1], dout + head + (size_t)t * C, dout + head + (size_t)t1 * C,
                           1.0f, vt, v + head, fast, t1, HS, Tp, C);
                for (int r = t; r <= t1; r++) {
                    const float *a = A + (size_t)r * T, *gr = g[r - t];
                    const int n = r + 1;
                    const float dot = dot16(a, gr, n);
                    float *dp = datt + (size_t)r * T;
                    for (int t2 = 0; t2 < n; t2++) dp[t2] = a[t2] * (gr[t2] - dot) * scale;
                }
            }
            /* dq[t] = Σ_{t2<=t} dP[t][t2]·k[t2]; dk[t2] = Σ_{t>=t2} dP[t][t2]·q[t];
             * dv[t2] = Σ_{t>=t2} A[t][t2]·dy[t] */
            head_weighted_sums(dq + head, datt, k + head, 1, T, C, HS);
            head_weighted_sums(dk + head, datt, q + head, 0, T, C, HS);
            head_weighted_sums(dv + head, A, dout + head, 0, T, C, HS);
        }
    gemm_tally_op_end(TALLY_ATTENTION, tally_t0);
}
