/* layers.c — forward/backward pairs of the model's operations (see layers.h).
 *
 * Linear layers go to gemm_sgemm (gemm.h: OpenBLAS by default); the attention of a 32x32
 * head is too small for a BLAS call to pay, so it is written as loops.
 */
#include "layers.h"

#include "fastmath.h"
#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void encoder_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    // out (N,C), tokens (N), wte (V,C)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

void encoder_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    // dwte (V,C), dout (N,C)
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) dw[c] += d[c];
    }
}

/* Σ x[0..n) with 16 independent partial sums in a fixed order: the compiler turns the inner
 * loop into vector adds (a plain serial sum cannot be reassociated under ISO C), and the
 * result is the same on every run. */
static inline float sum16(const float *x, int n) {
    float acc[16] = {0};
    int c = 0;
    for (; c + 16 <= n; c += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[c + j];
    float s = 0.0f;
    for (; c < n; c++) s += x[c];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* Σ a[i]·b[i], the same way. */
static inline float dot16(const float *a, const float *b, int n) {
    float acc[16] = {0};
    int c = 0;
    for (; c + 16 <= n; c += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[c + j] * b[c + j];
    float s = 0.0f;
    for (; c < n; c++) s += a[c] * b[c];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
    // out (N,C), mean (N), rstd (N), inp (N,C), w (C), b (C)
    float d[4096];
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float m = sum16(x, C) / (float)C;
        for (int c = 0; c < C; c++) d[c] = x[c] - m;
        /* two passes: the biased variance, as torch computes it */
        const float var = dot16(d, d, C) / (float)C;
        const float s = 1.0f / sqrtf(var + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = d[c] * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C,
                        int overwrite) {
    // dinp (N,C), dw (C), db (C), dout (N,C), inp (N,C), w (C), mean (N), rstd (N)
    float xhat[4096], dxhat[4096];
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        const float m = mean[n], s = rstd[n];
        /* dxhat = dout·w; dx = s·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) */
        for (int c = 0; c < C; c++) {
            xhat[c] = (x[c] - m) * s;
            dxhat[c] = d[c] * w[c];
        }
        const float dsum = sum16(dxhat, C) / (float)C;
        const float dxsum = dot16(dxhat, xhat, C) / (float)C;
        float *di = dinp + (size_t)n * C;
        if (dw)
            for (int c = 0; c < C; c++) dw[c] += d[c] * xhat[c];
        if (db)
            for (int c = 0; c < C; c++) db[c] += d[c];
        if (overwrite)
            for (int c = 0; c < C; c++) di[c] = s * (dxhat[c] - dsum - xhat[c] * dxsum);
        else
            for (int c = 0; c < C; c++) di[c] += s * (dxhat[c] - dsum - xhat[c] * dxsum);
    }
}

void matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int In,
                    int Out) {
    // out (N,Out), inp (N,In), w (Out,In), b (Out)
    float beta = 0.0f;
    if (b) { /* start from the bias so the GEMM adds onto it */
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * Out, b, (size_t)Out * sizeof(float));
        beta = 1.0f;
    }
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Out, In, 1.0f, inp, In, w, In, beta, out,
               Out);
}

void matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int In, int Out, int overwrite) {
    // dinp (N,In), dw (Out,In), db (Out), dout (N,Out), inp (N,In), w (Out,In)
    if (dinp)
        gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, Out, 1.0f, dout, Out, w, In,
                   overwrite ? 0.0f : 1.0f, dinp, In);
    if (dw)
        gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Out, In, N, 1.0f, dout, Out, inp, In,
                   1.0f, dw, In);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * Out;
            for (int o = 0; o < Out; o++) db[o] += d[o];
        }
}

/* Rotates every pair of every head by ±angle; sign −1 is the inverse rotation. */
static void rope_apply(float *x, const float *cos, const float *sin, int B, int T, int C, int NH,
                       float sign) {
    // x (B,T,C), cos/sin (context, HS/2)
    const int HS = C / NH, P = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *ct = cos + (size_t)t * P, *st = sin + (size_t)t * P;
            for (int h = 0; h < NH; h++) {
                float *xh = x + ((size_t)b * T + t) * C + (size_t)h * HS;
                for (int i = 0; i < P; i++) {
                    float a = xh[2 * i], c = xh[2 * i + 1];
                    float cs = ct[i], sn = sign * st[i];
                    xh[2 * i] = a * cs - c * sn;
                    xh[2 * i + 1] = a * sn + c * cs;
                }
            }
        }
}

void rope_forward(float *x, const float *cos, const float *sin, int B, int T, int C, int NH) {
    rope_apply(x, cos, sin, B, T, C, NH, 1.0f);
}

void rope_forward_at(float *x, const float *cos, const float *sin, const int *pos, int B, int n,
                     int C, int NH) {
    // x (B,n,C); row (b,i) is at position pos[b]+i of its sequence
    const int P = C / NH / 2;
    for (int b = 0; b < B; b++) /* one row each: the position is its first row's */
        for (int i = 0; i < n; i++)
            rope_apply(x + ((size_t)b * n + i) * C, cos + (size_t)(pos[b] + i) * P,
                       sin + (size_t)(pos[b] + i) * P, 1, 1, C, NH, 1.0f);
}

