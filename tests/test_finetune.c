/* test_finetune.c — fine-tuning the shipped base on the shipped data: what changes, what must
 * not, determinism, fp16 round trip, divergence, and the full fine-tune baseline.
 * Runs are short (a few dozen steps); they test the machinery, not the recipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "checkpoint.h"
#include "eval.h"
#include "finetune.h"
#include "blas_runtime.h"
#include "safetensors.h"
#include "test_util.h"

#define BASE "data/minigpt-base.safetensors"

static minigpt model;
static tok_vocab vocab;
static char base_sha[65];
static dataset train_set, replay_set, val_set, test_set;
static char tmpdir[] = "/tmp/minilora-ft-XXXXXX";

static int setup(void **state) {
    ml_error e;
    if (checkpoint_load(BASE, &model, &vocab, base_sha, &e) ||
        ds_load(&train_set, "data/irreg.jsonl", &vocab, model.cfg.context, &e) ||
        ds_load(&replay_set, "data/replay.jsonl", &vocab, model.cfg.context, &e) ||
        ds_load(&val_set, "data/irreg_val.jsonl", &vocab, model.cfg.context, &e) ||
        ds_load(&test_set, "data/irreg_test.jsonl", &vocab, model.cfg.context, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    ds_free(&train_set);
    ds_free(&replay_set);
    ds_free(&val_set);
    ds_free(&test_set);
    minigpt_free(&model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static finetune_opts opts(int rank, int steps, int threads, uint64_t seed) {
    finetune_opts o = {.rank = rank, .alpha = 16.0f, .targets = LORA_ALL_TARGETS};
    o.train = tu_train_opts(steps, threads, seed);
    o.train.replay_frac = 0.5f;
    return o;
}

/* Trains, saves the adapter to name in tmpdir, returns the path (static buffer). */
static const char *train_and_save(const finetune_opts *o, const char *name) {
    static char path[256];
    ml_error e;
    finetune f;
    assert_int_equal(finetune_init(&f, &model, &train_set, &replay_set, &val_set, o, "test", &e),
                     0);
    if (finetune_run(&f, &e)) fail_msg("%s", e.msg);
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e)) fail_msg("%s", e.msg);
    finetune_free(&f);
    return path;
}

static char *slurp(const char *path, size_t *n) {
    char *buf;
    ml_error e;
    if (read_file(path, 1 << 24, &buf, n, &e)) fail_msg("%s", e.msg);
    return buf;
}

static void test_only_adapter_changes(void **state) {
    float *before = malloc(model.n_params * sizeof(float));
    memcpy(before, model.params, model.n_params * sizeof(float));
    finetune_opts o = opts(4, 20, 2, 1);
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    assert_int_equal(f.result.steps, 20);
    double bnorm = 0;
    for (int i = 0; i < f.adapter.n_layers; i++)
        for (int j = 0; j < f.adapter.layers[i].slot->out * 4; j++)
            bnorm += fabsf(f.adapter.layers[i].B[j]);
    assert_true(bnorm > 0); /* B left zero would mean nothing was learned */
    finetune_free(&f);
    /* every base tensor is bit-identical after training */
    for (int i = 0; i < model.n_tensors; i++)
        if (memcmp(before + model.tensors[i].offset, model.params + model.tensors[i].offset,
                   model.tensors[i].numel * sizeof(float)))
            fail_msg("base tensor %s changed during LoRA training", model.tensors[i].name);
    free(before);
}

static void test_same_seed_same_bytes_any_threads(void **state) {
    finetune_opts o1 = opts(8, 15, 1, 7), o2 = opts(8, 15, 2, 7), o3 = opts(8, 15, 2, 8);
    size_t n1, n2, n3;
    char *a = slurp(train_and_save(&o1, "s7t1.safetensors"), &n1);
    char *b = slurp(train_and_save(&o2, "s7t2.safetensors"), &n2);
    char *c = slurp(train_and_save(&o3, "s8t2.safetensors"), &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);                  /* same seed: identical on 1 and 2 threads */
    assert_true(n1 != n3 || memcmp(a, c, n1) != 0); /* another seed: another adapter */
    free(a);
    free(b);
    free(c);
}

/* The fp16 file changes each parameter by at most half an fp16 ulp (2^-11 relative). The
 * logits then move by at most δ, measured here; greedy decoding can only change where the
 * top-two logit margin is below 2δ. So the exact-match counts of the F32 and F16 adapters may
 * differ by at most the number of examples with such a narrow margin — the rounding predicts
 * no more. */
