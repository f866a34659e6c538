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
 *
 * Shapes (issue 12: any shape is safe): the default model and a matrix covering every axis:
 * context 16 and 128, d_model 32 and 96, heads 2, 3 and 6 (head sizes 16 and 32), layers 1, 2
 * and 3, d_ff not 4·C, and an 89-symbol vocabulary. Each runs every check below as its own
 * group; in the groups with a LoRA adapter (rank 3 on every Linear, A and B random) the base
 * gradients are checked through the adapter and A and B of every adapted layer are checked too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "lora.h"

enum { B = 2, MAX_T = 32 };

typedef struct {
    const char *name;
    int V, C, NH, L, F, context;
    int T;         /* positions per sequence in the check */
    int lora_rank; /* 0: no adapter */
    int dora;      /* the adapter is DoRA (magnitudes random, norm held as in the backward) */
    float dropout; /* LoRA dropout, its masks frozen: the same training step every forward */
    int path;      /* lora_path: LORA_PATH_MERGED runs through W' = W + s·B·A, refreshed at every
                    * evaluation of the loss (so the base's W and A, B all move W') */
} shape;

static const shape shapes[] = {
    {"default", 0, 0, 0, 0, 0, 0, 12, 0, 0, 0.0f, 0}, /* zeros: minigpt_default_config() */
    {"s1 V64 C32 NH2 L1 F80 ctx16", 64, 32, 2, 1, 80, 16, 16, 0, 0, 0.0f, 0},
    {"s2 V64 C96 NH3 L3 F200 ctx128 + LoRA r3", 64, 96, 3, 3, 200, 128, 24, 3, 0, 0.0f, 0},
    {"s3 V89 C96 NH6 L2 F136 ctx48 + LoRA r3", 89, 96, 6, 2, 136, 48, 20, 3, 0, 0.0f, 0},
    /* DoRA: A, B and m against the forward with ‖W + s·B·A‖ fixed (PEFT's detach), and dropout
     * with a frozen mask (every tensor: the base's gradients pass through the mask too) */
    {"s4 V64 C32 NH2 L2 F80 ctx16 + DoRA r3", 64, 32, 2, 2, 80, 16, 16, 3, 1, 0.0f, 0},
    {"s5 V64 C32 NH2 L2 F80 ctx16 + LoRA r3 dropout 0.3", 64, 32, 2, 2, 80, 16, 16, 3, 0, 0.3f, 0},
    {"s6 V64 C32 NH2 L2 F80 ctx16 + DoRA r3 dropout 0.3", 64, 32, 2, 2, 80, 16, 16, 3, 1, 0.3f, 0},
    /* the merged compute path (RunLoRA): forward and input gradient through W', dA and dB from
     * the recomputed x·Aᵀ */
    {"s7 V64 C96 NH3 L2 F200 ctx48 + LoRA r3 merged", 64, 96, 3, 2, 200, 48, 20, 3, 0, 0.0f,
     LORA_PATH_MERGED},
};
static const shape *cur; /* the shape of the group being run */

typedef struct {
    minigpt m;
    lora a;
    minigpt_ws ws;
    int T;
    int tokens[B * MAX_T], targets[B * MAX_T];
    int count;
    float *grad, *lora_grad;
} fixture;

