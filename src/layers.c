/* layers.c — forward/backward pairs of the model's operations (see layers.h).
 *
 * Linear layers go to BLAS (cblas_sgemm); the attention of a 32x32 head is too small for a
 * BLAS call to pay, so it is written as loops.
 */
#include "layers.h"

#include "fastmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void encoder_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    // out (N,C), tokens (N), wte (V,C)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C,
                                       (size_t)C * sizeof(float));
}

void encoder_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    // dwte (V,C), dout (N,C)
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) dw[c] += d[c];
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
    // out (N,C), mean (N), rstd (N), inp (N,C), w (C), b (C)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float var = 0.0f; /* two passes: the biased variance, as torch computes it */
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            var += d * d;
        }
        var /= (float)C;
        float s = 1.0f / sqrtf(var + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    // dinp (N,C), dw (C), db (C), dout (N,C), inp (N,C), w (C), mean (N), rstd (N)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        const float m = mean[n], s = rstd[n];
        /* dxhat = dout·w; dx = s·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) */
        float dsum = 0.0f, dxsum = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            float dxhat = d[c] * w[c];
            dsum += dxhat;
            dxsum += dxhat * xhat;
        }
        dsum /= (float)C;
        dxsum /= (float)C;
        float *di = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            if (dw) dw[c] += d[c] * xhat;
            if (db) db[c] += d[c];
            di[c] += s * (d[c] * w[c] - dsum - xhat * dxsum);
        }
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Out, In, 1.0f, inp, In, w, In, beta, out,
                Out);
}

void matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int In, int Out) {
    // dinp (N,In), dw (Out,In), db (Out), dout (N,Out), inp (N,In), w (Out,In)
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, Out, 1.0f, dout, Out, w, In,
                    1.0f, dinp, In);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Out, In, N, 1.0f, dout, Out, inp, In,
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

void rope_backward(float *dx, const float *cos, const float *sin, int B, int T, int C, int NH) {
    /* The rotation is orthogonal: its transpose is the rotation by the opposite angle. */
    rope_apply(dx, cos, sin, B, T, C, NH, -1.0f);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int C, int NH) {
    // out (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const int HS = C / NH;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * C + (size_t)h * HS;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *kt = k + ((size_t)b * T + t2) * C + (size_t)h * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += qt[i] * kt[i];
                    s *= scale;
                    a[t2] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = fast_expf(a[t2] - maxv);
                    sum += a[t2];
                }
                const float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
                for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *vt = v + ((size_t)b * T + t2) * C + (size_t)h * HS;
                    for (int i = 0; i < HS; i++) o[i] += a[t2] * vt[i];
                }
            }
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *att, const float *q, const float *k, const float *v, int B,
                        int T, int C, int NH) {
    // dq/dk/dv (B,T,C), datt (T) scratch, dout (B,T,C), att (B,NH,T,T), q/k/v (B,T,C)
    const int HS = C / NH;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const size_t row = ((size_t)b * T + t) * C + (size_t)h * HS;
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *dy = dout + row;
                /* through out = Σ a·v: gradients of the probabilities and of v */
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const size_t r2 = ((size_t)b * T + t2) * C + (size_t)h * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) {
                        s += dy[i] * v[r2 + i];
                        dv[r2 + i] += a[t2] * dy[i];
                    }
                    datt[t2] = s;
                    dot += a[t2] * s;
                }
                /* through the softmax, then the scaled dot products q·k */
                for (int t2 = 0; t2 <= t; t2++) {
                    const size_t r2 = ((size_t)b * T + t2) * C + (size_t)h * HS;
                    const float dpre = a[t2] * (datt[t2] - dot) * scale;
                    for (int i = 0; i < HS; i++) {
                        dq[row + i] += dpre * k[r2 + i];
                        dk[r2 + i] += dpre * q[row + i];
                    }
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
        dinp[i] += d * dout[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
