/* checked.h — checked arithmetic for counts and sizes that come from flags, configs and file
 * headers: a product that does not fit is reported, never wrapped. */
#ifndef CHECKED_H
#define CHECKED_H

#include <stddef.h>
#include <stdint.h>

/* *out = a * b and 1 when the product fits in a size_t; else 0 and *out untouched. */
static inline int size_mul_ok(size_t *out, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* *out = a * b * c and 1 when every step fits in a size_t; else 0. */
static inline int size_mul3_ok(size_t *out, size_t a, size_t b, size_t c) {
    size_t ab;
    return size_mul_ok(&ab, a, b) && size_mul_ok(out, ab, c);
}

/* *out = a * b and 1 when the product fits in an int64_t (a, b >= 0); else 0. */
static inline int i64_mul_ok(int64_t *out, int64_t a, int64_t b) {
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a)) return 0;
    *out = a * b;
    return 1;
}

#endif