static void test_fp16_round_trip_matches_rounding(void **state) {
    finetune_opts o = opts(8, 40, 2, 3);
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/fp16.safetensors", tmpdir);
    assert_int_equal(lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e), 0);
    const int ctx = model.cfg.context, V = model.cfg.vocab_size, n = test_set.n;
    float *l32 = malloc(sizeof(float) * (size_t)n * ctx * V),
          *l16 = malloc(sizeof(float) * (size_t)n * ctx * V);
    int *tok = malloc(sizeof(int) * (size_t)n * ctx), *tgt = malloc(sizeof(int) * (size_t)n * ctx);
    const ds_example **ex = malloc(sizeof *ex * (size_t)n);
    for (int i = 0; i < n; i++) ex[i] = &test_set.ex[i];
    ds_batch(ex, n, ctx, tok, tgt);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, n, ctx, &e), 0);
    minigpt_forward(&model, &ws, tok, n, ctx);
    memcpy(l32, ws.logits, sizeof(float) * (size_t)n * ctx * V);
    eval_item *it32 = calloc((size_t)n, sizeof *it32), *it16 = calloc((size_t)n, sizeof *it16);
    eval_dataset(&f.g, &vocab, &test_set, it32);
    finetune_free(&f);
    minigpt_ws_free(&ws);
    lora a;
    assert_int_equal(lora_load(&a, &model, path, base_sha, &e), 0);
    assert_int_equal(minigpt_ws_init(&ws, &model, n, ctx, &e), 0);
    minigpt_forward(&model, &ws, tok, n, ctx);
    memcpy(l16, ws.logits, sizeof(float) * (size_t)n * ctx * V);
    engine g;
    assert_int_equal(engine_init(&g, &model, 2, 64, 16, 0, 0, &e), 0);
    eval_dataset(&g, &vocab, &test_set, it16);
    /* δ: the largest logit change on loss-bearing positions */
    double delta = 0, *margin = malloc(sizeof(double) * (size_t)n);
    int narrow = 0;
    for (int i = 0; i < n; i++) {
        double min_margin = INFINITY;
        for (int t = 0; t < ctx; t++) {
            if (tgt[i * ctx + t] < 0) continue;
            const float *a32 = l32 + ((size_t)i * ctx + t) * V,
                        *a16 = l16 + ((size_t)i * ctx + t) * V;
            float top = -INFINITY, second = -INFINITY;
            for (int v = 0; v < V; v++) {
                delta = fmax(delta, fabs((double)a32[v] - a16[v]));
                if (a32[v] > top) second = top, top = a32[v];
                else if (a32[v] > second) second = a32[v];
            }
            min_margin = fmin(min_margin, top - second);
        }
        margin[i] = min_margin; /* along the target path: any flip needs a margin below 2δ */
    }
    for (int i = 0; i < n; i++) narrow += margin[i] < 2 * delta;
    int c32 = 0, c16 = 0, flips = 0;
    for (int i = 0; i < n; i++) {
        c32 += it32[i].correct;
        c16 += it16[i].correct;
        flips += it32[i].correct != it16[i].correct;
    }
    printf("  fp16 round trip: max |Δlogit| %.3g; exact match %d -> %d of %d; %d examples within "
           "the 2δ margin\n",
           delta, c32, c16, n, narrow);
    assert_true(delta < 0.05);
    assert_true(flips <= narrow);
    lora_free(&a);
    engine_free(&g);
    minigpt_ws_free(&ws);
    free(l32);
    free(l16);
    free(tok);
    free(tgt);
    free((void *)ex);
    free(it32);
    free(it16);
    free(margin);
}

static void test_divergence_is_caught(void **state) {
    finetune_opts o = opts(8, 50, 2, 1);
    o.train.lr = INFINITY; /* absurd on purpose: the first update overflows */
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    const int rc = finetune_run(&f, &e);
    if (rc != -1 || !strstr(e.msg, "diverged at step 1")) {
        finetune_free(&f);
        fail_msg("expected divergence at step 1, got rc %d: %s", rc, e.msg);
    }
    /* the parameters in place are the last finite ones */
    for (size_t i = 0; i < f.adapter.n_params; i++) assert_true(isfinite(f.adapter.params[i]));
    finetune_free(&f);
}

static void test_rank0_trains_nothing(void **state) {
    finetune_opts o = opts(0, 10, 2, 1);
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    assert_int_equal(f.result.steps, 0);
    assert_int_equal(f.adapter.n_params, 0);
    finetune_free(&f);
}

static void test_full_finetune_changes_only_linear_weights(void **state) {
    float *before = malloc(model.n_params * sizeof(float));
    memcpy(before, model.params, model.n_params * sizeof(float));
    finetune_opts o = opts(0, 10, 2, 1);
    o.full = 1;
    o.train.lr = 1e-3f;
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    finetune_free(&f);
    for (int i = 0; i < model.n_tensors; i++) {
        const minigpt_tensor *t = &model.tensors[i];
        const int changed =
            memcmp(before + t->offset, model.params + t->offset, t->numel * sizeof(float)) != 0;
        if (changed != (t->kind == MG_LINEAR_WEIGHT))
            fail_msg("%s %s during full fine-tuning", t->name,
                     changed ? "changed" : "did not change");
    }
    memcpy(model.params, before, model.n_params * sizeof(float)); /* restore the base */
    free(before);
}

/* Stops the loop at the validation of step 10, as SIGINT would. */
static void stop_at_10(void *ctx, int step, double train_loss, double val_loss) {
    if (step == 10) train_stop_signal = 2;
}

static void test_interrupt_and_resume_is_bit_identical(void **state) {
    finetune_opts o = opts(8, 30, 2, 11);
    size_t n_straight, n_resumed;
    char *straight = slurp(train_and_save(&o, "straight.safetensors"), &n_straight);
    ml_error e;
    char state_path[256], *fp = finetune_fingerprint(&o, base_sha, "d", "v", "r");
    snprintf(state_path, sizeof state_path, "%s/run.state", tmpdir);
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    f.job.on_eval = stop_at_10;
    assert_int_equal(finetune_run(&f, &e), 0);
    train_stop_signal = 0;
    assert_int_equal(f.result.interrupted, 2);
    assert_int_equal(f.state.step, 10);
    assert_int_equal(train_state_save(state_path, &f.job, &f.state, fp, &e), 0);
    finetune_free(&f);
    /* a fresh process would start here */
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    if (train_state_load(state_path, &f.job, &f.state, fp, &e)) fail_msg("%s", e.msg);
    assert_int_equal(f.state.step, 10);
    assert_int_equal(finetune_run(&f, &e), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/resumed.safetensors", tmpdir);
    assert_int_equal(lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e), 0);
    finetune_free(&f);
    char *resumed = slurp(path, &n_resumed);
    assert_int_equal(n_straight, n_resumed);
    assert_memory_equal(straight, resumed, n_straight);
    /* other settings are refused, naming the one that differs */
    finetune_opts o2 = opts(8, 30, 2, 11);
    o2.train.lr = 1e-3f;
    char *fp2 = finetune_fingerprint(&o2, base_sha, "d", "v", "r");
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o2, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(train_state_load(state_path, &f.job, &f.state, fp2, &e), -1);
    assert_non_null(strstr(e.msg, "lr = 0.002"));
    finetune_free(&f);
    free(fp);
    free(fp2);
    free(straight);
    free(resumed);
}

