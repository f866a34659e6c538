/* test_grad.c — the backward pass against central finite differences of the forward pass.
 *
 * Every parameter tensor is checked at its largest-gradient element, at a random element, and
 * along a random direction through the whole tensor; the embedding is checked on rows of
 * tokens present in the input (input path + tied head) and absent from it (head only).
 *
 * Tolerance, justified: the forward runs in float32, so the loss carries rounding noise of
 * about δ ≈ 1e-6 (measured below as the spread of repeated evaluations at slightly shifted
 * points would be; in practice ~2e-7 at loss ≈ 10). A 4-point central stencil with step h has
 * error ≈ δ/h + h⁴·|f⁽⁵⁾|/30. With h = 2⁻⁷ the noise term is ≈ 1e-4 and the truncation term
 * is far below it, so an element check passes when |fd − g| ≤ 2e-4 + 1e-2·|g|. A wrong
 * backward (a missing term, a transposed weight, a wrong sign) is off by O(|g|), far outside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

enum { B = 2, T = 12 };

typedef struct {
    minigpt m;
    minigpt_ws ws;
    int tokens[B * T], targets[B * T];
    int count;
    float *grad;
} fixture;

static double loss_at(fixture *f) {
    minigpt_forward(&f->m, &f->ws, f->tokens, B, T);
    return minigpt_xent(&f->m, &f->ws, f->targets, 0.0f) / f->count;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    if (!f || minigpt_init(&f->m, &cfg, &e) || minigpt_ws_init(&f->ws, &f->m, B, T, &e)) return -1;
    tu_random_weights(&f->m, 7);
    rng r;
    rng_seed(&r, 99);
    /* tokens drawn from the lower half of the vocabulary, so rows 32..63 of the embedding
     * receive gradient only through the tied head */
    for (int i = 0; i < B * T; i++) f->tokens[i] = (int)rng_below(&r, 32);
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        f->targets[i] = (i / T == 1 && t < 5) ? -1 : (int)rng_below(&r, 64); /* row 1: prompt masked */
        if (f->targets[i] >= 0) f->count++;
    }
    f->grad = calloc(f->m.n_params, sizeof(float));
    if (!f->grad) return -1;
    minigpt_forward(&f->m, &f->ws, f->tokens, B, T);
    minigpt_xent(&f->m, &f->ws, f->targets, 1.0f / f->count);
    minigpt_backward(&f->m, &f->ws, f->grad, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    minigpt_ws_free(&f->ws);
    minigpt_free(&f->m);
    free(f->grad);
    free(f);
    return 0;
}

/* 4-point central difference of the loss in parameter p (index into the block). */
static double fd_element(fixture *f, size_t p) {
    const float h = 0.0078125f; /* 2^-7: x ± h, x ± 2h are exact for |x| < 1 */
    float *x = &f->m.params[p];
    const float x0 = *x;
    double v[4];
    const float steps[4] = {-2 * h, -h, h, 2 * h};
    for (int i = 0; i < 4; i++) {
        *x = x0 + steps[i];
        v[i] = loss_at(f);
    }
    *x = x0;
    return (v[0] - 8 * v[1] + 8 * v[2] - v[3]) / (12.0 * h);
}

static void check_element(fixture *f, const minigpt_tensor *t, size_t j, const char *why,
                          double *worst) {
    size_t p = t->offset + j;
    double g = f->grad[p], fd = fd_element(f, p);
    double err = fabs(fd - g), tol = 2e-4 + 1e-2 * fabs(g);
    if (err / tol > *worst) *worst = err / tol;
    if (err > tol)
        fail_msg("%s[%zu] (%s): backward %.7g, finite difference %.7g, |diff| %.3g > tol %.3g",
                 t->name, j, why, g, fd, err, tol);
}

static void test_every_tensor_elementwise(void **state) {
    fixture *f = *state;
    rng r;
    rng_seed(&r, 5);
    double worst = 0.0;
    for (int i = 0; i < f->m.n_tensors; i++) {
        const minigpt_tensor *t = &f->m.tensors[i];
        size_t jmax = 0;
        for (size_t j = 1; j < t->numel; j++)
            if (fabsf(f->grad[t->offset + j]) > fabsf(f->grad[t->offset + jmax])) jmax = j;
        assert_true(fabsf(f->grad[t->offset + jmax]) > 1e-4f); /* every tensor gets gradient */
        check_element(f, t, jmax, "largest gradient", &worst);
        check_element(f, t, rng_below(&r, (uint32_t)t->numel), "random element", &worst);
    }
    printf("  elementwise: %d tensors, worst |fd-g|/tol = %.3f\n", f->m.n_tensors, worst);
}

static void test_embedding_paths(void **state) {
    fixture *f = *state;
    const minigpt_tensor *t = &f->m.tensors[minigpt_find_tensor(&f->m, "tok_emb.weight")];
    const int C = f->m.cfg.d_model;
    double worst = 0.0;
    /* rows of input tokens: gradient from the encoder and from the head */
    for (int k = 0; k < 3; k++) {
        int row = f->tokens[k * 7], col = (k * 13) % C;
        check_element(f, t, (size_t)row * C + col, "input-embedding row", &worst);
    }
    /* rows never used as input: gradient from the tied head alone */
    for (int row = 40; row < 64; row += 11) check_element(f, t, (size_t)row * C + 3, "head-only row", &worst);
    printf("  embedding paths: worst |fd-g|/tol = %.3f\n", worst);
}

static void test_every_tensor_directional(void **state) {
    fixture *f = *state;
    rng r;
    rng_seed(&r, 11);
    const float h = 1e-2f;
    double worst = 0.0;
    for (int i = 0; i < f->m.n_tensors; i++) {
        const minigpt_tensor *t = &f->m.tensors[i];
        float *x = f->m.params + t->offset;
        float *saved = malloc(t->numel * sizeof(float)), *u = malloc(t->numel * sizeof(float));
        assert_non_null(saved);
        assert_non_null(u);
        memcpy(saved, x, t->numel * sizeof(float));
        double norm = 0.0;
        for (size_t j = 0; j < t->numel; j++) {
            u[j] = rng_normal(&r);
            norm += (double)u[j] * u[j];
        }
        /* the exact float perturbations actually applied, for the predicted change */
        double predicted = 0.0;
        for (size_t j = 0; j < t->numel; j++) x[j] = saved[j] + h * u[j] / (float)sqrt(norm);
        for (size_t j = 0; j < t->numel; j++) predicted += (double)f->grad[t->offset + j] * ((double)x[j] - saved[j]);
        double fp = loss_at(f);
        for (size_t j = 0; j < t->numel; j++) x[j] = saved[j] - h * u[j] / (float)sqrt(norm);
        for (size_t j = 0; j < t->numel; j++) predicted -= (double)f->grad[t->offset + j] * ((double)x[j] - saved[j]);
        double fm = loss_at(f);
        memcpy(x, saved, t->numel * sizeof(float));
        double measured = fp - fm;
        double err = fabs(measured - predicted), tol = 4e-6 + 1e-2 * fabs(predicted);
        if (err / tol > worst) worst = err / tol;
        if (err > tol)
            fail_msg("%s: along a random direction backward predicts %.7g, loss changed %.7g",
                     t->name, predicted, measured);
        free(saved);
        free(u);
    }
    printf("  directional: worst |fd-g|/tol = %.3f\n", worst);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_tensor_elementwise),
        cmocka_unit_test(test_embedding_paths),
        cmocka_unit_test(test_every_tensor_directional),
    };
    return cmocka_run_group_tests_name("grad", tests, setup, teardown);
}
