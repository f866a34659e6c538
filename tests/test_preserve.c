/* test_preserve.c — the preservation term (engine_set_preserve, minigpt_xent_kl) against the
 * independent PyTorch reference, against finite differences, and against the plain gradient.
 *
 * The KL case of tests/fixtures/reference.safetensors (gen_reference.py, float64 autograd from
 * the definition): the LoRA case's adapter (r 4, α 8, B ≠ 0), four sequences cut from the
 * rows of the reference batch to 32, 20, 27 and 13 tokens (so a micro-batch pads the shorter
 * ones), prompts of 5, 8, 0 (a text record) and 4 tokens, λ = 0.75, the term on the first 3:
 *
 *   L = (Σ CE over the completion targets) / (their number)
 *     + λ · (Σ KL(p_base ‖ p) over every input position of sequences 0..2) / (their number).
 *
 * Tolerances, justified:
 * - reference: as test_reference.c, the largest error relative to the tensor's largest
 *   magnitude must stay under 1e-4 (float32 rounding gives ~1e-6; a wrong term is O(1)).
 * - finite differences: as test_grad.c, a 4-point central stencil with h = 2⁻⁷ on a loss of
 *   ≈ 12 computed in float32 (noise δ ≈ 1e-6, so δ/h ≈ 1e-4): |fd − g| ≤ 2e-4 + 1e-2·|g| per
 *   element, 4e-6 + 1e-2·|predicted| along a random direction of step 1e-2.
 * - "term off" (n_kl = 0): the gradient must equal the plain engine_grad's bit for bit.
 * - B = 0 (p = p_base exactly): KL and its gradient are zero mathematically; the gradient must
 *   equal the plain one to 1e-6 of its magnitude and the mean KL be under 1e-6 (the float
 *   rounding of the two softmaxes); whether it is also bit for bit is printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "checkpoint.h"
#include "dataset.h"
#include "grad_engine.h"
#include "lora.h"
#include "blas_runtime.h"
#include "safetensors.h"

/* With B = 0 the term's value and gradient are zero up to rounding only: p and p_ref come from
 * forwards of different row counts (the frozen one runs on the term's rows alone), so the
 * check is 1e-6 relative, not bit for bit. */

#define FIXTURE "tests/fixtures/reference.safetensors"
#define REL_TOL 1e-4
#define NSEQ 4

typedef struct {
    st_file f;
    minigpt m;
    lora a;
    float *B_saved; /* the fixture's B of every layer (a.params layout) */
    int32_t lengths[NSEQ], n_prompt[NSEQ], n_kl;
    float lambda;
    int *seq; /* (NSEQ, context) */
    ds_example ex[NSEQ];
    const ds_example *exp[NSEQ];
} fixture;

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    ml_error e;
    if (!x || st_open(&x->f, FIXTURE, &e) || checkpoint_read_model(&x->m, &x->f, 1, &e)) goto fail;
    const int r = atoi(st_meta(&x->f, "lora_r"));
    const float alpha = (float)atof(st_meta(&x->f, "lora_alpha"));
    if (lora_init(&x->a, &x->m, r, alpha, 0, LORA_ALL_TARGETS, &e)) goto fail;
    for (int i = 0; i < x->a.n_layers; i++) {
        char name[160];
        int64_t sa[2] = {r, x->a.layers[i].slot->in}, sb[2] = {x->a.layers[i].slot->out, r};
        snprintf(name, sizeof name, "lora.%s.lora_A", x->a.layers[i].slot->path);
        if (st_read_f32(&x->f, name, ST_F32, x->a.layers[i].A, 2, sa, &e)) goto fail;
        snprintf(name, sizeof name, "lora.%s.lora_B", x->a.layers[i].slot->path);
        if (st_read_f32(&x->f, name, ST_F32, x->a.layers[i].B, 2, sb, &e)) goto fail;
    }
    x->B_saved = malloc(x->a.n_params * sizeof(float));
    if (!x->B_saved) return -1;
    memcpy(x->B_saved, x->a.params, x->a.n_params * sizeof(float));
    const int ctx = x->m.cfg.context;
    int64_t s1[1] = {NSEQ}, s0[1] = {1}, st[2] = {NSEQ, ctx};
    x->seq = malloc(sizeof(int) * NSEQ * ctx);
    int32_t *tok = malloc(sizeof(int32_t) * NSEQ * ctx);
    if (!x->seq || !tok) return -1;
    if (st_read_i32(&x->f, "kl.tokens", tok, 2, st, &e) ||
        st_read_i32(&x->f, "kl.lengths", x->lengths, 1, s1, &e) ||
        st_read_i32(&x->f, "kl.n_prompt", x->n_prompt, 1, s1, &e) ||
        st_read_i32(&x->f, "kl.n_kl", &x->n_kl, 1, s0, &e) ||
        st_read_f32(&x->f, "kl.lambda", ST_F32, &x->lambda, 1, s0, &e))
        goto fail;
    for (int i = 0; i < NSEQ * ctx; i++) x->seq[i] = tok[i];
    free(tok);
    for (int b = 0; b < NSEQ; b++) {
        ds_example *d = &x->ex[b];
        d->line = b + 1;
        d->n_prompt = x->n_prompt[b];
        d->n_completion = x->lengths[b] - x->n_prompt[b];
        d->tokens = x->seq + (size_t)b * ctx;
        d->prompt = "";
        d->completion = "";
        x->exp[b] = d;
    }
    *state = x;
    return 0;