/* Mean KL(p_base ‖ p_model) over every position of the first n replay sequences, for the
 * model in f's current state: one engine_grad with the term on (its gradient is not used). */
static double replay_kl(finetune *f, int n) {
    ml_error e;
    engine g;
    const minigpt *frozen = f->frozen.params ? &f->frozen : NULL;
    if (engine_init(&g, f->m, 1, n, n, 0, f->g.n_ext, &e) ||
        engine_set_preserve(&g, 1.0f, frozen, &e))
        fail_msg("%s", e.msg);
    const ds_example **ex = malloc(sizeof *ex * (size_t)n);
    for (int i = 0; i < n; i++) ex[i] = &replay_set.ex[i];
    engine_grad(&g, ex, n, n, NULL);
    const double kl = g.kl_mean;
    free((void *)ex);
    engine_free(&g);
    return kl;
}

/* The preservation term does what it is for: with a large weight the trained adapter stays
 * closer to the base on the replay sequences than without it (same seed, same steps). */
static void test_preserve_kl_pulls_toward_base(void **state) {
    double kl[2];
    for (int k = 0; k < 2; k++) {
        finetune_opts o = opts(8, 40, 2, 3);
        o.train.preserve_kl = k ? 5.0f : 0.0f;
        ml_error e;
        finetune f;
        if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
            fail_msg("%s", e.msg);
        if (finetune_run(&f, &e)) fail_msg("%s", e.msg);
        kl[k] = replay_kl(&f, 64);
        finetune_free(&f);
    }
    assert_true(kl[0] > 0.0);
    if (!(kl[1] < 0.5 * kl[0]))
        fail_msg("KL to the base %g with the term, %g without", kl[1], kl[0]);
}

/* The term's extra forward keeps the determinism guarantee: 1 and 2 threads, same bytes. */
static void test_preserve_kl_same_bytes_any_threads(void **state) {
    finetune_opts o1 = opts(4, 10, 1, 5), o2 = opts(4, 10, 2, 5);
    o1.train.preserve_kl = o2.train.preserve_kl = 1.0f;
    size_t n1, n2;
    char *a = slurp(train_and_save(&o1, "kl-t1.safetensors"), &n1);
    char *b = slurp(train_and_save(&o2, "kl-t2.safetensors"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);
}

/* With --full the base itself is trained: the term must compare with a frozen copy (against
 * the model in place it would always be 0), and that copy must stay the base. */
static void test_preserve_kl_full_finetune_uses_frozen_copy(void **state) {
    float *before = malloc(model.n_params * sizeof(float));
    memcpy(before, model.params, model.n_params * sizeof(float));
    finetune_opts o = opts(0, 10, 2, 1);
    o.full = 1;
    o.train.preserve_kl = 1.0f;
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    if (finetune_run(&f, &e)) fail_msg("%s", e.msg);
    assert_true(f.g.kl_mean > 0.0); /* the last step saw a model that differs from the base */
    assert_memory_equal(f.frozen.params, before, model.n_params * sizeof(float));
    assert_true(replay_kl(&f, 32) > 0.0);
    finetune_free(&f);
    memcpy(model.params, before, model.n_params * sizeof(float)); /* the next tests need the base */
    free(before);
}

/* SGD with momentum, by the table, against the formula written out here: b = μb + g,
 * p -= lr(b + wd·p); with Nesterov the step uses g + μb. Two steps so that the buffer matters. */
static void test_sgd_step_matches_hand_computation(void **state) {
    const float p0[4] = {0.5f, -1.0f, 2.0f, 0.0f}, g1[4] = {0.1f, -0.2f, 0.3f, 1.0f},
                g2[4] = {-0.4f, 0.5f, 0.0f, 2.0f};
    const float lr = 0.1f, wd = 0.01f, mu = 0.9f;
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        optim_state s;
        ml_error e;
        assert_int_equal(optim_state_init(&s, optim_find("sgd"), 4, &e), 0);
        assert_int_equal(s.kind->n_slots, 1);
        assert_string_equal(s.kind->slots[0], "momentum");
        const optim_hparams h = {.momentum = mu, .nesterov = nesterov};
        float p[4], want[4], b[4] = {0};
        memcpy(p, p0, sizeof p);
        memcpy(want, p0, sizeof want);
        for (int t = 1; t <= 2; t++) {
            const float *g = t == 1 ? g1 : g2;
            optim_step(&s, 0, p, g, 4, lr, wd, &h, t);
            for (int i = 0; i < 4; i++) {
                b[i] = mu * b[i] + g[i];
                const float d = nesterov ? g[i] + mu * b[i] : b[i];
                want[i] = want[i] - lr * (d + wd * want[i]);
            }
        }
        for (int i = 0; i < 4; i++) assert_float_equal(p[i], want[i], 1e-7);
        /* by hand, element 3 without Nesterov: b1 = 1, p1 = -0.1; b2 = 2.9, p2 = -0.1 - 0.1·(2.9 - 0.001) */
        if (!nesterov) assert_float_equal(p[3], -0.1f - 0.1f * (2.9f - 0.001f), 1e-6);
        optim_state_free(&s);
    }
}

