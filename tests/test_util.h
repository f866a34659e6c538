/* test_util.h — small helpers shared by the cmocka test programs (header-only). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minigpt.h"
#include "rng.h"

/* Fills every parameter with values large enough that attention is far from uniform and
 * GELU sees both signs: linear weights N(0, 0.15²), biases N(0, 0.05²), LayerNorm weights
 * 1 + N(0, 0.1²), LayerNorm biases N(0, 0.05²), embedding N(0, 0.5²). */
static inline void tu_random_weights(minigpt *m, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const int w = strstr(t->name, ".weight") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            float z = rng_normal(&r);
            switch (t->kind) {
            case MG_EMBEDDING: p[j] = 0.5f * z; break;
            case MG_NORM: p[j] = w ? 1.0f + 0.1f * z : 0.05f * z; break;
            case MG_LINEAR_WEIGHT: p[j] = 0.15f * z; break;
            case MG_LINEAR_BIAS: p[j] = 0.05f * z; break;
            }
        }
    }
}

/* Largest |a-b| and largest |b| over n values. */
static inline void tu_max_err(const float *a, const float *b, size_t n, double *abs_err,
                              double *ref_max) {
    double e = 0.0, r = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > r) r = fabs((double)b[i]);
    }
    *abs_err = e;
    *ref_max = r;
}

#endif