fail:
    fprintf(stderr, "%s\n", e.msg);
    return -1;
}

static int teardown(void **state) {
    fixture *x = *state;
    lora_free(&x->a);
    minigpt_free(&x->m);
    st_close(&x->f);
    free(x->B_saved);
    free(x->seq);
    free(x);
    return 0;
}

/* Every B of the adapter: the fixture's values (on = 1) or zero. */
static void set_B(fixture *x, int on) {
    memcpy(x->a.params, x->B_saved, x->a.n_params * sizeof(float));
    if (!on)
        for (int i = 0; i < x->a.n_layers; i++)
            memset(x->a.layers[i].B, 0,
                   (size_t)x->a.layers[i].slot->out * x->a.rank * sizeof(float));
}

/* Compares n floats against reference tensor `name` (test_util.h) at this file's tolerance. */
static void compare(const st_file *f, const char *name, const float *got, size_t n, double *worst) {
    tu_compare_ref(f, name, got, n, worst, REL_TOL);
}

/* An engine on the fixture's model with the adapter's parameters as its gradient block;
 * the preservation term on with lambda when lambda > 0. */
static void engine_up(fixture *x, engine *g, int threads, int micro, float lambda) {
    ml_error e;
    assert_int_equal(engine_init(g, &x->m, threads, NSEQ, micro, 0, x->a.n_params, &e), 0);
    if (lambda > 0.0f) assert_int_equal(engine_set_preserve(g, lambda, NULL, &e), 0);
}

/* The KL case through engine_grad with several thread and micro-batch layouts (micro 4: one
 * chunk whose last row is outside the term; 2: a chunk wholly under it and one half; 3: rows
 * 0..2 under it, row 3 alone; 1: one sequence per chunk). */
static void test_engine_against_reference(void **state) {
    fixture *x = *state;
    set_B(x, 1);
    const int layouts[][2] = {{1, 4}, {1, 2}, {2, 2}, {2, 3}, {1, 1}, {2, 1}};
    double worst_all = 0.0;
    for (size_t k = 0; k < sizeof layouts / sizeof layouts[0]; k++) {
        engine g;
        engine_up(x, &g, layouts[k][0], layouts[k][1], x->lambda);
        int count = 0;
        const double ce = engine_grad(&g, x->exp, NSEQ, x->n_kl, &count);
        printf("  threads %d, micro %d (%d targets):\n", g.nthreads, g.micro, count);
        double worst = 0.0;
        const float loss = (float)(ce + x->lambda * g.kl_mean), cef = (float)ce,
                    klf = (float)g.kl_mean;
        compare(&x->f, "kl.loss", &loss, 1, &worst);
        compare(&x->f, "kl.ce", &cef, 1, &worst);
        compare(&x->f, "kl.kl_mean", &klf, 1, &worst);
        for (int i = 0; i < x->a.n_layers; i++) {
            char name[160];
            const lora_layer *L = &x->a.layers[i];
            snprintf(name, sizeof name, "kl.grad.%s.lora_A", L->slot->path);
            compare(&x->f, name, g.grad + L->a_off, (size_t)x->a.rank * L->slot->in, &worst);
            snprintf(name, sizeof name, "kl.grad.%s.lora_B", L->slot->path);
            compare(&x->f, name, g.grad + L->b_off, (size_t)L->slot->out * x->a.rank, &worst);
        }
        printf("  threads %d, micro %d: worst relative error %.3e\n", g.nthreads, g.micro, worst);
        if (worst > worst_all) worst_all = worst;
        engine_free(&g);
    }
    printf("  worst relative error over every layout: %.3e\n", worst_all);
}