/* AdamW through the table is bit-identical to the bias-corrected formula, written out here,
 * with state carved at an offset of the one block. */
static void test_adamw_through_table_matches_formula(void **state) {
    enum { N = 6, OFF = 3 };
    optim_state s;
    ml_error e;
    assert_int_equal(optim_state_init(&s, OPTIM_ADAMW, OFF + N, &e), 0);
    assert_string_equal(s.kind->name, "adamw");
    assert_string_equal(s.kind->slots[0], "adam_m");
    assert_string_equal(s.kind->slots[1], "adam_v");
    const optim_hparams h = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float p[N], q[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++) p[i] = q[i] = 0.3f * (float)i - 0.7f;
    for (int t = 1; t <= 3; t++) {
        float g[N];
        for (int i = 0; i < N; i++) g[i] = 0.05f * (float)(i * t) - 0.1f;
        optim_step(&s, OFF, p, g, N, 1e-2f, 0.1f, &h, t);
        const float c1 = 1.0f / (1.0f - powf(0.9f, (float)t)),
                    c2 = 1.0f / (1.0f - powf(0.999f, (float)t));
        for (int i = 0; i < N; i++) {
            m[i] = 0.9f * m[i] + (1.0f - 0.9f) * g[i];
            v[i] = 0.999f * v[i] + (1.0f - 0.999f) * g[i] * g[i];
            q[i] -= 1e-2f * ((m[i] * c1) / (sqrtf(v[i] * c2) + 1e-8f) + 0.1f * q[i]);
        }
    }
    assert_memory_equal(p, q, sizeof p);
    assert_memory_equal(optim_slot(&s, 0, OFF), m, sizeof m);
    assert_memory_equal(optim_slot(&s, 1, OFF), v, sizeof v);
    for (int i = 0; i < OFF; i++) assert_true(optim_slot(&s, 0, 0)[i] == 0.0f); /* untouched */
    optim_state_free(&s);
}

/* LoRA+: with plain SGD (no momentum, no clipping, no decay, no warmup) the first step moves
 * each B by exactly ratio times what it moves at ratio 1: B starts at zero, so its gradient is
 * the same in both runs and B = -(lr·ratio)·g, and ×16 is exact in float. A's gradient is zero
 * at that step (B = 0), so A stays where it started in both runs. */
static void test_loraplus_ratio_scales_b_updates(void **state) {
    float *moved[2] = {NULL, NULL};
    size_t nb = 0;
    for (int k = 0; k < 2; k++) {
        finetune_opts o = opts(4, 1, 2, 5);
        o.train.optimizer = OPTIM_SGD;
        o.train.momentum = 0.0f;
        o.train.clip = 0.0f;
        o.train.warmup = 0;
        o.train.lr = 0.05f;
        o.train.eval_every = 0;
        o.loraplus_ratio = k ? 16.0f : 1.0f;
        ml_error e;
        finetune f;
        if (finetune_init(&f, &model, &train_set, &replay_set, NULL, &o, "test", &e))
            fail_msg("%s", e.msg);
        if (train_run(&f.job, &f.opts, &f.state, &f.result, &e)) fail_msg("%s", e.msg);
        nb = 0;
        for (int i = 0; i < f.n_tensors; i++) nb += f.tensors[i].n;
        moved[k] = malloc(nb * sizeof(float));
        size_t off = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            /* B started at zero: what is there is the update; A is compared with the start */
            memcpy(moved[k] + off, f.tensors[i].p, f.tensors[i].n * sizeof(float));
            off += f.tensors[i].n;
        }
        assert_true(f.tensors[1].lr_mult == (k ? 16.0f : 1.0f));
        assert_true(f.tensors[0].lr_mult == 1.0f);
        finetune_free(&f);
    }
    /* tensors alternate A, B (finetune_init's order) */
    finetune_opts o = opts(4, 1, 2, 5);
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, NULL, &o, "test", &e))
        fail_msg("%s", e.msg);
    size_t off = 0, nonzero = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const size_t n = f.tensors[i].n;
        for (size_t j = 0; j < n; j++) {
            const float a = moved[0][off + j], b = moved[1][off + j];
            if (i % 2 == 0) {
                assert_true(a == b);
            } else {
                if (a != 0.0f) nonzero++;
                if (b != 16.0f * a)
                    fail_msg("%s B[%zu]: %g is not 16 x %g", f.tensors[i].name, j, b, a);
            }
        }
        off += n;
    }
    assert_true(nonzero > 0);
    finetune_free(&f);
    free(moved[0]);
    free(moved[1]);
}

/* An SGD run interrupted and resumed ends bit-identical to the uninterrupted one; resuming its
 * state with AdamW is refused naming the optimizer, and with another momentum naming that. */
