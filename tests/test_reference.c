/* test_reference.c — the C model against the independent PyTorch reference.
 *
 * tests/fixtures/reference.safetensors is written by tests/reference/gen_reference.py (autograd
 * in float64 on float32 weights). For logits, loss and every gradient this prints the largest
 * absolute error and that error relative to the tensor's largest magnitude, and requires the
 * relative error to stay under 1e-4. (Per-element relative error is meaningless for entries
 * near zero; scaling by the tensor's magnitude is the standard norm-wise measure.) Float32
 * rounding through two blocks gives about 1e-6 here, so 1e-4 leaves room for BLAS kernels
 * that sum in other orders, while any math error lands orders of magnitude above it.
 *
 * The same checks then run on tests/fixtures/reference-s{1,2,3}.safetensors, the issue-12 shape
 * matrix (context 16, 128 and 48, d_model 32 and 96, heads 2, 3 and 6, layers 1, 3 and 2, d_ff
 * not 4·C, an 89-symbol vocabulary), each batch filling the whole context: the model is built
 * from the config in the file, so every buffer comes from it.
 *
 * tests/fixtures/reference-dora.safetensors: DoRA as PEFT computes it (the weight norm detached
 * in the backward), its logits, loss and the gradients of A, B and m, and lora_merge_into's
 * folded model against the same logits.
 *
 * The LoRA checks run twice: on the thin compute path and on the merged one (lora.h), whose
 * forward and input gradient go through W' = W + s·B·A.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "checkpoint.h"
#include "lora.h"
#include "blas_runtime.h"
#include "safetensors.h"

#define REL_TOL 1e-4

static const char *const fixtures[] = {
    "tests/fixtures/reference.safetensors",
    "tests/fixtures/reference-s1.safetensors",
    "tests/fixtures/reference-s2.safetensors",
    "tests/fixtures/reference-s3.safetensors",
};
static const char *fixture_path; /* the file of the group being run */