/* The gradient of an engine with the term on (calls n_kl[0..n) in turn; the last one kept)
 * compared with a plain engine's (no term) on the same batch. Returns the largest |diff|
 * relative to the plain gradient's magnitude; *bitwise tells whether they are identical. */
static double vs_plain(fixture *x, int micro, const int *n_kl, int n, double *kl_mean,
                       int *bitwise) {
    engine g, p;
    engine_up(x, &g, 1, micro, x->lambda);
    engine_up(x, &p, 1, micro, 0.0f);
    double ce = 0.0;
    for (int i = 0; i < n; i++) ce = engine_grad(&g, x->exp, NSEQ, n_kl[i], NULL);
    const double ce0 = engine_grad(&p, x->exp, NSEQ, 0, NULL);
    assert_true(ce == ce0); /* the returned loss is the cross-entropy alone */
    *kl_mean = g.kl_mean;
    *bitwise = memcmp(g.grad, p.grad, x->a.n_params * sizeof(float)) == 0;
    double err, mag;
    tu_max_err(g.grad, p.grad, x->a.n_params, &err, &mag);
    engine_free(&g);
    engine_free(&p);
    return err / mag;
}

static void test_term_off_is_plain(void **state) {
    fixture *x = *state;
    set_B(x, 1);
    const int zero = 0;
    for (int micro = 1; micro <= NSEQ; micro++) {
        double kl, rel;
        int same;
        rel = vs_plain(x, micro, &zero, 1, &kl, &same);
        printf("  n_kl 0, micro %d: kl_mean %g, bitwise %s (rel %.3e)\n", micro, kl,
               same ? "yes" : "no", rel);
        assert_true(kl == 0.0);
        assert_true(same);
        /* n_kl 0 after a call with the term, on the same engine */
        const int seq[2] = {x->n_kl, 0};
        rel = vs_plain(x, micro, seq, 2, &kl, &same);
        printf("  n_kl 3 then 0, micro %d: kl_mean %g, bitwise %s (rel %.3e)\n", micro, kl,
               same ? "yes" : "no", rel);
        assert_true(kl == 0.0);
        assert_true(same);
    }
}

static void test_zero_B_is_plain(void **state) {
    fixture *x = *state;
    set_B(x, 0);
    for (int micro = 1; micro <= NSEQ; micro++) {
        double kl;
        int same;
        const double rel = vs_plain(x, micro, &x->n_kl, 1, &kl, &same);
        printf("  B = 0, n_kl %d, micro %d: kl_mean %.3e, gradient vs plain rel %.3e, bitwise %s\n",
               x->n_kl, micro, kl, rel, same ? "yes" : "no");
        assert_true(fabs(kl) < 1e-6);
        if (!(rel < 1e-6)) fail_msg("B = 0: gradient differs from the plain one by %.3e", rel);
    }
    set_B(x, 1);
}

/* The same engine, n_kl 3 then 1, must give what a fresh engine gives with n_kl 1. */
static void test_n_kl_change_on_one_engine(void **state) {
    fixture *x = *state;
    set_B(x, 1);
    for (int micro = 1; micro <= NSEQ; micro++) {
        engine g, h;
        engine_up(x, &g, 1, micro, x->lambda);
        engine_up(x, &h, 1, micro, x->lambda);
        engine_grad(&g, x->exp, NSEQ, 3, NULL);
        engine_grad(&g, x->exp, NSEQ, 1, NULL);
        engine_grad(&h, x->exp, NSEQ, 1, NULL);
        double err, mag;
        tu_max_err(g.grad, h.grad, x->a.n_params, &err, &mag);
        printf(
            "  micro %d: n_kl 3 then 1 vs fresh n_kl 1: kl_mean %.9g vs %.9g, gradient rel %.3e\n",
            micro, g.kl_mean, h.kl_mean, err / mag);
        const int same =
            g.kl_mean == h.kl_mean && memcmp(g.grad, h.grad, x->a.n_params * sizeof(float)) == 0;
        engine_free(&g);
        engine_free(&h);
        if (!same) fail_msg("micro %d: the result depends on the engine's previous n_kl", micro);
    }
}