static void test_sgd_resume_bit_identical_and_kind_checked(void **state) {
    finetune_opts o = opts(8, 30, 2, 13);
    o.train.optimizer = OPTIM_SGD;
    o.train.momentum = 0.9f;
    o.train.lr = 0.02f;
    o.loraplus_ratio = 4.0f;
    size_t n_straight, n_resumed;
    char *straight = slurp(train_and_save(&o, "sgd-straight.safetensors"), &n_straight);
    ml_error e;
    char state_path[256], *fp = finetune_fingerprint(&o, base_sha, "d", "v", "r");
    assert_non_null(strstr(fp, "\"optimizer\":\"sgd\""));
    assert_non_null(strstr(fp, "\"loraplus_ratio\":4"));
    snprintf(state_path, sizeof state_path, "%s/sgd.state", tmpdir);
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    f.job.on_eval = stop_at_10;
    assert_int_equal(finetune_run(&f, &e), 0);
    train_stop_signal = 0;
    assert_int_equal(f.state.step, 10);
    assert_int_equal(train_state_save(state_path, &f.job, &f.state, fp, &e), 0);
    finetune_free(&f);
    /* the file holds the slot by its name, and the optimizer's name */
    st_file sf;
    assert_int_equal(st_open(&sf, state_path, &e), 0);
    assert_string_equal(st_meta(&sf, "optimizer"), "sgd");
    int has_momentum = 0, has_adam = 0;
    for (int i = 0; i < sf.n_tensors; i++) {
        has_momentum |= strcmp(sf.tensors[i].name, "momentum") == 0;
        has_adam |= strncmp(sf.tensors[i].name, "adam_", 5) == 0;
    }
    assert_true(has_momentum && !has_adam);
    st_close(&sf);
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    if (train_state_load(state_path, &f.job, &f.state, fp, &e)) fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/sgd-resumed.safetensors", tmpdir);
    assert_int_equal(lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e), 0);
    finetune_free(&f);
    char *resumed = slurp(path, &n_resumed);
    assert_int_equal(n_straight, n_resumed);
    assert_memory_equal(straight, resumed, n_straight);
    /* the same state resumed with AdamW: refused, naming the optimizer */
    finetune_opts oa = o;
    oa.train.optimizer = OPTIM_ADAMW;
    char *fpa = finetune_fingerprint(&oa, base_sha, "d", "v", "r");
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &oa, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(train_state_load(state_path, &f.job, &f.state, fpa, &e), -1);
    if (!strstr(e.msg, "optimizer = sgd") || !strstr(e.msg, "adamw"))
        fail_msg("message: %s", e.msg);
    assert_null(strchr(e.msg, '\n'));
    finetune_free(&f);
    /* another momentum, or LoRA+ left at its default: refused naming the setting */
    finetune_opts om = o;
    om.train.momentum = 0.5f;
    char *fpm = finetune_fingerprint(&om, base_sha, "d", "v", "r");
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &om, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(train_state_load(state_path, &f.job, &f.state, fpm, &e), -1);
    if (!strstr(e.msg, "momentum = 0.89")) fail_msg("message: %s", e.msg);
    finetune_free(&f);
    finetune_opts or = o;
    or.loraplus_ratio = 1.0f;
    char *fpr = finetune_fingerprint(& or, base_sha, "d", "v", "r");
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, & or, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(train_state_load(state_path, &f.job, &f.state, fpr, &e), -1);
    if (!strstr(e.msg, "loraplus_ratio = 4")) fail_msg("message: %s", e.msg);
    finetune_free(&f);
    /* and the loop itself refuses a state of another kind than its options */
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    f.opts.optimizer = OPTIM_ADAMW;
    assert_int_equal(finetune_run(&f, &e), -1);
    assert_non_null(strstr(e.msg, "sgd"));
    finetune_free(&f);
    free(fp);
    free(fpa);
    free(fpm);
    free(fpr);
    free(straight);
    free(resumed);
}

/* A default (AdamW, no LoRA+) fingerprint is the one written before the optimizer choice, so
 * older training states still resume. */
static void test_default_fingerprint_unchanged(void **state) {
    finetune_opts o = opts(8, 30, 2, 11);
    char *fp = finetune_fingerprint(&o, base_sha, "d", "v", "r");
    assert_null(strstr(fp, "optimizer"));
    assert_null(strstr(fp, "loraplus"));
    o.loraplus_ratio = 1.0f;
    char *fp1 = finetune_fingerprint(&o, base_sha, "d", "v", "r");
    assert_string_equal(fp, fp1);
    free(fp);
    free(fp1);
}

/* Whether the n bytes at buf hold the string s. */
static int holds(const char *buf, size_t n, const char *s) {
    const size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(buf + i, s, k)) return 1;
    return 0;
}

/* LoRA dropout: same seed, same bytes on 1 and 2 threads; another seed another adapter; P = 0
 * is the plain run byte for byte; P > 0 changes the adapter; provenance in the metadata. */
static void test_dropout_deterministic(void **state) {
    finetune_opts o1 = opts(8, 15, 1, 7), o2 = opts(8, 15, 2, 7), o3 = opts(8, 15, 2, 8);
    finetune_opts plain = opts(8, 15, 2, 7), zero = opts(8, 15, 2, 7);
    o1.dropout = o2.dropout = o3.dropout = 0.1f;
    zero.dropout = 0.0f;
    size_t n1, n2, n3, np, nz;
    char *a = slurp(train_and_save(&o1, "d7t1.safetensors"), &n1);
    char *b = slurp(train_and_save(&o2, "d7t2.safetensors"), &n2);
    char *c = slurp(train_and_save(&o3, "d8t2.safetensors"), &n3);
    char *p = slurp(train_and_save(&plain, "p7t2.safetensors"), &np);
    char *z = slurp(train_and_save(&zero, "z7t2.safetensors"), &nz);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);                  /* same seed: identical on 1 and 2 threads */
    assert_true(n1 != n3 || memcmp(a, c, n1) != 0); /* another seed: other masks */
    assert_int_equal(np, nz);
    assert_memory_equal(p, z, np);                  /* P = 0: today's run */
    assert_true(n1 != np || memcmp(a, p, n1) != 0); /* P = 0.1: another adapter */
    assert_true(holds(a, n1, "\"lora_dropout\":\"0.1\""));
    assert_false(holds(p, np, "lora_dropout"));
    free(a);
    free(b);
    free(c);
    free(p);
    free(z);
}

