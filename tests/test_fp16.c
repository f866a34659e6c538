/* test_fp16.c — float <-> half conversion: exhaustive round trip, rounding edge cases, and a
 * brute-force nearest-value reference that shares no code with src/fp16.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fp16.h"

/* Reference value of a half, from the definition (ldexp is exact here). */
static double half_value(uint16_t h) {
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v = exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
    return (h & 0x8000) ? -v : v;
}

static uint16_t conv(float f) {
    uint16_t h = 0xdead;
    assert_int_equal(fp16_from_f32(f, &h), 0);
    return h;
}

static void test_to_f32_matches_definition(void **state) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fp16_to_f32((uint16_t)h);
        int exp = (h >> 10) & 0x1f;
        if (exp == 0x1f) {
            if (h & 0x3ff) assert_true(isnan(f));
            else assert_true(isinf(f) && (signbit(f) != 0) == ((h & 0x8000) != 0));
            continue;
        }
        assert_true((double)f == half_value((uint16_t)h));
        assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0); /* -0 stays -0 */
    }
}

static void test_exhaustive_round_trip(void **state) {
    int checked = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue; /* inf and NaN are not storable */
        assert_int_equal(conv(fp16_to_f32((uint16_t)h)), h);
        checked++;
    }
    assert_int_equal(checked, 65536 - 2048);
}

