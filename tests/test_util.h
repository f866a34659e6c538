/* test_util.h — small helpers shared by the cmocka test programs (header-only). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minigpt.h"
#include "rng.h"
#include "safetensors.h"
#include "train_loop.h"

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

/* Compares n floats against reference tensor `name` of f (a cmocka test: include cmocka.h
 * first): prints the largest error relative to the reference's largest value, keeps the worst
 * in *worst, and fails above rel_tol. */
static inline void tu_compare_ref(const st_file *f, const char *name, const float *got, size_t n,
                                  double *worst, double rel_tol) {
    const st_tensor *t = st_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->numel, n);
    float *ref = malloc(n * sizeof(float));
    assert_non_null(ref);
    ml_error e;
    assert_int_equal(st_read_f32(f, name, ST_F32, ref, t->ndim, t->shape, &e), 0);
    double abs_err, mag;
    tu_max_err(got, ref, n, &abs_err, &mag);
    const double rel = abs_err / (mag > 0 ? mag : 1.0);
    if (rel > *worst) *worst = rel;
    printf("  %-42s max|err| %.3e  rel %.3e\n", name, abs_err, rel);
    free(ref);
    if (!(rel <= rel_tol)) fail_msg("%s: relative error %.3e exceeds %.0e", name, rel, rel_tol);
}

/* The tests' short AdamW run: batch 16 in micro-batches of 4, 2 warm-up steps, lr 2e-3 decaying
 * to a tenth, clipping at 1, validation every 5 steps, quiet; a test changes what it needs. */
static inline train_opts tu_train_opts(int steps, int threads, uint64_t seed) {
    return (train_opts){.steps = steps,
                        .batch = 16,
                        .micro = 4,
                        .warmup = 2,
                        .lr = 2e-3f,
                        .min_lr_frac = 0.1f,
                        .clip = 1.0f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f,
                        .eval_every = 5,
                        .seed = seed,
                        .threads = threads,
                        .quiet = 1};
}

#endif