/* Dropout is off outside training steps: the validation loss (engine_loss) of a dropout adapter
 * equals that of the same weights with dropout switched off, while a training step's forward
 * (engine_grad) sees the masks and another loss. */
static void test_dropout_off_at_evaluation(void **state) {
    finetune_opts o = opts(8, 10, 2, 5);
    o.dropout = 0.3f;
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    const double with = train_val_loss(&f.job);
    const ds_example *ex[16];
    for (int i = 0; i < 16; i++) ex[i] = &val_set.ex[i];
    f.g.ext_step = 3;
    const double step_loss = engine_grad(&f.g, ex, 16, 0, NULL);
    f.adapter.dropout = 0.0f;
    const double without = train_val_loss(&f.job);
    const double step_plain = engine_grad(&f.g, ex, 16, 0, NULL);
    assert_true(with == without);
    assert_true(step_loss != step_plain);
    finetune_free(&f);
}

/* DoRA: trainable count Σ r(in+out) + Σ out; after training the cached norms are those of the
 * kept A and B (the loop refreshed them); the file holds use_dora and F32 magnitudes that load
 * back exactly; same seed, same bytes on 1 and 2 threads. */
static void test_dora_train_save_load(void **state) {
    finetune_opts o = opts(4, 15, 2, 9), o1 = opts(4, 15, 1, 9);
    o.dora = o1.dora = 1;
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    size_t trainable = 0, rows = 0;
    for (int i = 0; i < f.n_tensors; i++) trainable += f.tensors[i].n;
    for (int i = 0; i < f.adapter.n_layers; i++) rows += (size_t)f.adapter.layers[i].slot->out;
    assert_int_equal(trainable, 2304 * 4 + rows);
    assert_int_equal(rows, 1152);
    assert_int_equal(f.adapter.n_params, trainable);
    assert_int_equal(finetune_run(&f, &e), 0);
    float *mag = malloc(rows * sizeof(float)), *norms = malloc(rows * sizeof(float));
    size_t k = 0, moved = 0;
    for (int i = 0; i < f.adapter.n_layers; i++)
        for (int j = 0; j < f.adapter.layers[i].slot->out; j++, k++) {
            mag[k] = f.adapter.layers[i].mag[j];
            norms[k] = f.adapter.layers[i].wnorm[j];
        }
    lora_refresh(&f.adapter);
    for (k = 0; k < rows; k++) {
        assert_true(norms[k] == f.adapter.wnorm[k]); /* the cache was current */
        moved += mag[k] != f.adapter.wnorm[k];
    }
    assert_true(moved > rows / 2); /* m learned away from ‖W + sBA‖ */
    char path[256];
    snprintf(path, sizeof path, "%s/dora.safetensors", tmpdir);
    assert_int_equal(lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e), 0);
    finetune_free(&f);
    lora back;
    assert_int_equal(lora_load(&back, &model, path, base_sha, &e), 0);
    assert_true(back.dora);
    k = 0;
    for (int i = 0; i < back.n_layers; i++)
        for (int j = 0; j < back.layers[i].slot->out; j++)
            assert_true(back.layers[i].mag[j] == mag[k++]);
    lora_free(&back);
    size_t n2, n1;
    char *a = slurp(path, &n2);
    char *b = slurp(train_and_save(&o1, "dora-t1.safetensors"), &n1);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    st_file sf;
    assert_int_equal(st_open(&sf, path, &e), 0);
    const st_tensor *t =
        st_find(&sf, "base_model.model.blocks.1.ffn.fc2.lora_magnitude_vector.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 64);
    st_close(&sf);
    assert_true(holds(a, n1, "\"use_dora\":\"true\""));
    free(a);
    free(b);
    free(mag);
    free(norms);
}

/* DoRA at step 0 equals the base exactly, also through the file (B = 0, m = ‖W‖ in F32). */
static void test_dora_step0_is_base(void **state) {
    finetune_opts o = opts(4, 0, 1, 2);
    o.dora = 1;
    const char *path = train_and_save(&o, "dora0.safetensors");
    ml_error e;
    minigpt_ws ws;
    const int T = 12;
    int tokens[2 * 12];
    for (int i = 0; i < 2 * T; i++) tokens[i] = (i * 7 + 3) % model.cfg.vocab_size;
    assert_int_equal(minigpt_ws_init(&ws, &model, 2, T, &e), 0);
    minigpt_forward(&model, &ws, tokens, 2, T);
    const size_t n = (size_t)2 * T * model.cfg.vocab_size;
    float *base = malloc(n * sizeof(float));
    memcpy(base, ws.logits, n * sizeof(float));
    minigpt_ws_free(&ws);
    lora a;
    assert_int_equal(lora_load(&a, &model, path, base_sha, &e), 0);
    assert_int_equal(minigpt_ws_init(&ws, &model, 2, T, &e), 0);
    minigpt_forward(&model, &ws, tokens, 2, T);
    assert_memory_equal(base, ws.logits, n * sizeof(float));
    minigpt_ws_free(&ws);
    lora_free(&a);
    free(base);
}

/* Interrupted at step 10 and resumed, a DoRA run with dropout ends byte-identical to the
 * straight run: the masks follow the step, the norms are refreshed from the loaded state. */