static void test_ties_to_even(void **state) {
    /* 1 + 2^-11 is halfway between 1 (even mantissa 0) and 1 + 2^-10: goes down. */
    assert_int_equal(conv(1.0f + ldexpf(1, -11)), 0x3c00);
    /* 1 + 3*2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): goes up. */
    assert_int_equal(conv(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    /* Just above a tie rounds up, just below rounds down. */
    assert_int_equal(conv(nextafterf(1.0f + ldexpf(1, -11), 2)), 0x3c01);
    assert_int_equal(conv(nextafterf(1.0f + 3 * ldexpf(1, -11), 0)), 0x3c01);
    /* Rounding up out of a binade carries into the exponent: 2 - 2^-12 -> 2. */
    assert_int_equal(conv(2.0f - ldexpf(1, -12)), 0x4000);
    assert_int_equal(conv(-1.0f - ldexpf(1, -11)), 0xbc00);
}

static void test_subnormals(void **state) {
    assert_int_equal(conv(ldexpf(1, -24)), 0x0001); /* smallest subnormal */
    assert_int_equal(conv(-ldexpf(1, -24)), 0x8001);
    assert_int_equal(conv(ldexpf(1023, -24)), 0x03ff);              /* largest subnormal */
    assert_int_equal(conv(ldexpf(1, -14)), 0x0400);                 /* smallest normal */
    assert_int_equal(conv(ldexpf(1023.5f, -24)), 0x0400);           /* tie, up to even */
    assert_int_equal(conv(ldexpf(2.5f, -24)), 0x0002);              /* tie, down to even */
    assert_int_equal(conv(ldexpf(1, -25)), 0x0000);                 /* tie with 0: even is 0 */
    assert_int_equal(conv(nextafterf(ldexpf(1, -25), 0)), 0x0000);  /* just below half */
    assert_int_equal(conv(nextafterf(ldexpf(1, -25), 1)), 0x0001);  /* just above half */
    assert_int_equal(conv(-nextafterf(ldexpf(1, -25), 0)), 0x8000); /* keeps the sign */
    assert_int_equal(conv(1e-30f), 0x0000);
    assert_int_equal(conv(ldexpf(1, -149)), 0x0000); /* float subnormal */
    assert_int_equal(conv(-0.0f), 0x8000);
    assert_int_equal(conv(0.0f), 0x0000);
}

static void test_overflow_and_specials(void **state) {
    uint16_t h = 0x1234;
    assert_int_equal(conv(65504.0f), 0x7bff);
    assert_int_equal(conv(-65504.0f), 0xfbff);
    assert_int_equal(conv(65519.99f), 0x7bff);
    assert_int_equal(conv(nextafterf(65520.0f, 0)), 0x7bff);
    assert_int_equal(fp16_from_f32(65520.0f, &h), -1); /* tie rounds to even = 65536 */
    assert_int_equal(fp16_from_f32(-65520.0f, &h), -1);
    assert_int_equal(fp16_from_f32(65536.0f, &h), -1);
    assert_int_equal(fp16_from_f32(1e30f, &h), -1);
    assert_int_equal(fp16_from_f32(INFINITY, &h), -1);
    assert_int_equal(fp16_from_f32(-INFINITY, &h), -1);
    assert_int_equal(fp16_from_f32(NAN, &h), -1);
    assert_int_equal(h, 0x1234); /* left unchanged on error */
}

static void test_array_messages(void **state) {
    float src[4] = {1.0f, -2.0f, 70000.0f, 0.5f};
    uint16_t dst[4];
    ml_error e = {{0}};
    assert_int_equal(fp16_from_f32_array(dst, src, 4, "w.lora_B", &e), -1);
    assert_non_null(strstr(e.msg, "w.lora_B[2] = 70000 does not fit in fp16 (max 65504)"));
    src[2] = NAN;
    assert_int_equal(fp16_from_f32_array(dst, src, 4, "t", &e), -1);
    assert_non_null(strstr(e.msg, "t[2]"));
    assert_non_null(strstr(e.msg, "not finite"));
    src[2] = 3.0f;
    assert_int_equal(fp16_from_f32_array(dst, src, 4, "t", &e), 0);
    float back[4];
    fp16_to_f32_array(back, dst, 4);
    for (int i = 0; i < 4; i++) assert_true(back[i] == src[i]);
}

/* ---- brute-force reference ---- */

static double *g_vals; /* all finite non-negative halves ascending, plus 65536 (overflow) */
static int g_nvals;

static int setup_ref(void **state) {
    g_vals = malloc(0x7c01 * sizeof *g_vals);
    if (!g_vals) return -1;
    g_nvals = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) g_vals[g_nvals++] = half_value((uint16_t)h);
    g_vals[g_nvals++] = 65536.0; /* virtual candidate with an even mantissa: overflow */
    return 0;
}

static int teardown_ref(void **state) {
    free(g_vals);
    return 0;
}

/* Expected result for x by search over the candidates: the nearest, ties to the even
 * mantissa. Returns the half, or -1 for overflow. Comparisons use 2x vs lo+hi, exact in
 * double (x is a float, lo+hi has at most 12 significant bits). */
static int reference(float x) {
    double a = fabs((double)x);
    int lo = 0, hi = g_nvals - 1; /* invariant: g_vals[lo] <= a < g_vals[hi] or a >= max */
    if (a >= g_vals[hi]) return -1;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (g_vals[mid] <= a) lo = mid;
        else hi = mid;
    }
    int pick;
    if (a == g_vals[lo]) pick = lo;
    else {
        double twice = 2 * a, mid = g_vals[lo] + g_vals[hi];
        if (twice < mid) pick = lo;
        else if (twice > mid) pick = hi;
        else pick = (lo & 1) ? hi : lo; /* index = bit pattern: even pattern, even mantissa */
    }
    if (pick == g_nvals - 1) return -1;
    return pick | (signbit(x) ? 0x8000 : 0);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next_u32(void) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

static void check_against_reference(float x) {
    int want = reference(x);
    uint16_t h = 0;
    int rc = fp16_from_f32(x, &h);
    if (want < 0) {
        if (rc != -1) fail_msg("%a: expected overflow, got 0x%04x", (double)x, h);
    } else if (rc != 0 || h != want) {
        fail_msg("%a: expected 0x%04x, got rc %d h 0x%04x", (double)x, want, rc, h);
    }
}

static void test_random_against_reference(void **state) {
    int n = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t r = next_u32();
        float x;
        if (i % 4 == 3) {
            /* Exact midpoints between neighbouring halves, and their float neighbours. */
            int k = (int)(next_u32() % 0x7c00); /* k + 1 = 0x7c00 is the 65520 tie */
            x = (float)((g_vals[k] + g_vals[k + 1]) / 2);
            if (r & 1) x = nextafterf(x, (r & 2) ? 1e9f : 0.0f);
        } else {
            /* Random sign and mantissa, exponent spread over 2^-30 .. 2^16. */
            uint32_t exp = 127 - 30 + (r % 47);
            uint32_t bits = (next_u32() & 0x807fffff) | exp << 23;
            memcpy(&x, &bits, sizeof x);
        }
        if (r & 0x80000000u) x = -x;
        check_against_reference(x);
        n++;
    }
    assert_int_equal(n, 1000000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_f32_matches_definition),
        cmocka_unit_test(test_exhaustive_round_trip),
        cmocka_unit_test(test_ties_to_even),
        cmocka_unit_test(test_subnormals),
        cmocka_unit_test(test_overflow_and_specials),
        cmocka_unit_test(test_array_messages),
        cmocka_unit_test_setup_teardown(test_random_against_reference, setup_ref, teardown_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
