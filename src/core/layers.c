/* layers.c — forward/backward pairs of the model's operations (see layers.h).
 *
 * Linear layers go to gemm_sgemm (gemm.h: OpenBLAS by default); attention has its own file,
 * attention.c.
 */
#include "layers.h"

#include "fastmath.h"
#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void encoder_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    // out (N,C), tokens (N), wte (V,C)
    const long long tally_t0 = gemm_tally_op_begin();
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}

void encoder_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    // dwte (V,C), dout (N,C)
    const long long tally_t0 = gemm_tally_op_begin();
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) dw[c] += d[c];
    }
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
    // out (N,C), mean (N), rstd (N), inp (N,C), w (C), b (C)
    const long long tally_t0 = gemm_tally_op_begin();
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
    gemm_tally_op_end(TALLY_LAYERNORM, tally_t0);
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C,
                        int overwrite) {
    // dinp (N,C), dw (C), db (C), dout (N,C), inp (N,C), w (C), mean (N), rstd (N)
    const long long tally_t0 = gemm_tally_op_begin();
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
    gemm_tally_op_end(TALLY_LAYERNORM, tally_t0);
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
    const long long tally_t0 = gemm_tally_op_begin();
    rope_apply(x, cos, sin, B, T, C, NH, 1.0f);
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}

void rope_forward_at(float *x, const float *cos, const float *sin, const int *pos, int B, int n,
                     int C, int NH) {
    // x (B,n,C); row (b,i) is at position pos[b]+i of its sequence
    const long long tally_t0 = gemm_tally_op_begin();
    const int P = C / NH / 2;
    for (int b = 0; b < B; b++) /* one row each: the position is its first row's */
        for (int i = 0; i < n; i++)
            rope_apply(x + ((size_t)b * n + i) * C, cos + (size_t)(pos[b] + i) * P,
                       sin + (size_t)(pos[b] + i) * P, 1, 1, C, NH, 1.0f);
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}

void rope_backward(float *dx, const float *cos, const float *sin, int B, int T, int C, int NH) {
    const long long tally_t0 = gemm_tally_op_begin();
    /* The rotation is orthogonal: its transpose is the rotation by the opposite angle. */
    rope_apply(dx, cos, sin, B, T, C, NH, -1.0f);
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* 0.5·(1 + tanh(u)) = sigmoid(2u), so GELU(x) = x·sigmoid(2u), u = √(2/π)(x + 0.044715x³):
 * one exp instead of a tanh, and the loops vectorize. */
void gelu_forward(float *out, const float *inp, int n) {
    const long long tally_t0 = gemm_tally_op_begin();
    for (int i = 0; i < n; i++) {
        const float x = inp[i];
        const float u = GELU_K * (x + GELU_C * x * x * x);
        out[i] = x / (1.0f + fast_expf(-2.0f * u));
    }
    gemm_tally_op_end(TALLY_GELU, tally_t0);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int n) {
    const long long tally_t0 = gemm_tally_op_begin();
    for (int i = 0; i < n; i++) {
        const float x = inp[i];
        const float u = GELU_K * (x + GELU_C * x * x * x);
        const float s = 1.0f / (1.0f + fast_expf(-2.0f * u));
        /* d/dx x·s(2u) = s + x·2s(1−s)·u' */
        const float d = s + 2.0f * x * s * (1.0f - s) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dinp[i] = d * dout[i];
    }
    gemm_tally_op_end(TALLY_GELU, tally_t0);
}

void residual_forward(float *out, const float *a, const float *b, int n) {
    const long long tally_t0 = gemm_tally_op_begin();
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
    gemm_tally_op_end(TALLY_ELEMENTWISE, tally_t0);
}