static void test_variants_resume_bit_identical(void **state) {
    finetune_opts o = opts(4, 20, 2, 13);
    o.dora = 1;
    o.dropout = 0.2f;
    size_t n_straight, n_resumed;
    char *straight = slurp(train_and_save(&o, "v-straight.safetensors"), &n_straight);
    ml_error e;
    char state_path[256], *fp = finetune_fingerprint(&o, base_sha, "d", "v", "r");
    assert_non_null(strstr(fp, "\"dora\":1"));
    assert_non_null(strstr(fp, "\"dropout\":0.2"));
    snprintf(state_path, sizeof state_path, "%s/v.state", tmpdir);
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    f.job.on_eval = stop_at_10;
    assert_int_equal(finetune_run(&f, &e), 0);
    train_stop_signal = 0;
    assert_int_equal(f.state.step, 10);
    assert_int_equal(train_state_save(state_path, &f.job, &f.state, fp, &e), 0);
    finetune_free(&f);
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, &o, "test", &e))
        fail_msg("%s", e.msg);
    if (train_state_load(state_path, &f.job, &f.state, fp, &e)) fail_msg("%s", e.msg);
    assert_int_equal(finetune_run(&f, &e), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/v-resumed.safetensors", tmpdir);
    assert_int_equal(lora_save(&f.adapter, path, base_sha, 0, NULL, NULL, &e), 0);
    finetune_free(&f);
    char *resumed = slurp(path, &n_resumed);
    assert_int_equal(n_straight, n_resumed);
    assert_memory_equal(straight, resumed, n_straight);
    free(fp);
    free(straight);
    free(resumed);
}

/* A full fine-tune refuses the adapter variants. */
static void test_variants_refused_with_full(void **state) {
    finetune_opts o = opts(0, 5, 1, 1);
    o.full = FINETUNE_FULL_LINEAR;
    o.dora = 1;
    ml_error e;
    finetune f;
    assert_int_equal(finetune_init(&f, &model, &train_set, NULL, NULL, &o, "test", &e), -1);
    assert_non_null(strstr(e.msg, "full fine-tune"));
    o.dora = 0;
    o.dropout = 0.5f;
    assert_int_equal(finetune_init(&f, &model, &train_set, NULL, NULL, &o, "test", &e), -1);
}

/* The adapter gradient of one training step (16 training examples) on the compute path given,
 * from params (or the kaiming init when NULL); *loss gets the step's loss, *scored the summed
 * loss of the forward-only pass (engine_loss: the KV-cache forward validation runs). malloc'ed. */
static float *step_grad(int path, const float *params, size_t n, int threads, double *loss,
                        double *scored) {
    finetune_opts o = opts(8, 1, threads, 3);
    o.lora_path = path;
    o.init_params = params;
    o.n_init_params = n;
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, NULL, NULL, &o, "test", &e)) fail_msg("%s", e.msg);
    assert_int_equal(lora_merged_layers(&f.adapter), path == LORA_PATH_MERGED ? 12 : 0);
    const ds_example *ex[16];
    for (int i = 0; i < 16; i++) ex[i] = &train_set.ex[i];
    f.g.ext_step = 1;
    *loss = engine_grad(&f.g, ex, 16, 0, NULL);
    *scored = engine_loss(&f.g, ex, 16, NULL);
    float *g = malloc(f.adapter.n_params * sizeof(float));
    assert_non_null(g);
    memcpy(g, f.g.grad, f.adapter.n_params * sizeof(float));
    finetune_free(&f);
    return g;
}

/* The merged compute path (W' = W + s·B·A) on the real base against the thin one: at the init
 * (B = 0, so W' = W exactly and every added product is zero) the loss and every gradient are
 * bit-identical; with A and B random (B != 0) they agree to float rounding, each gradient
 * within 1e-4 of its tensor's largest magnitude (a missing or wrong term is off by O(1) of it);
 * the frozen base's input gradient below block 0's q,k,v is skipped on both paths. */
static void test_merged_path_matches_thin(void **state) {
    const size_t n = lora_count(&model, 8, LORA_ALL_TARGETS);
    double lt, lm, st, sm;
    float *gt = step_grad(LORA_PATH_THIN, NULL, n, 2, &lt, &st);
    float *gm = step_grad(LORA_PATH_MERGED, NULL, n, 2, &lm, &sm);
    assert_true(lt == lm);
    assert_true(st == sm);
    assert_memory_equal(gt, gm, n * sizeof(float));
    free(gt), free(gm);
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    rng r;
    rng_seed(&r, 21);
    for (size_t j = 0; j < n; j++) p[j] = 0.1f * rng_normal(&r);
    const double base_scored = st;
    gt = step_grad(LORA_PATH_THIN, p, n, 2, &lt, &st);
    gm = step_grad(LORA_PATH_MERGED, p, n, 1, &lm, &sm);
    assert_true(fabs(st - sm) < 1e-5 * st);          /* the KV-cache forward runs W' too */
    assert_true(fabs(st - base_scored) > 1e-2 * st); /* and these A, B change the model */
    float gmax = 0;
    for (size_t j = 0; j < n; j++) gmax = fabsf(gt[j]) > gmax ? fabsf(gt[j]) : gmax;
    double worst = 0;
    for (size_t j = 0; j < n; j++) {
        const double d = fabs((double)gt[j] - gm[j]) / gmax;
        worst = d > worst ? d : worst;
    }
    printf("  merged vs thin, random A, B: loss %.9g vs %.9g, worst gradient difference %.3g of "
           "max |g| %.3g\n",
           lt, lm, worst, (double)gmax);
    assert_true(gmax > 1e-3f);
    assert_true(fabs(lt - lm) < 1e-5 * lt);
    assert_true(lt != lm || worst > 0); /* another graph: not the same rounding */
    assert_true(worst < 1e-4);
    free(gt), free(gm), free(p);
}

