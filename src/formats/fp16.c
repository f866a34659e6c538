/* fp16.c — IEEE 754 binary16 <-> binary32 conversion with integer bit manipulation.
 *
 * Done on the bit patterns rather than with _Float16 so that rounding (nearest, ties to even)
 * and the handling of subnormals do not depend on the compiler or the FPU mode.
 */
#include "fp16.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Divides m by 2^shift (1 <= shift <= 24), rounding to nearest, ties to even. */
static uint32_t shift_rne(uint32_t m, int shift) {
    uint32_t q = m >> shift;
    uint32_t rem = m & ((UINT32_C(1) << shift) - 1);
    uint32_t half = UINT32_C(1) << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

int fp16_from_f32(float f, uint16_t *out) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    int exp = (int)((u >> 23) & 0xff);
    uint32_t mant = u & 0x7fffff;

    if (exp == 0xff) return -1; /* inf or NaN */
    if (exp == 0) {             /* zero or float subnormal: far below 2^-25, rounds to 0 */
        *out = sign;
        return 0;
    }
    int e = exp - 127;
    if (e > 15) return -1; /* >= 2^16: beyond any half */

    /* Value = m * 2^(e-23). The half quantum is 2^(e-10) for normals and 2^-24 below
     * 2^-14, so the significand must lose `shift` bits. */
    uint32_t m = mant | 0x800000;
    int shift = (e >= -14 ? e : -14) - e + 13;
    if (shift > 24) { /* below 2^-25: under half of the smallest subnormal */
        *out = sign;
        return 0;
    }
    uint32_t q = shift_rne(m, shift);
    /* For normals q is in [2^10, 2^11]; adding it to the exponent field lets a carry out of
     * the mantissa bump the exponent. For subnormals q <= 2^10, where q = 2^10 is exactly
     * the smallest normal. */
    uint32_t h = e >= -14 ? ((uint32_t)(e + 14) << 10) + q : q;
    if (h >= 0x7c00) return -1; /* rounded past 65504 */
    *out = (uint16_t)(sign | h);
    return 0;
}

float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;

    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000 | (mant << 13)); /* inf/NaN */
    if (exp == 0) {
        if (mant == 0) return f32_from_bits(sign);
        /* Subnormal: normalize so the leading 1 lands on bit 10; each shift lowers the
         * exponent by one from the 2^-14 of the smallest normal. */
        int e = -14;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        mant &= 0x3ff;
        return f32_from_bits(sign | ((uint32_t)(e + 127) << 23) | (mant << 13));
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

int fp16_from_f32_array(uint16_t *dst, const float *src, size_t n, const char *what, ml_error *e) {
    for (size_t i = 0; i < n; i++) {
        if (fp16_from_f32(src[i], &dst[i]) == 0) continue;
        if (!isfinite(src[i]))
            return ml_fail(e, "%s[%zu] = %g is not finite", what, i, (double)src[i]);
        return ml_fail(e, "%s[%zu] = %.9g does not fit in fp16 (max 65504)", what, i,
                       (double)src[i]);
    }
    return 0;
}

void fp16_to_f32_array(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = fp16_to_f32(src[i]);
}