static double loss_at(fixture *f) {
    if (cur->path == LORA_PATH_MERGED) lora_refresh(&f->a); /* W' of the perturbed W, A or B */
    minigpt_forward(&f->m, &f->ws, f->tokens, B, f->T);
    return minigpt_xent(&f->m, &f->ws, f->targets, 0.0f) / f->count;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    if (cur->V) {
        cfg.vocab_size = cur->V, cfg.d_model = cur->C, cfg.n_heads = cur->NH;
        cfg.n_layers = cur->L, cfg.d_ff = cur->F, cfg.context = cur->context;
    }
    const int T = cur->T, V = cfg.vocab_size;
    if (!f || T > MAX_T || minigpt_init(&f->m, &cfg, &e)) return -1;
    f->T = T;
    tu_random_weights(&f->m, 7);
    if (cur->lora_rank) {
        const lora_variant var = {cur->dora, cur->dropout, 77};
        if (lora_init_variant(&f->a, &f->m, cur->lora_rank, 2.0f * cur->lora_rank, 0,
                              LORA_ALL_TARGETS, LORA_ALL_LAYERS, &var, &e))
            return -1;
        lora_init_weights(&f->a, 8);
        rng r;
        rng_seed(&r, 9);
        for (int i = 0; i < f->a.n_layers; i++) /* B != 0, so that A gets gradient */
            for (size_t j = 0; j < (size_t)f->a.layers[i].slot->out * f->a.rank; j++)
                f->a.layers[i].B[j] = 0.2f * rng_normal(&r);
        for (int i = 0; cur->dora && i < f->a.n_layers; i++) /* g = m/‖·‖ away from 1 */
            for (int j = 0; j < f->a.layers[i].slot->out; j++)
                f->a.layers[i].mag[j] *= 1.0f + 0.3f * rng_normal(&r);
        lora_refresh(&f->a); /* the norm of these A and B, then held through the checks */
        if (lora_set_path(&f->a, cur->path, 1.0, &e)) return -1;
        if (cur->path == LORA_PATH_MERGED && lora_merged_layers(&f->a) != f->a.n_layers) return -1;
    }
    if (minigpt_ws_init(&f->ws, &f->m, B, T, &e)) return -1; /* after lora_init: room for it */
    if (cur->dropout > 0.0f) f->ws.call = (minigpt_ext_call){5, 0, T}; /* one training step */
    rng r;
    rng_seed(&r, 99);
    /* tokens drawn from the lower half of the vocabulary, so the rows above V/2 of the
     * embedding receive gradient only through the tied head */
    for (int i = 0; i < B * T; i++) f->tokens[i] = (int)rng_below(&r, (uint32_t)V / 2);
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        /* row 1: prompt masked */
        f->targets[i] = (i / T == 1 && t < 5) ? -1 : (int)rng_below(&r, (uint32_t)V);
        if (f->targets[i] >= 0) f->count++;
    }
    f->grad = calloc(f->m.n_params, sizeof(float));
    f->lora_grad = calloc(f->a.n_params + 1, sizeof(float));
    if (!f->grad || !f->lora_grad) return -1;
    minigpt_forward(&f->m, &f->ws, f->tokens, B, T);
    minigpt_xent(&f->m, &f->ws, f->targets, 1.0f / f->count);
    minigpt_backward(&f->m, &f->ws, f->grad, cur->lora_rank ? f->lora_grad : NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    minigpt_ws_free(&f->ws);
    if (cur->lora_rank) lora_free(&f->a);
    minigpt_free(&f->m);
    free(f->grad);
    free(f->lora_grad);
    free(f);
    return 0;
}