/* Training on the merged path: the same seed gives the same bytes on 1 and 2 threads, an
 * adapter close to the thin path's (the graphs differ by rounding only) but not bit-identical,
 * the fingerprint says merged (a resume must not switch paths) and the default one does not;
 * merged is refused with DoRA, dropout and a full fine-tune; auto keeps thin with dropout. */
static void test_merged_path_training(void **state) {
    finetune_opts o1 = opts(8, 15, 1, 7), o2 = opts(8, 15, 2, 7), thin = opts(8, 15, 2, 7);
    o1.lora_path = o2.lora_path = LORA_PATH_MERGED;
    size_t n1, n2, nt;
    char *a = slurp(train_and_save(&o1, "m7t1.safetensors"), &n1);
    char *b = slurp(train_and_save(&o2, "m7t2.safetensors"), &n2);
    char *c = slurp(train_and_save(&thin, "t7t2.safetensors"), &nt);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1); /* same seed: identical on 1 and 2 threads */
    assert_int_equal(n1, nt);
    assert_true(memcmp(a, c, n1) != 0);
    /* the fp16 tensors of both: close (15 AdamW steps amplify rounding only a little) */
    ml_error e;
    lora la, lb;
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/m7t1.safetensors", tmpdir);
    snprintf(pb, sizeof pb, "%s/t7t2.safetensors", tmpdir);
    if (lora_load(&la, &model, pa, base_sha, &e)) fail_msg("%s", e.msg);
    lora_uninstall(&la);
    if (lora_load(&lb, &model, pb, base_sha, &e)) fail_msg("%s", e.msg);
    double worst = 0, most = 0;
    for (size_t j = 0; j < la.n_params; j++) {
        worst = fmax(worst, fabs((double)la.params[j] - lb.params[j]));
        most = fmax(most, fabs((double)lb.params[j]));
    }
    printf("  merged vs thin after 15 steps: worst |diff| %.3g of max %.3g\n", worst, most);
    assert_true(worst < 2e-3 * most);
    lora_free(&lb);
    lora_free(&la);
    char *fp = finetune_fingerprint(&o2, base_sha, "d", "v", "r");
    char *fpt = finetune_fingerprint(&thin, base_sha, "d", "v", "r");
    assert_non_null(strstr(fp, "\"lora_path\":\"merged\""));
    assert_null(strstr(fpt, "lora_path"));
    free(fp), free(fpt), free(a), free(b), free(c);
    finetune f;
    finetune_opts bad = opts(8, 5, 1, 1);
    bad.lora_path = LORA_PATH_MERGED;
    bad.dora = 1;
    assert_int_equal(finetune_init(&f, &model, &train_set, NULL, NULL, &bad, "test", &e), -1);
    assert_non_null(strstr(e.msg, "DoRA"));
    bad.dora = 0;
    bad.dropout = 0.2f;
    assert_int_equal(finetune_init(&f, &model, &train_set, NULL, NULL, &bad, "test", &e), -1);
    assert_non_null(strstr(e.msg, "--dropout"));
    bad.dropout = 0.0f;
    bad.full = FINETUNE_FULL_LINEAR;
    bad.rank = 0;
    assert_int_equal(finetune_init(&f, &model, &train_set, NULL, NULL, &bad, "test", &e), -1);
    assert_non_null(strstr(e.msg, "full fine-tune"));
    finetune_opts aut = opts(8, 5, 1, 1);
    aut.lora_path = LORA_PATH_AUTO;
    aut.dropout = 0.2f;
    if (finetune_init(&f, &model, &train_set, NULL, NULL, &aut, "test", &e)) fail_msg("%s", e.msg);
    assert_int_equal(lora_merged_layers(&f.adapter), 0);
    finetune_free(&f);
    aut.dropout = 0.0f; /* micro 4 x context 32 = 128 rows: every layer merges by FLOPs */
    if (finetune_init(&f, &model, &train_set, NULL, NULL, &aut, "test", &e)) fail_msg("%s", e.msg);
    assert_int_equal(lora_merged_layers(&f.adapter), 12);
    finetune_free(&f);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_adapter_changes),
        cmocka_unit_test(test_same_seed_same_bytes_any_threads),
        cmocka_unit_test(test_fp16_round_trip_matches_rounding),
        cmocka_unit_test(test_divergence_is_caught),
        cmocka_unit_test(test_rank0_trains_nothing),
        cmocka_unit_test(test_full_finetune_changes_only_linear_weights),
        cmocka_unit_test(test_interrupt_and_resume_is_bit_identical),
        cmocka_unit_test(test_preserve_kl_pulls_toward_base),
        cmocka_unit_test(test_preserve_kl_same_bytes_any_threads),
        cmocka_unit_test(test_preserve_kl_full_finetune_uses_frozen_copy),
        cmocka_unit_test(test_sgd_step_matches_hand_computation),
        cmocka_unit_test(test_adamw_through_table_matches_formula),
        cmocka_unit_test(test_loraplus_ratio_scales_b_updates),
        cmocka_unit_test(test_sgd_resume_bit_identical_and_kind_checked),
        cmocka_unit_test(test_default_fingerprint_unchanged),
        cmocka_unit_test(test_dropout_deterministic),
        cmocka_unit_test(test_dropout_off_at_evaluation),
        cmocka_unit_test(test_dora_train_save_load),
        cmocka_unit_test(test_dora_step0_is_base),
        cmocka_unit_test(test_variants_refused_with_full),
        cmocka_unit_test(test_variants_resume_bit_identical),
        cmocka_unit_test(test_merged_path_matches_thin),
        cmocka_unit_test(test_merged_path_training),
    };
    return cmocka_run_group_tests_name("finetune", tests, setup, teardown);
}