/* ---- finite differences ---------------------------------------------------------------- */

/* L at the current parameters, forward passes only: the core functions on one padded batch. */
static double loss_at(fixture *x, minigpt_ws *ws, float *ref) {
    const int ctx = x->m.cfg.context;
    int tokens[NSEQ * 32], targets[NSEQ * 32], kl_len[NSEQ];
    assert_true(ctx <= 32);
    const int T = ds_batch_T(x->exp, NSEQ);
    const int count = ds_batch(x->exp, NSEQ, T, tokens, targets);
    long kl_pos = 0;
    for (int b = 0; b < NSEQ; b++) {
        kl_len[b] = b < x->n_kl ? x->lengths[b] - 1 : 0;
        kl_pos += kl_len[b];
    }
    minigpt_forward_frozen(&x->m, ws, tokens, NSEQ, T);
    minigpt_log_softmax(&x->m, ws, ref, x->n_kl);
    minigpt_forward(&x->m, ws, tokens, NSEQ, T);
    double kl = 0.0;
    const double ce = minigpt_xent_kl(&x->m, ws, targets, 0.0f, ref, kl_len, 0.0f, &kl);
    return ce / count + (double)x->lambda * kl / (double)kl_pos;
}

typedef struct {
    minigpt_ws ws;
    float *ref;
    float *grad;
} fd_ctx;

static void fd_up(fixture *x, fd_ctx *c) {
    ml_error e;
    set_B(x, 1);
    assert_int_equal(minigpt_ws_init(&c->ws, &x->m, NSEQ, x->m.cfg.context, &e), 0);
    c->ref = malloc(sizeof(float) * NSEQ * x->m.cfg.context * x->m.cfg.vocab_size);
    c->grad = malloc(sizeof(float) * x->a.n_params);
    assert_non_null(c->ref);
    assert_non_null(c->grad);
    engine g;
    engine_up(x, &g, 1, 2, x->lambda);
    engine_grad(&g, x->exp, NSEQ, x->n_kl, NULL);
    memcpy(c->grad, g.grad, sizeof(float) * x->a.n_params);
    engine_free(&g);
}

static void fd_down(fd_ctx *c) {
    minigpt_ws_free(&c->ws);
    free(c->ref);
    free(c->grad);
}

static double fd_element(fixture *x, fd_ctx *c, size_t p) {
    const float h = 0.0078125f; /* 2^-7: x ± h, x ± 2h are exact for |x| < 1 */
    float *v = &x->a.params[p];
    const float v0 = *v;
    const float steps[4] = {-2 * h, -h, h, 2 * h};
    double l[4];
    for (int i = 0; i < 4; i++) {
        *v = v0 + steps[i];
        l[i] = loss_at(x, &c->ws, c->ref);
    }
    *v = v0;
    return (l[0] - 8 * l[1] + 8 * l[2] - l[3]) / (12.0 * h);
}

static void check_element(fixture *x, fd_ctx *c, size_t p, const char *what, double *worst) {
    const double g = c->grad[p], fd = fd_element(x, c, p);
    const double err = fabs(fd - g), tol = 2e-4 + 1e-2 * fabs(g);
    if (err / tol > *worst) *worst = err / tol;
    if (err > tol)
        fail_msg("%s[%zu]: backward %.7g, finite difference %.7g, |diff| %.3g > tol %.3g", what, p,
                 g, fd, err, tol);
}