/* 4-point central difference of the loss in the parameter at x (base or adapter). */
static double fd_element(fixture *f, float *x) {
    const float h = 0.0078125f; /* 2^-7: x ± h, x ± 2h are exact for |x| < 1 */
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

/* The parameter at x whose backward gradient is g against its finite difference. */
static void check_param(fixture *f, float *x, double g, const char *name, size_t j, const char *why,
                        double *worst) {
    double fd = fd_element(f, x);
    double err = fabs(fd - g), tol = 2e-4 + 1e-2 * fabs(g);
    if (err / tol > *worst) *worst = err / tol;
    if (err > tol)
        fail_msg("%s: %s[%zu] (%s): backward %.7g, finite difference %.7g, |diff| %.3g > tol %.3g",
                 cur->name, name, j, why, g, fd, err, tol);
}

static void check_element(fixture *f, const minigpt_tensor *t, size_t j, const char *why,
                          double *worst) {
    size_t p = t->offset + j;
    check_param(f, &f->m.params[p], f->grad[p], t->name, j, why, worst);
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
    printf("  %s elementwise: %d tensors, worst |fd-g|/tol = %.3f\n", cur->name, f->m.n_tensors,
           worst);
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
    const int V = f->m.cfg.vocab_size;
    for (int row = V / 2 + 8; row < V; row += 11)
        check_element(f, t, (size_t)row * C + 3, "head-only row", &worst);
    printf("  %s embedding paths: worst |fd-g|/tol = %.3f\n", cur->name, worst);
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
        for (size_t j = 0; j < t->numel; j++)
            predicted += (double)f->grad[t->offset + j] * ((double)x[j] - saved[j]);
        double fp = loss_at(f);
        for (size_t j = 0; j < t->numel; j++) x[j] = saved[j] - h * u[j] / (float)sqrt(norm);
        for (size_t j = 0; j < t->numel; j++)
            predicted -= (double)f->grad[t->offset + j] * ((double)x[j] - saved[j]);
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
    printf("  %s directional: worst |fd-g|/tol = %.3f\n", cur->name, worst);
}

/* With an adapter: A and B of every adapted layer, at the largest-gradient element and a
 * random one each (the base's own tensors are checked through the adapter above). */
static void test_lora_elementwise(void **state) {
    fixture *f = *state;
    rng r;
    rng_seed(&r, 13);
    double worst = 0.0;
    for (int i = 0; i < f->a.n_layers; i++) {
        const lora_layer *L = &f->a.layers[i];
        const size_t na = (size_t)f->a.rank * L->slot->in, nb = (size_t)L->slot->out * f->a.rank;
        struct {
            const char *what;
            float *p;
            size_t off, n;
        } mats[3] = {{"lora_A", L->A, L->a_off, na},
                     {"lora_B", L->B, L->b_off, nb},
                     {"lora_magnitude_vector", L->mag, L->m_off, (size_t)L->slot->out}};
        for (int k = 0; k < (f->a.dora ? 3 : 2); k++) {
            const float *g = f->lora_grad + mats[k].off;
            char name[MINIGPT_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s.%s", L->slot->path, mats[k].what);
            size_t jmax = 0;
            for (size_t j = 1; j < mats[k].n; j++)
                if (fabsf(g[j]) > fabsf(g[jmax])) jmax = j;
            assert_true(fabsf(g[jmax]) > 1e-4f);
            check_param(f, mats[k].p + jmax, g[jmax], name, jmax, "largest gradient", &worst);
            size_t j = rng_below(&r, (uint32_t)mats[k].n);
            check_param(f, mats[k].p + j, g[j], name, j, "random element", &worst);
        }
    }
    printf("  %s LoRA elementwise: %d layers, worst |fd-g|/tol = %.3f\n", cur->name, f->a.n_layers,
           worst);
}

/* Dropout is on: the forward of a training step differs from evaluation's (step 0), another
 * step draws another mask, and about p of the adapter's inputs are dropped. */
static void test_dropout_masks(void **state) {
    fixture *f = *state;
    const minigpt_ext_call train = f->ws.call;
    const double l_train = loss_at(f);
    f->ws.call.step = 0;
    const double l_eval = loss_at(f);
    f->ws.call = train;
    f->ws.call.step++;
    const double l_other = loss_at(f);
    f->ws.call = train;
    assert_true(l_train != l_eval);
    assert_true(l_other != l_train);
    assert_true(loss_at(f) == l_train); /* same step, same mask */
    /* the forward's saved mask of block 0's q_proj: (N,in) after xa, dxa (and u, gd) */
    const lora_layer *L = &f->a.layers[0];
    const int N = B * f->T, in = L->slot->in;
    const size_t skip = 2 * (size_t)N * f->a.rank + (f->a.dora ? 2 * (size_t)N * L->slot->out : 0);
    const float *mk = f->ws.layers[0].ext_saved[MG_Q] + skip + (size_t)N * in;
    size_t dropped = 0;
    for (size_t k = 0; k < (size_t)N * in; k++) {
        assert_true(mk[k] == 0.0f || fabsf(mk[k] - 1.0f / (1.0f - cur->dropout)) < 1e-6f);
        dropped += mk[k] == 0.0f;
    }
    const double frac = (double)dropped / ((double)N * in);
    printf("  %s dropout: %.3f of %d inputs dropped (p = %g)\n", cur->name, frac, N * in,
           (double)cur->dropout);
    assert_true(fabs(frac - cur->dropout) < 0.05);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_tensor_elementwise),
        cmocka_unit_test(test_embedding_paths),
        cmocka_unit_test(test_every_tensor_directional),
        cmocka_unit_test(test_lora_elementwise),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "grad %s", shapes[i].name);
        cur = &shapes[i];
        printf("%s\n", name);
        const size_t n = sizeof tests / sizeof tests[0] - (cur->lora_rank ? 0 : 1); /* LoRA last */
        /* DoRA: its adapter parameters only (the base stays frozen: no W gradient through
         * DoRA's (g−1)·x·Wᵀ term is computed); with dropout the mask checks too */
        const struct CMUnitTest dora[] = {cmocka_unit_test(test_lora_elementwise),
                                          cmocka_unit_test(test_dropout_masks)};
        const struct CMUnitTest drop[] = {
            cmocka_unit_test(test_every_tensor_elementwise),
            cmocka_unit_test(test_embedding_paths),
            cmocka_unit_test(test_every_tensor_directional),
            cmocka_unit_test(test_lora_elementwise),
            cmocka_unit_test(test_dropout_masks),
        };
        if (cur->dora)
            failed +=
                _cmocka_run_group_tests(name, dora, cur->dropout > 0.0f ? 2 : 1, setup, teardown);
        else if (cur->dropout > 0.0f)
            failed += _cmocka_run_group_tests(name, drop, 5, setup, teardown);
        else failed += _cmocka_run_group_tests(name, tests, n, setup, teardown);
    }
    return failed != 0;
}
