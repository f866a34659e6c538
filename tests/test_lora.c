/* test_lora.c — the LoRA module: the lesson's counts, step-0 invariance, gradients against
 * finite differences, merging, and the adapter file format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "lora.h"
#include "blas_runtime.h"
#include "safetensors.h"
#include "test_util.h"

enum { B = 2, T = 10 };

static minigpt model;

static int setup(void **state) {
    ml_error e;
    minigpt_config cfg = minigpt_default_config();
    if (minigpt_init(&model, &cfg, &e)) return -1;
    /* weights at the scale of a trained model, so LoRA updates are not drowned out */
    tu_random_weights(&model, 3);
    return 0;
}

static int teardown(void **state) {
    minigpt_free(&model);
    return 0;
}

static void tokens_for(int *tok, int *tgt) {
    rng r;
    rng_seed(&r, 17);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)rng_below(&r, 64);
        tgt[i] = (i % T) < 3 ? -1 : (int)rng_below(&r, 64);
    }
}

/* Forward on a fresh workspace; returns malloc'ed logits (B,T,V). */
static float *logits_of(minigpt *m, const int *tok) {
    ml_error e;
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, m, B, T, &e), 0);
    minigpt_forward(m, &ws, tok, B, T);
    size_t n = (size_t)B * T * m->cfg.vocab_size;
    float *out = malloc(n * sizeof(float));
    assert_non_null(out);
    memcpy(out, ws.logits, n * sizeof(float));
    minigpt_ws_free(&ws);
    return out;
}

/* The lesson's table, from shapes written out here independently of the model code:
 * per block q,k,v,o are 64x64, fc1 is (256,64), fc2 is (64,256). */
