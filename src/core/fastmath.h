/* fastmath.h — an exp that the compiler can vectorize, and sums in a fixed order (internal to
 * the core).
 *
 * glibc's expf/tanhf are scalar calls; in GELU they cost more than all the GEMMs together.
 * This exp reduces x = n·ln2 + r with |r| <= ln2/2 and evaluates e^r by its Taylor series to
 * degree 7 (truncation r^8/8! < 4e-9 relative), then scales by 2^n through the exponent bits:
 * about 2 ulp of float accuracy, no calls, no branches.
 */
#ifndef FASTMATH_H
#define FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x) {
    const float in = x;
    /* beyond these bounds e^x over- or underflows float anyway; NaN goes to -87 here, so that
     * the conversion to int below stays defined, and comes back as NaN at the end */
    x = x >= -87.0f ? (x <= 88.0f ? x : 88.0f) : -87.0f;
    /* n = round(x·log2 e): adding 1.5·2^23 pushes the fraction bits out (|x·log2 e| < 2^22);
     * unlike floorf this compiles to plain vector adds under strict ISO C */
    const float shifter = 12582912.0f;
    const float n = (x * 1.44269504088896341f + shifter) - shifter;
    /* ln2 split in two so n·ln2 is exact enough: r keeps full precision */
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return in == in ? p * scale : in; /* NaN in, NaN out: overflowing logits stay visible */
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
    if (n < 16) return s + 0.0f; /* the 16 partial sums are +0: adding them gives s + 0 */
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
    if (n < 16) return s + 0.0f;
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

#endif