void rope_backward(float *dx, const float *cos, const float *sin, int B, int T, int C, int NH) {
    /* The rotation is orthogonal: its transpose is the rotation by the opposite angle. */
    rope_apply(dx, cos, sin, B, T, C, NH, -1.0f);
}

/* Attention works on one (sequence, head) at a time. K and V are first copied transposed,
 * (HS, Tp) with Tp = T rounded up to whole blocks of KB keys and zero padding, so the scores of
 * one query against a block of keys, and the gradients of a block of probabilities, are
 * computed key-parallel in loops of constant width KB (vector lanes over keys) instead of as
 * horizontal dot products over the channels of a head. Channels go in chunks of CB when the
 * head size allows. Constant trip counts let the compiler emit exactly two AVX-512 operations
 * per row instead of a vector loop plus a scalar remainder. */
#define KB 32             /* keys per block */
#define CB 16             /* channels per chunk */
#define ATT_SCRATCH 16384 /* floats of transposed K or V: HS·Tp up to this */

static void transpose_head(float *dst, const float *src, int T, int Tp, int C, int HS) {
    // dst (HS,Tp) from src rows (T, stride C) of one head; columns T..Tp-1 are zero
    for (int i = 0; i < HS; i++) {
        float *d = dst + (size_t)i * Tp;
        for (int t = 0; t < T; t++) d[t] = src[(size_t)t * C + i];
        for (int t = T; t < Tp; t++) d[t] = 0.0f;
    }
}

/* y[0..HS) (+)= Σ_{j<n} w[j·ws] · x[j·xs .. j·xs+HS): a weighted sum of n rows of one head.
 * Each CB-channel chunk accumulates in registers across all n rows, then is stored once. */
static inline void weighted_rows(float *y, int accumulate, const float *w, size_t ws,
                                 const float *x, size_t xs, int n, int HS) {
    if (HS % CB != 0) {
        for (int i = 0; i < HS; i++) {
            float acc = accumulate ? y[i] : 0.0f;
            for (int j = 0; j < n; j++) acc += w[j * ws] * x[j * xs + i];
            y[i] = acc;
        }
        return;
    }
    for (int c = 0; c < HS; c += CB) {
        float acc[CB];
        for (int i = 0; i < CB; i++) acc[i] = accumulate ? y[c + i] : 0.0f;
        for (int j = 0; j < n; j++) {
            const float wj = w[j * ws];
            const float *xr = x + j * xs + c;
            for (int i = 0; i < CB; i++) acc[i] += wj * xr[i];
        }
        for (int i = 0; i < CB; i++) y[c + i] = acc[i];
    }
}

/* s[0..nb·KB) = wscale · Σ_i w[i]·M[i][0..nb·KB), M rows of stride Tp: one row of scores (or
 * of probability gradients) against whole blocks of keys, each block accumulated in registers. */
static inline void row_times_blocks(float *s, const float *w, float wscale, const float *M, int HS,
                                    int Tp, int nb) {
    for (int b = 0; b < nb; b++) {
        float acc[KB] = {0};
        for (int i = 0; i < HS; i++) {
            const float wi = w[i];
            const float *m = M + (size_t)i * Tp + b * KB;
            for (int j = 0; j < KB; j++) acc[j] += wi * m[j];
        }
        for (int j = 0; j < KB; j++) s[b * KB + j] = acc[j] * wscale;
    }
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int C, int NH) {
    // out (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const int HS = C / NH, Tp = (T + KB - 1) / KB * KB;
    const float scale = 1.0f / sqrtf((float)HS);
    float kt[ATT_SCRATCH], s[4096 + KB];
    const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= 4096;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * T * C + (size_t)h * HS;
            if (fast) transpose_head(kt, k + head, T, Tp, C, HS);
            for (int t = 0; t < T; t++) {
                const float *qt = q + head + (size_t)t * C;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const int n = t + 1, nb = t / KB + 1; /* causal: keys 0..t, in nb blocks */
                if (fast) row_times_blocks(s, qt, scale, kt, HS, Tp, nb);
                else
                    for (int t2 = 0; t2 < n; t2++)
                        s[t2] = scale * dot16(qt, k + head + (size_t)t2 * C, HS);
                float maxv = s[0];
                for (int t2 = 1; t2 < n; t2++) maxv = s[t2] > maxv ? s[t2] : maxv;
                for (int t2 = 0; t2 < n; t2++) s[t2] = fast_expf(s[t2] - maxv);
                const float inv = 1.0f / sum16(s, n);
                for (int t2 = 0; t2 < n; t2++) a[t2] = s[t2] * inv;
                for (int t2 = n; t2 < T; t2++) a[t2] = 0.0f; /* masked keys: exactly zero */
                weighted_rows(out + head + (size_t)t * C, 0, a, 1, v + head, (size_t)C, n, HS);
            }
        }
}