static void test_parameter_counts(void **state) {
    const int ranks[] = {0, 1, 2, 4, 8, 16, 32, 64};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        const int r = ranks[i];
        assert_int_equal(lora_count(&model, r, LORA_ALL_TARGETS), 2304 * r);
        ml_error e;
        lora a;
        assert_int_equal(lora_init(&a, &model, r, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
        assert_int_equal(a.n_params, 2304 * r);
        lora_free(&a);
    }
    const struct {
        const char *spec;
        long per_rank; /* Σ (in+out) over the chosen layers of both blocks */
    } subsets[] = {
        {"q", 2 * 128},
        {"attn", 8 * 128},
        {"ffn", 2 * (320 + 320)},
        {"q,v", 4 * 128},
        {"fc1", 2 * 320},
        {"o,fc2", 2 * (128 + 320)},
        {"all", 8 * 128 + 4 * 320},
        {"q_proj,k_proj", 4 * 128},
    };
    for (size_t i = 0; i < sizeof subsets / sizeof subsets[0]; i++) {
        unsigned mask;
        ml_error e;
        assert_int_equal(lora_parse_targets(subsets[i].spec, &mask, &e), 0);
        for (int r = 1; r <= 64; r *= 4)
            assert_int_equal(lora_count(&model, r, mask), subsets[i].per_rank * r);
    }
    unsigned mask;
    ml_error e;
    assert_int_equal(lora_parse_targets("q,mlp", &mask, &e), -1);
    assert_non_null(strstr(e.msg, "'mlp'"));
    /* the inventory the lesson starts from */
    minigpt_counts c = minigpt_count(&model);
    assert_int_equal(c.total, 103680);
    assert_int_equal(c.linear_weights + c.linear_biases, 98944);
    assert_int_equal(c.linear_weights, 98304);
    assert_int_equal(c.embedding, 4096);
    assert_int_equal(c.norms, 640);
}

static void test_step0_invariance(void **state) {
    int tok[B * T], tgt[B * T];
    tokens_for(tok, tgt);
    float *base = logits_of(&model, tok);
    ml_error e;
    lora a;
    assert_int_equal(lora_init(&a, &model, 8, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    lora_init_weights(&a, 5);
    /* A is random and non-zero; B is zero */
    double asum = 0;
    for (int i = 0; i < a.n_layers; i++)
        for (int j = 0; j < 8 * a.layers[i].slot->in; j++) asum += fabsf(a.layers[i].A[j]);
    assert_true(asum > 1.0);
    float *adapted = logits_of(&model, tok);
    const size_t n = (size_t)B * T * 64;
    assert_memory_equal(base, adapted, n * sizeof(float)); /* bit-identical */
    /* and the comparison can fail: a non-zero B changes the logits */
    a.layers[3].B[0] = 0.5f;
    float *changed = logits_of(&model, tok);
    assert_memory_not_equal(base, changed, n * sizeof(float));
    free(changed);
    free(adapted);
    free(base);
    lora_free(&a);
}

static void test_rank0_and_scales(void **state) {
    int tok[B * T], tgt[B * T];
    tokens_for(tok, tgt);
    float *base = logits_of(&model, tok);
    ml_error e;
    lora a;
    assert_int_equal(lora_init(&a, &model, 0, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    assert_int_equal(a.n_params, 0);
    for (int i = 0; i < model.n_linears; i++) assert_null(model.linears[i].ext);
    float *same = logits_of(&model, tok);
    assert_memory_equal(base, same, (size_t)B * T * 64 * sizeof(float));
    lora_free(&a);
    assert_int_equal(lora_init(&a, &model, 8, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    assert_true(a.scale == 2.0f); /* α/r */
    lora_free(&a);
    assert_int_equal(lora_init(&a, &model, 16, 16.0f, 1, LORA_ALL_TARGETS, &e), 0);
    assert_true(a.scale == 4.0f); /* α/√r with rsLoRA */
    lora_free(&a);
    assert_int_equal(lora_init(&a, &model, 65, 16.0f, 0, LORA_ALL_TARGETS, &e), -1);
    assert_non_null(strstr(e.msg, "out of range"));
    free(same);
    free(base);
}

/* Random non-zero A and B for gradient and merge checks. */
static void randomize(lora *a, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < a->n_params; i++) a->params[i] = 0.2f * rng_normal(&r);
}

static double loss_of(minigpt *m, minigpt_ws *ws, const int *tok, const int *tgt, int count) {
    minigpt_forward(m, ws, tok, B, T);
    return minigpt_xent(m, ws, tgt, 0.0f) / count;
}

/* dA and dB against a 4-point central difference (same tolerance reasoning as test_grad.c). */
static void test_lora_gradients_fd(void **state) {
    int tok[B * T], tgt[B * T], count = 0;
    tokens_for(tok, tgt);
    for (int i = 0; i < B * T; i++) count += tgt[i] >= 0;
    ml_error e;
    lora a;
    assert_int_equal(lora_init(&a, &model, 4, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
    randomize(&a, 9);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, B, T, &e), 0);
    float *grad = calloc(a.n_params, sizeof(float)),
          *base_before = malloc(model.n_params * sizeof(float));
    memcpy(base_before, model.params, model.n_params * sizeof(float));
    minigpt_forward(&model, &ws, tok, B, T);
    minigpt_xent(&model, &ws, tgt, 1.0f / count);
    minigpt_backward(&model, &ws, NULL, grad);
    /* the backward wrote nothing into the frozen base */
    assert_memory_equal(base_before, model.params, model.n_params * sizeof(float));
    const float h = 0.0078125f;
    double worst = 0;
    for (int i = 0; i < a.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            const lora_layer *L = &a.layers[i];
            const size_t off = which ? L->b_off : L->a_off;
            const size_t n = which ? (size_t)L->slot->out * 4 : (size_t)4 * L->slot->in;
            size_t jmax = 0;
            for (size_t j = 1; j < n; j++)
                if (fabsf(grad[off + j]) > fabsf(grad[off + jmax])) jmax = j;
            float *x = &a.params[off + jmax];
            const float x0 = *x;
            double v[4];
            const float steps[4] = {-2 * h, -h, h, 2 * h};
            for (int k = 0; k < 4; k++) {
                *x = x0 + steps[k];
                v[k] = loss_of(&model, &ws, tok, tgt, count);
            }
            *x = x0;
            const double fd = (v[0] - 8 * v[1] + 8 * v[2] - v[3]) / (12.0 * h),
                         g = grad[off + jmax];
            const double err = fabs(fd - g), tol = 2e-4 + 1e-2 * fabs(g);
            if (err / tol > worst) worst = err / tol;
            if (err > tol)
                fail_msg("%s lora_%c[%zu]: backward %.7g, finite difference %.7g", L->slot->path,
                         which ? 'B' : 'A', jmax, g, fd);
        }
    printf("  24 LoRA tensors: worst |fd-g|/tol = %.3f\n", worst);
    free(grad);
    free(base_before);
    minigpt_ws_free(&ws);
    lora_free(&a);
}

static void test_merge_matches_adapter(void **state) {
    int tok[B * T], tgt[B * T];
    tokens_for(tok, tgt);
    ml_error e;
    lora a;
    assert_int_equal(lora_init(&a, &model, 8, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    randomize(&a, 21);
    float *adapted = logits_of(&model, tok);
    float *saved = malloc(model.n_params * sizeof(float));
    memcpy(saved, model.params, model.n_params * sizeof(float));
    assert_int_equal(lora_merge_into(&a, &e), 0);
    lora_free(&a); /* uninstall: the merged weights alone now carry the update */
    float *merged = logits_of(&model, tok);
    double err, mag;
    tu_max_err(merged, adapted, (size_t)B * T * 64, &err, &mag);
    printf("  merged vs adapter: max |Δlogit| %.3g (logits up to %.3g)\n", err, mag);
    assert_true(err <= 1e-5 * (mag > 1 ? mag : 1));
    memcpy(model.params, saved, model.n_params * sizeof(float));
    /* the update was not negligible: merged differs from the base by far more */
    float *base = logits_of(&model, tok);
    double diff;
    tu_max_err(merged, base, (size_t)B * T * 64, &diff, &mag);
    assert_true(diff > 1e-2);
    free(base);
    free(merged);
    free(adapted);
    free(saved);
}

/* lora_set_strength(S) against an independent path: the same adapter at strength 1 with B
 * multiplied by S. S = 0 gives the base's logits exactly, S = 1 the trained scale bit for bit;
 * values outside 0..LORA_MAX_STRENGTH are refused. */
static void test_strength(void **state) {
    int tok[B * T], tgt[B * T];
    tokens_for(tok, tgt);
    ml_error e;
    float *base = logits_of(&model, tok);
    const size_t n = (size_t)B * T * 64;
    for (int rs = 0; rs <= 1; rs++) {
        const float strengths[] = {0.0f, 0.25f, 1.0f, 1.5f, 2.0f, 7.5f};
        for (size_t i = 0; i < sizeof strengths / sizeof strengths[0]; i++) {
            const float S = strengths[i];
            lora a;
            assert_int_equal(lora_init(&a, &model, 4, 8.0f, rs, LORA_ALL_TARGETS, &e), 0);
            randomize(&a, 33);
            const float trained = a.scale;
            assert_int_equal(lora_set_strength(&a, S, &e), 0);
            if (S == 1.0f) assert_true(a.scale == trained);
            float *scaled = logits_of(&model, tok);
            assert_int_equal(lora_set_strength(&a, 1.0f, &e), 0);
            assert_true(a.scale == trained);
            for (int l = 0; l < a.n_layers; l++) {
                const lora_layer *L = &a.layers[l];
                for (size_t j = 0; j < (size_t)L->slot->out * a.rank; j++) L->B[j] *= S;
            }
            float *ref = logits_of(&model, tok);
            double err, mag;
            tu_max_err(scaled, ref, n, &err, &mag);
            printf("  strength %g (rslora %d) vs B x %g: max |dlogit| %.3g (logits up to %.3g)\n",
                   (double)S, rs, (double)S, err, mag);
            assert_true(err <= 1e-5 * (mag > 1 ? mag : 1));
            if (S == 0.0f) assert_memory_equal(scaled, base, n * sizeof(float));
            else {
                tu_max_err(scaled, base, n, &err, &mag);
                assert_true(err > 1e-3); /* the adapter changes the outputs */
            }
            free(ref);
            free(scaled);
            lora_free(&a);
        }
    }
    lora a;
    assert_int_equal(lora_init(&a, &model, 4, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
    const float trained = a.scale;
    const float bad[] = {-0.5f, 10.5f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lora_set_strength(&a, bad[i], &e), -1);
        assert_non_null(strstr(e.msg, "strength"));
        assert_true(a.scale == trained);
    }
    assert_int_equal(lora_set_strength(&a, LORA_MAX_STRENGTH, &e), 0);
    lora_free(&a);
    free(base);
}

static void test_adapter_file(void **state) {
    char dir[] = "/tmp/minilora-lora-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    ml_error e;
    lora a;
    assert_int_equal(lora_init(&a, &model, 8, 16.0f, 0, LORA_ALL_TARGETS, &e), 0);
    randomize(&a, 33);
    const char *k[] = {"seed"}, *v[] = {"7"};
    assert_int_equal(lora_save(&a, path, "ab12", 1, k, v, &e), 0);
    st_file f;
    assert_int_equal(st_open(&f, path, &e), 0);
    /* PEFT names, F16, shapes, payload exactly 2 bytes per parameter */
    assert_int_equal(f.n_tensors, 24);
    size_t payload = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        assert_int_equal(f.tensors[i].dtype, ST_F16);
        assert_int_equal(strncmp(f.tensors[i].name, "base_model.model.blocks.", 24), 0);
        payload += f.tensors[i].end - f.tensors[i].begin;
    }
    assert_int_equal(payload, 2 * 2304 * 8);
    const st_tensor *t = st_find(&f, "base_model.model.blocks.1.ffn.fc1.lora_B.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 256);
    assert_int_equal(t->shape[1], 8);
    t = st_find(&f, "base_model.model.blocks.0.attn.q_proj.lora_A.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 8);
    assert_int_equal(t->shape[1], 64);
    assert_string_equal(st_meta(&f, "peft_type"), "LORA");
    assert_string_equal(st_meta(&f, "r"), "8");
    assert_string_equal(st_meta(&f, "lora_alpha"), "16");
    assert_string_equal(st_meta(&f, "use_rslora"), "false");
    assert_string_equal(st_meta(&f, "base_sha256"), "ab12");
    assert_string_equal(st_meta(&f, "target_modules"),
                        "[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"fc1\",\"fc2\"]");
    st_close(&f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < 40 * 1024); /* the lesson's "≈ 36 KiB" plus a small header */
    /* loading gives the fp16-rounded values: within half an fp16 ulp */
    float *orig = malloc(a.n_params * sizeof(float));
    assert_non_null(orig);
    memcpy(orig, a.params, a.n_params * sizeof(float));
    const size_t n_params = a.n_params;
    lora_free(&a); /* one adapter installed at a time */
    lora b;
    if (lora_load(&b, &model, path, "ab12", &e)) fail_msg("%s", e.msg);
    assert_int_equal(b.rank, 8);
    assert_int_equal(b.n_params, n_params);
    for (size_t i = 0; i < n_params; i++) {
        const float x = orig[i], y = b.params[i];
        const float ulp = ldexpf(1.0f, (fabsf(x) < 6.103515625e-05f ? -14 : ilogbf(x)) - 10);
        if (fabsf(x - y) > 0.5f * ulp) fail_msg("param %zu: %g loaded as %g", i, x, y);
    }
    lora_free(&b);
    free(orig);
    /* refused on another base, naming both */
    assert_int_equal(lora_load(&b, &model, path, "cd34", &e), -1);
    assert_non_null(strstr(e.msg, "another base"));
    unlink(path);
    rmdir(dir);
}

/* --layers: the count over the chosen blocks from the shapes written out here (per block:
 * q,k,v,o 64+64 each, fc1 and fc2 64+256 each), the parse of good and bad lists, and a file
 * round trip that keeps the mask (PEFT's layers_to_transform) and only those blocks' tensors. */
static void test_layers(void **state) {
    const long block = 4 * 128 + 2 * 320, attn = 4 * 128, qv = 2 * 128;
    const struct {
        const char *targets, *layers;
        long per_rank;
    } cases[] = {
        {"all", "all", 2 * block}, {"all", "0,1", 2 * block}, {"all", "0", block},
        {"all", "1", block},       {"attn", "1", attn},       {"q,v", "0", qv},
        {"ffn", "1,0", 2 * 640},   {"fc2", "1,1", 320},
    };
    ml_error e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned tm, lm;
        assert_int_equal(lora_parse_targets(cases[i].targets, &tm, &e), 0);
        assert_int_equal(lora_parse_layers(cases[i].layers, model.cfg.n_layers, &lm, &e), 0);
        for (int r = 0; r <= 64; r = r ? 4 * r : 1) {
            assert_int_equal(lora_count_layers(&model, r, tm, lm), cases[i].per_rank * r);
            lora a;
            assert_int_equal(lora_init_layers(&a, &model, r, 16.0f, 0, tm, lm, &e), 0);
            assert_int_equal(a.n_params, cases[i].per_rank * r);
            lora_free(&a);
        }
    }
    const char *bad[] = {"", "2", "0,", ",1", "x", "-1", "0 1", "1.0", "01x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned lm;
        if (lora_parse_layers(bad[i], model.cfg.n_layers, &lm, &e) != -1)
            fail_msg("'%s' parsed", bad[i]);
        assert_non_null(strstr(e.msg, "block index"));
    }
    lora a;
    assert_int_equal(lora_init_layers(&a, &model, 4, 16.0f, 0, LORA_ALL_TARGETS, 1u << 2, &e), -1);

    char dir[] = "/tmp/minilora-layers-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    assert_int_equal(lora_init_layers(&a, &model, 4, 8.0f, 1, LORA_ALL_TARGETS, 1u << 1, &e), 0);
    randomize(&a, 5);
    assert_int_equal(lora_save(&a, path, "ab12", 0, NULL, NULL, &e), 0);
    const size_t n_params = a.n_params;
    lora_free(&a);
    st_file f;
    assert_int_equal(st_open(&f, path, &e), 0);
    assert_string_equal(st_meta(&f, "layers_to_transform"), "[1]");
    assert_int_equal(f.n_tensors, 12);
    for (int i = 0; i < f.n_tensors; i++)
        assert_int_equal(strncmp(f.tensors[i].name, "base_model.model.blocks.1.", 26), 0);
    st_close(&f);
    lora b;
    if (lora_load(&b, &model, path, "ab12", &e)) fail_msg("%s", e.msg);
    assert_int_equal(b.layer_mask, 1u << 1);
    assert_int_equal(b.n_params, n_params);
    assert_int_equal(b.n_layers, 6);
    for (int i = 0; i < b.n_layers; i++) assert_int_equal(b.layers[i].slot->layer, 1);
    assert_null(model.linears[0].ext); /* block 0 untouched */
    lora_free(&b);
    /* every block: no layers_to_transform (PEFT: absent means all), loads as all */
    assert_int_equal(lora_init_layers(&a, &model, 2, 8.0f, 0, LORA_ALL_TARGETS, 3u, &e), 0);
    assert_int_equal(lora_save(&a, path, "ab12", 0, NULL, NULL, &e), 0);
    lora_free(&a);
    assert_int_equal(st_open(&f, path, &e), 0);
    assert_null(st_meta(&f, "layers_to_transform"));
    st_close(&f);
    if (lora_load(&b, &model, path, "ab12", &e)) fail_msg("%s", e.msg);
    assert_int_equal(b.n_params, 2 * 2304);
    lora_free(&b);
    /* a layers_to_transform that names no block of this model, or is not a list of indices */
    const char *bad_meta[] = {"[2]", "[]", "[0.5]", "\"1\"", "[-1]", "nonsense"};
    for (size_t i = 0; i < sizeof bad_meta / sizeof bad_meta[0]; i++) {
        const char *k[] = {"layers_to_transform"}, *v[] = {bad_meta[i]};
        assert_int_equal(lora_init(&a, &model, 0, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
        assert_int_equal(lora_save(&a, path, "ab12", 1, k, v, &e), 0);
        lora_free(&a);
        if (lora_load(&b, &model, path, "ab12", &e) != -1)
            fail_msg("layers_to_transform %s loaded", bad_meta[i]);
        assert_non_null(strstr(e.msg, "layers_to_transform"));
    }
    /* one integer, as PEFT also writes it */
    const char *k1[] = {"layers_to_transform"}, *v1[] = {"0"};
    assert_int_equal(lora_init(&a, &model, 0, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
    assert_int_equal(lora_save(&a, path, "ab12", 1, k1, v1, &e), 0);
    lora_free(&a);
    if (lora_load(&b, &model, path, "ab12", &e)) fail_msg("%s", e.msg);
    assert_int_equal(b.layer_mask, 1u);
    lora_free(&b);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parameter_counts),      cmocka_unit_test(test_step0_invariance),
        cmocka_unit_test(test_rank0_and_scales),      cmocka_unit_test(test_lora_gradients_fd),
        cmocka_unit_test(test_merge_matches_adapter), cmocka_unit_test(test_strength),
        cmocka_unit_test(test_adapter_file),          cmocka_unit_test(test_layers),
    };
    return cmocka_run_group_tests_name("lora", tests, setup, teardown);
}