/* The largest-gradient entry and a random entry of every A and B. */
static void test_finite_differences_elementwise(void **state) {
    fixture *x = *state;
    fd_ctx c;
    fd_up(x, &c);
    rng r;
    rng_seed(&r, 17);
    double worst = 0.0;
    for (int i = 0; i < x->a.n_layers; i++) {
        const lora_layer *L = &x->a.layers[i];
        const size_t off[2] = {L->a_off, L->b_off};
        const size_t n[2] = {(size_t)x->a.rank * L->slot->in, (size_t)L->slot->out * x->a.rank};
        for (int w = 0; w < 2; w++) {
            size_t jmax = 0;
            for (size_t j = 1; j < n[w]; j++)
                if (fabsf(c.grad[off[w] + j]) > fabsf(c.grad[off[w] + jmax])) jmax = j;
            char what[200];
            snprintf(what, sizeof what, "%s.lora_%c", L->slot->path, w ? 'B' : 'A');
            check_element(x, &c, off[w] + jmax, what, &worst);
            check_element(x, &c, off[w] + rng_below(&r, (uint32_t)n[w]), what, &worst);
        }
    }
    printf("  elementwise: %d layers x (A, B) x 2 entries, worst |fd-g|/tol = %.3f\n",
           x->a.n_layers, worst);
    fd_down(&c);
}

/* Along a random direction through each whole A and B. */
static void test_finite_differences_directional(void **state) {
    fixture *x = *state;
    fd_ctx c;
    fd_up(x, &c);
    rng r;
    rng_seed(&r, 23);
    const float h = 1e-2f;
    double worst = 0.0;
    for (int i = 0; i < x->a.n_layers; i++) {
        const lora_layer *L = &x->a.layers[i];
        const size_t off[2] = {L->a_off, L->b_off};
        const size_t n[2] = {(size_t)x->a.rank * L->slot->in, (size_t)L->slot->out * x->a.rank};
        for (int w = 0; w < 2; w++) {
            float *v = x->a.params + off[w];
            const float *gr = c.grad + off[w];
            float *saved = malloc(n[w] * sizeof(float)), *u = malloc(n[w] * sizeof(float));
            assert_non_null(saved);
            assert_non_null(u);
            memcpy(saved, v, n[w] * sizeof(float));
            double norm = 0.0;
            for (size_t j = 0; j < n[w]; j++) {
                u[j] = rng_normal(&r);
                norm += (double)u[j] * u[j];
            }
            double predicted = 0.0;
            for (size_t j = 0; j < n[w]; j++) v[j] = saved[j] + h * u[j] / (float)sqrt(norm);
            for (size_t j = 0; j < n[w]; j++)
                predicted += (double)gr[j] * ((double)v[j] - saved[j]);
            const double fp = loss_at(x, &c.ws, c.ref);
            for (size_t j = 0; j < n[w]; j++) v[j] = saved[j] - h * u[j] / (float)sqrt(norm);
            for (size_t j = 0; j < n[w]; j++)
                predicted -= (double)gr[j] * ((double)v[j] - saved[j]);
            const double fm = loss_at(x, &c.ws, c.ref);
            memcpy(v, saved, n[w] * sizeof(float));
            const double measured = fp - fm;
            const double err = fabs(measured - predicted), tol = 4e-6 + 1e-2 * fabs(predicted);
            if (err / tol > worst) worst = err / tol;
            if (err > tol)
                fail_msg(
                    "%s.lora_%c: along a random direction backward predicts %.7g, loss changed %.7g",
                    L->slot->path, w ? 'B' : 'A', predicted, measured);
            free(saved);
            free(u);
        }
    }
    printf("  directional: %d layers x (A, B), worst |fd-g|/tol = %.3f\n", x->a.n_layers, worst);
    fd_down(&c);
}

/* The forward-only L above against the reference too, so the finite differences measure the
 * loss the reference defines (and not only what the C code computes). */
static void test_forward_loss_against_reference(void **state) {
    fixture *x = *state;
    fd_ctx c;
    fd_up(x, &c);
    double worst = 0.0;
    const float loss = (float)loss_at(x, &c.ws, c.ref);
    compare(&x->f, "kl.loss", &loss, 1, &worst);
    fd_down(&c);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_against_reference),
        cmocka_unit_test(test_term_off_is_plain),
        cmocka_unit_test(test_zero_B_is_plain),
        cmocka_unit_test(test_n_kl_change_on_one_engine),
        cmocka_unit_test(test_forward_loss_against_reference),
        cmocka_unit_test(test_finite_differences_elementwise),
        cmocka_unit_test(test_finite_differences_directional),
    };
    return cmocka_run_group_tests_name("preserve", tests, setup, teardown);
}