void attention_forward_cached(float *out, const float *q, const float *kc, const float *vc,
                              const int *pos, int B, int n, int ctx, int C, int NH) {
    // out (B,n,C), q (B,n,C), kc/vc (B,ctx,C) keys (after RoPE) and values by position
    const int HS = C / NH;
    const float scale = 1.0f / sqrtf((float)HS);
    float kt[ATT_SCRATCH], s[4096 + KB], a[4096];
    for (int b = 0; b < B; b++) {
        const int T = pos[b] + n, Tp = (T + KB - 1) / KB * KB; /* positions this row sees */
        const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= 4096;
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * ctx * C + (size_t)h * HS; /* in the cache */
            if (fast) transpose_head(kt, kc + head, T, Tp, C, HS);
            for (int i = 0; i < n; i++) { /* as attention_forward's row t */
                const int t = pos[b] + i;
                const float *qt = q + ((size_t)b * n + i) * C + (size_t)h * HS;
                const int cnt = t + 1, nb = t / KB + 1;
                if (fast) row_times_blocks(s, qt, scale, kt, HS, Tp, nb);
                else
                    for (int t2 = 0; t2 < cnt; t2++)
                        s[t2] = scale * dot16(qt, kc + head + (size_t)t2 * C, HS);
                float maxv = s[0];
                for (int t2 = 1; t2 < cnt; t2++) maxv = s[t2] > maxv ? s[t2] : maxv;
                for (int t2 = 0; t2 < cnt; t2++) s[t2] = fast_expf(s[t2] - maxv);
                const float inv = 1.0f / sum16(s, cnt);
                for (int t2 = 0; t2 < cnt; t2++) a[t2] = s[t2] * inv;
                weighted_rows(out + ((size_t)b * n + i) * C + (size_t)h * HS, 0, a, 1, vc + head,
                              (size_t)C, cnt, HS);
            }
        }
    }
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *att, const float *q, const float *k, const float *v, int B,
                        int T, int C, int NH) {
    // dq/dk/dv (B,T,C), datt (T,T) scratch, dout (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const int HS = C / NH, Tp = (T + KB - 1) / KB * KB;
    const float scale = 1.0f / sqrtf((float)HS);
    float vt[ATT_SCRATCH], g[4096 + KB];
    const int fast = (size_t)HS * Tp <= ATT_SCRATCH && Tp <= 4096;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t head = (size_t)b * T * C + (size_t)h * HS;
            const float *A = att + ((size_t)b * NH + h) * T * T; // (T,T) this head's probabilities
            if (fast) transpose_head(vt, v + head, T, Tp, C, HS);
            /* pass 1, row by row: dP = softmax'(dA) into datt, and dq */
            for (int t = 0; t < T; t++) {
                const float *a = A + (size_t)t * T;
                const float *dy = dout + head + (size_t)t * C;
                const int n = t + 1, nb = t / KB + 1;
                if (fast) row_times_blocks(g, dy, 1.0f, vt, HS, Tp, nb); /* dA[t][t2] = dy·v[t2] */
                else
                    for (int t2 = 0; t2 < n; t2++) g[t2] = dot16(dy, v + head + (size_t)t2 * C, HS);
                const float dot = dot16(a, g, n);
                float *dp = datt + (size_t)t * T;
                for (int t2 = 0; t2 < n; t2++) dp[t2] = a[t2] * (g[t2] - dot) * scale;
                weighted_rows(dq + head + (size_t)t * C, 0, dp, 1, k + head, (size_t)C, n, HS);
            }
            /* pass 2, column by column: dk[t2] = Σ_t dP[t][t2]·q[t], dv[t2] = Σ_t A[t][t2]·dy[t] */
            for (int t2 = 0; t2 < T; t2++) {
                const size_t from = (size_t)t2 * T + t2, row = (size_t)t2 * C; /* rows t >= t2 */
                weighted_rows(dk + head + row, 0, datt + from, (size_t)T, q + head + row, (size_t)C,
                              T - t2, HS);
                weighted_rows(dv + head + row, 0, A + from, (size_t)T, dout + head + row, (size_t)C,
                              T - t2, HS);
            }
        }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* 0.5·(1 + tanh(u)) = sigmoid(2u), so GELU(x) = x·sigmoid(2u), u = √(2/π)(x + 0.044715x³):
 * one exp instead of a tanh, and the loops vectorize. */
void gelu_forward(float *out, const float *inp, int n) {
    for (int i = 0; i < n; i++) {
        const float x = inp[i];
        const float u = GELU_K * (x + GELU_C * x * x * x);
        out[i] = x / (1.0f + fast_expf(-2.0f * u));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int n) {
    for (int i = 0; i < n; i++) {
        const float x = inp[i];
        const float u = GELU_K * (x + GELU_C * x * x * x);
        const float s = 1.0f / (1.0f + fast_expf(-2.0f * u));
        /* d/dx x·s(2u) = s + x·2s(1−s)·u' */
        const float d = s + 2.0f * x * s * (1.0f - s) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dinp[i] = d * dout[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