typedef struct {
    st_file f;
    minigpt m;
    minigpt_ws ws;
    int B, T;
    int32_t *tokens, *targets;
} fixture;

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    ml_error e;
    if (!x || st_open(&x->f, fixture_path, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    if (checkpoint_read_model(&x->m, &x->f, 1, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    const st_tensor *t = st_find(&x->f, "ref.tokens");
    if (!t || t->ndim != 2) return -1;
    x->B = (int)t->shape[0];
    x->T = (int)t->shape[1];
    int64_t shape[2] = {x->B, x->T};
    x->tokens = malloc(sizeof(int32_t) * x->B * x->T);
    x->targets = malloc(sizeof(int32_t) * x->B * x->T);
    if (st_read_i32(&x->f, "ref.tokens", x->tokens, 2, shape, &e) ||
        st_read_i32(&x->f, "ref.targets", x->targets, 2, shape, &e) ||
        minigpt_ws_init(&x->ws, &x->m, x->B, x->T, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fixture *x = *state;
    minigpt_ws_free(&x->ws);
    minigpt_free(&x->m);
    st_close(&x->f);
    free(x->tokens);
    free(x->targets);
    free(x);
    return 0;
}

/* Compares n floats against reference tensor `name` (test_util.h) at this file's tolerance. */
static void compare(const st_file *f, const char *name, const float *got, size_t n, double *worst) {
    tu_compare_ref(f, name, got, n, worst, REL_TOL);
}

static void test_logits_and_loss(void **state) {
    fixture *x = *state;
    int count = 0;
    for (int i = 0; i < x->B * x->T; i++) count += x->targets[i] >= 0;
    minigpt_forward(&x->m, &x->ws, x->tokens, x->B, x->T);
    double worst = 0;
    compare(&x->f, "ref.logits", x->ws.logits, (size_t)x->B * x->T * x->m.cfg.vocab_size, &worst);
    float loss = (float)(minigpt_xent(&x->m, &x->ws, x->targets, 0.0f) / count);
    compare(&x->f, "ref.loss", &loss, 1, &worst);
}

static void test_every_gradient(void **state) {
    fixture *x = *state;
    int count = 0;
    for (int i = 0; i < x->B * x->T; i++) count += x->targets[i] >= 0;
    float *grad = calloc(x->m.n_params, sizeof(float));
    assert_non_null(grad);
    minigpt_forward(&x->m, &x->ws, x->tokens, x->B, x->T);
    minigpt_xent(&x->m, &x->ws, x->targets, 1.0f / count);
    minigpt_backward(&x->m, &x->ws, grad, NULL);
    double worst = 0;
    for (int i = 0; i < x->m.n_tensors; i++) {
        char name[128];
        snprintf(name, sizeof name, "ref.grad.%s", x->m.tensors[i].name);
        compare(&x->f, name, grad + x->m.tensors[i].offset, x->m.tensors[i].numel, &worst);
    }
    printf("  worst relative gradient error over %d tensors: %.3e\n", x->m.n_tensors, worst);
    free(grad);
}

/* The LoRA case: every Linear adapted with rank 4, alpha 8, A and B random (B != 0), on the
 * compute path given (lora_path: thin, or merged through W' = W + s·B·A). */
static void lora_reference(void **state, int path) {
    fixture *x = *state;
    ml_error e;
    const int r = atoi(st_meta(&x->f, "lora_r"));
    const float alpha = (float)atof(st_meta(&x->f, "lora_alpha"));
    lora a;
    assert_int_equal(lora_init(&a, &x->m, r, alpha, 0, LORA_ALL_TARGETS, &e), 0);
    for (int i = 0; i < a.n_layers; i++) {
        char name[160];
        int64_t sa[2] = {r, a.layers[i].slot->in}, sb[2] = {a.layers[i].slot->out, r};
        snprintf(name, sizeof name, "lora.%s.lora_A", a.layers[i].slot->path);
        assert_int_equal(st_read_f32(&x->f, name, ST_F32, a.layers[i].A, 2, sa, &e), 0);
        snprintf(name, sizeof name, "lora.%s.lora_B", a.layers[i].slot->path);
        assert_int_equal(st_read_f32(&x->f, name, ST_F32, a.layers[i].B, 2, sb, &e), 0);
    }
    assert_int_equal(lora_set_path(&a, path, 1.0, &e), 0); /* W' of these A and B */
    assert_int_equal(lora_merged_layers(&a), path == LORA_PATH_MERGED ? a.n_layers : 0);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &x->m, x->B, x->T, &e), 0);
    int count = 0;
    for (int i = 0; i < x->B * x->T; i++) count += x->targets[i] >= 0;
    double worst = 0;
    minigpt_forward(&x->m, &ws, x->tokens, x->B, x->T);
    compare(&x->f, "lora.logits", ws.logits, (size_t)x->B * x->T * x->m.cfg.vocab_size, &worst);
    float loss = (float)(minigpt_xent(&x->m, &ws, x->targets, 1.0f / count) / count);
    compare(&x->f, "lora.loss", &loss, 1, &worst);
    float *grad = calloc(a.n_params, sizeof(float));
    assert_non_null(grad);
    minigpt_backward(&x->m, &ws, NULL, grad); /* base frozen: only A and B get gradients */
    for (int i = 0; i < a.n_layers; i++) {
        char name[160];
        const lora_layer *L = &a.layers[i];
        snprintf(name, sizeof name, "lora.grad.%s.lora_A", L->slot->path);
        compare(&x->f, name, grad + L->a_off, (size_t)r * L->slot->in, &worst);
        snprintf(name, sizeof name, "lora.grad.%s.lora_B", L->slot->path);
        compare(&x->f, name, grad + L->b_off, (size_t)L->slot->out * r, &worst);
    }
    printf("  worst relative LoRA error (%s path) over %d adapted layers: %.3e\n",
           lora_path_name(path), a.n_layers, worst);
    free(grad);
    minigpt_ws_free(&ws);
    lora_free(&a);
}

static void test_lora_logits_loss_and_gradients(void **state) {
    lora_reference(state, LORA_PATH_THIN);
}

static void test_lora_merged_path(void **state) { lora_reference(state, LORA_PATH_MERGED); }

/* The DoRA fixture's adapter (r, alpha from its metadata; A, B, m from its tensors) installed on
 * x->m; the norms refreshed. */
static void load_dora(fixture *x, lora *a) {
    ml_error e;
    const int r = atoi(st_meta(&x->f, "lora_r"));
    const float alpha = (float)atof(st_meta(&x->f, "lora_alpha"));
    const lora_variant dora = {1, 0.0f, 0};
    assert_int_equal(
        lora_init_variant(a, &x->m, r, alpha, 0, LORA_ALL_TARGETS, LORA_ALL_LAYERS, &dora, &e), 0);
    for (int i = 0; i < a->n_layers; i++) {
        char name[160];
        const lora_layer *L = &a->layers[i];
        int64_t sa[2] = {r, L->slot->in}, sb[2] = {L->slot->out, r}, sm[1] = {L->slot->out};
        snprintf(name, sizeof name, "dora.%s.lora_A", L->slot->path);
        assert_int_equal(st_read_f32(&x->f, name, ST_F32, L->A, 2, sa, &e), 0);
        snprintf(name, sizeof name, "dora.%s.lora_B", L->slot->path);
        assert_int_equal(st_read_f32(&x->f, name, ST_F32, L->B, 2, sb, &e), 0);
        snprintf(name, sizeof name, "dora.%s.lora_magnitude_vector", L->slot->path);
        assert_int_equal(st_read_f32(&x->f, name, ST_F32, L->mag, 1, sm, &e), 0);
    }
    lora_refresh(a);
}

/* DoRA (PEFT's DoraLinearLayer, the weight norm detached): logits, loss, and the gradients of
 * A, B and the magnitude m of every adapted layer. */
static void test_dora_logits_loss_and_gradients(void **state) {
    fixture *x = *state;
    ml_error e;
    lora a;
    load_dora(x, &a);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &x->m, x->B, x->T, &e), 0);
    int count = 0;
    for (int i = 0; i < x->B * x->T; i++) count += x->targets[i] >= 0;
    double worst = 0;
    minigpt_forward(&x->m, &ws, x->tokens, x->B, x->T);
    compare(&x->f, "dora.logits", ws.logits, (size_t)x->B * x->T * x->m.cfg.vocab_size, &worst);
    float loss = (float)(minigpt_xent(&x->m, &ws, x->targets, 1.0f / count) / count);
    compare(&x->f, "dora.loss", &loss, 1, &worst);
    float *grad = calloc(a.n_params, sizeof(float));
    assert_non_null(grad);
    minigpt_backward(&x->m, &ws, NULL, grad);
    for (int i = 0; i < a.n_layers; i++) {
        char name[160];
        const lora_layer *L = &a.layers[i];
        snprintf(name, sizeof name, "dora.grad.%s.lora_A", L->slot->path);
        compare(&x->f, name, grad + L->a_off, (size_t)a.rank * L->slot->in, &worst);
        snprintf(name, sizeof name, "dora.grad.%s.lora_B", L->slot->path);
        compare(&x->f, name, grad + L->b_off, (size_t)L->slot->out * a.rank, &worst);
        snprintf(name, sizeof name, "dora.grad.%s.lora_magnitude_vector", L->slot->path);
        compare(&x->f, name, grad + L->m_off, (size_t)L->slot->out, &worst);
    }
    printf("  worst relative DoRA error over %d adapted layers (A, B, m): %.3e\n", a.n_layers,
           worst);
    free(grad);
    minigpt_ws_free(&ws);
    lora_free(&a);
}

/* lora_merge_into folds DoRA: the merged model (no plug-in) gives the adapter's logits. */
static void test_dora_merge(void **state) {
    fixture *x = *state;
    ml_error e;
    lora a;
    float *saved = malloc(x->m.n_params * sizeof(float));
    assert_non_null(saved);
    memcpy(saved, x->m.params, x->m.n_params * sizeof(float));
    load_dora(x, &a);
    assert_int_equal(lora_merge_into(&a, &e), 0);
    lora_free(&a); /* uninstalled: the merged weights alone */
    minigpt_forward(&x->m, &x->ws, x->tokens, x->B, x->T);
    double worst = 0;
    compare(&x->f, "dora.logits", x->ws.logits, (size_t)x->B * x->T * x->m.cfg.vocab_size, &worst);
    printf("  merged DoRA model vs the reference adapter logits: %.3e\n", worst);
    memcpy(x->m.params, saved, x->m.n_params * sizeof(float));
    free(saved);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_and_loss),
        cmocka_unit_test(test_every_gradient),
        cmocka_unit_test(test_lora_logits_loss_and_gradients),
        cmocka_unit_test(test_lora_merged_path),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "reference %s", fixtures[i]);
        fixture_path = fixtures[i];
        printf("%s\n", name);
        failed +=
            _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], setup, teardown);
    }
    const struct CMUnitTest dora[] = {
        cmocka_unit_test(test_dora_logits_loss_and_gradients),
        cmocka_unit_test(test_dora_merge),
    };
    fixture_path = "tests/fixtures/reference-dora.safetensors";
    printf("reference %s\n", fixture_path);
    failed += _cmocka_run_group_tests("reference DoRA", dora, 2, setup, teardown);
    return failed != 0;
}
